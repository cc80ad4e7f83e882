"""convert_float: onnxruntime's float16 converter, its subgraph and external-data faults fixed."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphkit
from graphkit import PassError
from graphkit._modelio.proto import to_proto
from tests.models import as_ir, matmul, random_input, run

convert_float = graphkit.passes.convert_float


def _convert(proto: onnx.ModelProto, **params: object) -> graphkit.PassResult:
    return convert_float.run(as_ir(proto), convert_float.validate(params))


def _initializer_types(proto: onnx.ModelProto) -> dict[str, int]:
    return {t.name: t.data_type for t in proto.graph.initializer}


def test_weights_become_float16_and_the_interface_stays_float32() -> None:
    source = matmul(size=16)
    result = _convert(source)
    assert result.modified
    proto = to_proto(result.model)
    assert _initializer_types(proto) == {"w": TensorProto.FLOAT16}
    assert [i.type.tensor_type.elem_type for i in proto.graph.input] == [TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in proto.graph.output] == [TensorProto.FLOAT]
    assert [n.op_type for n in proto.graph.node].count("Cast") == 2
    x = random_input((1, 16))
    np.testing.assert_allclose(run(proto, {"x": x})["y"], run(source, {"x": x})["y"], rtol=1e-2)
    assert "1 of 1 float32 weights now float16" in result.notes[0]


def test_keep_io_types_false_makes_the_interface_float16() -> None:
    proto = to_proto(_convert(matmul(size=16), keep_io_types=False).model)
    assert proto.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    assert proto.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    assert "Cast" not in [n.op_type for n in proto.graph.node]
    x = random_input((1, 16)).astype(np.float16)
    assert run(proto, {"x": x})["y"].dtype == np.float16


RELU_AFTER_MATMUL = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[1, 4] x) => (float[1, 4] y) <float[4, 4] w = {1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0,
        1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0}> {
        m = MatMul(x, w)
        y = Relu(m)
    }"""


def test_op_block_list_keeps_those_ops_in_float32() -> None:
    source = onnx.parser.parse_model(RELU_AFTER_MATMUL)
    result = _convert(source, op_block_list=["Relu"])
    proto = to_proto(result.model)
    relu = next(n for n in proto.graph.node if n.op_type == "Relu")
    producer = next(n for n in proto.graph.node if relu.input[0] in n.output)
    assert producer.op_type == "Cast"
    assert producer.attribute[0].i == TensorProto.FLOAT
    assert "kept in float32 behind Casts: Relu" in result.notes
    x = random_input((1, 4))
    np.testing.assert_allclose(run(proto, {"x": x})["y"], run(source, {"x": x})["y"], rtol=1e-2)


def test_an_op_block_list_entry_that_is_no_onnx_op_is_refused() -> None:
    with pytest.raises(PassError, match=r"op_block_list: not ONNX operators: 'Conv2d'"):
        convert_float.validate({"op_block_list": ["Relu", "Conv2d"]})


def test_bfloat16_is_refused_with_the_reason() -> None:
    with pytest.raises(PassError, match="no bfloat16 kernels"):
        _convert(matmul(size=4), to="bfloat16")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_finite_val": 70000.0}, "less than or equal to 65504"),
        ({"min_positive_val": 1e-9}, "greater than or equal to 0.0000000596"),
    ],
    ids=["max-past-float16", "min-below-float16"],
)
def test_clamping_limits_outside_float16_are_refused(params: dict, message: str) -> None:
    with pytest.raises(PassError, match=message):
        convert_float.validate(params)


def test_weights_outside_the_limits_are_clamped_and_counted() -> None:
    weight = np.array([[1e5, -1e5], [1e-9, 0.5]], np.float32)
    source = helper.make_model(
        helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
            [numpy_helper.from_array(weight, "w")],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    result = _convert(source, max_finite_val=1000.0, min_positive_val=1e-4)
    converted = numpy_helper.to_array(to_proto(result.model).graph.initializer[0])
    np.testing.assert_array_equal(converted, np.array([[1000, -1000], [1e-4, 0.5]], np.float16))
    assert any(n.startswith("3 weight values outside float16's range") for n in result.notes)


def _branch(name: str, op: str) -> onnx.GraphProto:
    """``out = op(x * w, x)``, with a weight named ``w`` in every branch."""
    weight = numpy_helper.from_array(np.linspace(0.5, 2.0, 4, dtype=np.float32), "w")
    return helper.make_graph(
        [
            helper.make_node("Mul", ["x", "w"], [f"{name}_m"]),
            helper.make_node(op, [f"{name}_m", "x"], [f"{name}_out"]),
        ],
        name,
        [],
        [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [4])],
        [weight],
    )


def if_with_shared_weight_names() -> onnx.ModelProto:
    """An If whose branches each hold a weight ``w``; the then branch uses Max (kept float32)."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
            helper.make_node("Greater", ["s", "zero"], ["c"]),
            helper.make_node(
                "If",
                ["c"],
                ["y"],
                then_branch=_branch("then", "Max"),
                else_branch=_branch("else", "Add"),
            ),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [numpy_helper.from_array(np.array(0, np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["then", "else"])
def test_if_branches_with_shared_weight_names_and_blocked_ops(sign: float) -> None:
    """The converter stopped on the shared name and put the Max's Casts in the main graph."""
    source = if_with_shared_weight_names()
    result = _convert(source)
    proto = to_proto(result.model)
    onnx.checker.check_model(proto, full_check=True)
    if_node = next(n for n in proto.graph.node if n.op_type == "If")
    then_branch = next(a.g for a in if_node.attribute if a.name == "then_branch")
    assert [t.name for t in then_branch.initializer] == ["w"], "names are given back"
    assert "Cast" in [n.op_type for n in then_branch.node]
    assert any(n.startswith("moved 2 Casts") for n in result.notes)
    x = sign * np.array([0.5, 1.0, 1.5, 2.0], np.float32)
    np.testing.assert_allclose(run(proto, {"x": x})["y"], run(source, {"x": x})["y"], rtol=1e-2)


def loop_model() -> onnx.ModelProto:
    """A Loop of 3 iterations whose body multiplies the carried value by a body weight."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Mul", ["v_in", "k"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [2]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [2]),
        ],
        [numpy_helper.from_array(np.array([1.5, 0.5], np.float32), "k")],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "x"], ["y"], body=body)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array(3, np.int64), "n")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def test_loop_bodies_are_converted() -> None:
    source = loop_model()
    proto = to_proto(_convert(source).model)
    loop = next(n for n in proto.graph.node if n.op_type == "Loop")
    body = loop.attribute[0].g
    assert body.initializer[0].data_type == TensorProto.FLOAT16
    assert body.input[2].type.tensor_type.elem_type == TensorProto.FLOAT16
    x = np.array([1.0, 2.0], np.float32)
    np.testing.assert_allclose(run(proto, {"x": x})["y"], run(source, {"x": x})["y"], rtol=1e-3)


def test_weights_kept_as_external_data_are_converted(tmp_path) -> None:
    """The converter relabels an external weight float16 without converting its bytes."""
    source = matmul(size=32)
    path = tmp_path / "model.onnx"
    copy = onnx.ModelProto.FromString(source.SerializeToString())  # onnx.save changes what it saves
    onnx.save(copy, path, save_as_external_data=True, location="model.data", size_threshold=0)
    result = convert_float.run(graphkit.load(path), convert_float.validate({}))
    assert any("read from external data" in n for n in result.notes)
    out = tmp_path / "out" / "half.onnx"
    graphkit.save(result.model, out, graphkit.SaveOptions(external_data=True))
    assert (out.parent / "half.onnx.data").stat().st_size == 32 * 32 * 2
    x = random_input((1, 32))
    np.testing.assert_allclose(run(out, {"x": x})["y"], run(source, {"x": x})["y"], rtol=1e-2)


def test_a_model_without_float32_is_left_alone() -> None:
    source = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (int64[2] a) => (int64[2] b) { b = Neg(a) }"""
    )
    result = _convert(source)
    assert not result.modified
    assert result.notes == ["no float32 tensors to convert"]


CLASHING = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[2] x) => (float[2] y) <float[2] m_cast_to_fp32 = {2.0, 3.0}> {
        graph_input_cast_0 = Relu(x)
        m = Mul(graph_input_cast_0, m_cast_to_fp32)
        y = Max(m, x)
    }"""


def test_values_named_like_the_converters_casts_are_renamed() -> None:
    """The converter defined graph_input_cast_0 and m_cast_to_fp32 a second time."""
    source = onnx.parser.parse_model(CLASHING)
    result = _convert(source)
    proto = to_proto(result.model)
    onnx.checker.check_model(proto, full_check=True)
    assert any(n.startswith("renamed 2 values named like the converter's") for n in result.notes)
    x = np.array([1.0, -2.0], np.float32)
    np.testing.assert_allclose(run(proto, {"x": x})["y"], run(source, {"x": x})["y"], rtol=1e-3)


def test_an_input_named_like_the_converters_casts_is_refused() -> None:
    source = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2] graph_input_cast_0) => (float[2] y) { y = Relu(graph_input_cast_0) }"""
    )
    with pytest.raises(
        PassError, match=r"named like the Casts the converter adds: 'graph_input_cast_0'"
    ):
        _convert(source)
