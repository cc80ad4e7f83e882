"""Reading ONNX files safely: what is checked before and after a model is parsed."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path, PureWindowsPath
from typing import Any

import onnx
import onnx_ir as ir
from google.protobuf.message import DecodeError

from graphkit._errors import ModelError

#: Deeper nesting of subgraphs (If inside Loop inside ...) than this is refused.
MAX_GRAPH_DEPTH = 32


def load(path: str | os.PathLike[str]) -> ir.Model:
    """Load an ONNX model without reading weights kept as external data.

    Raises:
        ModelError: the file is missing, empty, not an ONNX model, damaged,
            nested too deeply, or points at external data outside its folder.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if path.is_dir():
        raise ModelError(f"{path}: is a folder, not an ONNX file")
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"{path}: file is empty")
    if size >= 2**31:
        raise ModelError(
            f"{path}: {size / 2**30:.1f} GiB is over protobuf's 2 GiB limit; "
            "such a model must keep its weights in external data"
        )
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except (DecodeError, RuntimeError, ValueError) as error:
        if "MaxDepth" in str(error):
            # protobuf's own cap: about 32 levels of subgraphs, each three messages deep.
            raise ModelError(
                f"{path}: messages nested too deeply for protobuf to read "
                f"(subgraphs nested over {MAX_GRAPH_DEPTH} levels?); refused"
            ) from None
        raise ModelError(f"{path}: not an ONNX model, or a damaged one ({error})") from None
    if not proto.HasField("graph") or proto.ir_version <= 0:
        raise ModelError(f"{path}: not an ONNX model (no graph or no IR version)")
    _check_tensor_locations(proto, path)
    _check_text(proto, path)
    try:
        # onnx_ir logs what it finds wrong; integrity_problem says it once, as the error.
        with _quiet("onnx_ir"):
            model = ir.serde.deserialize_model(proto)
    except Exception as error:
        raise ModelError(f"{path}: cannot read the model: {_root_cause(error)}") from error
    ir.external_data.set_base_dir(model.graph, path.parent.resolve())
    problem = opset_problem(model)
    if problem:
        raise ModelError(f"{path}: invalid model: {problem}")
    problem = integrity_problem(model)
    if problem:
        raise ModelError(f"{path}: damaged model: {problem}")
    return model


def opset_problem(model: ir.Model) -> str | None:
    """Describe a default-domain node of a model that imports no default-domain opset.

    Without that import the node's op has no version, so nothing says what
    it computes. Other domains are not checked: a model of only ``ai.onnx.ml``
    ops needs no default-domain import, and ONNX Runtime runs such a model
    even when its own domain's import is missing.
    """
    if "" in model.opset_imports or "ai.onnx" in model.opset_imports:
        return None
    for graph in model.graphs():
        for node in graph:
            if node.domain in ("", "ai.onnx"):
                what = (
                    f"{node.op_type} node {node.name!r}" if node.name else f"a {node.op_type} node"
                )
                return f"{what} is in the default ONNX domain, for which the model imports no opset"
    return None


def integrity_problem(model: ir.Model) -> str | None:
    """Describe the first broken reference in ``model``, or return ``None``.

    A node must read only values that a graph input, an initializer or an
    earlier node defines; every graph output must be defined too. A file cut
    short usually breaks one of these. Every attribute must have a type, or
    its value is lost on reading. Default-domain ops need that domain's opset
    imported (see :func:`opset_problem`).
    """
    problem = opset_problem(model)
    if problem:
        return problem
    for function in model.functions.values():
        for node in ir.traversal.RecursiveGraphIterator(function):
            problem = _attribute_problem(node)
            if problem:
                return problem
    for graph in model.graphs():
        for node in graph:
            problem = _attribute_problem(node)
            if problem:
                return problem
            for value in node.inputs:
                if value is not None and _undefined(value):
                    who = node.name or node.op_type
                    return f"node {who!r} reads {value.name!r}, which nothing defines"
        for value in graph.outputs:
            if _undefined(value):
                return f"graph output {value.name!r} is not produced by any node"
    return None


def _attribute_problem(node: ir.Node) -> str | None:
    for attribute in node.attributes.values():
        if attribute.type == ir.AttributeType.UNDEFINED:
            who = node.name or node.op_type
            return f"attribute {attribute.name!r} of node {who!r} has no type, so no value"
    return None


def _undefined(value: ir.Value) -> bool:
    return value.producer() is None and not value.is_graph_input() and not value.is_initializer()


def _check_tensor_locations(proto: onnx.ModelProto, path: Path) -> None:
    """Refuse external data outside the model's folder, too deep nesting, and what would be lost.

    Every place a tensor can hide is visited: initializers, tensor attributes
    (Constant values), subgraphs, function bodies and their attribute
    defaults. Sparse tensors and training graphs, which onnx_ir would drop on
    the way to the output, are refused. The walk uses a list, not recursion,
    so no nesting exhausts the interpreter's stack.
    """
    folder = path.parent.resolve()
    if proto.training_info:
        # onnx_ir does not read them, so saving would silently drop them.
        raise ModelError(f"{path}: models with training information are not supported")
    graphs: list[tuple[onnx.GraphProto | onnx.FunctionProto, int]] = [(proto.graph, 1)]
    attributes: list[tuple[onnx.AttributeProto, int]] = []
    for function in proto.functions:
        graphs.append((function, 1))
        attributes.extend((a, 1) for a in function.attribute_proto)
    while graphs or attributes:
        if attributes:
            attribute, depth = attributes.pop()
            tensors = [attribute.t] if attribute.HasField("t") else []
            tensors.extend(attribute.tensors)
            if attribute.HasField("sparse_tensor") or attribute.sparse_tensors:
                raise ModelError(
                    f"{path}: attribute {attribute.name!r} holds a sparse tensor; "
                    "sparse tensors are not supported"
                )
            if attribute.HasField("g"):
                graphs.append((attribute.g, depth + 1))
            graphs.extend((g, depth + 1) for g in attribute.graphs)
        else:
            graph, depth = graphs.pop()
            if depth > MAX_GRAPH_DEPTH:
                raise ModelError(f"{path}: subgraphs nested deeper than {MAX_GRAPH_DEPTH} levels")
            tensors = []
            if isinstance(graph, onnx.GraphProto):
                if graph.sparse_initializer:
                    names = ", ".join(repr(t.values.name) for t in graph.sparse_initializer[:3])
                    raise ModelError(
                        f"{path}: sparse initializers ({names}) are not supported; "
                        "graphkit would lose them"
                    )
                tensors = list(graph.initializer)
            attributes.extend((a, depth) for node in graph.node for a in node.attribute)
        for tensor in tensors:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                _check_location(tensor, folder, path)


def _check_location(tensor: onnx.TensorProto, folder: Path, path: Path) -> None:
    keys = [entry.key for entry in tensor.external_data]
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    where = f"{path}: tensor {tensor.name!r} keeps its data in {location!r}"
    if len(keys) != len(info):
        # Readers disagree on which of two entries counts; the checked one might not be read.
        raise ModelError(f"{where}: its external data names a key twice; refused")
    if not location:
        raise ModelError(f"{where}: external data without a location")
    if "\0" in location:
        raise ModelError(f"{where}: the location holds a NUL character; refused")
    # A model is read on every system: "..\\x" and "C:x" escape the folder on Windows.
    windows = PureWindowsPath(location)
    if (
        os.path.isabs(location)
        or windows.is_absolute()
        or windows.drive
        or ".." in Path(location).parts
        or ".." in windows.parts
    ):
        raise ModelError(f"{where}, outside the model's folder; refused")
    resolved = (folder / location).resolve()
    if not resolved.is_relative_to(folder):
        raise ModelError(f"{where}, which links outside the model's folder; refused")
    if resolved == folder or (resolved.exists() and not resolved.is_file()):
        # A folder, a FIFO or a device: reading it fails or never ends.
        raise ModelError(f"{where}, which is not a regular file; refused")
    for key in ("offset", "length"):
        if key in info and (not info[key].isdigit()):
            raise ModelError(f"{where}: its {key} {info[key]!r} is not a non-negative integer")


def _check_text(proto: onnx.ModelProto, path: Path) -> None:
    """Refuse names and other text fields that are not valid UTF-8.

    protobuf hands such a field over as ``bytes`` instead of ``str``; onnx_ir
    keeps it, and every later use of the name (a comparison, a sort, a
    message) fails. Tensor contents are not visited: reading them from Python
    would copy them.
    """
    stack: list[tuple[Any, tuple[Any, ...]]] = [(proto, ())]
    while stack:
        message, where = stack.pop()
        if isinstance(message, onnx.TensorProto):
            texts = [("name", message.name), ("doc_string", message.doc_string)]
            texts += [("external_data", e.key) for e in message.external_data]
            texts += [("external_data", e.value) for e in message.external_data]
            for name, text in texts:
                if isinstance(text, bytes):
                    raise ModelError(f"{path}: {_field_path((*where, name))} is not UTF-8 text")
            continue
        for field, value in message.ListFields():
            if field.type == field.TYPE_STRING:
                texts = value if field.is_repeated else [value]
                if any(isinstance(text, bytes) for text in texts):
                    raise ModelError(
                        f"{path}: {_field_path((*where, field.name))} is not UTF-8 text"
                    )
            elif field.type == field.TYPE_MESSAGE:
                if field.is_repeated:
                    stack.extend((item, (*where, field.name, i)) for i, item in enumerate(value))
                else:
                    stack.append((value, (*where, field.name)))


def _field_path(parts: tuple[Any, ...]) -> str:
    """``graph.node[2].op_type`` from ``("graph", "node", 2, "op_type")``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Hold back a library's log messages below errors while the block runs."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _root_cause(error: BaseException) -> str:
    """The innermost message of an error chain: onnx_ir wraps the real problem in layers."""
    while error.__cause__ is not None:
        error = error.__cause__
    return " ".join(str(error).split()) or type(error).__name__
