"""Reading and writing ONNX files safely, and handing models to tools that speak ModelProto.

The in-memory model is an ``onnx_ir.Model``: tensors stored as external data
stay on disk (memory-mapped when read), so graph-only surgery on a model of
many GiB never reads its weights.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import onnx
import onnx_ir as ir
from google.protobuf.message import DecodeError

from graphkit._errors import ModelError
from graphkit._params import SaveOptions

#: Protobuf cannot serialise a message of 2 GiB or more; keep a margin for the graph itself.
PROTOBUF_LIMIT = 2**31 - 64 * 2**20
#: Deeper nesting of subgraphs (If inside Loop inside ...) than this is refused.
MAX_GRAPH_DEPTH = 32
#: Tensors up to this size are left in the proto when a model is handed to a C++ tool.
_SMALL_TENSOR_BYTES = 1024


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
        raise ModelError(f"{path}: not an ONNX model, or a damaged one ({error})") from None
    if not proto.HasField("graph") or proto.ir_version <= 0:
        raise ModelError(f"{path}: not an ONNX model (no graph or no IR version)")
    _check_tensor_locations(proto, path)
    try:
        model = ir.serde.deserialize_model(proto)
    except Exception as error:
        raise ModelError(f"{path}: cannot read the model: {error}") from error
    ir.external_data.set_base_dir(model.graph, path.parent)
    problem = integrity_problem(model)
    if problem:
        raise ModelError(f"{path}: damaged model: {problem}")
    return model


def save(
    model: ir.Model,
    path: str | os.PathLike[str],
    options: SaveOptions | None = None,
) -> list[str]:
    """Write ``model`` to ``path`` atomically, with external data where needed.

    Every file is first written inside a temporary folder beside ``path`` and
    then renamed into place, so a failure leaves existing files as they were.
    The model itself is not changed.

    Returns:
        Notes for the user, such as why external data was used.

    Raises:
        ModelError: the model cannot be written as asked.
    """
    options = options or SaveOptions()
    path = Path(path)
    notes: list[str] = []
    data_name = _external_data_name(model, path, options, notes)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        try:
            ir.save(
                model,
                staging / path.name,
                external_data=data_name,
                size_threshold_bytes=options.threshold_bytes,
                max_shard_size_bytes=options.max_shard_bytes,
            )
        except FileNotFoundError as error:
            raise ModelError(
                f"{path}: cannot copy external data: {error.filename or error}: no such file"
            ) from error
        except (OSError, ValueError, onnx.checker.ValidationError) as error:
            raise ModelError(f"{path}: cannot write the model: {error}") from error
        # The data first: a model file never names data that is not there yet.
        written = sorted(staging.iterdir(), key=lambda p: p.name == path.name)
        for file in written:
            os.replace(file, path.parent / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return notes


def _external_data_name(
    model: ir.Model, path: Path, options: SaveOptions, notes: list[str]
) -> str | None:
    choice = options.external_data
    inline_bytes = sum(t.nbytes for t in _tensors(model) if not isinstance(t, ir.ExternalTensor))
    has_external = any(isinstance(t, ir.ExternalTensor) for t in _tensors(model))
    default_name = f"{path.name}.data"
    if choice is False:
        if has_external:
            # ir.save writes external tensors as references; bring them in first.
            ir.external_data.load_to_model(model)
            inline_bytes = sum(t.nbytes for t in _tensors(model))
        if inline_bytes > PROTOBUF_LIMIT:
            raise ModelError(
                f"{path}: the model holds {inline_bytes / 2**30:.2f} GiB of weights, over "
                "protobuf's 2 GiB limit, and save.external_data is false; "
                "allow external data to write it"
            )
        return None
    if choice is True:
        return default_name
    if isinstance(choice, str):
        _check_data_name(choice, path)
        return choice
    if has_external:
        notes.append(f"weights kept as external data in {default_name}")
        return default_name
    if inline_bytes > PROTOBUF_LIMIT:
        notes.append(
            f"weights of {inline_bytes / 2**30:.2f} GiB pass protobuf's 2 GiB limit; "
            f"saved as external data in {default_name}"
        )
        return default_name
    return None


def _check_data_name(name: str, path: Path) -> None:
    candidate = Path(name)
    if candidate.is_absolute() or ".." in candidate.parts or not candidate.name:
        raise ModelError(
            f"{path}: external data file {name!r} must be a relative path "
            "inside the output's folder"
        )
    if candidate == Path(path.name):
        raise ModelError(f"{path}: external data file cannot be the model file itself")


def _tensors(model: ir.Model) -> Iterator[ir.TensorProtocol]:
    for graph in model.graphs():
        for value in graph.initializers.values():
            if value.const_value is not None:
                yield value.const_value


def integrity_problem(model: ir.Model) -> str | None:
    """Describe the first broken reference in ``model``, or return ``None``.

    A node must read only values that a graph input, an initializer or an
    earlier node defines; every graph output must be defined too. A file cut
    short usually breaks one of these.
    """
    if len(model.graph) and "" not in model.opset_imports:
        return "no opset is imported for the default ONNX domain"
    for graph in model.graphs():
        for node in graph:
            for value in node.inputs:
                if value is not None and _undefined(value):
                    who = node.name or node.op_type
                    return f"node {who!r} reads {value.name!r}, which nothing defines"
        for value in graph.outputs:
            if _undefined(value):
                return f"graph output {value.name!r} is not produced by any node"
    return None


def _undefined(value: ir.Value) -> bool:
    return value.producer() is None and not value.is_graph_input() and not value.is_initializer()


def _check_tensor_locations(proto: onnx.ModelProto, path: Path) -> None:
    """Refuse external data outside the model's folder, and too deep nesting, before parsing on."""
    folder = path.parent.resolve()
    stack: list[tuple[onnx.GraphProto, int]] = [(proto.graph, 1)]
    stack.extend((f_graph, 1) for f_graph in _function_graphs(proto))
    while stack:
        graph, depth = stack.pop()
        if depth > MAX_GRAPH_DEPTH:
            raise ModelError(f"{path}: subgraphs nested deeper than {MAX_GRAPH_DEPTH} levels")
        tensors = list(graph.initializer)
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    tensors.append(attribute.t)
                tensors.extend(attribute.tensors)
                if attribute.HasField("g"):
                    stack.append((attribute.g, depth + 1))
                stack.extend((g, depth + 1) for g in attribute.graphs)
        for tensor in tensors:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                _check_location(tensor, folder, path)


def _function_graphs(proto: onnx.ModelProto) -> Iterator[onnx.GraphProto]:
    # Function bodies are node lists, not graphs; wrap them so one walk covers both.
    for function in proto.functions:
        yield onnx.GraphProto(node=function.node)


def _check_location(tensor: onnx.TensorProto, folder: Path, path: Path) -> None:
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    where = f"{path}: tensor {tensor.name!r} keeps its data in {location!r}"
    if not location:
        raise ModelError(f"{where}: external data without a location")
    if os.path.isabs(location) or ".." in Path(location).parts:
        raise ModelError(f"{where}, outside the model's folder; refused")
    resolved = (folder / location).resolve()
    if not resolved.is_relative_to(folder):
        raise ModelError(f"{where}, which links outside the model's folder; refused")
    for key in ("offset", "length"):
        if key in info and (not info[key].isdigit()):
            raise ModelError(f"{where}: its {key} {info[key]!r} is not a non-negative integer")


def to_proto(model: ir.Model) -> onnx.ModelProto:
    """Serialise ``model`` for a tool that needs every weight in memory.

    External tensors are read in; use :func:`call_on_graph` for tools that
    only need the graph.
    """
    proto = ir.serde.serialize_model(model)
    folder = _external_base_dir(model)
    if folder is not None:
        onnx.external_data_helper.load_external_data_for_model(proto, str(folder))
    return proto


def from_proto(proto: onnx.ModelProto) -> ir.Model:
    """Wrap a ModelProto in the in-memory representation.

    The model shares tensors with ``proto`` (renaming a weight renames it in
    ``proto`` too), so hand over a proto that nothing else uses.
    """
    return ir.serde.deserialize_model(proto)


def _external_base_dir(model: ir.Model) -> Path | None:
    for tensor in _tensors(model):
        if isinstance(tensor, ir.ExternalTensor):
            return Path(tensor.base_dir)
    return None


def call_on_graph(
    model: ir.Model,
    function: Callable[[onnx.ModelProto], onnx.ModelProto | None],
    *,
    rebuild: bool,
) -> ir.Model | None:
    """Hand ``model`` to a ModelProto tool without serialising its large weights.

    Initializers above 1 KiB are replaced by graph inputs of the same type and
    shape while ``function`` runs (small ones, such as shape and axes constants,
    stay, since tools read them). With ``rebuild``, the proto ``function``
    returns becomes a new model with the original weight tensors put back,
    sharing their memory; otherwise ``None`` is returned.
    """
    proto = ir.serde.serialize_model(model)
    held: dict[str, ir.TensorProtocol] = {}
    listed_as_input = {v.name for v in model.graph.inputs}
    for value in model.graph.initializers.values():
        tensor = value.const_value
        if tensor is None or (
            tensor.nbytes <= _SMALL_TENSOR_BYTES and not isinstance(tensor, ir.ExternalTensor)
        ):
            continue
        held[value.name] = tensor
    if held:
        kept = [t for t in proto.graph.initializer if t.name not in held]
        del proto.graph.initializer[:]
        proto.graph.initializer.extend(kept)
        for name, tensor in held.items():
            if name not in listed_as_input:
                proto.graph.input.append(
                    onnx.helper.make_tensor_value_info(
                        name, tensor.dtype.value, list(tensor.shape.numpy())
                    )
                )
    result = function(proto)
    if not rebuild:
        return None
    assert result is not None
    new_model = ir.serde.deserialize_model(result)
    folder = _external_base_dir(model)
    if folder is not None:
        ir.external_data.set_base_dir(new_model.graph, folder)
    graph = new_model.graph
    by_name = {v.name: v for v in graph.inputs}
    keep_inputs = []
    for value in graph.inputs:
        if value.name in held and value.name not in listed_as_input:
            continue
        keep_inputs.append(value)
    for name, tensor in held.items():
        value = by_name.get(name)
        if value is None:
            continue  # the tool dropped it: no longer used
        value.const_value = tensor
        graph.register_initializer(value)
    graph.inputs.clear()
    graph.inputs.extend(keep_inputs)
    return new_model
