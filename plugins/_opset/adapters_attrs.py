"""Adapters for ops whose newer versions added an attribute: dropped where neutral, else rewritten.

Shape 15 took ``start``/``end``, Reshape 14 ``allowzero``, RoiAlign 16
``coordinate_transformation_mode``, BatchNormalization 14 ``training_mode``
(and 15 separate types for scale and statistics), ArgMax/ArgMin 12
``select_last_index``, GatherND 12 ``batch_dims``. onnx's converter has no
downward adapter for any of them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx_ir as ir
from graphkit_plugins._opset.adapting import (
    Rule,
    add_constant,
    add_node,
    check_types,
    constant,
    down_across,
    int_attribute,
    refuse,
    set_inputs,
    string_attribute,
)


def _shape(node: ir.Node, target: int) -> None:
    """Shape 15's start/end are a Slice of the whole shape."""
    start = int_attribute(node, "start", 0)
    end = node.attributes.get("end")
    node.attributes.pop("start", None)
    node.attributes.pop("end", None)
    check_types(node, target)
    if start == 0 and end is None:
        return
    whole = add_node(node, "Shape", [node.inputs[0]], "whole")
    last = end.as_int() if end is not None else np.iinfo(np.int64).max
    # The node itself becomes the Slice, so its output keeps its name and users.
    node.op_type = "Slice"
    set_inputs(
        node,
        [
            whole,
            add_constant(node, np.array([start], dtype=np.int64), "start"),
            add_constant(node, np.array([last], dtype=np.int64), "end"),
        ],
    )


def _reshape(node: ir.Node, target: int) -> None:
    """Reshape 14's allowzero=1 means the same as 0 where the shape holds no zero."""
    if int_attribute(node, "allowzero", 0):
        shape = constant(
            node, 1, f"opset {target} has no 'allowzero' and needs to see that it holds no 0"
        )
        assert shape is not None
        if (shape == 0).any():
            raise refuse(
                node,
                f"allowzero=1 with a 0 in the shape makes an empty dimension, which opset "
                f"{target} cannot express (its 0 copies the input's dimension)",
            )
    node.attributes.pop("allowzero", None)
    check_types(node, target)


def _roi_align(node: ir.Node, target: int) -> None:
    """RoiAlign before 16 samples as 16's 'output_half_pixel' does."""
    mode = string_attribute(node, "coordinate_transformation_mode", "half_pixel")
    if mode != "output_half_pixel":
        raise refuse(
            node,
            f"coordinate_transformation_mode {mode!r} has no equivalent at opset {target}, "
            "whose RoiAlign samples as 'output_half_pixel'",
        )
    node.attributes.pop("coordinate_transformation_mode", None)
    check_types(node, target)


def _batch_normalization(node: ir.Node, target: int) -> None:
    """BatchNormalization 14/15 in inference mode is BatchNormalization 9's."""
    if target < 14:
        if int_attribute(node, "training_mode", 0):
            raise refuse(node, f"training_mode=1 has no equivalent at opset {target}")
        if len([o for o in node.outputs if o.uses() or o.is_graph_output()]) > 1:
            raise refuse(node, f"running statistics outputs do not exist at opset {target}")
        node.attributes.pop("training_mode", None)
        node.resize_outputs(1)
    check_types(node, target)


def _cast(node: ir.Node, target: int) -> None:
    """Cast 19's ``saturate`` and 24's ``round_mode`` only act on types older opsets lack."""
    if target < 24:
        node.attributes.pop("round_mode", None)  # float8e8m0 only
    if target < 19:
        node.attributes.pop("saturate", None)  # float8 types only
    to = node.attributes.get("to")
    extra = {}
    if node.op_type == "Cast" and to is not None:
        extra["T2"] = ("attribute 'to'", ir.DataType(to.as_int()))
    check_types(node, target, extra=extra)


def _neutral_attribute(name: str, meaning: str) -> Callable[[ir.Node, int], None]:
    """An adapter dropping attribute ``name`` at its default 0, refusing any other value."""

    def rewrite(node: ir.Node, target: int) -> None:
        value = int_attribute(node, name, 0)
        if value != 0:
            raise refuse(
                node, f"{name}={value} {meaning}, which {node.op_type} at opset {target} cannot"
            )
        node.attributes.pop(name, None)
        check_types(node, target)

    return rewrite


RULES: tuple[Rule, ...] = (
    Rule(
        frozenset({"ArgMax", "ArgMin"}),
        lambda since, target: since >= 12 and 11 <= target < 12,
        _neutral_attribute("select_last_index", "picks the last of equal values"),
    ),
    Rule(
        frozenset({"GatherND"}),
        lambda since, target: since >= 12 and target == 11,
        _neutral_attribute("batch_dims", "gathers per batch"),
    ),
    Rule(frozenset({"Shape"}), down_across(15), _shape),
    Rule(frozenset({"Cast"}), down_across(19), _cast),
    Rule(frozenset({"CastLike"}), lambda since, target: since >= 19 and 15 <= target < 19, _cast),
    Rule(frozenset({"Reshape"}), down_across(14), _reshape),
    Rule(
        frozenset({"RoiAlign"}),
        lambda since, target: since >= 16 and 10 <= target < 16,
        _roi_align,
    ),
    Rule(frozenset({"BatchNormalization"}), down_across(15), _batch_normalization),
)
