"""The Resize adapter: versions 19, 18, 13, 11 and 10 going down.

19 added the 'half_pixel_symmetric' transformation; 18 the ``antialias``,
``axes`` and ``keep_aspect_ratio_policy`` attributes; 13 made ``roi`` and
``scales`` optional; 11 added ``roi``, ``sizes`` and the transformation
attributes to 10's ``scales``-only form. Where the target cannot say the
same thing, the node is refused; where constants and static shapes show it
can, the node is rewritten.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
from graphkit_plugins._opset.adapting import (
    Rule,
    add_constant,
    add_node,
    check_types,
    constant,
    drop_attributes,
    int_attribute,
    ints_attribute,
    known_value,
    rank,
    refuse,
    set_inputs,
    static_dims,
    string_attribute,
)

# Attribute values that mean the same as leaving the attribute out.
_DEFAULTS = {
    "antialias": 0,
    "keep_aspect_ratio_policy": "stretch",
    "coordinate_transformation_mode": "half_pixel",
    "cubic_coeff_a": -0.75,
    "exclude_outside": 0,
    "extrapolation_value": 0.0,
    "nearest_mode": "round_prefer_floor",
}


class _Resize:
    """One Resize node's inputs, held as constants where the rewrite needs them."""

    def __init__(self, node: ir.Node, target: int) -> None:
        self.node = node
        self.target = target
        self.inputs = (list(node.inputs) + [None] * 4)[:4]
        self.rank = rank(node.inputs[0])
        self.dims = static_dims(node.inputs[0])

    def need(self, index: int, what: str) -> np.ndarray | None:
        return constant(self.node, index, f"opset {self.target} needs it to {what}")

    def need_dims(self, why: str) -> list[int]:
        if self.dims is None:
            raise refuse(self.node, f"the shape of input 0 ('X') is not static, and {why}")
        return self.dims


def _spread_axes(resize: _Resize, axes: list[int]) -> None:
    """Replace ``axes`` by roi, scales and sizes over every axis.

    Constants are spread here; values the model computes are scattered into
    the neutral roi, unit scales or the input's own shape at run time.
    """
    node, target = resize.node, resize.target
    if resize.rank is None:
        raise refuse(
            node, f"the rank of input 0 ('X') is unknown, and opset {target} has no 'axes'"
        )
    size = resize.rank
    axes = [a % size for a in axes]
    data = resize.inputs[0]
    assert data is not None
    neutral = {
        1: lambda dtype: np.array([0.0] * size + [1.0] * size, dtype=dtype),
        2: lambda dtype: np.ones(size, dtype=dtype),
    }
    for index, purpose in ((1, "roi"), (2, "scales"), (3, "sizes")):
        value = resize.inputs[index]
        if value is None:
            continue
        places = axes + [a + size for a in axes] if index == 1 else axes
        known = known_value(value)
        if known is not None and known.size == 0:
            continue
        if known is not None:
            if index == 3:
                full = np.array(resize.need_dims(f"opset {target} needs sizes for every axis"))
            else:
                full = neutral[index](known.dtype)
            full[places] = known
            resize.inputs[index] = add_constant(node, full.astype(known.dtype), purpose)
            continue
        if index == 3:
            base = add_node(node, "Shape", [data], "shape")
        else:
            dtype = value.dtype.numpy() if value.dtype is not None else np.float32
            base = add_constant(node, neutral[index](dtype), f"neutral_{purpose}")
        indices = add_constant(node, np.array(places, dtype=np.int64), f"{purpose}_places")
        resize.inputs[index] = add_node(
            node, "ScatterElements", [base, indices, value], purpose, axis=0
        )
    drop_attributes(node, "axes")


def _aspect_ratio_to_scales(resize: _Resize, policy: str) -> None:
    """``keep_aspect_ratio_policy`` as the one scale it picks, where the older rounding agrees."""
    node, target = resize.node, resize.target
    sizes = resize.need(3, f"apply keep_aspect_ratio_policy {policy!r}")
    dims = resize.need_dims(f"opset {target} has no keep_aspect_ratio_policy")
    axes = [a % len(dims) for a in ints_attribute(node, "axes") or range(len(dims))]
    assert sizes is not None
    ratios = [sizes[position] / dims[axis] for position, axis in enumerate(axes)]
    scale = min(ratios) if policy == "not_larger" else max(ratios)
    scales = np.ones(len(dims), dtype=np.float32)
    scales[axes] = scale
    for axis in axes:
        # Opset 18 rounds scale * size half up; the scales form of the older
        # opsets floors it, computed in float32 as ONNX Runtime does.
        if int(np.floor(np.float32(scale) * np.float32(dims[axis]))) != int(
            scale * dims[axis] + 0.5
        ):
            raise refuse(
                node,
                f"keep_aspect_ratio_policy {policy!r} gives axis {axis} a size that opset "
                f"{target} cannot reproduce with one scale",
            )
    drop_attributes(node, "axes")
    resize.inputs[2] = add_constant(node, scales, "scales")
    resize.inputs[3] = None


def _output_over_input(resize: _Resize) -> list[float] | None:
    """The constant scale of every axis, or None where it is not known."""
    scales = _known(resize.inputs[2])
    if scales is not None and scales.size:
        return [float(s) for s in scales]
    sizes = _known(resize.inputs[3])
    if sizes is not None and sizes.size and resize.dims is not None:
        return [s / d if d else 1.0 for s, d in zip(sizes, resize.dims, strict=True)]
    return None


def _known(value: ir.Value | None) -> np.ndarray | None:
    tensor = None if value is None else ir.convenience.get_const_tensor(value)
    return None if tensor is None else tensor.numpy()


def _symmetric_to_half_pixel(resize: _Resize) -> None:
    """'half_pixel_symmetric' is 'half_pixel' wherever scale * size is a whole number."""
    node = resize.node
    exact = resize.inputs[3] is not None
    if not exact:
        scales = _output_over_input(resize)
        exact = (
            scales is not None
            and resize.dims is not None
            and all(
                float(np.float32(s) * d).is_integer()
                for s, d in zip(scales, resize.dims, strict=True)
            )
        )
    if not exact:
        raise refuse(
            node,
            "coordinate_transformation_mode 'half_pixel_symmetric' exists from opset 19 on, "
            f"and equals 'half_pixel' at opset {resize.target} only where the output size "
            "is scale * input size exactly",
        )
    node.attributes["coordinate_transformation_mode"] = ir.AttrString(
        "coordinate_transformation_mode", "half_pixel"
    )


def _no_downscaling(resize: _Resize) -> bool:
    scales = _output_over_input(resize)
    return scales is not None and all(s >= 1 for s in scales)


def _to_opset_10(resize: _Resize) -> None:
    """Resize 10 is nearest (floor) or linear, asymmetric, from constant-free scales alone."""
    node = resize.node
    mode = string_attribute(node, "mode", "nearest")
    ctm = string_attribute(node, "coordinate_transformation_mode", "half_pixel")
    nearest = string_attribute(node, "nearest_mode", "round_prefer_floor")
    if (
        mode not in ("nearest", "linear")
        or ctm != "asymmetric"
        or (mode == "nearest" and nearest != "floor")
    ):
        raise refuse(
            node,
            f"mode {mode!r} with coordinate_transformation_mode {ctm!r}"
            + (f" and nearest_mode {nearest!r}" if mode == "nearest" else "")
            + " has no equivalent at opset 10 (only asymmetric nearest-floor or linear)",
        )
    if resize.inputs[3] is not None:
        scales = _output_over_input(resize)
        sizes = resize.need(3, "compute the scales opset 10 takes instead of sizes")
        if scales is None or any(
            int(np.floor(np.float32(s) * d)) != int(n)
            for s, d, n in zip(
                scales, resize.need_dims("opset 10 takes scales only"), sizes, strict=True
            )
        ):
            raise refuse(node, "the sizes have no float32 scales that reproduce them at opset 10")
        resize.inputs[2] = add_constant(node, np.array(scales, dtype=np.float32), "scales")
    drop_attributes(node, "coordinate_transformation_mode", "nearest_mode")
    resize.inputs = [resize.inputs[0], resize.inputs[2]]


def _resize(node: ir.Node, target: int) -> None:
    resize = _Resize(node, target)
    policy = string_attribute(node, "keep_aspect_ratio_policy", "stretch")
    if target < 18 and policy != "stretch":
        if resize.inputs[3] is not None:
            _aspect_ratio_to_scales(resize, policy)
        # Without sizes the policy has nothing to act on.
        drop_attributes(node, "keep_aspect_ratio_policy")
    axes = ints_attribute(node, "axes")
    if target < 18 and axes is not None:
        _spread_axes(resize, axes)
    if target < 19 and string_attribute(node, "coordinate_transformation_mode", "") == (
        "half_pixel_symmetric"
    ):
        _symmetric_to_half_pixel(resize)
    mode = string_attribute(node, "mode", "nearest")
    if target < 18 and int_attribute(node, "antialias", 0):
        if mode != "nearest" and not _no_downscaling(resize):
            raise refuse(
                node,
                f"antialias=1 filters when downscaling, which Resize at opset {target} "
                "cannot do, and the scales are not known to be at least 1",
            )
        drop_attributes(node, "antialias")
    if target < 13:
        # Resize 11 and 12 require roi and scales, empty where unused.
        if resize.inputs[1] is None:
            resize.inputs[1] = add_constant(node, np.zeros(0, dtype=np.float32), "roi")
        if resize.inputs[2] is None:
            resize.inputs[2] = add_constant(node, np.zeros(0, dtype=np.float32), "scales")
    if target < 11:
        _to_opset_10(resize)
    known = onnx.defs.get_schema("Resize", target, "").attributes
    for name in [n for n in node.attributes if n not in known]:
        value = node.attributes[name].value
        if _DEFAULTS.get(name, object()) != value:
            raise refuse(
                node, f"attribute {name!r} = {value!r} has no equivalent at opset {target}"
            )
        del node.attributes[name]
    set_inputs(node, resize.inputs)
    check_types(node, target)


RULES: tuple[Rule, ...] = (
    Rule(frozenset({"Resize"}), lambda since, target: since >= 11 and target < since, _resize),
)
