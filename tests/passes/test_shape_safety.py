"""fix_dims and infer_shapes never turn a model ONNX Runtime loads into one it refuses."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphkit
from graphkit._model_io import to_proto
from tests.models import as_ir, from_text, run

SHAPE_PASSES = {
    "fix_dims": lambda model, shapes: graphkit.passes.fix_dims(model, shapes=shapes),
    "infer_shapes": lambda model, shapes: graphkit.passes.infer_shapes(model),
}


def sequence_model() -> onnx.ModelProto:
    """A sequence-valued intermediate with no recorded type, as exporters leave them."""
    return from_text(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        seq (float[N] x) => (float[N] y) {
            zero = Constant <value = int64 {0}> ()
            s = SequenceConstruct (x, x)
            y = SequenceAt (s, zero)
        }
        """
    )


@pytest.mark.parametrize("name", SHAPE_PASSES)
def test_a_sequence_value_keeps_its_sequence_type(name: str) -> None:
    proto = to_proto(SHAPE_PASSES[name](as_ir(sequence_model()), {"x": [3]}))
    [info] = [i for i in proto.graph.value_info if i.name == "s"]
    assert info.type.HasField("sequence_type")
    x = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(run(proto, {"x": x})["y"], x)
