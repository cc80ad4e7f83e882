"""set_opset: up and down through onnx's version converter, and clear refusals."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.version_converter
import pytest

import graphkit
from graphkit import PassError
from graphkit._modelio.proto import to_proto
from tests.models import as_ir, from_text, matmul, random_input, run, tf2onnx_like

set_opset = graphkit.passes.set_opset


def opset_of(proto: onnx.ModelProto) -> int:
    return {o.domain: o.version for o in proto.opset_import}[""]


def test_upgrade_keeps_the_numbers_and_raises_the_ir_version() -> None:
    source = tf2onnx_like(size=4)
    result = set_opset.run(as_ir(source), set_opset.validate({"version": 17}))
    assert result.modified
    assert result.notes == ["IR version raised from 7 to 8 for opset 17"]
    proto = to_proto(result.model)
    onnx.checker.check_model(proto, full_check=True)
    assert (opset_of(proto), proto.ir_version) == (17, 8)
    x = random_input((2, 4, 4, 3))
    np.testing.assert_array_equal(
        run(proto, {"input_1": x})["conv2d_6"], run(source, {"input_1": x})["conv2d_6"]
    )


def test_large_weights_survive_the_conversion() -> None:
    """Weights are held back while the converter runs, then put back."""
    source = matmul(64, opset=11, ir_version=7)
    weight = onnx.numpy_helper.to_array(source.graph.initializer[0])
    proto = to_proto(set_opset(as_ir(source), version=18))
    assert [t.name for t in proto.graph.initializer] == ["w"]
    assert [i.name for i in proto.graph.input] == ["x"]
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(proto.graph.initializer[0]), weight)
    x = random_input((1, 64))
    np.testing.assert_array_equal(run(proto, {"x": x})["y"], run(source, {"x": x})["y"])


def softmax(op: str, opset: int, axis: int) -> onnx.ModelProto:
    return from_text(
        f"""<ir_version: 8, opset_import: ["" : {opset}]>
        g (float[2, 3, 4] x) => (float[2, 3, 4] y) {{ y = {op}<axis = {axis}>(x) }}"""
    )


@pytest.mark.parametrize("axis", [2, -1])
def test_downgrade_of_a_last_axis_softmax_keeps_the_numbers(axis: int) -> None:
    source = softmax("Softmax", 17, axis)
    proto = to_proto(set_opset(as_ir(source), version=11))
    assert opset_of(proto) == 11
    x = random_input((2, 3, 4))
    np.testing.assert_allclose(run(proto, {"x": x})["y"], run(source, {"x": x})["y"], rtol=1e-6)


@pytest.mark.parametrize(("op", "current", "target"), [("Softmax", 17, 11), ("LogSoftmax", 13, 12)])
def test_a_downgrade_over_an_inner_axis_keeps_the_numbers(
    op: str, current: int, target: int
) -> None:
    """onnx's converter keeps 'axis' as is across opset 13, where its meaning changed."""
    source = softmax(op, current, axis=1)
    x = random_input((2, 3, 4))
    converted = onnx.version_converter.convert_version(source, target)
    assert not np.allclose(run(converted, {"x": x})["y"], run(source, {"x": x})["y"])
    proto = to_proto(set_opset(as_ir(source), version=target))
    np.testing.assert_allclose(run(proto, {"x": x})["y"], run(source, {"x": x})["y"], rtol=1e-6)


def test_an_upgrade_that_would_change_the_meaning_is_refused() -> None:
    source = softmax("Hardmax", 11, axis=1)
    with pytest.raises(PassError) as caught:
        set_opset(as_ir(source), version=13)
    assert str(caught.value).startswith("converting opset 11 to 13 would change what Hardmax node")


def test_an_upgrade_the_converter_adapts_is_allowed() -> None:
    source = softmax("Softmax", 11, axis=1)
    proto = to_proto(set_opset(as_ir(source), version=13))
    x = random_input((2, 3, 4))
    np.testing.assert_allclose(run(proto, {"x": x})["y"], run(source, {"x": x})["y"], rtol=1e-6)


def test_the_same_version_changes_nothing() -> None:
    result = set_opset.run(as_ir(tf2onnx_like()), set_opset.validate({"version": 13}))
    assert result.modified is False


def test_ops_of_other_domains_are_left_alone() -> None:
    source = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13, "com.example" : 1]>
        g (float[2] x) => (float[2] y) { t = Relu(x)  y = com.example.Custom(t) }"""
    )
    proto = to_proto(set_opset(as_ir(source), version=17))
    assert {o.domain: o.version for o in proto.opset_import} == {"": 17, "com.example": 1}
    assert [(n.domain, n.op_type) for n in proto.graph.node] == [
        ("", "Relu"),
        ("com.example", "Custom"),
    ]


def test_a_version_no_converter_knows() -> None:
    """onnx#4178: a target above the newest opset crashed the process."""
    with pytest.raises(PassError) as caught:
        set_opset(as_ir(tf2onnx_like()), version=99)
    newest = onnx.defs.onnx_opset_version()
    assert str(caught.value) == (
        f"opset 99 is unknown: the newest the installed onnx {onnx.__version__} knows is {newest}"
    )


def test_an_op_the_target_lacks_without_a_function_body_is_named() -> None:
    source = from_text(
        """<ir_version: 8, opset_import: ["" : 18]>
        g (int32[2] a, int32[2] b) => (int32[2] y) { y = BitwiseAnd(a, b) }"""
    )
    source.graph.node[0].name = "mask"
    with pytest.raises(PassError) as caught:
        set_opset(as_ir(source), version=17)
    assert str(caught.value) == (
        "cannot convert opset 18 to 17: BitwiseAnd node 'mask': BitwiseAnd does not exist "
        "before opset 18 and has no function body to expand into"
    )


def test_version_must_be_positive() -> None:
    with pytest.raises(PassError, match="version: Input should be greater than or equal to 1"):
        set_opset(as_ir(tf2onnx_like()), version=0)


def test_a_converter_message_without_the_op_still_names_the_node() -> None:
    """onnx says "Attribute mode must have value DCR": the node is the one with that attribute."""
    source = from_text(
        """<ir_version: 13, opset_import: ["" : 28]>
        g (float[1,1,4,4] x) => (float[1,4,2,2] y, float[1,1,4,4] z) {
            y = SpaceToDepth<blocksize = 2, mode = "CRD">(x)
            z = Relu(x)
        }"""
    )
    source.graph.node[0].name = "to_depth"
    with pytest.raises(PassError) as caught:
        set_opset(as_ir(source), version=17)
    assert str(caught.value).startswith(
        "cannot convert opset 28 to 17: SpaceToDepth node 'to_depth': "
    )


def test_a_computed_input_the_converter_needs_as_a_constant_is_named() -> None:
    """onnx says only "No initializer or constant input to node found"."""
    source = from_text(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[6] x, int64[2] sizes) => (float[2] a, float[4] b) {
            a, b = Split<axis = 0>(x, sizes)
        }"""
    )
    source.graph.node[0].name = "halves"
    with pytest.raises(PassError) as caught:
        set_opset(as_ir(source), version=11)
    message = str(caught.value)
    assert message.startswith("cannot convert opset 13 to 11: Split node 'halves': ")
    assert "'sizes'" in message and "constant" in message
