"""set_opset's own adapters: rewrites keep ONNX Runtime's numbers, refusals name the node."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import pytest
from graphkit_plugins._opset import adapters_types
from graphkit_plugins._opset.adapters import adapter_for

import graphkit
from graphkit import PassError
from graphkit._modelio.proto import to_proto
from tests.models import as_ir, from_text, random_input, run

set_opset = graphkit.passes.set_opset


def model(opset: int, signature: str, body: str, ir_version: int = 10) -> onnx.ModelProto:
    return from_text(
        f'<ir_version: {ir_version}, opset_import: ["" : {opset}]>\ng {signature} {{\n{body}\n}}'
    )


def convert(source: onnx.ModelProto, target: int) -> onnx.ModelProto:
    """``source`` through set_opset, checked against the target opset's schemas."""
    proto = to_proto(set_opset(as_ir(source), version=target))
    onnx.checker.check_model(proto, full_check=True)
    assert {o.domain: o.version for o in proto.opset_import}[""] == target
    return proto


def assert_parity(
    source: onnx.ModelProto, target: int, feeds: Mapping[str, np.ndarray]
) -> onnx.ModelProto:
    converted = convert(source, target)
    expected, got = run(source, feeds), run(converted, feeds)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name].dtype == value.dtype
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    return converted


def refusal(source: onnx.ModelProto, target: int) -> str:
    with pytest.raises(PassError) as caught:
        set_opset(as_ir(source), version=target)
    return str(caught.value)


def ops(proto: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in proto.graph.node]


def attribute(proto: onnx.ModelProto, op: str, name: str) -> object:
    node = next(n for n in proto.graph.node if n.op_type == op)
    found = [a for a in node.attribute if a.name == name]
    return onnx.helper.get_attribute_value(found[0]) if found else None


# ConstantOfShape: 20 only allowed more value types (bfloat16, float8); Constant 12 new forms.


@pytest.mark.parametrize("target", [19, 17, 11])
def test_constant_of_shape_goes_down_with_an_older_value_type(target: int) -> None:
    source = model(
        20,
        "(int64[2] shape) => (float[a, b] y)",
        "y = ConstantOfShape <value = float[1] {2.5}> (shape)",
    )
    assert_parity(source, target, {"shape": np.array([2, 3], dtype=np.int64)})


def test_constant_of_shape_with_a_bfloat16_value_is_refused() -> None:
    source = model(
        20,
        "(int64[2] shape) => (bfloat16[a, b] y)",
        "y = ConstantOfShape <value = bfloat16[1] {16256}> (shape)",
    )
    source.graph.node[0].name = "fill"
    assert refusal(source, 19) == (
        "cannot convert opset 20 to 19: ConstantOfShape node 'fill': attribute 'value' is "
        "bfloat16, which ConstantOfShape does not accept at opset 19"
    )


def test_constant_value_ints_becomes_a_value_tensor_before_12() -> None:
    source = model(
        13,
        "(float[2, 3] x) => (float[3, 2] y)",
        "shape = Constant <value_ints = [3, 2]> ()\ny = Reshape (x, shape)",
    )
    converted = assert_parity(source, 11, {"x": random_input((2, 3))})
    assert [a.name for a in converted.graph.node[0].attribute] == ["value"]


# Pad: 18 added the axes input, 19 the 'wrap' mode.


def test_pad_with_constant_axes_is_spread_over_every_axis() -> None:
    source = model(
        18,
        "(float[2, 3, 4] x) => (float[2, 5, 7] y)",
        "pads = Constant <value = int64[4] {1, 2, 1, 1}> ()\n"
        "axes = Constant <value = int64[2] {-2, 2}> ()\n"
        'y = Pad <mode = "reflect"> (x, pads, , axes)',
    )
    converted = assert_parity(source, 17, {"x": random_input((2, 3, 4))})
    pads = [t for t in converted.graph.initializer if t.name.endswith("__pads")]
    assert onnx.numpy_helper.to_array(pads[0]).tolist() == [0, 1, 2, 0, 1, 1]


def test_pad_with_computed_pads_and_constant_axes_scatters_them_at_run_time() -> None:
    source = model(
        18,
        "(float[2, 3] x, int64[2] p) => (float[a, b] y)",
        "axes = Constant <value = int64[1] {1}> ()\n"
        "value = Constant <value = float {0.5}> ()\n"
        "y = Pad (x, p, value, axes)",
    )
    converted = assert_parity(source, 17, {"x": random_input((2, 3)), "p": np.array([1, 2])})
    assert ops(converted)[-2:] == ["ScatterElements", "Pad"]


def test_pad_goes_down_to_the_attribute_form_of_opset_10() -> None:
    source = model(
        18,
        "(float[2, 3] x) => (float[2, 6] y)",
        "pads = Constant <value = int64[2] {1, 2}> ()\n"
        "value = Constant <value = float {0.5}> ()\n"
        "axes = Constant <value = int64[1] {1}> ()\n"
        "y = Pad (x, pads, value, axes)",
    )
    converted = assert_parity(source, 10, {"x": random_input((2, 3))})
    assert attribute(converted, "Pad", "pads") == [0, 1, 0, 2]
    assert attribute(converted, "Pad", "value") == 0.5


def test_pad_with_axes_the_model_computes_is_refused() -> None:
    source = model(
        18,
        "(float[2, 3] x, int64[2] pads, int64[1] axes) => (float[a, b] y)",
        "y = Pad (x, pads, , axes)",
    )
    source.graph.node[0].name = "pad"
    assert refusal(source, 17) == (
        "cannot convert opset 18 to 17: Pad node 'pad': input 3 ('axes') 'axes' is a graph "
        "input, but opset 17 has no 'axes' input, so the pads must be spread over every axis"
    )


def test_pad_wrap_mode_is_refused_before_19() -> None:
    source = model(
        19,
        "(float[2, 3] x) => (float[2, 5] y)",
        'pads = Constant <value = int64[4] {0, 1, 0, 1}> ()\ny = Pad <mode = "wrap"> (x, pads)',
    )
    assert "mode 'wrap' exists from opset 19 on, not at opset 18" in refusal(source, 18)


# Split: 18 added num_outputs.


def test_split_num_outputs_with_a_static_dim_becomes_sizes() -> None:
    source = model(
        18,
        "(float[2, 5] x) => (float[2, 2] a, float[2, 2] b, float[2, 1] c)",
        "a, b, c = Split <axis = -1, num_outputs = 3> (x)",
    )
    converted = assert_parity(source, 17, {"x": random_input((2, 5))})
    assert onnx.numpy_helper.to_array(converted.graph.initializer[0]).tolist() == [2, 2, 1]


@pytest.mark.parametrize("size", [5, 6, 7])
def test_split_num_outputs_with_a_dynamic_dim_computes_the_sizes_at_run_time(size: int) -> None:
    source = model(
        18,
        "(float[2, n] x) => (float[2, a] a, float[2, b] b, float[2, c] c)",
        "a, b, c = Split <axis = 1, num_outputs = 3> (x)",
    )
    assert_parity(source, 17, {"x": random_input((2, size))})


def test_split_goes_down_to_the_attribute_form_of_opset_12() -> None:
    source = model(
        18,
        "(float[4, 2] x) => (float[2, 2] a, float[2, 2] b)",
        "a, b = Split <num_outputs = 2> (x)",
    )
    converted = assert_parity(source, 12, {"x": random_input((4, 2))})
    assert attribute(converted, "Split", "split") == [2, 2]


def test_split_of_a_dynamic_dim_into_an_attribute_is_refused() -> None:
    source = model(
        18,
        "(float[n, 2] x) => (float[a, 2] a, float[b, 2] b)",
        "a, b = Split <num_outputs = 2> (x)",
    )
    assert refusal(source, 12).endswith(
        "the size of input 0 ('input') along axis 0 is unknown, and opset 12 needs the size "
        "of each of the 2 parts as the attribute 'split'"
    )


def test_split_that_cannot_run_fails_at_run_time_as_before() -> None:
    """5 elements do not split into 4 parts: ONNX Runtime fails the node, before and after."""
    source = model(
        18,
        "(float[5] x) => (float[a] a, float[b] b, float[c] c, float[d] d)",
        "a, b, c, d = Split <num_outputs = 4> (x)",
    )
    converted = convert(source, 17)
    for proto in (source, converted):
        with pytest.raises(Exception, match="split"):
            run(proto, {"x": random_input((5,))})


# Reduce*: axes became an input at 13 (ReduceSum) and 18 (the others).


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax", "ReduceL2", "ReduceLogSumExp"])
def test_reduce_with_constant_axes_goes_down(op: str) -> None:
    source = model(
        18,
        "(float[2, 3, 4] x) => (float[2, 1, 4] y)",
        f"axes = Constant <value = int64[1] {{-2}}> ()\ny = {op} (x, axes)",
    )
    converted = assert_parity(source, 17, {"x": random_input((2, 3, 4))})
    assert attribute(converted, op, "axes") == [-2]


@pytest.mark.parametrize(("op", "opset", "target"), [("ReduceMean", 18, 17), ("ReduceSum", 13, 12)])
def test_reduce_that_passes_its_input_through_becomes_identity(
    op: str, opset: int, target: int
) -> None:
    """With no axes, noop_with_empty_axes=1 returns the input; the older opsets reduce all."""
    source = model(
        opset, "(float[2, 3] x) => (float[2, 3] y)", f"y = {op} <noop_with_empty_axes = 1> (x)"
    )
    converted = assert_parity(source, target, {"x": random_input((2, 3))})
    assert ops(converted) == ["Identity"]


def test_reduce_without_axes_and_without_the_flag_still_reduces_all() -> None:
    source = model(18, "(float[2, 3] x) => (float[1, 1] y)", "y = ReduceMax (x)")
    converted = assert_parity(source, 13, {"x": random_input((2, 3))})
    assert ops(converted) == ["ReduceMax"]


def test_reduce_axes_computed_from_a_static_rank_are_folded() -> None:
    """RMSNormalization's function body computes its axes from the input's rank."""
    source = model(
        18,
        "(float[2, 3, 4] x) => (float[2, 1, 1] y)",
        "shape = Shape (x)\nrank = Size (shape)\nstart = Constant <value = int64 {-2}> ()\n"
        "first = Add (rank, start)\none = Constant <value = int64 {1}> ()\n"
        "axes = Range (first, rank, one)\ny = ReduceMean (x, axes)",
    )
    converted = assert_parity(source, 17, {"x": random_input((2, 3, 4))})
    assert attribute(converted, "ReduceMean", "axes") == [1, 2]


def test_reduce_axes_the_model_computes_at_run_time_are_refused() -> None:
    """ReduceMax has no ReduceSum form: the older opset needs constant axes."""
    source = model(
        18,
        "(float[2, 3] x, int64[1] k) => (float[a, b] y)",
        "axes = Neg (k)\ny = ReduceMax (x, axes)",
    )
    source.graph.node[1].name = "peak"
    assert refusal(source, 17) == (
        "cannot convert opset 18 to 17: ReduceMax node 'peak': input 1 ('axes') "
        "'axes' is computed by the model, but opset 17 needs it as the attribute 'axes'"
    )


def test_reduce_sum_form_needs_opset_13() -> None:
    source = model(18, "(float[2, 3] x, int64[1] k) => (float[a, b] y)", "y = ReduceL1 (x, k)")
    assert "input 1 ('axes') 'k' is a graph input, but opset 12 needs it as the attribute" in (
        refusal(source, 12)
    )


def test_reduce_of_a_type_the_target_lacks_is_refused() -> None:
    source = model(20, "(bool[2, 3] x) => (bool[1, 1] y)", "y = ReduceMax (x)")
    assert refusal(source, 19).endswith(
        "input 0 ('data') is bool, which ReduceMax does not accept at opset 19"
    )


@pytest.mark.parametrize(
    "op",
    ["ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMean", "ReduceSumSquare"],
)
@pytest.mark.parametrize("axes", [[1], [0, 2], []])
def test_reduce_over_axes_the_model_computes_becomes_a_reduce_sum(op: str, axes: list[int]) -> None:
    """ReduceSum takes axes as an input from 13 on; these reductions are sums underneath."""
    source = model(
        18,
        "(float[2, 3, 4] x, int64[n] k) => (float[a, b, c] y)",
        f"y = {op} <keepdims = 0> (x, k)",
    )
    converted = assert_parity(
        source, 13, {"x": random_input((2, 3, 4)) + 0.1, "k": np.array(axes, dtype=np.int64)}
    )
    assert op not in ops(converted) and "ReduceSum" in ops(converted)


def test_reduce_mean_over_computed_axes_passes_through_with_the_flag() -> None:
    source = model(
        18,
        "(float[2, 3] x, int64[n] k) => (float[a, b] y)",
        "y = ReduceMean <noop_with_empty_axes = 1> (x, k)",
    )
    x = random_input((2, 3))
    converted = assert_parity(source, 17, {"x": x, "k": np.zeros(0, dtype=np.int64)})
    np.testing.assert_array_equal(
        run(converted, {"x": x, "k": np.zeros(0, dtype=np.int64)})["y"], x
    )


# Squeeze / Unsqueeze: axes became an input at 13.


@pytest.mark.parametrize("target", [12, 11, 10])
def test_squeeze_and_unsqueeze_with_constant_axes_go_down(target: int) -> None:
    source = model(
        13,
        "(float[2, 1, 3] x) => (float[2, 3, 1] y)",
        "a = Constant <value = int64[1] {-2}> ()\ns = Squeeze (x, a)\n"
        "b = Constant <value = int64[1] {-1}> ()\ny = Unsqueeze (s, b)",
    )
    converted = assert_parity(source, target, {"x": random_input((2, 1, 3))})
    expected = ([1], [2]) if target < 11 else ([-2], [-1])
    assert (attribute(converted, "Squeeze", "axes"), attribute(converted, "Unsqueeze", "axes")) == (
        expected
    )


def test_unsqueeze_with_axes_from_a_graph_input_is_refused() -> None:
    source = model(13, "(float[2] x, int64[1] a) => (float[a, b] y)", "y = Unsqueeze (x, a)")
    assert "input 1 ('axes') 'a' is a graph input, but opset 12 needs it as the attribute" in (
        refusal(source, 12)
    )


# Versions that only allowed more types.


def test_an_op_whose_newer_versions_only_added_types_goes_down() -> None:
    source = model(
        22,
        "(float[1, 2, 3, 3] x) => (float[1, 2, 1, 1] y)",
        "r = Relu (x)\ny = GlobalMaxPool (r)",
    )
    assert_parity(source, 13, {"x": random_input((1, 2, 3, 3)) - 0.5})


def test_a_type_the_older_version_lacks_is_refused() -> None:
    # IsInf has no function body to fall back on (an int8 Relu-14 becomes Max at 13).
    source = model(20, "(float16[3] x) => (bool[3] y)", "y = IsInf (x)")
    assert refusal(source, 17).endswith(
        "input 0 ('X') is float16, which IsInf does not accept at opset 17"
    )


def test_versions_that_changed_meaning_are_not_types_only() -> None:
    table = adapters_types.types_only_versions()
    assert ("Relu", 14) in table and ("Identity", 16) in table
    # Mod 28 accepts floats with fmod=0; Softmax 13 changed what 'axis' means.
    assert ("Mod", 28) not in table and ("Softmax", 13) not in table
    assert adapter_for("If", 16, 13) is None
    assert adapter_for("Concat", 11, 10) is None  # 11 allowed negative axes


def test_identity_of_a_tensor_goes_down_across_14() -> None:
    source = model(21, "(float[2] x) => (float[2] y)", "y = Identity (x)")
    assert_parity(source, 13, {"x": random_input((2,))})


def test_identity_of_a_sequence_is_refused_before_14() -> None:
    source = model(
        16,
        "(float[2] x) => (seq(float[2]) y)",
        "s = SequenceConstruct (x)\ny = Identity (s)",
    )
    assert "input 0 is a sequence, which Identity passes on from opset 14 on" in refusal(source, 13)


# Versions that added an attribute: Shape 15, Reshape 14, RoiAlign 16, BatchNormalization 14/15,
# Cast 19/24.


@pytest.mark.parametrize(
    ("attributes", "target"), [("", 13), ("<start = 1>", 13), ("<start = -2, end = -1>", 11)]
)
def test_shape_start_and_end_become_a_slice(attributes: str, target: int) -> None:
    source = model(15, "(float[2, 3, 4] x) => (int64[n] y)", f"y = Shape {attributes} (x)")
    converted = assert_parity(source, target, {"x": random_input((2, 3, 4))})
    assert ops(converted) == (["Shape"] if not attributes else ["Shape", "Slice"])


def test_reshape_allowzero_without_zeros_goes_down() -> None:
    source = model(
        14,
        "(float[2, 3] x) => (float[3, 2] y)",
        "s = Constant <value = int64[2] {3, -1}> ()\ny = Reshape <allowzero = 1> (x, s)",
    )
    assert_parity(source, 13, {"x": random_input((2, 3))})


def test_reshape_allowzero_with_a_zero_is_refused() -> None:
    source = model(
        14,
        "(float[0, 3] x) => (float[3, 0] y)",
        "s = Constant <value = int64[2] {3, 0}> ()\ny = Reshape <allowzero = 1> (x, s)",
    )
    assert "allowzero=1 with a 0 in the shape makes an empty dimension" in refusal(source, 13)


def test_roi_align_output_half_pixel_goes_down_and_half_pixel_is_refused() -> None:
    body = (
        'y = RoiAlign <coordinate_transformation_mode = "{mode}", output_height = 2, '
        "output_width = 2> (x, rois, idx)"
    )
    signature = "(float[1, 1, 4, 4] x, float[1, 4] rois, int64[1] idx) => (float[1, 1, 2, 2] y)"
    feeds = {
        "x": random_input((1, 1, 4, 4)),
        "rois": np.array([[0.5, 0.5, 3.0, 2.5]], dtype=np.float32),
        "idx": np.array([0], dtype=np.int64),
    }
    assert_parity(model(16, signature, body.format(mode="output_half_pixel")), 15, feeds)
    assert "coordinate_transformation_mode 'half_pixel' has no equivalent at opset 15" in (
        refusal(model(16, signature, body.format(mode="half_pixel")), 15)
    )


def test_batch_normalization_in_inference_goes_down_to_9() -> None:
    source = model(
        15,
        "(float[1, 2, 3] x, float[2] s, float[2] b, float[2] m, float[2] v) => (float[1, 2, 3] y)",
        "y = BatchNormalization (x, s, b, m, v)",
    )
    rng = np.random.default_rng(0)
    feeds = {k: rng.random(2, dtype=np.float32) + 0.5 for k in "sbmv"}
    assert_parity(source, 13, {"x": random_input((1, 2, 3)), **feeds})


def test_batch_normalization_with_statistics_of_another_type_is_refused_at_14() -> None:
    source = model(
        15,
        "(float16[1, 2] x, float[2] s, float[2] b, float[2] m, float[2] v) => (float16[1, 2] y)",
        "y = BatchNormalization (x, s, b, m, v)",
    )
    assert "input 1 ('scale') is float and input 0 ('X') float16, but BatchNormalization" in (
        refusal(source, 14)
    )


def test_cast_saturate_is_dropped_below_19() -> None:
    source = model(21, "(float[3] x) => (float16[3] y)", "y = Cast <to = 10, saturate = 1> (x)")
    converted = assert_parity(source, 13, {"x": random_input((3,)) * 1e5})
    assert attribute(converted, "Cast", "saturate") is None


def test_cast_to_float8_is_refused_below_19() -> None:
    source = model(
        21, "(float[3] x) => (float8e4m3fn[3] y)", "y = Cast <to = 17, saturate = 0> (x)"
    )
    assert refusal(source, 17).endswith("is float8e4m3fn, which Cast does not accept at opset 17")
