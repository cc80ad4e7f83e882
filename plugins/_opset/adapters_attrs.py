"""Adapters for ops whose newer versions added an attribute: dropped where neutral, else rewritten.

Shape 15 took ``start``/``end``, Reshape 14 ``allowzero``, RoiAlign 16
``coordinate_transformation_mode``, BatchNormalization 14 ``training_mode``
(and 15 separate types for scale and statistics), ArgMax/ArgMin 12
``select_last_index``, GatherND 12 ``batch_dims``, Dropout 12 the
``training_mode`` input, ScatterElements/ScatterND 16 ``reduction`` (below
13). onnx's converter has no downward adapter for any of them.
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
    follow_with,
    int_attribute,
    known_value,
    present,
    refuse,
    set_inputs,
    string_attribute,
    take_over,
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


def _arg_extreme(node: ir.Node, target: int) -> None:
    """ArgMax/ArgMin 12's select_last_index=1 is the first index along the reversed axis."""
    if not int_attribute(node, "select_last_index", 0):
        node.attributes.pop("select_last_index", None)
        check_types(node, target)
        return
    data = node.inputs[0]
    axis = int_attribute(node, "axis", 0)

    def ints(*numbers: int) -> ir.Value:
        return add_constant(node, np.array(numbers, dtype=np.int64), "reverse")

    shape = add_node(node, "Shape", [data], "shape")
    size = add_node(node, "Gather", [shape, ints(axis)], "size")
    last = add_node(node, "Sub", [size, ints(1)], "last")
    reverse = [ints(-1), ints(np.iinfo(np.int64).min), ints(axis), ints(-1)]
    reversed_data = add_node(node, "Slice", [data, *reverse], "reversed")
    node.replace_input_with(0, reversed_data)
    node.attributes.pop("select_last_index", None)
    check_types(node, target)
    # Index i along the reversed axis is index size - 1 - i along the axis.
    follow_with(node, "Sub", [last], "last_index", at=1)


def _dropout(node: ir.Node, target: int) -> None:
    """Dropout 12 outside training copies its input and masks nothing, as Identity does."""
    training = present(node, 2)
    if training is not None:
        mode = known_value(training)
        if mode is None:
            raise refuse(
                node,
                f"input 2 ('training_mode') is not a constant, and opset {target} "
                "cannot switch Dropout into training",
            )
        if bool(mode.reshape(-1)[0]):
            raise refuse(node, f"training_mode=true drops at random, which opset {target} cannot")
    data = node.inputs[0]
    mask = node.outputs[1] if len(node.outputs) > 1 else None
    if mask is not None and (mask.uses() or mask.is_graph_output()):
        if target < 9:
            raise refuse(node, f"output 1 ('mask') has no all-true equivalent at opset {target}")
        shape = add_node(node, "Shape", [data], "shape")
        true = ir.tensor(np.ones(1, dtype=np.bool_))
        take_over(mask, add_node(node, "ConstantOfShape", [shape], "mask", value=true), "mask")
    node.resize_outputs(1)
    node.op_type = "Identity"
    node.attributes.clear()
    set_inputs(node, [data])
    check_types(node, target)


def _scatter(node: ir.Node, target: int) -> None:
    """ScatterElements/ScatterND 16 took ``reduction``; at 'none' they assign as 11 and 13 do."""
    reduction = string_attribute(node, "reduction", "none")
    if reduction != "none":
        raise refuse(
            node, f"reduction {reduction!r} has no equivalent at opset {target}, which only assigns"
        )
    node.attributes.pop("reduction", None)
    check_types(node, target)


RULES: tuple[Rule, ...] = (
    # onnx's converter takes them down to 13, and has no adapter below.
    Rule(
        frozenset({"ScatterElements", "ScatterND"}),
        lambda since, target: since >= 16 and 11 <= target < 13,
        _scatter,
    ),
    Rule(frozenset({"Dropout"}), lambda since, target: since >= 12 and target < 12, _dropout),
    Rule(
        frozenset({"ArgMax", "ArgMin"}),
        lambda since, target: since >= 12 and 11 <= target < 12,
        _arg_extreme,
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
