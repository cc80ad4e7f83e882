"""Handing models to tools that speak ModelProto, with or without their weights."""

from __future__ import annotations

import collections
from collections.abc import Callable

import onnx
import onnx_ir as ir

from graphkit._errors import ModelError
from graphkit._modelio import tensors as _tensors
from graphkit._modelio.tensors import (
    TensorSizes,
    attributes_in_memory,
    gib,
    in_memory,
    missing_external_data,
)

#: Tensors up to this size are left in the proto when a model is handed to a C++ tool.
_SMALL_TENSOR_BYTES = 1024


def to_proto(model: ir.Model) -> onnx.ModelProto:
    """Serialise ``model`` for a tool that needs every weight in memory.

    External tensors are read in (the model itself keeps them on disk); use
    :func:`call_on_graph` for tools that only need the graph.

    Raises:
        ModelError: external data is missing, or the model passes protobuf's
            2 GiB limit.
    """
    sizes = TensorSizes.of(model)
    if sizes.total > _tensors.PROTOBUF_LIMIT:
        raise ModelError(
            f"the model holds {gib(sizes.total)} of tensors, over protobuf's 2 GiB limit; "
            "it cannot be handed over whole"
        )
    problem = missing_external_data(model)
    if problem:
        raise ModelError(f"cannot read the weights: {problem}")
    values = [
        v for g in model.graphs() for v in g.initializers.values() if v.const_value is not None
    ]
    originals = [v.const_value for v in values]
    try:
        with attributes_in_memory(model):
            for value in values:
                value.const_value = in_memory(value.const_value)
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
        with attributes_in_memory(model):
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
