"""rename_io: consumers, producers, value_info, subgraphs, old models, and its refusals."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphkit
from graphkit import PassError
from graphkit._modelio.proto import to_proto
from tests.models import (
    as_ir,
    from_text,
    ir3_weights_as_inputs,
    random_input,
    run,
    tf2onnx_like,
    with_if,
)

rename_io = graphkit.passes.rename_io


def test_renames_inputs_and_outputs_and_keeps_the_numbers() -> None:
    source = tf2onnx_like(size=4)
    model = rename_io(as_ir(source), inputs={"input_1": "input"}, outputs={"conv2d_6": "output"})
    proto = to_proto(model)
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["output"]
    assert proto.graph.node[0].input[0] == "input"
    assert proto.graph.node[-1].output[0] == "output"
    x = random_input((1, 4, 4, 3))
    np.testing.assert_array_equal(
        run(proto, {"input": x})["output"], run(source, {"input_1": x})["conv2d_6"]
    )


def test_an_output_that_feeds_another_output() -> None:
    source = from_text(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[2] a, float[2] b) {
            a = Relu(x)
            b = Neg(a)
        }"""
    )
    proto = to_proto(rename_io(as_ir(source), outputs={"a": "first", "b": "second"}))
    onnx.checker.check_model(proto, full_check=True)
    assert [n.input[0] for n in proto.graph.node] == ["x", "first"]
    x = np.array([-1.0, 2.0], np.float32)
    assert [v.tolist() for v in run(proto, {"x": x}).values()] == [[0.0, 2.0], [-0.0, -2.0]]


def test_swapping_two_names() -> None:
    source = from_text(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2] a, float[2] b) => (float[2] y) { y = Sub(a, b) }"""
    )
    proto = to_proto(rename_io(as_ir(source), inputs={"a": "b", "b": "a"}))
    assert [i.name for i in proto.graph.input] == ["b", "a"]
    assert list(proto.graph.node[0].input) == ["b", "a"]


def test_old_models_with_weights_among_the_inputs() -> None:
    source = ir3_weights_as_inputs()
    model = rename_io(
        as_ir(source), inputs={"data": "features", "W": "weight"}, outputs={"prob": "p"}
    )
    proto = to_proto(model)
    assert [i.name for i in proto.graph.input] == ["features", "weight", "B"]
    assert {t.name for t in proto.graph.initializer} == {"weight", "B"}
    x = random_input((2, 3))
    np.testing.assert_allclose(run(proto, {"features": x})["p"], run(source, {"data": x})["prob"])


def test_names_inside_subgraphs_follow() -> None:
    """onnx#4687: a renamed input must be renamed where If branches read it too."""
    source = with_if()
    proto = to_proto(rename_io(as_ir(source), inputs={"x": "features"}, outputs={"y": "result"}))
    onnx.checker.check_model(proto, full_check=True)
    branches = [a.g for a in proto.graph.node[-1].attribute]
    assert [list(b.node[0].input) for b in branches] == [["features", "k"], ["features", "k"]]
    for x in (np.ones((3, 2), np.float32), -np.ones((3, 2), np.float32)):
        np.testing.assert_array_equal(
            run(proto, {"features": x})["result"], run(source, {"x": x})["y"]
        )


def test_an_output_that_is_also_an_input_is_split() -> None:
    source = from_text(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[2] x, float[2] y) { y = Relu(x) }"""
    )
    model = as_ir(source)
    result = rename_io.run(model, rename_io.validate({"outputs": {"x": "copy"}}))
    assert result.notes == ["'x' was both an input and an output: added an Identity to rename one"]
    proto = to_proto(result.model)
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["x"]
    assert [o.name for o in proto.graph.output] == ["copy", "y"]
    x = np.array([-1.0, 1.0], np.float32)
    assert run(proto, {"x": x})["copy"].tolist() == [-1.0, 1.0]


def test_an_output_that_is_an_initializer() -> None:
    source = from_text(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[2] y, float[2] c) <float[2] c = {1.0, 2.0}> { y = Add(x, c) }"""
    )
    proto = to_proto(rename_io(as_ir(source), outputs={"c": "constant"}))
    onnx.checker.check_model(proto, full_check=True)
    assert [t.name for t in proto.graph.initializer] == ["constant"]
    assert list(proto.graph.node[0].input) == ["x", "constant"]
    assert run(proto, {"x": np.zeros(2, np.float32)})["constant"].tolist() == [1.0, 2.0]


def test_renaming_to_the_same_name_changes_nothing() -> None:
    params = rename_io.validate({"inputs": {"input_1": "input_1"}})
    result = rename_io.run(as_ir(tf2onnx_like()), params)
    assert result.modified is False


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"inputs": {"input": "x"}},
            "no graph input named 'input' (inputs: 'input_1')",
        ),
        (
            {"outputs": {"out": "x"}},
            "no graph output named 'out' (outputs: 'conv2d_6')",
        ),
        (
            {"inputs": {"input_1": "relu"}},
            "cannot rename 'input_1' to 'relu': a tensor of that name exists",
        ),
        (
            {"inputs": {"input_1": "W"}},
            "cannot rename 'input_1' to 'W': a tensor of that name exists",
        ),
        (
            {"inputs": {"input_1": "same"}, "outputs": {"conv2d_6": "same"}},
            "'input_1' and 'conv2d_6' cannot both be renamed to 'same'",
        ),
        ({"inputs": {"input_1": ""}}, "a new name cannot be empty"),
    ],
    ids=[
        "unknown-input",
        "unknown-output",
        "taken-by-node-output",
        "taken-by-weight",
        "twice",
        "empty",
    ],
)
def test_refusals(params: dict, message: str) -> None:
    model = as_ir(tf2onnx_like())
    before = to_proto(model).SerializeToString()
    with pytest.raises(PassError) as caught:
        rename_io(model, **params)
    assert str(caught.value) == message
    assert to_proto(model).SerializeToString() == before, "a refused rename must change nothing"
