"""Converting the subgraphs of If and Loop nodes that onnx's converter cannot take down.

If and Loop 13 and 16 only allowed sequence and optional values, but onnx's
converter has no adapter down across either version, and it leaves the
subgraphs of a node it does not convert alone. graphkit keeps such a node's
form and converts each subgraph as a model of its own: the values the
subgraph reads from outside become its inputs while it converts, and are
bound back afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx
import onnx_ir as ir
from graphkit_plugins._opset.adapting import check_types, known_value, refuse, since_version

from graphkit import PassError

OPS = frozenset({"If", "Loop"})


def applies(op_type: str, since: int, target: int) -> bool:
    """Whether graphkit converts an If/Loop node at ``since`` down to ``target``."""
    if op_type not in OPS or target < 11:
        return False
    at_target = since_version(op_type, target)
    # onnx's converter adapts If/Loop down to 16; below, it has no adapter.
    return at_target < min(since, 16)


def rewrite(
    node: ir.Node, source: ir.Model, target: int, convert: Callable[[ir.Model, int], ir.Model]
) -> None:
    """Convert ``node``'s subgraphs to opset ``target``, keeping the node's form.

    Args:
        node: The If or Loop node, back in a graph at the target opset.
        source: The model being converted, whose opset imports the subgraphs
            are written for.
        target: The opset to convert them to.
        convert: set_opset's conversion of a whole model.
    """
    for value in (*node.inputs, *node.outputs):
        kind = type(value.type) if value is not None else None
        if kind is ir.OptionalType and target < 16:
            raise refuse(node, f"it passes an optional value, which opset {target} cannot")
        if kind is ir.SequenceType and target < 13:
            raise refuse(
                node, f"it passes a sequence, which {node.op_type} at opset {target} cannot"
            )
    for name, attribute in list(node.attributes.items()):
        if attribute.type == ir.AttributeType.GRAPH:
            graph = attribute.as_graph()
            try:
                converted = _convert_graph(graph, source, target, convert)
            except PassError as error:
                raise refuse(node, f"its subgraph {name!r} does not convert: {error}") from None
            node.attributes[name] = ir.AttrGraph(name, converted)
    check_types(node, target)


def _inside(graph: ir.Graph) -> set[ir.Graph]:
    graphs = {graph}
    for node in graph:
        for attribute in node.attributes.values():
            if attribute.type == ir.AttributeType.GRAPH:
                graphs |= _inside(attribute.as_graph())
            elif attribute.type == ir.AttributeType.GRAPHS:
                for inner in attribute.as_graphs():
                    graphs |= _inside(inner)
    return graphs


def _outer_values(graph: ir.Graph) -> dict[str, ir.Value]:
    """The values ``graph`` and its subgraphs read from an enclosing graph, by name."""
    inside = _inside(graph)
    found: dict[str, ir.Value] = {}
    for inner in inside:
        for node in inner:
            for value in node.inputs:
                if value is not None and value.graph not in inside and value.name:
                    found[value.name] = value
    return found


def _convert_graph(
    graph: ir.Graph, source: ir.Model, target: int, convert: Callable[[ir.Model, int], ir.Model]
) -> ir.Graph:
    outer = _outer_values(graph)
    proto = ir.serde.serialize_graph(graph)
    for name, value in outer.items():
        # A constant stays one, so the adapters inside can read it (axes, for instance).
        array = known_value(value)
        if array is not None:
            proto.initializer.append(onnx.numpy_helper.from_array(array, name))
            continue
        if value.type is None:
            raise PassError(f"the type of {name!r}, which it reads from outside, is unknown")
        proto.input.append(ir.serde.serialize_value(value))
    model = onnx.helper.make_model(
        proto,
        opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in source.opset_imports.items()],
        ir_version=source.ir_version,
    )
    converted = convert(ir.serde.deserialize_model(model), target)
    new = ir.serde.deserialize_graph(ir.serde.serialize_graph(converted.graph))
    # The inputs and weights that stood for outside values give way to those values again.
    for value in [v for v in new.inputs if v.name in outer]:
        value.replace_all_uses_with(outer[value.name], replace_graph_outputs=True)
        new.inputs.remove(value)
    for name in [n for n in new.initializers if n in outer]:
        new.initializers[name].replace_all_uses_with(outer[name], replace_graph_outputs=True)
        new.initializers.pop(name)
    return new
