"""fix_dims: every occurrence of a dim, whole input shapes, re-inference, and its refusals."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphkit
from graphkit import PassError
from graphkit._inspect import symbolic_dims
from graphkit._modelio.proto import to_proto
from tests.models import as_ir, from_text, random_input, run, tf2onnx_like, with_if

fix_dims = graphkit.passes.fix_dims


def dims_of(info: onnx.ValueInfoProto) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else d.dim_param
        for d in info.type.tensor_type.shape.dim
    ]


def all_static(proto: onnx.ModelProto) -> bool:
    infos = [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]
    return all(isinstance(d, int) for info in infos for d in dims_of(info))


def test_every_occurrence_of_a_dim_is_fixed() -> None:
    source = tf2onnx_like(size=4)
    proto = to_proto(fix_dims(as_ir(source), dims={"unk__127": 1, "unk__128": 1}))
    onnx.checker.check_model(proto, full_check=True)
    assert all_static(proto)
    assert dims_of(proto.graph.input[0]) == [1, 4, 4, 3]
    assert {info.name: dims_of(info) for info in proto.graph.value_info}["nchw"] == [1, 3, 4, 4]
    x = random_input((1, 4, 4, 3))
    np.testing.assert_array_equal(
        run(proto, {"input_1": x})["conv2d_6"], run(source, {"input_1": x})["conv2d_6"]
    )


def test_outputs_follow_by_inference() -> None:
    """Fixing only the input's dim makes the output's unk__128 static too."""
    proto = to_proto(fix_dims(as_ir(tf2onnx_like(size=4)), dims={"unk__127": 1}))
    assert dims_of(proto.graph.output[0]) == [1, 4, 4, 3]
    assert all_static(proto)


def test_whole_input_shapes_without_knowing_dim_names() -> None:
    proto = to_proto(fix_dims(as_ir(tf2onnx_like(size=4)), shapes={"input_1": [1, 4, 4, 3]}))
    assert all_static(proto)
    assert dims_of(proto.graph.output[0]) == [1, 4, 4, 3]


def test_a_shape_may_name_a_symbolic_dim() -> None:
    model = fix_dims(as_ir(tf2onnx_like(size=4)), shapes={"input_1": ["batch", 4, 4, 3]})
    assert set(symbolic_dims(model)) >= {"batch"}
    assert "unk__127" not in symbolic_dims(model)


def test_data_propagation_makes_reshapes_static() -> None:
    text = """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 3, 4] x) => (float[M, 12] y)
        <int64[1] starts = {0}, int64[1] ends = {1}, int64[1] twelve = {12}> {
            shape = Shape(x)
            n = Slice(shape, starts, ends)
            target = Concat<axis = 0>(n, twelve)
            y = Reshape(x, target)
        }"""
    proto = to_proto(fix_dims(as_ir(from_text(text)), dims={"N": 2}))
    assert dims_of(proto.graph.output[0]) == [2, 12]


def test_dims_inside_subgraphs() -> None:
    proto = to_proto(fix_dims(as_ir(with_if()), dims={"N": 5}))
    onnx.checker.check_model(proto, full_check=True)
    branch_outputs = [dims_of(a.g.output[0]) for a in proto.graph.node[-1].attribute]
    assert branch_outputs == [[5, 2], [5, 2]]
    assert dims_of(proto.graph.output[0]) == [5, 2]


def test_stale_value_info_does_not_break_inference() -> None:
    """onnxsim#155, onnx#4367: recorded intermediate shapes must not fight the new ones."""
    source = tf2onnx_like(size=4)
    for info in source.graph.value_info:  # a stale record from an earlier fixed size
        info.type.tensor_type.shape.dim[0].Clear()
        info.type.tensor_type.shape.dim[0].dim_value = 7
    proto = to_proto(fix_dims(as_ir(source), dims={"unk__127": 1}))
    batch = {info.name: dims_of(info)[0] for info in proto.graph.value_info}
    assert [batch[name] for name in ("nchw", "conv", "relu", "nhwc")] == [1, 1, 1, 1]


def test_nothing_to_change_is_reported_honestly() -> None:
    model = fix_dims(as_ir(tf2onnx_like(size=4)), dims={"unk__127": 1})
    params = fix_dims.validate({"shapes": {"input_1": [1, 4, 4, 3]}})
    assert fix_dims.run(model, params).modified is False


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"dims": {"unk__1": 1}},
            "no symbolic dim named 'unk__1' (the model has: 'unk__127', 'unk__128')",
        ),
        ({"shapes": {"input": [1, 4, 4, 3]}}, "no graph input named 'input' (inputs: 'input_1')"),
        (
            {"shapes": {"input_1": [1, 4, 4]}},
            "input 'input_1' has rank 4, but the shape [1, 4, 4] has 3",
        ),
        (
            {"dims": {"unk__127": 0}},
            "fix_dims: invalid parameters: dims.unk__127: "
            "Input should be greater than or equal to 1",
        ),
        (
            {"shapes": {"input_1": [1, -4, 4, 3]}},
            "fix_dims: invalid parameters: shapes.input_1[1]: a size cannot be negative",
        ),
        (
            {"shapes": {"input_1": [1, 4.5, 4, 3]}},
            "fix_dims: invalid parameters: shapes.input_1[1]: "
            "a size is a whole number or a dim name, not 4.5",
        ),
    ],
    ids=["unknown-dim", "unknown-input", "rank", "zero", "negative", "fraction"],
)
def test_refusals(params: dict, message: str) -> None:
    with pytest.raises(PassError) as caught:
        fix_dims(as_ir(tf2onnx_like(size=4)), **params)
    assert str(caught.value) == message


def test_a_declared_output_the_sizes_contradict_gets_the_computed_shape_and_a_note() -> None:
    source = from_text(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 2] x) => (float[3, 2] y) { y = Relu(x) }"""
    )
    result = fix_dims.run(as_ir(source), fix_dims.validate({"dims": {"N": 4}}))
    assert dims_of(to_proto(result.model).graph.output[0]) == [4, 2]
    assert result.notes == [
        "output 'y' was declared [3, 2], but the graph computes [4, 2]: "
        "the computed shape is recorded"
    ]


def test_a_whole_shape_may_have_an_empty_axis() -> None:
    source = from_text(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, M] x) => (float[N] y) {
            axes = Constant <value = int64[1] {1}> ()
            y = ReduceSum <keepdims = 0> (x, axes)
        }"""
    )
    proto = to_proto(fix_dims(as_ir(source), shapes={"x": [3, 0]}))
    assert dims_of(proto.graph.input[0]) == [3, 0]
    assert dims_of(proto.graph.output[0]) == [3]
    np.testing.assert_array_equal(run(proto, {"x": np.zeros((3, 0), np.float32)})["y"], np.zeros(3))
