"""Adapters for AveragePool and LpPool going below the versions that added attributes.

AveragePool 19 and LpPool 18 took ``dilations``, LpPool 18 ``ceil_mode``.
onnx's converter keeps AveragePool's ``dilations`` going down (a model the
older runtime does not load) and has no adapter for LpPool 18 to 17.
An attribute the target lacks is dropped where its value changes nothing,
else refused.
"""

from __future__ import annotations

import onnx
import onnx_ir as ir
from graphkit_plugins._opset.adapting import (
    Rule,
    check_types,
    down_across,
    ints_attribute,
    refuse,
    static_dims,
    string_attribute,
)


def _floor_equals_ceil(node: ir.Node) -> bool:
    """Whether ceil_mode cannot change this pooling's output shape."""
    dims = static_dims(node.inputs[0])
    kernel = ints_attribute(node, "kernel_shape")
    if dims is None or kernel is None or string_attribute(node, "auto_pad", "NOTSET") != "NOTSET":
        return False
    spatial = dims[2:]
    strides = ints_attribute(node, "strides") or [1] * len(spatial)
    pads = ints_attribute(node, "pads") or [0] * (2 * len(spatial))
    dilations = ints_attribute(node, "dilations") or [1] * len(spatial)
    for axis, size in enumerate(spatial):
        reach = (
            size + pads[axis] + pads[axis + len(spatial)] - dilations[axis] * (kernel[axis] - 1) - 1
        )
        if reach % strides[axis]:
            return False
    return True


def _neutral(node: ir.Node, name: str) -> bool:
    attribute = node.attributes[name]
    if name == "dilations":
        return all(d == 1 for d in attribute.as_ints())
    if name in ("ceil_mode", "count_include_pad"):
        return attribute.as_int() == 0 or (name == "ceil_mode" and _floor_equals_ceil(node))
    return False


def _pool(node: ir.Node, target: int) -> None:
    known = onnx.defs.get_schema(node.op_type, target, "").attributes
    for name in [n for n in node.attributes if n not in known]:
        if not _neutral(node, name):
            raise refuse(
                node,
                f"attribute {name!r} = {node.attributes[name].value!r} changes the result, "
                f"and {node.op_type} has no {name!r} at opset {target}",
            )
        del node.attributes[name]
    check_types(node, target)


RULES: tuple[Rule, ...] = (
    Rule(frozenset({"AveragePool"}), down_across(19), _pool),
    Rule(frozenset({"LpPool"}), down_across(18), _pool),
)
