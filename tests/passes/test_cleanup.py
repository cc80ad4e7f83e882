"""cleanup: dead nodes, unused initializers, Identity chains and order, interface untouched."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphkit
from graphkit._modelio.proto import from_proto, to_proto
from tests.models import as_ir, from_text, ir3_weights_as_inputs, random_input, run, with_if

cleanup = graphkit.passes.cleanup

MESSY = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[2] x) => (float[2] y) <float[2] unused = {1.0, 2.0}, float[2] k = {3.0, 4.0}> {
        a = Identity(x)
        b = Identity(a)
        dead = Neg(b)
        c = Add(b, k)
        y = Identity(c)
    }"""


def test_removes_dead_nodes_unused_weights_and_identities() -> None:
    source = from_text(MESSY)
    result = cleanup.run(as_ir(source), cleanup.validate({}))
    assert result.modified
    proto = to_proto(result.model)
    onnx.checker.check_model(proto, full_check=True)
    assert [n.op_type for n in proto.graph.node] == ["Add"]
    assert [t.name for t in proto.graph.initializer] == ["k"]
    assert ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output]) == (
        ["x"],
        ["y"],
    )
    x = random_input((2,))
    np.testing.assert_array_equal(run(proto, {"x": x})["y"], run(source, {"x": x})["y"])


@pytest.mark.parametrize(
    ("option", "kept"),
    [("identities", "Identity"), ("unused", "Neg")],
)
def test_each_part_can_be_turned_off(option: str, kept: str) -> None:
    proto = to_proto(cleanup(as_ir(from_text(MESSY)), **{option: False}))
    assert kept in [n.op_type for n in proto.graph.node]


def test_nodes_are_put_in_order() -> None:
    source = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[2] y) { y = Neg(t)  t = Relu(x) }"""
    )
    proto = to_proto(cleanup(from_proto(source)))
    assert [n.op_type for n in proto.graph.node] == ["Relu", "Neg"]
    onnx.checker.check_model(proto, full_check=True)


def test_initializers_used_only_in_subgraphs_are_kept() -> None:
    """onnxscript#2810, onnxruntime#32131: such weights were dropped as unused."""
    source = with_if()
    proto = to_proto(cleanup(as_ir(source)))
    assert {t.name for t in proto.graph.initializer} == {"k", "zero"}
    x = np.ones((2, 2), np.float32)
    np.testing.assert_array_equal(run(proto, {"x": x})["y"], run(source, {"x": x})["y"])


def test_weights_listed_as_inputs_stay() -> None:
    proto = to_proto(cleanup(as_ir(ir3_weights_as_inputs())))
    assert [i.name for i in proto.graph.input] == ["data", "W", "B"]


def test_an_identity_from_input_to_output_stays() -> None:
    source = from_text(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[2] y) { y = Identity(x) }"""
    )
    proto = to_proto(cleanup(as_ir(source)))
    assert ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output]) == (
        ["x"],
        ["y"],
    )
    assert run(proto, {"x": np.ones(2, np.float32)})["y"].tolist() == [1.0, 1.0]


def test_a_clean_model_is_not_modified() -> None:
    source = from_text(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[2] y) { y = Relu(x) }"""
    )
    assert cleanup.run(as_ir(source), cleanup.validate({})).modified is False
