"""Adapters for Reduce* going down to opsets that take ``axes`` as an attribute.

ReduceSum took its axes as an input at 13, the other reductions at 18, and
with them ``noop_with_empty_axes``: with that flag and no axes the node
passes its input through, while the opsets before reduce over every axis.
onnx's converter moves the axes but keeps the flag, which the older schema
does not have, so graphkit converts these nodes itself.
"""

from __future__ import annotations

import onnx_ir as ir
from graphkit_plugins._opset.adapting import (
    Rule,
    check_types,
    constant,
    down_across,
    int_attribute,
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


RULES: tuple[Rule, ...] = (
    Rule(frozenset({"ReduceSum"}), down_across(13), _reduce),
    Rule(REDUCTIONS_AXES_INPUT_AT_18, down_across(18), _reduce),
)
