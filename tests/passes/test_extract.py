"""extract: cuts in the middle, around an If, on external data that is absent, and its refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest

import graphkit
from graphkit import PassError
from graphkit._modelio.proto import call_on_graph, to_proto
from graphkit._modelio.save import save
from tests.large.builders import DATA_NAME, external_model, write_external
from tests.models import as_ir, from_text, random_input, run, tf2onnx_like, with_if

extract = graphkit.passes.extract


def with_outputs(proto: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """``proto`` with intermediate tensors as extra outputs, to read their values."""
    proto = onnx.shape_inference.infer_shapes(proto)
    known = {v.name: v for v in [*proto.graph.value_info, *proto.graph.output]}
    for name in names:
        if name not in [o.name for o in proto.graph.output]:
            proto.graph.output.append(known[name])
    return proto


def interface(proto: onnx.ModelProto) -> tuple[list[str], list[str]]:
    return [i.name for i in proto.graph.input], [o.name for o in proto.graph.output]


def test_a_middle_cut_keeps_only_what_lies_between() -> None:
    source = tf2onnx_like(size=4)
    result = extract.run(as_ir(source), extract.validate({"inputs": ["nchw"], "outputs": ["relu"]}))
    proto = to_proto(result.model)
    onnx.checker.check_model(proto, full_check=True)
    assert result.modified
    assert interface(proto) == (["nchw"], ["relu"])
    assert [n.op_type for n in proto.graph.node] == ["Conv", "Relu"]
    assert [t.name for t in proto.graph.initializer] == ["W", "B"]
    assert result.notes == ["kept 2 nodes, removed 3; removed 0 initializers"]
    # Typed from the model's value_info, symbolic batch dim included.
    nchw = proto.graph.input[0].type.tensor_type
    assert nchw.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in nchw.shape.dim] == ["unk__127", 3, 4, 4]

    x = random_input((2, 4, 4, 3))
    expected = run(with_outputs(source, ["nchw", "relu"]), {"input_1": x})
    got = run(proto, {"nchw": expected["nchw"]})
    np.testing.assert_array_equal(got["relu"], expected["relu"])


def test_types_come_from_inference_when_the_model_records_none() -> None:
    text = """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 4] x) => (float[N, 4] y)
        <float[4, 4] w1 = {1,0,0,0, 0,1,0,0, 0,0,1,0, 0,0,0,1}, float[4] b = {1, 2, 3, 4}> {
            h = MatMul(x, w1)
            r = Relu(h)
            s = Add(r, b)
            y = Sigmoid(s)
        }"""
    source = from_text(text)
    assert not source.graph.value_info
    proto = to_proto(extract(as_ir(source), inputs=["h"], outputs=["s"]))
    onnx.checker.check_model(proto, full_check=True)
    assert interface(proto) == (["h"], ["s"])
    for info in (proto.graph.input[0], proto.graph.output[0]):
        tensor = info.type.tensor_type
        assert tensor.elem_type == onnx.TensorProto.FLOAT
        assert [d.dim_param or d.dim_value for d in tensor.shape.dim] == ["N", 4]
    assert [t.name for t in proto.graph.initializer] == ["b"]  # w1 fed the part cut off


def test_cutting_off_a_tail_keeps_the_inputs_it_needs() -> None:
    source = tf2onnx_like(size=4)
    proto = to_proto(extract(as_ir(source), outputs=["conv"]))
    assert interface(proto) == (["input_1"], ["conv"])
    assert [n.op_type for n in proto.graph.node] == ["Transpose", "Conv"]
    x = random_input((1, 4, 4, 3))
    expected = run(with_outputs(source, ["conv"]), {"input_1": x})["conv"]
    np.testing.assert_array_equal(run(proto, {"input_1": x})["conv"], expected)


def test_a_cut_around_an_if_keeps_what_its_branches_read() -> None:
    """The branches read x and k from the main graph; cutting at cond keeps both."""
    source = with_if()
    proto = to_proto(extract(as_ir(source), inputs=["cond", "x"], outputs=["y"]))
    onnx.checker.check_model(proto, full_check=True)
    assert interface(proto) == (["cond", "x"], ["y"])
    assert [n.op_type for n in proto.graph.node] == ["If"]
    assert [t.name for t in proto.graph.initializer] == ["k"]  # 'zero' fed Greater, now gone
    x = random_input((3, 2))
    for cond, expected in ((True, x + 3), (False, x * 3)):
        got = run(proto, {"cond": np.array(cond), "x": x})["y"]
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_an_input_only_a_branch_reads_must_be_listed() -> None:
    with pytest.raises(PassError) as error:
        extract(as_ir(with_if()), inputs=["cond"], outputs=["y"])
    assert str(error.value) == (
        "the inputs do not cut the graph: output 'y' still depends on graph input 'x' "
        "(list it in inputs too, or cut later)"
    )


def test_a_cut_on_external_data_that_is_absent(tmp_path: Path) -> None:
    source = external_model()
    path = write_external(source, tmp_path / "model")
    aside = tmp_path / "aside.data"
    shutil.move(tmp_path / "model" / DATA_NAME, aside)

    model = graphkit.load(path)
    result = extract(model, inputs=["relu"], outputs=["nhwc"])  # the data file is not there
    graph = result.graph
    assert [n.op_type for n in graph] == ["ReduceSum", "Greater", "If", "Transpose"]
    assert list(graph.initializers) == ["limit"]  # W (external) and B fed the Conv cut off
    then_branch = graph.node(2).attributes["then_branch"].as_graph()
    gain = then_branch.initializers["gain"].const_value
    assert isinstance(gain, ir.ExternalTensor)  # still a reference into the data file
    assert gain.location == DATA_NAME
    call_on_graph(
        result, lambda proto: onnx.checker.check_model(proto, full_check=True), rebuild=False
    )

    # With the data back, the part kept computes what it did inside the whole model.
    shutil.move(aside, tmp_path / "model" / DATA_NAME)
    save(result, tmp_path / "cut" / "cut.onnx")
    x = random_input((1, 8, 8, 3))
    whole = onnx.load(path)
    expected = run(with_outputs(whole, ["relu", "nhwc"]), {"input_1": x})
    got = run(tmp_path / "cut" / "cut.onnx", {"relu": expected["relu"]})
    np.testing.assert_allclose(got["nhwc"], expected["nhwc"], rtol=1e-6)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "give the tensors to cut at: inputs, outputs or both"),
        ({"outputs": ["relux"]}, "outputs: no tensor named 'relux'; did you mean 'relu'?"),
        (
            {"inputs": ["nchw", "nope"], "outputs": ["relu"]},
            "inputs: no tensor named 'nope'",
        ),
        (
            {"inputs": ["W"], "outputs": ["conv"]},
            "inputs: 'W' is a weight (an initializer), not a computed tensor",
        ),
        (
            {"inputs": ["relu", "relu"], "outputs": ["nhwc"]},
            "inputs names 'relu' twice",
        ),
        (
            {"inputs": ["conv"], "outputs": ["conv2d_6", "nchw"]},
            "the inputs do not cut the graph: output 'nchw' still depends on graph input "
            "'input_1' (list it in inputs too, or cut later)",
        ),
    ],
    ids=["nothing", "misspelt", "unknown", "weight", "twice", "does-not-cut"],
)
def test_refusals(params: dict[str, list[str]], message: str) -> None:
    with pytest.raises(PassError) as error:
        extract(as_ir(tf2onnx_like(size=4)), **params)
    assert str(error.value) == message


def test_a_tensor_inside_a_subgraph_cannot_be_cut_at() -> None:
    with pytest.raises(PassError) as error:
        extract(as_ir(with_if()), outputs=["then_out"])
    assert str(error.value) == (
        "outputs: 'then_out' is inside a subgraph (an If, Loop or Scan body); only tensors of "
        "the main graph can be cut at"
    )


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(PassError) as error:
        extract(as_ir(tf2onnx_like(size=4)), inputs=["a"], outputs=["b"])
    assert str(error.value) == "inputs: no tensor named 'a'; outputs: no tensor named 'b'"


def test_cutting_at_the_model_own_boundary_changes_nothing() -> None:
    model = as_ir(tf2onnx_like(size=4))
    result = extract.run(model, extract.validate({"inputs": ["input_1"], "outputs": ["conv2d_6"]}))
    assert not result.modified
    assert result.model is model


def test_an_input_the_outputs_do_not_need_stays_with_a_note() -> None:
    result = extract.run(
        as_ir(with_if()), extract.validate({"inputs": ["x", "total"], "outputs": ["cond"]})
    )
    proto = to_proto(result.model)
    assert interface(proto) == (["x", "total"], ["cond"])
    assert result.notes[0] == "the outputs do not need 'x'; kept as inputs"


def test_in_a_recipe(tmp_path: Path) -> None:
    from tests.models import write

    source = write(tf2onnx_like(size=4), tmp_path / "m.onnx")
    result = graphkit.apply(
        {
            "version": 1,
            "source": {"path": "m.onnx"},
            "passes": [{"extract": {"inputs": ["nchw"], "outputs": ["relu"]}}, "check"],
            "output": "cut.onnx",
        },
        plugins=(),
        output=tmp_path / "cut.onnx",
        source=source,
    )
    assert [v.name for v in result.model.graph.inputs] == ["nchw"]
    assert interface(onnx.load(tmp_path / "cut.onnx")) == (["nchw"], ["relu"])
