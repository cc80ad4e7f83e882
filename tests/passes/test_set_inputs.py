"""set_inputs: each part of the contract against ONNX Runtime, subgraphs, weights, refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import pytest

import graphkit
from graphkit import PassError, PassResult
from graphkit._modelio.proto import to_proto
from tests.models import as_ir, from_text, run, tf2onnx_like, with_if

set_inputs = graphkit.passes.set_inputs

#: An NCHW model, as torch exports them: y = Conv(x) with 3 input and 2 output channels.
NCHW = """<ir_version: 8, opset_import: ["" : 17]>
    nchw (float[N, 3, 4, 5] x) => (float[N, 2, 4, 5] y)
    <float[2, 3, 1, 1] w = {1, 2, 3, -1, 0.5, 0.25}> {
        y = Conv(x, w)
    }"""


def apply(proto: onnx.ModelProto, **params: Any) -> tuple[onnx.ModelProto, PassResult]:
    result = set_inputs.run(as_ir(proto), set_inputs.validate(params))
    out = to_proto(result.model)
    onnx.checker.check_model(out, full_check=True)
    return out, result


def dims(info: onnx.ValueInfoProto) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else d.dim_param
        for d in info.type.tensor_type.shape.dim
    ]


def elem_type(info: onnx.ValueInfoProto) -> int:
    return info.type.tensor_type.elem_type


def images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def value_names(proto: onnx.ModelProto) -> set[str]:
    return {out for node in proto.graph.node for out in node.output}


# -- each parameter --------------------------------------------------------------------------------


def test_dtype_takes_uint8_and_casts() -> None:
    source = from_text(NCHW)
    out, result = apply(source, inputs={"x": {"dtype": "uint8"}})
    assert [(i.name, elem_type(i), dims(i)) for i in out.graph.input] == [
        ("x", onnx.TensorProto.UINT8, ["N", 3, 4, 5])
    ]
    assert out.graph.node[0].op_type == "Cast"
    assert [n.op_type for n in out.graph.node] == ["Cast", "Conv"]
    assert out.graph.node[1].input[0] == "x_float32"
    x = images((2, 3, 4, 5))
    expected = run(source, {"x": x.astype(np.float32)})["y"]
    np.testing.assert_array_equal(run(out, {"x": x})["y"], expected)
    assert result.adapter is not None
    np.testing.assert_array_equal(result.adapter.inputs[0](x), x.astype(np.float32))


def test_layout_nhwc_in_front_of_an_nchw_model() -> None:
    source = from_text(NCHW)
    out, result = apply(source, inputs={"x": {"layout": "NHWC"}})
    assert dims(out.graph.input[0]) == ["N", 4, 5, 3]
    [transpose] = [n for n in out.graph.node if n.op_type == "Transpose"]
    assert list(transpose.attribute[0].ints) == [0, 3, 1, 2]
    assert transpose.output[0] == "x_nchw"
    x = np.random.default_rng(1).random((2, 4, 5, 3), dtype=np.float32)
    expected = run(source, {"x": x.transpose(0, 3, 1, 2)})["y"]
    np.testing.assert_array_equal(run(out, {"x": x})["y"], expected)
    assert result.adapter is not None
    np.testing.assert_array_equal(result.adapter.inputs[0](x), x.transpose(0, 3, 1, 2))


def test_layout_nchw_in_front_of_an_nhwc_model() -> None:
    source = tf2onnx_like(size=4)
    out, _ = apply(source, inputs={"input_1": {"layout": "NCHW"}})
    assert dims(out.graph.input[0]) == ["unk__127", 3, 4, 4]
    x = np.random.default_rng(2).random((1, 3, 4, 4), dtype=np.float32)
    expected = run(source, {"input_1": x.transpose(0, 2, 3, 1)})["conv2d_6"]
    np.testing.assert_array_equal(run(out, {"input_1": x})["conv2d_6"], expected)


@pytest.mark.parametrize(
    ("layout", "model_shape", "perm"),
    [
        ("NWC", [1, 3, 6], (0, 2, 1)),
        ("NDHWC", [1, 3, 2, 4, 5], (0, 4, 1, 2, 3)),
        ("NCDHW", [1, 2, 4, 5, 3], (0, 2, 3, 4, 1)),
    ],
    ids=["rank-3", "rank-5", "rank-5-channels-first"],
)
def test_layouts_of_other_ranks(layout: str, model_shape: list[int], perm: tuple) -> None:
    rank = len(model_shape)
    text = f"""<ir_version: 8, opset_import: ["" : 17]>
        g (float{model_shape} x) => (float{model_shape} y) {{ y = Neg(x) }}"""
    source = from_text(text)
    out, _ = apply(source, inputs={"x": {"layout": layout}})
    given = [model_shape[perm.index(i)] for i in range(rank)]
    assert dims(out.graph.input[0]) == given
    x = np.random.default_rng(3).random(given, dtype=np.float32)
    expected = run(source, {"x": x.transpose(perm)})["y"]
    np.testing.assert_array_equal(run(out, {"x": x})["y"], expected)


def test_scale_mean_std_per_channel_in_that_order() -> None:
    source = tf2onnx_like(size=4)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    out, _ = apply(
        source,
        inputs={
            "input_1": {
                "dtype": "uint8",
                "layout": "NCHW",
                "scale": 1 / 255,
                "mean": mean,
                "std": std,
            }
        },
    )
    ops = [n.op_type for n in out.graph.node if n.op_type != "Constant"]
    assert ops[:5] == ["Cast", "Mul", "Sub", "Div", "Transpose"]
    x = images((1, 3, 4, 4))
    f32 = np.float32
    normalised = (x.astype(f32) * f32(1 / 255) - np.array(mean, f32)[:, None, None]) / np.array(
        std, f32
    )[:, None, None]
    expected = run(source, {"input_1": normalised.transpose(0, 2, 3, 1)})["conv2d_6"]
    np.testing.assert_allclose(run(out, {"input_1": x})["conv2d_6"], expected, rtol=1e-6)


def test_one_number_applies_to_every_channel_and_std_divides() -> None:
    source = from_text(NCHW)
    out, _ = apply(source, inputs={"x": {"dtype": "uint8", "std": 255, "mean": 1}})
    x = images((1, 3, 4, 5), seed=4)
    expected = run(source, {"x": (x.astype(np.float32) - 1) / np.float32(255)})["y"]
    np.testing.assert_array_equal(run(out, {"x": x})["y"], expected)


def test_channel_axis_without_a_layout() -> None:
    source = from_text(NCHW)
    out, _ = apply(source, inputs={"x": {"mean": [1.0, 2.0, 3.0], "channel_axis": 1}})
    x = np.random.default_rng(5).random((1, 3, 4, 5), dtype=np.float32)
    shifted = x - np.array([1, 2, 3], np.float32)[:, None, None]
    np.testing.assert_array_equal(run(out, {"x": x})["y"], run(source, {"x": shifted})["y"])


def test_shape_fixes_the_input_and_inference_follows() -> None:
    source = tf2onnx_like(size=4)
    out, _ = apply(
        source, inputs={"input_1": {"dtype": "uint8", "layout": "NCHW", "shape": [1, 3, 4, 4]}}
    )
    assert dims(out.graph.input[0]) == [1, 3, 4, 4]
    assert dims(out.graph.output[0]) == [1, 4, 4, 3]
    assert {i.name: dims(i) for i in out.graph.value_info}["input_1_nhwc"] == [1, 4, 4, 3]
    for info in [*out.graph.output, *out.graph.value_info]:
        assert all(isinstance(d, int) for d in dims(info)), info.name


def test_shape_alone_is_fix_dims() -> None:
    source = tf2onnx_like(size=4)
    out, result = apply(source, inputs={"input_1": {"shape": [2, 4, 4, 3]}})
    assert [n.op_type for n in out.graph.node] == [n.op_type for n in source.graph.node]
    assert dims(out.graph.input[0]) == [2, 4, 4, 3]
    assert dims(out.graph.output[0]) == [2, 4, 4, 3]
    assert result.modified and result.adapter is None


def test_outputs_take_a_layout_and_a_dtype() -> None:
    source = tf2onnx_like(size=4)
    out, result = apply(source, outputs={"conv2d_6": {"layout": "NCHW", "dtype": "float16"}})
    [output] = out.graph.output
    assert (output.name, elem_type(output)) == ("conv2d_6", onnx.TensorProto.FLOAT16)
    assert dims(output) == ["unk__128", 3, 4, 4]
    assert [n.op_type for n in out.graph.node][-2:] == ["Transpose", "Cast"]
    assert "conv2d_6_nhwc" in value_names(out)  # what the model itself makes
    x = np.random.default_rng(6).random((1, 4, 4, 3), dtype=np.float32)
    expected = run(source, {"input_1": x})["conv2d_6"]
    got = run(out, {"input_1": x})["conv2d_6"]
    np.testing.assert_array_equal(got, expected.transpose(0, 3, 1, 2).astype(np.float16))
    assert result.adapter is not None
    np.testing.assert_array_equal(result.adapter.outputs[0](expected), got)


def test_every_other_name_is_kept() -> None:
    source = tf2onnx_like(size=4)
    out, _ = apply(
        source,
        inputs={"input_1": {"dtype": "uint8", "layout": "NCHW"}},
        outputs={"conv2d_6": {"dtype": "float16"}},
    )
    before = value_names(source) - {"conv2d_6"}
    assert before <= value_names(out)
    assert [i.name for i in out.graph.initializer] == ["W", "B"]
    assert [n.name for n in out.graph.node if n.name in {"to_nchw", "conv2d", "sigmoid"}] == [
        "to_nchw",
        "conv2d",
        "sigmoid",
    ]
    assert ([i.name for i in out.graph.input], [o.name for o in out.graph.output]) == (
        ["input_1"],
        ["conv2d_6"],
    )


def test_new_names_do_not_collide() -> None:
    text = """<ir_version: 8, opset_import: ["" : 17]>
        g (float[1, 3] x) => (float[1, 3] y) {
            x_float32 = Neg(x)
            y = Abs(x_float32)
        }"""
    out, _ = apply(from_text(text), inputs={"x": {"dtype": "uint8"}})
    assert out.graph.node[0].output[0] == "x_float32_2"
    x = images((1, 3))
    expected = np.abs(-x.astype(np.float32))
    np.testing.assert_array_equal(run(out, {"x": x})["y"], expected)


def test_nothing_to_change_is_reported_honestly() -> None:
    result = set_inputs.run(
        as_ir(from_text(NCHW)), set_inputs.validate({"inputs": {"x": {"dtype": "float32"}}})
    )
    assert result.modified is False
    assert result.adapter is None


# -- subgraphs and weights -------------------------------------------------------------------------


def test_an_input_read_inside_if_branches() -> None:
    source = with_if()
    out, _ = apply(source, inputs={"x": {"dtype": "int32", "scale": 0.5}})
    branches = {a.name: a.g for a in out.graph.node[-1].attribute}
    assert [list(g.node[0].input) for g in branches.values()] == [["x_scaled", "k"]] * 2
    for sign in (1, -1):  # both branches
        x = sign * np.arange(1, 7, dtype=np.int32).reshape(3, 2)
        expected = run(source, {"x": x.astype(np.float32) * 0.5})["y"]
        np.testing.assert_array_equal(run(out, {"x": x})["y"], expected)


def test_an_input_read_inside_a_loop_body() -> None:
    text = """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[2] y) <int64 n = {3}, bool go = {1}> {
            y = Loop(n, go, x) <body = body (int64 i, bool c, float[2] acc)
                => (bool c_out, float[2] acc_out) {
                c_out = Identity(c)
                acc_out = Add(acc, x)
            }>
        }"""
    source = from_text(text)
    out, _ = apply(source, inputs={"x": {"dtype": "uint8", "mean": 1}})
    body = out.graph.node[-1].attribute[0].g
    assert list(body.node[1].input) == ["acc", "x_centred"]
    x = np.array([5, 200], np.uint8)
    expected = run(source, {"x": x.astype(np.float32) - 1})["y"]
    np.testing.assert_array_equal(run(out, {"x": x})["y"], expected)


def test_external_weights_are_never_read(tmp_path: Path) -> None:
    from tests.large.builders import DATA_NAME, FileWatch, external_model, write_external

    if not FileWatch.available():
        pytest.skip("needs Linux's inotify")
    source = write_external(external_model(), tmp_path / "src")
    watch = FileWatch(source.parent / DATA_NAME)
    try:
        model = graphkit.load(source)
        params = {
            "inputs": {
                "input_1": {"dtype": "uint8", "layout": "NCHW", "scale": 0.5, "shape": [1, 3, 8, 8]}
            },
            "outputs": {"conv2d_6": {"layout": "NCHW"}},
        }
        model = set_inputs.run(model, set_inputs.validate(params)).model
        assert watch.events() == []
    finally:
        watch.close()
    external = sorted(
        v.name or ""
        for g in model.graphs()
        for v in g.initializers.values()
        if isinstance(v.const_value, ir.ExternalTensor)
    )
    assert external == ["W", "gain"]
    x = images((1, 3, 8, 8))
    expected = run(external_model(), {"input_1": x.transpose(0, 2, 3, 1) * np.float32(0.5)})
    got = run(to_proto(model), {"input_1": x})["conv2d_6"]
    np.testing.assert_allclose(got, expected["conv2d_6"].transpose(0, 3, 1, 2), rtol=1e-6)


# -- refusals --------------------------------------------------------------------------------------

RANK3 = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[1, 3, 6] s, int64[1, 4] ids, float[2, 2] m) => (float[1, 3, 6] y, int64[1, 4] z) {
        y = Neg(s)
        z = Identity(ids)
    }"""


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"inputs": {"image": {"dtype": "uint8"}}},
            "no graph input named 'image' (inputs: 's', 'ids', 'm')",
        ),
        (
            {"outputs": {"out": {"dtype": "uint8"}}},
            "no graph output named 'out' (outputs: 'y', 'z')",
        ),
        (
            {"inputs": {"s": {"layout": "NHWC"}}},
            "input 's' has rank 3, but layout 'NHWC' is for rank 4 (rank 3 takes 'NCW' or 'NWC')",
        ),
        (
            {"inputs": {"m": {"layout": "NCW"}}},
            "input 'm' has rank 2, but layout 'NCW' is for rank 3 (layouts are for ranks 3 to 5)",
        ),
        (
            {"outputs": {"y": {"layout": "NCHW"}}},
            "output 'y' has rank 3, but layout 'NCHW' is for rank 4 (rank 3 takes 'NCW' or 'NWC')",
        ),
        (
            {"inputs": {"s": {"layout": "NCW", "mean": [0.5, 0.5]}}},
            "input 's': mean has 2 values, but the input has 6 channels (axis 1 of [1, 6, 3])",
        ),
        (
            {"inputs": {"s": {"layout": "NWC", "std": [1, 2, 3, 4]}}},
            "input 's': std has 4 values, but the input has 3 channels (axis 2 of [1, 6, 3])",
        ),
        (
            {"inputs": {"s": {"mean": [1, 2, 3]}}},
            "input 's': mean has one value per channel, so give 'layout' or 'channel_axis' "
            "to say which axis holds the channels",
        ),
        (
            {"inputs": {"s": {"mean": 1, "channel_axis": 3}}},
            "input 's' has rank 3: channel_axis 3 is out of range",
        ),
        (
            {"inputs": {"s": {"layout": "NCW", "channel_axis": 1}}},
            "input 's': give layout or channel_axis, not both",
        ),
        (
            {"inputs": {"ids": {"scale": 2}}},
            "input 'ids' is int64: scale need a floating-point input",
        ),
        (
            {"inputs": {"s": {"shape": [1, 3]}}},
            "input 's' has rank 3, but the shape [1, 3] has 2",
        ),
    ],
    ids=[
        "unknown-input",
        "unknown-output",
        "NHWC-on-rank-3",
        "layout-on-rank-2",
        "output-layout-rank",
        "mean-count",
        "std-count",
        "per-channel-without-axis",
        "channel-axis-range",
        "layout-and-channel-axis",
        "scale-on-integers",
        "shape-rank",
    ],
)
def test_refusals_name_what_exists(params: dict, message: str) -> None:
    model = as_ir(from_text(RANK3))
    with pytest.raises(PassError) as caught:
        set_inputs.run(model, set_inputs.validate(params))
    assert str(caught.value) == message
    assert [v.name for v in model.graph.inputs] == ["s", "ids", "m"], "nothing half-done"
    assert len(model.graph) == 2


def test_every_problem_is_reported_at_once() -> None:
    params = {"inputs": {"s": {"layout": "NHWC"}, "nope": {}}, "outputs": {"z": {"layout": "NC"}}}
    with pytest.raises(PassError) as caught:
        set_inputs(as_ir(from_text(RANK3)), **params)
    message = str(caught.value)
    assert "layout: Input should be 'NCW', 'NWC', 'NCHW', 'NHWC', 'NCDHW' or 'NDHWC'" in message
    params["outputs"] = {}
    with pytest.raises(PassError) as caught:
        set_inputs(as_ir(from_text(RANK3)), **params)
    assert str(caught.value) == (
        "input 's' has rank 3, but layout 'NHWC' is for rank 4 (rank 3 takes 'NCW' or 'NWC'); "
        "no graph input named 'nope' (inputs: 's', 'ids', 'm')"
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"inputs": {"s": {"dtype": "uint9"}}},
            "set_inputs: invalid parameters: inputs.s.dtype: Input should be 'float32', "
            "'float16', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', "
            "'uint16', 'uint32', 'uint64' or 'bool'",
        ),
        (
            {"inputs": {"s": {"std": [1, 0, 1]}}},
            "set_inputs: invalid parameters: inputs.s.std: "
            "a standard deviation of 0 would divide by zero",
        ),
        (
            {"inputs": {"s": {"mean": []}}},
            "set_inputs: invalid parameters: inputs.s.mean: give one number, or one per channel",
        ),
        (
            {"inputs": {"s": {"layuot": "NCW"}}},
            "set_inputs: invalid parameters: inputs.s.layuot: unknown parameter",
        ),
    ],
    ids=["dtype", "std-zero", "empty", "misspelt"],
)
def test_bad_parameters_are_one_line(params: dict, message: str) -> None:
    with pytest.raises(PassError) as caught:
        set_inputs.validate(params)
    assert str(caught.value) == message


def test_an_input_that_is_also_an_output_is_refused() -> None:
    text = """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[2] x, float[2] y) { y = Neg(x) }"""
    with pytest.raises(PassError, match="input 'x' is also a graph output; give it an Identity"):
        set_inputs(as_ir(from_text(text)), inputs={"x": {"dtype": "uint8"}})
