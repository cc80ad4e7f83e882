"""infer_shapes: shapes recorded on every value, stale ones dropped on request."""

from __future__ import annotations

import onnx
import pytest

import graphkit
from graphkit import PassError
from graphkit._modelio.proto import to_proto
from tests.models import as_ir, from_text, tf2onnx_like

infer_shapes = graphkit.passes.infer_shapes

PLAIN = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 3] x) => (float[N, 3] y) { t = Relu(x)  u = Neg(t)  y = Abs(u) }"""


def value_info(proto: onnx.ModelProto) -> dict[str, list]:
    return {
        info.name: [d.dim_value or d.dim_param for d in info.type.tensor_type.shape.dim]
        for info in proto.graph.value_info
    }


def test_records_intermediate_shapes() -> None:
    result = infer_shapes.run(as_ir(from_text(PLAIN)), infer_shapes.validate({}))
    assert result.modified
    assert value_info(to_proto(result.model)) == {"t": ["N", 3], "u": ["N", 3]}


def test_a_second_run_changes_nothing() -> None:
    model = infer_shapes(as_ir(from_text(PLAIN)))
    assert infer_shapes.run(model, infer_shapes.validate({})).modified is False


def test_discard_existing_drops_stale_shapes() -> None:
    source = tf2onnx_like(size=4)
    extra = onnx.helper.make_tensor_value_info("nhwc", onnx.TensorProto.FLOAT, ["stale", 4, 4, 3])
    del source.graph.value_info[:]
    source.graph.value_info.append(extra)
    model = infer_shapes(as_ir(source), discard_existing=True)
    assert value_info(to_proto(model))["nhwc"] == ["unk__127", 4, 4, 3]


def test_a_contradiction_is_an_error() -> None:
    source = from_text(PLAIN)
    source.graph.value_info.append(
        onnx.helper.make_tensor_value_info("t", onnx.TensorProto.FLOAT, ["N", 4])
    )
    with pytest.raises(PassError, match=r"shape inference failed: .*"):
        infer_shapes(as_ir(source))
