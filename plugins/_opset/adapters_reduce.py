"""Adapters for Reduce* going down to opsets that take ``axes`` as an attribute.

ReduceSum took its axes as an input at 13, the other reductions at 18, and
with them ``noop_with_empty_axes``: with that flag and no axes the node
passes its input through, while the opsets before reduce over every axis.
onnx's converter moves the axes but keeps the flag, which the older schema
does not have, so graphkit converts these nodes itself.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from graphkit_plugins._opset.adapting import (
    Rule,
    add_node,
    check_types,
    constant,
    down_across,
    int_attribute,
    known_value,
    rank,
    refuse,
    set_inputs,
)

REDUCTIONS_AXES_INPUT_AT_18 = frozenset(
    {
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceMax",
        "ReduceMean",
        "ReduceMin",
        "ReduceProd",
        "ReduceSumSquare",
    }
)


def _reduce(node: ir.Node, target: int) -> None:
    axes_value = node.inputs[1] if len(node.inputs) > 1 else None
    if (
        axes_value is not None
        and known_value(axes_value) is None
        and node.op_type in _AS_REDUCE_SUM
        and target >= 13
    ):
        _as_reduce_sum(node, target, axes_value)
        return
    axes = constant(node, 1, f"opset {target} needs it as the attribute 'axes'")
    axes_list = [] if axes is None else [int(a) for a in axes.reshape(-1)]
    passes_through = int_attribute(node, "noop_with_empty_axes", 0) == 1 and not axes_list
    node.attributes.pop("noop_with_empty_axes", None)
    if passes_through:
        # The node computes nothing: what every opset spells Identity.
        node.op_type = "Identity"
        node.attributes.clear()
    elif axes_list:
        if target < 11 and any(a < 0 for a in axes_list):
            size = rank(node.inputs[0])
            if size is None:
                raise refuse(
                    node,
                    f"the rank of input 0 is unknown, and opset {target} takes no negative axes",
                )
            axes_list = [a % size for a in axes_list]
        node.attributes["axes"] = ir.AttrInt64s("axes", axes_list)
    set_inputs(node, [node.inputs[0]])
    check_types(node, target)


# Reductions ReduceSum (which takes axes as an input from 13) can compute, as
# their function bodies in onnx's schemas do; ReduceMean as sum over count.
_AS_REDUCE_SUM = frozenset(
    {"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMean", "ReduceSumSquare"}
)


def _as_reduce_sum(node: ir.Node, target: int, axes: ir.Value) -> None:
    """A reduction over axes the model computes, rewritten around ReduceSum."""
    data = node.inputs[0]
    dtype = data.dtype
    if dtype is None:
        raise refuse(
            node,
            "input 1 ('axes') is computed by the model and the type of input 0 is unknown; "
            f"opset {target} needs the axes as an attribute or the reduction as a ReduceSum",
        )
    keep = {
        "keepdims": int_attribute(node, "keepdims", 1),
        "noop_with_empty_axes": int_attribute(node, "noop_with_empty_axes", 0),
    }

    def summed(value: ir.Value, purpose: str) -> ir.Value:
        return add_node(node, "ReduceSum", [value, axes], purpose, **keep)

    op = node.op_type
    if op in ("ReduceL1", "ReduceL2", "ReduceSumSquare"):
        inner = add_node(node, "Abs", [data], "abs") if op == "ReduceL1" else None
        inner = inner or add_node(node, "Mul", [data, data], "square")
        if op == "ReduceL2":
            total = summed(inner, "sum")
            as_float = add_node(node, "Cast", [total], "float", to=ir.DataType.FLOAT.value)
            _become(node, "Cast", [add_node(node, "Sqrt", [as_float], "sqrt")], to=dtype.value)
        else:
            _become(node, "ReduceSum", [inner, axes], **keep)
    elif op == "ReduceLogSum":
        _become(node, "Log", [summed(data, "sum")])
    elif op == "ReduceLogSumExp":
        wide = add_node(node, "Cast", [data], "double", to=ir.DataType.DOUBLE.value)
        total = summed(add_node(node, "Exp", [wide], "exp"), "sum")
        _become(node, "Cast", [add_node(node, "Log", [total], "log")], to=dtype.value)
    else:  # ReduceMean
        one = ir.tensor(np.ones(1, dtype=dtype.numpy()))
        shape = add_node(node, "Shape", [data], "shape")
        ones = add_node(node, "ConstantOfShape", [shape], "ones", value=one)
        _become(node, "Div", [summed(data, "sum"), summed(ones, "count")])
    check_types(node, target)


def _become(node: ir.Node, op_type: str, inputs: list[ir.Value], **attributes: int) -> None:
    """Turn ``node`` into ``op_type``, keeping its output value and name."""
    node.op_type = op_type
    node.attributes.clear()
    for name, number in attributes.items():
        node.attributes[name] = ir.AttrInt64(name, number)
    set_inputs(node, inputs)


RULES: tuple[Rule, ...] = (
    Rule(frozenset({"ReduceSum"}), down_across(13), _reduce),
    Rule(REDUCTIONS_AXES_INPUT_AT_18, down_across(18), _reduce),
)
