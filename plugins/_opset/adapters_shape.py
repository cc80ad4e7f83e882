"""Adapters for Pad, Split, Squeeze, Unsqueeze and Trilu going down to opsets that lack their form.

Pad 18 took an ``axes`` input, Split 18 a ``num_outputs`` attribute, and
Squeeze/Unsqueeze 13 their axes as an input. An older opset needs these as
constants in another form, so a value the model computes is refused.
Trilu (14) becomes a Where over a mask of column minus row indices.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from graphkit_plugins._opset.adapting import (
    WHERE_RUNS,
    Rule,
    add_constant,
    add_node,
    check_types,
    constant,
    down_across,
    drop_attributes,
    int_attribute,
    known_value,
    present,
    rank,
    refuse,
    set_inputs,
    string_attribute,
)


def _rank_or_refuse(node: ir.Node, why: str) -> int:
    found = rank(node.inputs[0])
    if found is None:
        raise refuse(node, f"the rank of input 0 is unknown, and {why}")
    return found


def _pad(node: ir.Node, target: int) -> None:
    """Pad 18's ``axes`` becomes pads over every axis; 11's inputs become 2's attributes."""
    mode = string_attribute(node, "mode", "constant")
    if mode == "wrap" and target < 19:
        raise refuse(node, f"mode 'wrap' exists from opset 19 on, not at opset {target}")
    data, pads_value, fill = ([*node.inputs, None, None])[:3]
    axes = constant(
        node, 3, f"opset {target} has no 'axes' input, so the pads must be spread over every axis"
    )
    pads = None
    if axes is not None:
        size = _rank_or_refuse(node, f"opset {target} needs pads for every axis")
        places = [int(a) % size for a in axes.reshape(-1)]
        places += [a + size for a in places]
        pads = known_value(pads_value) if pads_value is not None else None
        if pads is not None:
            full = np.zeros(2 * size, dtype=np.int64)
            full[places] = pads
            pads, pads_value = full, add_constant(node, full, "pads")
        elif target >= 11:
            # The model computes the pads: scatter them into zeros at run time.
            pads_value = add_node(
                node,
                "ScatterElements",
                [
                    add_constant(node, np.zeros(2 * size, dtype=np.int64), "zero_pads"),
                    add_constant(node, np.array(places, dtype=np.int64), "pad_places"),
                    pads_value,
                ],
                "pads",
                axis=0,
            )
    if target >= 11:
        set_inputs(node, [data, pads_value, fill])
    else:
        if pads is None:
            pads = constant(node, 1, f"opset {target} needs it as the attribute 'pads'")
        value = constant(node, 2, f"opset {target} needs it as the attribute 'value'")
        node.attributes["pads"] = ir.AttrInt64s("pads", [int(p) for p in pads])
        if value is not None and value.size:
            node.attributes["value"] = ir.AttrFloat32("value", float(value.reshape(-1)[0]))
        set_inputs(node, [data])
    check_types(node, target)


def _split(node: ir.Node, target: int) -> None:
    """Split 18's ``num_outputs`` becomes explicit sizes; 13's ``split`` input 2's attribute."""
    axis = int_attribute(node, "axis", 0)
    outputs = len(node.outputs)
    sizes = None
    split_value = node.inputs[1] if len(node.inputs) > 1 else None
    if "num_outputs" in node.attributes and split_value is None:
        count = node.attributes["num_outputs"].as_int()
        shape = node.inputs[0].shape
        dim = None
        if shape is not None and -len(shape) <= axis < len(shape):
            dim = shape[axis]
        if count != outputs:
            raise refuse(node, f"'num_outputs' is {count}, but the node has {outputs} outputs")
        chunk = -(-dim // count) if isinstance(dim, int) else 0
        if isinstance(dim, int) and dim - chunk * (count - 1) >= 0:
            sizes = np.array([chunk] * (count - 1) + [dim - chunk * (count - 1)], dtype=np.int64)
            if target >= 13:
                split_value = add_constant(node, sizes, "split")
        elif target >= 13:
            # Also where the dim is known not to split: ONNX Runtime fails such a
            # node when it runs, and so does the computed form, but a branch that
            # never runs it still loads.
            split_value = _split_sizes_at_run_time(node, axis, count)
        elif isinstance(dim, int):
            raise refuse(node, f"{dim} elements along axis {axis} do not split into {count} parts")
        else:
            raise refuse(
                node,
                f"the size of input 0 ('input') along axis {axis} is unknown, and opset "
                f"{target} needs the size of each of the {count} parts as the attribute 'split'",
            )
    drop_attributes(node, "num_outputs")
    if target < 13:
        if sizes is None:
            sizes = constant(node, 1, f"opset {target} needs it as the attribute 'split'")
        if sizes is not None:
            node.attributes["split"] = ir.AttrInt64s("split", [int(s) for s in sizes])
        split_value = None
    if target < 11 and axis < 0:
        axis += _rank_or_refuse(node, f"opset {target} takes no negative 'axis'")
        node.attributes["axis"] = ir.AttrInt64("axis", axis)
    set_inputs(node, [node.inputs[0], split_value])
    check_types(node, target)


def _split_sizes_at_run_time(node: ir.Node, axis: int, count: int) -> ir.Value:
    """Split 18's sizes for ``count`` parts: ceil(dim / count) each, the rest in the last."""

    def const(number: int, purpose: str) -> ir.Value:
        return add_constant(node, np.array([number], dtype=np.int64), purpose)

    shape = add_node(node, "Shape", [node.inputs[0]], "shape")
    dim = add_node(node, "Gather", [shape, const(axis, "axis")], "dim")
    rounded_up = add_node(node, "Add", [dim, const(count - 1, "count_less_one")], "rounded_up")
    chunk = add_node(node, "Div", [rounded_up, const(count, "count")], "chunk")
    used = add_node(node, "Mul", [chunk, const(count - 1, "chunks")], "used")
    last = add_node(node, "Sub", [dim, used], "last")
    first = add_node(node, "Expand", [chunk, const(count - 1, "first_parts")], "first")
    return add_node(node, "Concat", [first, last], "split", axis=0)


def _squeeze(node: ir.Node, target: int) -> None:
    """Squeeze/Unsqueeze 13's ``axes`` input becomes the attribute the opsets before take."""
    axes = constant(node, 1, f"opset {target} needs it as the attribute 'axes'")
    if axes is not None:
        axes = [int(a) for a in axes.reshape(-1)]
        if target < 11 and any(a < 0 for a in axes):
            size = _rank_or_refuse(node, f"opset {target} takes no negative axes")
            if node.op_type == "Unsqueeze":
                size += len(axes)
            axes = [a % size for a in axes]
        node.attributes["axes"] = ir.AttrInt64s("axes", axes)
    elif node.op_type == "Unsqueeze":
        raise refuse(node, "input 1 ('axes') is missing")
    set_inputs(node, [node.inputs[0]])
    check_types(node, target)


def _trilu(node: ir.Node, target: int) -> None:
    """Trilu keeps ``x[..., i, j]`` where ``j - i >= k`` (upper) or ``<= k`` (lower), else 0."""
    data = node.inputs[0]
    dtype = data.dtype if data is not None else None
    if dtype is None:
        raise refuse(node, f"the type of input 0 is unknown, and opset {target} needs a 0 of it")
    if dtype not in WHERE_RUNS:
        raise refuse(
            node,
            f"input 0 is {dtype.name.lower()}, which ONNX Runtime's Where does not select "
            f"at opset {target}",
        )
    upper = int_attribute(node, "upper", 1)
    k = present(node, 1) or add_constant(node, np.array(0, dtype=np.int64), "k")

    def scalar(number: int, purpose: str) -> ir.Value:
        return add_constant(node, np.array(number, dtype=np.int64), purpose)

    shape = add_node(node, "Shape", [data], "shape")
    rows = add_node(node, "Gather", [shape, scalar(-2, "row_axis")], "rows")
    columns = add_node(node, "Gather", [shape, scalar(-1, "column_axis")], "columns")
    zero, one = scalar(0, "zero"), scalar(1, "one")
    row = add_node(node, "Range", [zero, rows, one], "row")
    column = add_node(node, "Range", [zero, columns, one], "column")
    as_column = add_constant(node, np.array([-1, 1], dtype=np.int64), "as_column")
    offset = add_node(
        node, "Sub", [column, add_node(node, "Reshape", [row, as_column], "row_column")], "offset"
    )
    # upper: offset >= k, that is not (offset < k); lower: not (offset > k).
    outside = add_node(node, "Less" if upper else "Greater", [offset, k], "outside")
    keep = add_node(node, "Not", [outside], "keep")
    fill = add_constant(node, np.zeros((), dtype=dtype.numpy()), "fill")
    node.op_type = "Where"
    node.attributes.clear()
    set_inputs(node, [keep, data, fill])
    check_types(node, target)


RULES: tuple[Rule, ...] = (
    Rule(frozenset({"Trilu"}), lambda since, target: since >= 14 and 11 <= target < 14, _trilu),
    Rule(frozenset({"Pad"}), lambda since, target: since >= 11 and target < since, _pad),
    Rule(frozenset({"Split"}), down_across(18), _split),
    Rule(frozenset({"Squeeze", "Unsqueeze"}), down_across(13), _squeeze),
)
