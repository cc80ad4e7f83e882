"""Replace a node by the function body its ONNX schema defines, converted to the target opset.

ONNX defines many newer ops (Mish, Gelu, GroupNormalization, RMSNormalization,
Attention, ...) as functions of older ops. Where the target opset lacks such an
op, the node is replaced by that body. The body is written for one opset of
its own (``function_opset_versions``), so it is converted from there to the
target as a model of its own before it is spliced in with fresh names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import onnx
import onnx_ir as ir
from graphkit_plugins._common.edges import unique

from graphkit import PassError

#: Converts a standalone model to an opset and returns the result.
Converter = Callable[[ir.Model, int], ir.Model]


def has_body(op_type: str, opset: int) -> bool:
    """Whether the default-domain ``op_type`` at ``opset`` has a function body onnx can build."""
    schema = _schema(op_type, opset)
    return schema is not None and bool(
        schema.function_opset_versions or schema.context_dependent_function_opset_versions
    )


def exists_at(op_type: str, opset: int) -> bool:
    """Whether the default domain has ``op_type`` at ``opset``."""
    return _schema(op_type, opset) is not None


def expand(node: ir.Node, opset: int, target: int, convert: Converter, root: ir.Graph) -> None:
    """Replace ``node`` (an op of the default domain at ``opset``) by its body at ``target``.

    Args:
        node: The node, in its graph, in the form of opset ``opset``.
        opset: The opset the node was written for.
        target: The opset the body must be converted to.
        convert: Converts a standalone model to ``target`` (set_opset's own pipeline,
            so the body's ops may be adapted or expanded in turn).
        root: The model's main graph: new names are unique across it and its subgraphs.

    Raises:
        PassError: naming the node, when the body cannot be built or converted.
    """
    graph = node.graph
    assert graph is not None
    label = f"{node.op_type} node {node.name or '(unnamed)'!r}"
    function = _body(node, opset, label)
    body = _body_model(node, function, opset, label)
    try:
        body = convert(body, target)
    except PassError as error:
        raise PassError(f"{label}: its function body does not convert: {error}") from None
    _splice(node, body.graph, _Names(root))


def _schema(op_type: str, opset: int) -> onnx.defs.OpSchema | None:
    try:
        return onnx.defs.get_schema(op_type, opset, "")
    except onnx.defs.SchemaError:
        return None


def _body(node: ir.Node, opset: int, label: str) -> onnx.FunctionProto:
    schema = _schema(node.op_type, opset)
    assert schema is not None
    function = onnx.FunctionProto()
    plain = list(schema.function_opset_versions)
    # The body onnx wrote for the opset nearest the model's needs the least conversion.
    if plain:
        version = min(plain, key=lambda v: (abs(v - opset), v))
        function.ParseFromString(schema.get_function_with_opset_version(version))
        return function
    versions = list(schema.context_dependent_function_opset_versions)
    if not versions:
        raise PassError(f"{label}: {node.op_type} has no function body to expand into")
    version = min(versions, key=lambda v: (abs(v - opset), v))
    types = []
    for index, value in enumerate(node.inputs):
        if value is None:
            types.append(onnx.TypeProto().SerializeToString())
            continue
        if value.type is None:
            raise PassError(
                f"{label}: onnx builds its body from the input types, and the type of "
                f"input {index} ({value.name!r}) is unknown"
            )
        types.append(_type_proto(value).SerializeToString())
    try:
        data = schema.get_context_dependent_function_with_opset_version(
            version, ir.serde.serialize_node(node).SerializeToString(), types
        )
    except Exception as error:  # onnx's builders raise plain C++ errors
        raise PassError(f"{label}: onnx cannot build its function body: {error}") from None
    if not data:
        raise PassError(f"{label}: onnx has no function body for this node's types")
    function.ParseFromString(data)
    return function


def _type_proto(value: ir.Value) -> onnx.TypeProto:
    return ir.serde.serialize_value(value).type


def _body_model(node: ir.Node, function: onnx.FunctionProto, opset: int, label: str) -> ir.Model:
    """The body as a model: the node's present inputs and outputs, its attributes filled in."""
    actual = {attr.name: ir.serde.serialize_attribute(attr) for attr in node.attributes.values()}
    for attr in function.attribute_proto:
        actual.setdefault(attr.name, attr)
    schema = _schema(node.op_type, opset)
    assert schema is not None
    for name, attr in schema.attributes.items():
        if attr.default_value is not None and attr.default_value.name:
            actual.setdefault(name, attr.default_value)

    absent = {
        formal
        for index, formal in enumerate(function.input)
        if index >= len(node.inputs) or node.inputs[index] is None
    }
    nodes = [_instantiate(n, actual, absent) for n in function.node]
    inputs = []
    for formal, value in zip(function.input, node.inputs, strict=False):
        if value is None:
            continue
        info = onnx.ValueInfoProto(name=formal)
        if value.type is None:
            raise PassError(f"{label}: the type of input {value.name!r} is unknown")
        info.type.CopyFrom(_type_proto(value))
        inputs.append(info)
    outputs = []
    for formal, value in zip(function.output, node.outputs, strict=False):
        if not value.name:
            continue
        info = onnx.ValueInfoProto(name=formal)
        if value.type is not None:
            info.type.CopyFrom(_type_proto(value))
        outputs.append(info)
    graph = onnx.helper.make_graph(nodes, f"{node.op_type}_body", inputs, outputs)
    proto = onnx.helper.make_model(
        graph, opset_imports=list(function.opset_import), ir_version=onnx.IR_VERSION
    )
    return ir.serde.deserialize_model(proto)


def _instantiate(
    node: onnx.NodeProto, actual: dict[str, onnx.AttributeProto], absent: set[str]
) -> onnx.NodeProto:
    """A copy of a body node with attribute references resolved and absent inputs emptied."""
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    del copy.attribute[:]
    for attr in node.attribute:
        if attr.ref_attr_name:
            given = actual.get(attr.ref_attr_name)
            if given is None:
                continue  # the caller did not set it and it has no default: leave it out
            resolved = onnx.AttributeProto()
            resolved.CopyFrom(given)
            resolved.name = attr.name
            copy.attribute.append(resolved)
            continue
        kept = onnx.AttributeProto()
        kept.CopyFrom(attr)
        if attr.type == onnx.AttributeProto.GRAPH:
            _instantiate_graph(kept.g, actual, absent)
        for graph in kept.graphs:
            _instantiate_graph(graph, actual, absent)
        copy.attribute.append(kept)
    copy.input[:] = ["" if name in absent else name for name in copy.input]
    return copy


def _instantiate_graph(
    graph: onnx.GraphProto, actual: dict[str, onnx.AttributeProto], absent: set[str]
) -> None:
    nodes = [_instantiate(n, actual, absent) for n in graph.node]
    del graph.node[:]
    graph.node.extend(nodes)


class _Names:
    """Fresh value and node names: unique across every graph of the model."""

    def __init__(self, root: ir.Graph) -> None:
        self.taken: set[str] = set()
        for value in _all_values(root):
            if value.name:
                self.taken.add(value.name)
        self.nodes: set[str] = {n.name for n in ir.traversal.RecursiveGraphIterator(root) if n.name}

    def value(self, base: str) -> str:
        return unique(base, self.taken)

    def node(self, base: str) -> str:
        return unique(base, self.nodes)


def _all_values(graph: ir.Graph) -> Iterable[ir.Value]:
    yield from graph.inputs
    yield from graph.initializers.values()
    for node in ir.traversal.RecursiveGraphIterator(graph):
        yield from (v for v in node.inputs if v is not None)
        yield from node.outputs


def _splice(node: ir.Node, body: ir.Graph, names: _Names) -> None:
    """Put ``body``'s nodes in place of ``node``, with fresh names."""
    graph = node.graph
    assert graph is not None
    prefix = node.name or node.op_type
    for formal, actual in zip(body.inputs, [v for v in node.inputs if v is not None], strict=True):
        formal.replace_all_uses_with(actual)
    new_nodes = list(body)
    body_outputs = list(body.outputs)
    body.outputs.clear()
    for initializer in list(body.initializers.values()):
        body.initializers.pop(initializer.name)  # type: ignore[arg-type]
        initializer.name = names.value(f"{prefix}/{initializer.name}")
        graph.register_initializer(initializer)
    body.remove(new_nodes)
    for inner in new_nodes:
        inner.name = names.node(f"{prefix}/{inner.name or inner.op_type}")
        for output in inner.outputs:
            if output.name:
                output.name = names.value(f"{prefix}/{output.name}")
    present = [v for v in node.outputs if v.name]
    replacements = []
    for old, new in zip(present, body_outputs, strict=True):
        if new.producer() is None:
            # The body hands an input straight through: the output needs a node of its own.
            identity = ir.node("Identity", [new], name=names.node(f"{prefix}/Identity"))
            identity.outputs[0].name = names.value(f"{prefix}/{old.name}")
            new_nodes.append(identity)
            new = identity.outputs[0]
        replacements.append(new)
    # Named values carry the node's names, so graph outputs keep theirs.
    for old, new in zip(present, replacements, strict=True):
        new.type = old.type if old.type is not None else new.type
        new.shape = old.shape if old.shape is not None else new.shape
        name = old.name
        old.replace_all_uses_with(new, replace_graph_outputs=True)
        old.name = None
        new.name = name
    graph.insert_before(node, new_nodes)
    graph.remove(node, safe=True)
