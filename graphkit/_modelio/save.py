"""Writing ONNX files atomically, with external data where needed."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterable
from pathlib import Path

import onnx
import onnx_ir as ir
from google.protobuf.message import DecodeError, EncodeError

from graphkit._errors import ModelError
from graphkit._modelio import leftovers as _leftovers
from graphkit._modelio import tensors as _tensors
from graphkit._modelio.tensors import (
    TensorSizes,
    attribute_tensors,
    attributes_in_memory,
    external_tensors,
    gib,
    in_memory,
    missing_external_data,
    tensor_attributes,
)
from graphkit._recipe.params import SaveOptions


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
    What earlier saves into the folder left is removed (see
    :mod:`graphkit._modelio.leftovers`).

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
    problem = missing_external_data(model)
    if problem:
        raise ModelError(f"{path}: cannot copy the weights: {problem}")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelError(f"{path}: cannot write the model: {error}") from error
    notes.extend(_leftovers.remove_unfinished_saves(folder))
    previous_token = _leftovers.token_of(path)
    # Read only an output graphkit wrote: another may be large, and its data is not ours.
    previous_data = _data_locations(path) if previous_token is not None else set()
    try:
        staging = _leftovers.Staging(folder, path.name)
    except OSError as error:
        raise ModelError(f"{path}: cannot write the model: {error}") from error
    try:
        written = _write_staged(model, staging.path / path.name, data_name, options, notes)
        # The data first: a model file never names data that is not there yet.
        files = sorted(staging.files(), key=lambda p: p.name == path.name)
        destinations = [folder / f.name for f in files]
        for destination in destinations:
            _check_replaceable(destination)
        _check_not_anothers_data(model, path, destinations)
        stale, unproven = _leftovers.stale_data(
            folder, previous_token, previous_data, {d.name for d in destinations}
        )
        backed = _reading(model, _file_ids([*destinations, *stale]))
        _leftovers.stamp(files, _leftovers.new_token())
        try:
            for file in files:
                os.replace(file, folder / file.name)
        except OSError as error:
            raise ModelError(f"{path}: cannot write the model: {error}") from error
    finally:
        staging.remove()
    _repoint(model, written, backed, folder)
    notes.extend(_remove_stale(stale, unproven, path))
    return notes


def _remove_stale(stale: list[Path], unproven: list[str], path: Path) -> list[str]:
    """Remove the replaced output's own data files that the new one does not use."""
    removed, failed = [], []
    for file in stale:
        try:
            file.unlink()
            removed.append(file.name)
        except OSError:
            failed.append(file.name)
    notes = []
    if removed:
        notes.append(f"removed data files the previous {path.name} used: {', '.join(removed)}")
    if failed or unproven:
        notes.append(
            f"data files the previous {path.name} used are left in place"
            f"{' (graphkit cannot tell it wrote them)' if unproven else ''}: "
            f"{', '.join(failed + unproven)}"
        )
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
    read = {_file_id(t.path) for t in external_tensors(model)}
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
    sizes = TensorSizes.of(model)
    choice = options.external_data
    default_name = f"{path.name}.data"
    if choice is False:
        if sizes.total > _tensors.PROTOBUF_LIMIT:
            raise ModelError(
                f"{path}: the model holds {gib(sizes.total)} of tensors, over protobuf's "
                "2 GiB limit, and save.external_data is false; allow external data to write it"
            )
        return None
    if choice is None:
        if sizes.has_external:
            notes.append(f"weights kept as external data in {default_name}")
        elif sizes.total > _tensors.PROTOBUF_LIMIT:
            notes.append(
                f"tensors of {gib(sizes.total)} pass protobuf's 2 GiB limit; "
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
    if inline > _tensors.PROTOBUF_LIMIT:
        raise ModelError(
            f"{path}: {gib(inline)} of tensors would stay inside the model file, over "
            "protobuf's 2 GiB limit: Constant-node values (which are not moved to external "
            "data) and weights under save.threshold_bytes"
        )
    return name


def _check_data_name(name: str, path: Path) -> None:
    candidate = Path(name)
    if candidate.is_absolute() or len(candidate.parts) != 1 or name in (".", ".."):
        raise ModelError(
            f"{path}: external data file {name!r} must be a plain file name: "
            "it is written in the output's folder"
        )
    if candidate == Path(path.name):
        raise ModelError(f"{path}: external data file cannot be the model file itself")


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
        with attributes_in_memory(model) as attributes:
            if data_name is None:
                for value in values:
                    value.const_value = in_memory(value.const_value)
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
        for node, attribute in tensor_attributes(model)
        if any(
            isinstance(t, ir.ExternalTensor) and _file_id(t.path) in files
            for t in attribute_tensors(attribute)
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
