"""Adapters for Softmax, LogSoftmax and Hardmax going down across opset 13.

From 13 on these ops normalise over ``axis`` alone; before 13 over every
axis from ``axis`` on, the input flattened to 2-D there. Over the last axis
both meanings agree, so a node over another axis goes down as a Transpose
that moves its axis last, the op over the last axis, and the Transpose back.
"""

from __future__ import annotations

import onnx_ir as ir
from graphkit_plugins._opset.adapting import (
    Rule,
    add_node,
    check_types,
    down_across,
    follow_with,
    int_attribute,
    rank,
    refuse,
)


def _last_axis(node: ir.Node, target: int) -> None:
    axis = int_attribute(node, "axis", -1)  # 13's default
    size = rank(node.inputs[0])
    if size is None:
        if axis != -1:
            raise refuse(
                node,
                f"the rank of input 0 is unknown, so axis {axis} cannot be moved last, the "
                f"only axis over which {node.op_type} at opset {target} normalises alone",
            )
        if target < 11:
            raise refuse(
                node, f"the rank of input 0 is unknown, and opset {target} takes no axis -1"
            )
        node.attributes["axis"] = ir.AttrInt64("axis", -1)
        check_types(node, target)
        return
    if not -size <= axis < size:
        raise refuse(node, f"axis {axis} is out of range for the {size}-D input 0")
    axis %= size
    last = size - 1
    node.attributes["axis"] = ir.AttrInt64("axis", last)
    check_types(node, target)
    if axis == last:
        return
    # Move the axis last, normalise there, and put it back.
    order = [d for d in range(size) if d != axis] + [axis]
    back = [order.index(d) for d in range(size)]
    moved = add_node(node, "Transpose", [node.inputs[0]], "last", perm=order)
    node.replace_input_with(0, moved)
    follow_with(node, "Transpose", [], "back", perm=back)


RULES: tuple[Rule, ...] = (
    Rule(frozenset({"Softmax", "LogSoftmax", "Hardmax"}), down_across(13), _last_axis),
)
