"""set_opset's adapters for Resize, GridSample and pooling: ONNX Runtime parity, named refusals."""

from __future__ import annotations

import numpy as np
import pytest

from tests.models import random_input
from tests.passes.test_set_opset_adapters import assert_parity, attribute, model, ops, refusal

# Resize: 18 added antialias, axes and keep_aspect_ratio_policy; 19 half_pixel_symmetric.


def test_resize_with_axes_is_spread_over_every_axis() -> None:
    source = model(
        18,
        "(float[1, 2, 4, 4] x) => (float[1, 2, 8, 6] y)",
        "scales = Constant <value = float[2] {2.0, 1.5}> ()\n"
        'y = Resize <axes = [2, 3], mode = "linear"> (x, , scales)',
    )
    assert_parity(source, 17, {"x": random_input((1, 2, 4, 4))})


def test_resize_keep_aspect_ratio_becomes_one_scale() -> None:
    source = model(
        18,
        "(float[1, 1, 4, 6] x) => (float[1, 1, 6, 9] y)",
        "sizes = Constant <value = int64[2] {6, 12}> ()\n"
        'y = Resize <axes = [2, 3], keep_aspect_ratio_policy = "not_larger", mode = "linear"> '
        "(x, , , sizes)",
    )
    assert_parity(source, 17, {"x": random_input((1, 1, 4, 6))})


def test_resize_antialias_when_upscaling_is_dropped() -> None:
    source = model(
        18,
        "(float[1, 1, 3, 3] x) => (float[1, 1, 6, 6] y)",
        "scales = Constant <value = float[4] {1.0, 1.0, 2.0, 2.0}> ()\n"
        'y = Resize <antialias = 1, mode = "cubic"> (x, , scales)',
    )
    converted = assert_parity(source, 17, {"x": random_input((1, 1, 3, 3))})
    assert attribute(converted, "Resize", "antialias") is None


def test_resize_antialias_when_downscaling_is_refused() -> None:
    source = model(
        18,
        "(float[1, 1, 8, 8] x) => (float[1, 1, 4, 4] y)",
        "scales = Constant <value = float[4] {1.0, 1.0, 0.5, 0.5}> ()\n"
        'y = Resize <antialias = 1, mode = "linear"> (x, , scales)',
    )
    assert "antialias=1 filters when downscaling, which Resize at opset 17 cannot do" in (
        refusal(source, 17)
    )


def test_resize_half_pixel_symmetric_with_sizes_is_half_pixel() -> None:
    source = model(
        19,
        "(float[1, 1, 4, 4] x) => (float[1, 1, 7, 5] y)",
        "sizes = Constant <value = int64[4] {1, 1, 7, 5}> ()\n"
        'y = Resize <coordinate_transformation_mode = "half_pixel_symmetric", mode = "linear"> '
        "(x, , , sizes)",
    )
    converted = assert_parity(source, 18, {"x": random_input((1, 1, 4, 4))})
    assert attribute(converted, "Resize", "coordinate_transformation_mode") == b"half_pixel"


def test_resize_half_pixel_symmetric_with_an_inexact_scale_is_refused() -> None:
    source = model(
        19,
        "(float[1, 1, 3, 3] x) => (float[1, 1, 4, 4] y)",
        "scales = Constant <value = float[4] {1.0, 1.0, 1.5, 1.5}> ()\n"
        'y = Resize <coordinate_transformation_mode = "half_pixel_symmetric", mode = "linear"> '
        "(x, , scales)",
    )
    assert "'half_pixel_symmetric' exists from opset 19 on" in refusal(source, 18)


def test_resize_with_sizes_goes_down_to_11_with_empty_roi_and_scales() -> None:
    source = model(
        13,
        "(float[1, 1, 2, 3] x) => (float[1, 1, 4, 5] y)",
        "sizes = Constant <value = int64[4] {1, 1, 4, 5}> ()\n"
        'y = Resize <mode = "nearest"> (x, , , sizes)',
    )
    converted = assert_parity(source, 11, {"x": random_input((1, 1, 2, 3))})
    assert len(converted.graph.node[-1].input) == 4


def test_resize_asymmetric_nearest_floor_goes_down_to_10() -> None:
    source = model(
        13,
        "(float[1, 1, 2, 3] x) => (float[1, 1, 4, 6] y)",
        "scales = Constant <value = float[4] {1.0, 1.0, 2.0, 2.0}> ()\n"
        'y = Resize <coordinate_transformation_mode = "asymmetric", nearest_mode = "floor"> '
        "(x, , scales)",
    )
    converted = assert_parity(source, 10, {"x": random_input((1, 1, 2, 3))})
    assert len(converted.graph.node[-1].input) == 2


def test_resize_half_pixel_has_no_form_at_10() -> None:
    source = model(
        13,
        "(float[1, 1, 2, 3] x) => (float[1, 1, 4, 6] y)",
        "scales = Constant <value = float[4] {1.0, 1.0, 2.0, 2.0}> ()\n"
        'y = Resize <mode = "linear"> (x, , scales)',
    )
    assert "has no equivalent at opset 10" in refusal(source, 10)


# GridSample: 20 renamed the modes and allowed N-D inputs.


@pytest.mark.parametrize(("mode", "old"), [("linear", b"bilinear"), ("cubic", b"bicubic")])
def test_grid_sample_goes_down_to_16_with_the_old_mode_names(mode: str, old: bytes) -> None:
    source = model(
        20,
        "(float[1, 1, 3, 3] x, float[1, 2, 2, 2] grid) => (float[1, 1, 2, 2] y)",
        f'y = GridSample <mode = "{mode}", align_corners = 1> (x, grid)',
    )
    grid = np.random.default_rng(1).uniform(-1, 1, (1, 2, 2, 2)).astype(np.float32)
    converted = assert_parity(source, 16, {"x": random_input((1, 1, 3, 3)), "grid": grid})
    assert attribute(converted, "GridSample", "mode") == old


def test_grid_sample_of_a_volume_is_refused_at_16() -> None:
    source = model(
        20,
        "(float[1, 1, 2, 2, 2] x, float[1, 2, 2, 2, 3] grid) => (float[1, 1, 2, 2, 2] y)",
        "y = GridSample (x, grid)",
    )
    assert "input 0 ('X') is 5-D, and GridSample at opset 16 samples 4-D inputs only" in (
        refusal(source, 16)
    )


# Pooling: AveragePool 19 and LpPool 18 added dilations, LpPool 18 ceil_mode.


def test_average_pool_with_unit_dilations_goes_down() -> None:
    source = model(
        19,
        "(float[1, 1, 4, 4] x) => (float[1, 1, 3, 3] y)",
        "y = AveragePool <kernel_shape = [2, 2], dilations = [1, 1]> (x)",
    )
    converted = assert_parity(source, 18, {"x": random_input((1, 1, 4, 4))})
    assert attribute(converted, "AveragePool", "dilations") is None


def test_average_pool_with_dilations_is_refused() -> None:
    source = model(
        19,
        "(float[1, 1, 5, 5] x) => (float[1, 1, 3, 3] y)",
        "y = AveragePool <kernel_shape = [2, 2], dilations = [2, 2]> (x)",
    )
    assert "attribute 'dilations' = (2, 2) changes the result, and AveragePool has no" in (
        refusal(source, 17)
    )


def test_lp_pool_ceil_mode_that_changes_no_shape_is_dropped() -> None:
    source = model(
        18,
        "(float[1, 1, 5, 5] x) => (float[1, 1, 2, 2] y)",
        "y = LpPool <kernel_shape = [3, 3], strides = [2, 2], ceil_mode = 1> (x)",
    )
    assert_parity(source, 17, {"x": random_input((1, 1, 5, 5))})


def test_lp_pool_ceil_mode_that_changes_the_shape_is_refused() -> None:
    source = model(
        18,
        "(float[1, 1, 6, 6] x) => (float[1, 1, 3, 3] y)",
        "y = LpPool <kernel_shape = [3, 3], strides = [2, 2], ceil_mode = 1> (x)",
    )
    assert "attribute 'ceil_mode' = 1 changes the result" in refusal(source, 17)


@pytest.mark.parametrize(
    ("inputs", "attributes", "feeds"),
    [
        ("(x, , s)", 'mode = "nearest"', {"s": np.array([2.0, 3.0], dtype=np.float32)}),
        ("(x, , , s)", 'mode = "linear"', {"s": np.array([3, 5], dtype=np.int64)}),
        (
            "(x, s, , z)",
            'mode = "linear", coordinate_transformation_mode = "tf_crop_and_resize"',
            {
                "s": np.array([0.2, 0.1, 0.9, 0.8], dtype=np.float32),
                "z": np.array([3, 3], dtype=np.int64),
            },
        ),
    ],
    ids=["scales", "sizes", "roi"],
)
def test_resize_with_axes_and_inputs_the_model_feeds_scatters_them_at_run_time(
    inputs: str, attributes: str, feeds: dict[str, np.ndarray]
) -> None:
    types = {"float32": "float", "int64": "int64"}
    signature = ", ".join(f"{types[str(v.dtype)]}[{v.size}] {k}" for k, v in feeds.items())
    source = model(
        18,
        f"(float[1, 1, 2, 2] x, {signature}) => (float[a, b, c, d] y)",
        f"y = Resize <axes = [3, 2], {attributes}> {inputs}",
    )
    converted = assert_parity(source, 17, {"x": random_input((1, 1, 2, 2)), **feeds})
    assert "ScatterElements" in ops(converted)
