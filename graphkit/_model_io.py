"""Reading and writing ONNX files safely, and handing models to tools that speak ModelProto.

The in-memory model is an ``onnx_ir.Model``: tensors stored as external data
stay on disk (memory-mapped when read), so graph-only surgery on a model of
many GiB never reads its weights.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PureWindowsPath
from typing import Any

import onnx
import onnx_ir as ir
from google.protobuf.message import DecodeError, EncodeError

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
    Weights kept as external data are copied file to file, never read into
    memory. The model keeps its weights; if the save replaced a data file the
    model reads from (saving over its own source), it reads the new one.

    Returns:
        Notes for the user, such as why external data was used.

    Raises:
        ModelError: the model cannot be written as asked; external data it
            reads from is missing; the output or its data file exists and is
            not a file (a FIFO, a device, a folder); or the output's data
            would replace a file the model reads from that belongs to another
            model (its source).
    """
    options = options or SaveOptions()
    path = Path(path)
    notes: list[str] = []
    _check_replaceable(path)
    data_name = _external_data_name(model, path, options, notes)
    problem = _missing_external_data(model)
    if problem:
        raise ModelError(f"{path}: cannot copy the weights: {problem}")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=folder))
    except OSError as error:
        raise ModelError(f"{path}: cannot write the model: {error}") from error
    try:
        written = _write_staged(model, staging / path.name, data_name, options, notes)
        # The data first: a model file never names data that is not there yet.
        files = sorted(staging.iterdir(), key=lambda p: p.name == path.name)
        destinations = [folder / f.name for f in files]
        for destination in destinations:
            _check_replaceable(destination)
        _check_not_anothers_data(model, path, destinations)
        backed = _reading(model, _file_ids(destinations))
        try:
            for file in files:
                os.replace(file, folder / file.name)
        except OSError as error:
            raise ModelError(f"{path}: cannot write the model: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _repoint(model, written, backed, folder)
    return notes


def _check_replaceable(path: Path) -> None:
    """Refuse to replace anything but a file: a FIFO, a device or a folder, or a link to one.

    A link to a file is replaced like a file (its target is left as it was).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return  # nothing there, or a dangling link
    except OSError as error:
        raise ModelError(f"{path}: cannot write the model: {error}") from error
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        link = " (through a symbolic link)" if path.is_symlink() else ""
        raise ModelError(
            f"{path}: exists and is {kind}{link}; outputs are written by renaming new files "
            "into place, which would replace it"
        )


def _check_not_anothers_data(model: ir.Model, path: Path, destinations: list[Path]) -> None:
    """Refuse to replace a data file the model reads, unless it belongs to the output replaced.

    Saving over the model's own source replaces its data with the rest of it;
    but a source may keep its weights in a file that happens to bear the
    output's data name, and replacing that would change the source.
    """
    read = {_file_id(t.path) for t in _external_tensors(model)}
    clashing = [d for d in destinations if d != path and _file_id(d) in read]
    if not clashing:
        return
    owned = _data_locations(path)
    for destination in clashing:
        if destination.name not in owned:
            raise ModelError(
                f"{path}: its external data would replace {destination}, from which the "
                "model reads its weights; choose another file name with save.external_data, "
                "or write to another folder"
            )


def _data_locations(path: Path) -> set[str]:
    """The external data files the ONNX file at ``path`` names, if it is one."""
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except (OSError, DecodeError, RuntimeError, ValueError):
        return set()
    locations = set()
    stack = [proto.graph, *(onnx.GraphProto(node=f.node) for f in proto.functions)]
    while stack:
        graph = stack.pop()
        tensors = list(graph.initializer)
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    tensors.append(attribute.t)
                tensors.extend(attribute.tensors)
                if attribute.HasField("g"):
                    stack.append(attribute.g)
                stack.extend(attribute.graphs)
        for tensor in tensors:
            locations.update(e.value for e in tensor.external_data if e.key == "location")
    return locations


def _external_data_name(
    model: ir.Model, path: Path, options: SaveOptions, notes: list[str]
) -> str | None:
    """Decide where weights go, before anything is serialised; see :class:`SaveOptions`."""
    sizes = _TensorSizes.of(model)
    choice = options.external_data
    default_name = f"{path.name}.data"
    if choice is False:
        if sizes.total > PROTOBUF_LIMIT:
            raise ModelError(
                f"{path}: the model holds {_gib(sizes.total)} of tensors, over protobuf's "
                "2 GiB limit, and save.external_data is false; allow external data to write it"
            )
        return None
    if choice is None:
        if sizes.has_external:
            notes.append(f"weights kept as external data in {default_name}")
        elif sizes.total > PROTOBUF_LIMIT:
            notes.append(
                f"tensors of {_gib(sizes.total)} pass protobuf's 2 GiB limit; "
                f"saved as external data in {default_name}"
            )
        else:
            return None
        name = default_name
    elif choice is True:
        name = default_name
    else:
        _check_data_name(choice, path)
        name = choice
    inline = sizes.attributes + sizes.below(options.threshold_bytes)
    if inline > PROTOBUF_LIMIT:
        raise ModelError(
            f"{path}: {_gib(inline)} of tensors would stay inside the model file, over "
            "protobuf's 2 GiB limit: Constant-node values (which are not moved to external "
            "data) and weights under save.threshold_bytes"
        )
    return name


@dataclasses.dataclass
class _TensorSizes:
    """What a model's tensors add to its serialised size."""

    initializers: list[ir.TensorProtocol]
    attributes: int
    has_external: bool

    @classmethod
    def of(cls, model: ir.Model) -> _TensorSizes:
        initializers = [
            v.const_value
            for g in model.graphs()
            for v in g.initializers.values()
            if v.const_value is not None
        ]
        attributes = sum(
            t.nbytes
            for _, attribute in _tensor_attributes(model)
            for t in _attribute_tensors(attribute)
        )
        has_external = any(isinstance(t, ir.ExternalTensor) for t in initializers)
        return cls(initializers, attributes, has_external)

    @property
    def total(self) -> int:
        return self.attributes + sum(t.nbytes for t in self.initializers)

    def below(self, threshold: int) -> int:
        return sum(t.nbytes for t in self.initializers if t.nbytes < threshold)


def tensor_bytes(model: ir.Model) -> int:
    """How many bytes of tensors ``model`` holds, in every graph, wherever they are kept.

    This is what its weights would add to a model file without external
    data: initializers of the main graph and of subgraphs, and tensor-valued
    attributes such as Constant nodes' values.
    """
    return _TensorSizes.of(model).total


def _gib(count: int) -> str:
    return f"{count / 2**30:.2f} GiB"


def _check_data_name(name: str, path: Path) -> None:
    candidate = Path(name)
    if candidate.is_absolute() or len(candidate.parts) != 1 or name in (".", ".."):
        raise ModelError(
            f"{path}: external data file {name!r} must be a plain file name: "
            "it is written in the output's folder"
        )
    if candidate == Path(path.name):
        raise ModelError(f"{path}: external data file cannot be the model file itself")


def _missing_external_data(model: ir.Model) -> str | None:
    """Describe the first external tensor whose file is missing or too short."""
    sizes: dict[str, int] = {}
    for tensor in _external_tensors(model):
        path = tensor.path
        if path not in sizes:
            try:
                sizes[path] = os.path.getsize(path)
            except OSError:
                return f"tensor {tensor.name!r}: external data file {path} is missing"
        end = (tensor.offset or 0) + (tensor.length if tensor.length is not None else tensor.nbytes)
        if end > sizes[path]:
            return (
                f"tensor {tensor.name!r}: needs bytes up to {end} of {path}, "
                f"which has only {sizes[path]}"
            )
    return None


@dataclasses.dataclass
class _Written:
    """What a save wrote for each tensor, to repoint the model at if the save replaced its data."""

    initializers: dict[ir.Value, ir.TensorProtocol]
    attributes: dict[tuple[ir.Node, str], ir.Attr]


def _write_staged(
    model: ir.Model, target: Path, data_name: str | None, options: SaveOptions, notes: list[str]
) -> _Written:
    """Write the model file and its data files into ``target``'s (new, empty) folder."""
    values = [
        v for g in model.graphs() for v in g.initializers.values() if v.const_value is not None
    ]
    originals = [v.const_value for v in values]
    try:
        with _attributes_in_memory(model) as attributes:
            if data_name is None:
                for value in values:
                    value.const_value = _in_memory(value.const_value)
            else:
                ir.external_data.unload_from_model(
                    model,
                    target.parent,
                    data_name,
                    # ir moves tensors *over* its threshold; the option keeps *smaller* ones inline.
                    size_threshold_bytes=max(options.threshold_bytes - 1, 0),
                    max_shard_size_bytes=options.max_shard_bytes,
                )
            written = _Written({v: v.const_value for v in values}, attributes)
            serialized = ir.serde.serialize_model(model).SerializeToString()
        target.write_bytes(serialized)
    except FileNotFoundError as error:
        raise ModelError(
            f"{target.name}: cannot copy external data: {error.filename or error}: no such file"
        ) from error
    except (OSError, ValueError, EncodeError) as error:
        raise ModelError(f"{target.name}: cannot write the model: {error}") from error
    finally:
        for value, tensor in zip(values, originals, strict=True):
            value.const_value = tensor
    if data_name is not None and options.max_shard_bytes is not None:
        notes.extend(_shard_notes(written, options.max_shard_bytes))
    return written


def _shard_notes(written: _Written, max_shard_bytes: int) -> list[str]:
    external = [t for t in written.initializers.values() if isinstance(t, ir.ExternalTensor)]
    files = {str(t.location) for t in external}
    notes = [f"external data split into {len(files)} files"] if len(files) > 1 else []
    oversized = [repr(t.name) for t in external if t.nbytes > max_shard_bytes]
    if oversized:
        shown = ", ".join(oversized[:5]) + (", ..." if len(oversized) > 5 else "")
        notes.append(
            f"{len(oversized)} tensors are larger than save.max_shard_bytes "
            f"({max_shard_bytes}) and have a file each: {shown}"
        )
    return notes


def _file_ids(paths: Iterable[Path]) -> set[tuple[int, int]]:
    ids = set()
    for path in paths:
        if (found := _file_id(path)) is not None:
            ids.add(found)
    return ids


def _file_id(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


def _reading(
    model: ir.Model, files: set[tuple[int, int]]
) -> tuple[list[ir.Value], list[tuple[ir.Node, str]]]:
    """The initializers and node attributes whose external data is in one of ``files``."""
    if not files:
        return [], []
    values = [
        v
        for g in model.graphs()
        for v in g.initializers.values()
        if isinstance(v.const_value, ir.ExternalTensor) and _file_id(v.const_value.path) in files
    ]
    attributes = [
        (node, attribute.name)
        for node, attribute in _tensor_attributes(model)
        if any(
            isinstance(t, ir.ExternalTensor) and _file_id(t.path) in files
            for t in _attribute_tensors(attribute)
        )
    ]
    return values, attributes


def _repoint(
    model: ir.Model,
    written: _Written,
    reading: tuple[list[ir.Value], list[tuple[ir.Node, str]]],
    folder: Path,
) -> None:
    """Point tensors whose data file the save replaced at the data the save wrote."""
    values, attributes = reading
    for value in values:
        tensor = written.initializers[value]
        if isinstance(tensor, ir.ExternalTensor):
            tensor.base_dir = folder
        value.const_value = tensor
    for node, name in attributes:
        node.attributes[name] = written.attributes[(node, name)]


def integrity_problem(model: ir.Model) -> str | None:
    """Describe the first broken reference in ``model``, or return ``None``.

    A node must read only values that a graph input, an initializer or an
    earlier node defines; every graph output must be defined too. A file cut
    short usually breaks one of these. Every attribute must have a type, or
    its value is lost on reading.
    """
    if len(model.graph) and "" not in model.opset_imports:
        return "no opset is imported for the default ONNX domain"
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


def to_proto(model: ir.Model) -> onnx.ModelProto:
    """Serialise ``model`` for a tool that needs every weight in memory.

    External tensors are read in (the model itself keeps them on disk); use
    :func:`call_on_graph` for tools that only need the graph.

    Raises:
        ModelError: external data is missing, or the model passes protobuf's
            2 GiB limit.
    """
    sizes = _TensorSizes.of(model)
    if sizes.total > PROTOBUF_LIMIT:
        raise ModelError(
            f"the model holds {_gib(sizes.total)} of tensors, over protobuf's 2 GiB limit; "
            "it cannot be handed over whole"
        )
    problem = _missing_external_data(model)
    if problem:
        raise ModelError(f"cannot read the weights: {problem}")
    values = [
        v for g in model.graphs() for v in g.initializers.values() if v.const_value is not None
    ]
    originals = [v.const_value for v in values]
    try:
        with _attributes_in_memory(model):
            for value in values:
                value.const_value = _in_memory(value.const_value)
            return ir.serde.serialize_model(model)
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot read the weights: {error}") from error
    finally:
        for value, tensor in zip(values, originals, strict=True):
            value.const_value = tensor


def from_proto(proto: onnx.ModelProto) -> ir.Model:
    """Wrap a ModelProto in the in-memory representation.

    The model shares tensors with ``proto`` (renaming a weight renames it in
    ``proto`` too), so hand over a proto that nothing else uses.
    """
    return ir.serde.deserialize_model(proto)


def call_on_graph(
    model: ir.Model,
    function: Callable[[onnx.ModelProto], onnx.ModelProto | None],
    *,
    rebuild: bool,
) -> ir.Model | None:
    """Hand ``model`` to a ModelProto tool without serialising its large weights.

    Weights kept as external data and initializers over 1 KiB become graph
    inputs of the same type and shape while ``function`` runs: the tool sees
    the whole graph, never reads a data file and never meets protobuf's 2 GiB
    limit. Small initializers, such as shape and axes constants, stay, since
    tools read them. A weight of a subgraph (an If or Loop body) is lifted to
    an input of the main graph, which the body still sees by name.

    With ``rebuild``, the proto ``function`` returns becomes a new model with
    the original weight tensors put back where they were, sharing their memory
    or data files; otherwise ``None`` is returned.

    Raises:
        ModelError: a Constant node's value is kept as external data that is
            missing.
    """
    held = weights_held_back(model)
    placeholders = {
        value: ir.ExternalTensor(
            _HELD_LOCATION, 0, tensor.nbytes, tensor.dtype, shape=tensor.shape, name=value.name
        )
        for value, tensor in held.items()
    }
    try:
        with _attributes_in_memory(model):
            for value, placeholder in placeholders.items():
                value.const_value = placeholder
            proto = ir.serde.serialize_model(model)
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot read a Constant node's value: {error}") from error
    finally:
        for value, tensor in held.items():
            value.const_value = tensor
    _drop_placeholders(proto.graph)
    listed = {v.name for v in model.graph.inputs}
    for value, tensor in held.items():
        if value.name not in listed:
            proto.graph.input.append(
                onnx.helper.make_tensor_value_info(
                    value.name, tensor.dtype.value, list(tensor.shape.numpy())
                )
            )
    result = function(proto)
    if not rebuild:
        return None
    assert result is not None
    new_model = ir.serde.deserialize_model(result)
    _put_back(new_model, model, held, listed)
    return new_model


#: Marks held-back weights in the proto while it is built; no file of this name is ever read.
_HELD_LOCATION = "graphkit-held-back-weight"


def weights_held_back(model: ir.Model) -> dict[ir.Value, ir.TensorProtocol]:
    """The weights :func:`call_on_graph` keeps out of the proto, and their tensors."""
    names: collections.Counter[str | None] = collections.Counter()
    for graph in model.graphs():
        names.update(v.name for v in graph.inputs if not v.is_initializer())
        names.update(list(graph.initializers))
        names.update(o.name for node in graph for o in node.outputs)
    held: dict[ir.Value, ir.TensorProtocol] = {}
    for graph in model.graphs():
        for value in graph.initializers.values():
            tensor = value.const_value
            if tensor is None:
                continue
            if not isinstance(tensor, ir.ExternalTensor) and tensor.nbytes <= _SMALL_TENSOR_BYTES:
                continue
            # A subgraph's weight is lifted to a main-graph input, seen by name from
            # the body; only safe when no other value in the model has that name.
            if graph is not model.graph and (names[value.name] != 1 or value.is_graph_input()):
                continue
            held[value] = tensor
    return held


def _drop_placeholders(graph: onnx.GraphProto) -> None:
    kept = [t for t in graph.initializer if not _is_placeholder(t)]
    if len(kept) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                _drop_placeholders(attribute.g)
            for subgraph in attribute.graphs:
                _drop_placeholders(subgraph)


def _is_placeholder(tensor: onnx.TensorProto) -> bool:
    return tensor.data_location == onnx.TensorProto.EXTERNAL and any(
        e.key == "location" and e.value == _HELD_LOCATION for e in tensor.external_data
    )


def _put_back(
    new_model: ir.Model,
    model: ir.Model,
    held: dict[ir.Value, ir.TensorProtocol],
    listed: set[str],
) -> None:
    """Make the held-back weights initializers of ``new_model`` again, where they were."""
    graph = new_model.graph
    inputs = {v.name: v for v in graph.inputs}
    parents = _parent_graphs(new_model)
    dropped: set[str] = set()
    for original, tensor in held.items():
        value = inputs.get(original.name)
        if value is None:
            continue
        if original.graph is model.graph:
            value.const_value = tensor
            graph.register_initializer(value)
            if original.name not in listed:
                dropped.add(original.name)
            continue
        dropped.add(original.name)
        uses = list(value.uses())
        if not uses:
            continue  # the tool no longer needs it
        owner = _common_graph([use.node.graph for use in uses], parents)
        twin = ir.Value(
            name=original.name,
            shape=value.shape,
            type=value.type,
            const_value=tensor,
        )
        owner.register_initializer(twin)
        for use in uses:
            use.node.replace_input_with(use.idx, twin)
    kept = [v for v in graph.inputs if v.name not in dropped]
    graph.inputs.clear()
    graph.inputs.extend(kept)
    _restore_order(graph, model.graph)


def _parent_graphs(model: ir.Model) -> dict[ir.Graph, ir.Graph]:
    parents: dict[ir.Graph, ir.Graph] = {}
    for graph in model.graphs():
        for node in graph:
            for attribute in node.attributes.values():
                if attribute.type == ir.AttributeType.GRAPH:
                    parents[attribute.value] = graph
                elif attribute.type == ir.AttributeType.GRAPHS:
                    for subgraph in attribute.value:
                        parents[subgraph] = graph
    return parents


def _common_graph(graphs: list[ir.Graph | None], parents: dict[ir.Graph, ir.Graph]) -> ir.Graph:
    """The innermost graph that contains every one of ``graphs``."""

    def chain(graph: ir.Graph) -> list[ir.Graph]:
        found = [graph]
        while found[-1] in parents:
            found.append(parents[found[-1]])
        return found

    chains = [chain(g) for g in graphs if g is not None]
    common = chains[0]
    for other in chains[1:]:
        common = [g for g in common if g in other]
    return common[0]


def _restore_order(graph: ir.Graph, original: ir.Graph) -> None:
    """Put initializers back in their original order, which external data layouts follow."""
    rank = {name: index for index, name in enumerate(original.initializers)}
    ordered = sorted(graph.initializers.values(), key=lambda v: rank.get(v.name or "", len(rank)))
    if [v.name for v in ordered] == list(graph.initializers):
        return
    for value in ordered:
        graph.initializers.pop(value.name)
    for value in ordered:
        graph.register_initializer(value)


def _external_tensors(model: ir.Model) -> Iterator[ir.ExternalTensor]:
    for graph in model.graphs():
        for value in graph.initializers.values():
            if isinstance(value.const_value, ir.ExternalTensor):
                yield value.const_value
    for _, attribute in _tensor_attributes(model):
        for tensor in _attribute_tensors(attribute):
            if isinstance(tensor, ir.ExternalTensor):
                yield tensor


def _tensor_attributes(model: ir.Model) -> Iterator[tuple[ir.Node, ir.Attr]]:
    """Every tensor-valued node attribute (Constant values, say) in all graphs and functions."""
    roots: list[ir.Graph | ir.Function] = [model.graph, *model.functions.values()]
    for root in roots:
        for node in ir.traversal.RecursiveGraphIterator(root):
            for attribute in node.attributes.values():
                if attribute.is_ref():
                    continue
                if attribute.type in (ir.AttributeType.TENSOR, ir.AttributeType.TENSORS):
                    yield node, attribute


def _attribute_tensors(attribute: ir.Attr) -> list[ir.TensorProtocol]:
    if attribute.value is None:
        return []
    if attribute.type == ir.AttributeType.TENSOR:
        return [attribute.value]
    return list(attribute.value)


def _in_memory(tensor: ir.TensorProtocol) -> ir.TensorProtocol:
    """``tensor``, or for an external one a tensor over its memory-mapped bytes."""
    if not isinstance(tensor, ir.ExternalTensor):
        return tensor
    return ir.Tensor(tensor.numpy(), dtype=tensor.dtype, name=tensor.name)


@contextlib.contextmanager
def _attributes_in_memory(model: ir.Model) -> Iterator[dict[tuple[ir.Node, str], ir.Attr]]:
    """Swap attributes holding external tensors for in-memory ones while the block runs.

    ir writes only initializers to external data; a Constant node's value is
    written inline, so it must be read. Yields the in-memory attributes.
    """
    swapped: dict[tuple[ir.Node, str], tuple[ir.Attr, ir.Attr]] = {}
    try:
        for node, attribute in list(_tensor_attributes(model)):
            tensors = _attribute_tensors(attribute)
            if not any(isinstance(t, ir.ExternalTensor) for t in tensors):
                continue
            loaded = [_in_memory(t) for t in tensors]
            value = loaded[0] if attribute.type == ir.AttributeType.TENSOR else loaded
            replacement = ir.Attr(
                attribute.name, attribute.type, value, doc_string=attribute.doc_string
            )
            swapped[(node, attribute.name)] = (attribute, replacement)
            node.attributes[attribute.name] = replacement
        yield {key: replacement for key, (_, replacement) in swapped.items()}
    finally:
        for (node, name), (original, _) in swapped.items():
            node.attributes[name] = original
