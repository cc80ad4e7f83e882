"""Evaluate small computations of constants and static shapes, so converters see constants.

Older opsets take axes, pads and split sizes as attributes where newer ones
take inputs. Function bodies compute those inputs (``Shape``, ``Range``,
``Concat`` of constants...), and onnx's converter and graphkit's adapters can
only move a constant into an attribute. Where the computation's inputs are all
constants or shapes known in full, its result is known before the model runs,
and a ``Constant`` node with that result takes its place.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

#: Results larger than this stay computed: folding is for axes, pads and sizes, not data.
_MAX_ELEMENTS = 1024

#: Ops whose result is not a function of their inputs alone.
_NOT_PURE = {
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
    "Dropout",
}


def fold(graph: ir.Graph, opset: int) -> int:
    """Replace computations of constants in ``graph`` by Constant nodes.

    An ``If`` whose condition is a constant becomes the branch it takes, whose
    nodes are folded in turn; other subgraphs are left as they are.

    Args:
        graph: A graph of default-domain nodes at ``opset``.
        opset: The default domain's version, to evaluate nodes at.

    Returns:
        How many nodes were replaced.
    """
    folded = 0
    for node in list(graph):
        if node.domain not in ("", "ai.onnx") or node.op_type == "Constant":
            continue
        if node.op_type == "Range":
            _scalar_range_inputs(graph, node)
        if node.op_type == "If":
            if _take_branch(graph, node):
                folded += 1 + fold(graph, opset)
                break
            continue
        results = _evaluate(node, opset)
        if results is None:
            continue
        for old, array in zip(node.outputs, results, strict=True):
            if not old.uses() and old not in graph.outputs:
                continue
            constant = ir.node(
                "Constant", [], attributes={"value": ir.tensor(array)}, name=node.name
            )
            graph.insert_before(node, constant)
            new = constant.outputs[0]
            new.dtype, new.shape = ir.DataType.from_numpy(array.dtype), ir.Shape(array.shape)
            name = old.name
            old.replace_all_uses_with(new, replace_graph_outputs=True)
            old.name = None
            new.name = name
        graph.remove(node, safe=False)
        folded += 1
    return folded


def _scalar_range_inputs(graph: ir.Graph, node: ir.Node) -> None:
    """Give ``Range`` the scalars its schema asks for: a body may pass 1-element tensors.

    AffineGrid's body feeds Range [1] tensors. A runtime accepts that while the
    shape is unknown and rejects it once folding or inlining makes it known, so
    every input not known to be a scalar is reshaped to one.
    """
    for index, value in enumerate(node.inputs):
        if value is None:
            continue
        shape = value.shape
        if shape is None:
            tensor = ir.convenience.get_const_tensor(value)
            shape = tensor.shape if tensor is not None else None
        if shape is not None and len(shape) == 0:
            continue
        empty = ir.node("Constant", [], attributes={"value": ir.tensor(np.array([], np.int64))})
        reshape = ir.node("Reshape", [value, empty.outputs[0]])
        reshape.outputs[0].dtype = value.dtype
        reshape.outputs[0].shape = ir.Shape([])
        graph.insert_before(node, [empty, reshape])
        node.replace_input_with(index, reshape.outputs[0])


def _take_branch(graph: ir.Graph, node: ir.Node) -> bool:
    """Put the branch a constant-condition ``If`` takes in its place."""
    condition = ir.convenience.get_const_tensor(node.inputs[0]) if node.inputs else None
    if condition is None or condition.size != 1:
        return False
    chosen = "then_branch" if bool(condition.numpy().reshape(())) else "else_branch"
    attribute = node.attributes.get(chosen)
    if attribute is None:
        return False
    branch = attribute.as_graph()
    if branch.initializers or len(branch.outputs) != len(node.outputs):
        return False
    inner = list(branch)
    results = list(branch.outputs)
    branch.outputs.clear()
    branch.remove(inner)
    graph.insert_before(node, inner)
    for old, new in zip(node.outputs, results, strict=True):
        if new.producer() not in inner:
            # The branch hands an outer value straight out: keep a node that names the result.
            identity = ir.node("Identity", [new])
            graph.insert_before(node, identity)
            new = identity.outputs[0]
        new.type = old.type if old.type is not None else new.type
        new.shape = old.shape if old.shape is not None else new.shape
        name = old.name
        old.replace_all_uses_with(new, replace_graph_outputs=True)
        old.name = None
        new.name = name
    graph.remove(node, safe=True)
    return True


def _evaluate(node: ir.Node, opset: int) -> list[np.ndarray] | None:
    """The node's outputs, if they follow from constants and static shapes and are small."""
    if node.op_type in ("Shape", "Size"):
        return _static_shape(node)
    if node.op_type in _NOT_PURE or any(
        a.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS)
        for a in node.attributes.values()
    ):
        return None
    arrays = []
    for value in node.inputs:
        if value is None:
            arrays.append(None)
            continue
        tensor = ir.convenience.get_const_tensor(value)
        if tensor is None or tensor.size > _MAX_ELEMENTS:
            return None
        arrays.append(tensor.numpy())
    if not any(a is not None for a in arrays):
        return None
    try:
        results = _run(node, arrays, opset)
    except Exception:  # the reference evaluator lacks this op or these types: leave it computed
        return None
    results = [np.asarray(r) for r in results]
    # Integer results only: float math in numpy may differ in the last bit from the runtime's.
    if any(r.dtype.kind not in "biu" or r.size > _MAX_ELEMENTS for r in results):
        return None
    return results


def _static_shape(node: ir.Node) -> list[np.ndarray] | None:
    value = node.inputs[0] if node.inputs else None
    if value is None or value.shape is None or not value.shape.is_static():
        return None
    dims = [int(d) for d in value.shape]
    if node.op_type == "Size":
        return [np.array(int(np.prod(dims)), dtype=np.int64)]
    rank = len(dims)
    start = node.attributes.get("start")
    end = node.attributes.get("end")
    first = start.as_int() if start is not None else 0
    last = end.as_int() if end is not None else rank
    first = min(max(first + rank if first < 0 else first, 0), rank)
    last = min(max(last + rank if last < 0 else last, 0), rank)
    return [np.array(dims[first:last], dtype=np.int64)]


def _run(node: ir.Node, arrays: list[np.ndarray | None], opset: int) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    names = [f"i{index}" if array is not None else "" for index, array in enumerate(arrays)]
    proto = ir.serde.serialize_node(node)
    del proto.input[:]
    proto.input.extend(names)
    outputs = [f"o{index}" for index in range(len(node.outputs))]
    del proto.output[:]
    proto.output.extend(outputs)
    proto.domain = ""
    graph = onnx.helper.make_graph(
        [proto],
        "fold",
        [
            onnx.helper.make_tensor_value_info(
                name, onnx.helper.np_dtype_to_tensor_dtype(array.dtype), array.shape
            )
            for name, array in zip(names, arrays, strict=True)
            if array is not None
        ],
        [onnx.helper.make_empty_tensor_value_info(name) for name in outputs],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    feeds = {n: a for n, a in zip(names, arrays, strict=True) if a is not None}
    return list(ReferenceEvaluator(model).run(None, feeds))
