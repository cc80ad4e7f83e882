"""fix_dims and infer_shapes never turn a model ONNX Runtime loads into one it refuses."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphkit
from graphkit._modelio.proto import to_proto
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


def if_with_lstms() -> onnx.ModelProto:
    """An If whose branches hold LSTMs and name their values alike, as exporters do.

    Both branches compute ``shp`` (a Shape) and ``feat`` (a Reshape to it),
    of different sizes: the 16 kHz branch runs the LSTM on ``x`` [batch, seq,
    8] as it is, the other on its mean over the last axis [batch, seq, 1].
    """
    rng = np.random.default_rng(0)

    def lstm(tag: str, source: str, features: int, hidden: int) -> tuple[list, list]:
        weights = [
            numpy_helper.from_array(
                rng.standard_normal((1, 4 * hidden, size)).astype(np.float32), f"{name}_{tag}"
            )
            for name, size in (("W", features), ("R", hidden))
        ]
        nodes = [
            helper.make_node("LSTM", [source, f"W_{tag}", f"R_{tag}"], ["lstm_y", ""],
                             hidden_size=hidden),
            helper.make_node("Squeeze", ["lstm_y", "axis_1"], ["squeezed"]),
            helper.make_node("ReduceMean", ["squeezed"], ["mean"], axes=[0, 2], keepdims=0),
            helper.make_node("Unsqueeze", ["mean", "axis_1"], ["y"]),
        ]  # fmt: skip
        return nodes, weights

    def branch(name: str, nodes: list, tail: tuple[list, list]) -> onnx.GraphProto:
        output = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        return helper.make_graph([*nodes, *tail[0]], name, [], [output], tail[1])

    wide = branch(
        "wide",
        [
            helper.make_node("Shape", ["x"], ["shp"]),
            helper.make_node("Reshape", ["x", "shp"], ["feat"]),
        ],
        lstm("wide", "feat", 8, 4),
    )
    narrow = branch(
        "narrow",
        [
            helper.make_node("ReduceMean", ["x"], ["reduced"], axes=[2], keepdims=1),
            helper.make_node("Shape", ["reduced"], ["shp"]),
            helper.make_node("Reshape", ["reduced", "shp"], ["feat"]),
            # Squeezing axis 2 is where a wrong recorded size (8, not 1) makes ONNX Runtime refuse.
            helper.make_node("Squeeze", ["feat", "axis_2"], ["flat"]),
            helper.make_node("Unsqueeze", ["flat", "axis_2"], ["feat3"]),
        ],
        lstm("narrow", "feat3", 1, 3),
    )
    graph = helper.make_graph(
        [
            helper.make_node("Equal", ["sr", "sr16k"], ["wide_band"]),
            helper.make_node("If", ["wide_band"], ["out"], then_branch=wide, else_branch=narrow),
        ],
        "if_with_lstms",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 8]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 1])],
        [
            numpy_helper.from_array(np.array(16000, np.int64), "sr16k"),
            numpy_helper.from_array(np.array([1], np.int64), "axis_1"),
            numpy_helper.from_array(np.array([2], np.int64), "axis_2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def recorded(proto: onnx.ModelProto, branch: str, name: str) -> list[int | str]:
    [graph] = [a.g for a in proto.graph.node[1].attribute if a.name == branch]
    [info] = [i for i in graph.value_info if i.name == name]
    return [d.dim_value or d.dim_param for d in info.type.tensor_type.shape.dim]


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("fix_dims", {"dims": {"batch": 2}}),
        ("infer_shapes", {}),
        ("infer_shapes", {"strict": False}),
    ],
    ids=["fix_dims", "infer_shapes", "infer_shapes-lenient"],
)
def test_branches_that_name_values_alike_are_inferred_each_on_its_own(
    name: str, params: dict
) -> None:
    # onnx's data propagation shares one table by name across both branches: the
    # narrow branch's feat was inferred as [batch, seq, 8], and ONNX Runtime refused
    # the model (Squeeze: "Dimension of input 2 must be 1 instead of 8"); strict
    # inference failed instead with "Data for input 0 already exists".
    source = if_with_lstms()
    proto = to_proto(getattr(graphkit.passes, name)(as_ir(source), **params))
    x = np.random.default_rng(1).standard_normal((2, 5, 8)).astype(np.float32)
    for rate in (16000, 8000):
        feeds = {"x": x, "sr": np.array(rate, np.int64)}
        np.testing.assert_allclose(run(proto, feeds)["out"], run(source, feeds)["out"], rtol=1e-6)
    batch = 2 if name == "fix_dims" else "batch"
    assert recorded(proto, "else_branch", "feat") == [batch, "seq", 1]
    assert recorded(proto, "then_branch", "feat") == [batch, "seq", 8]


def test_value_names_are_given_back_after_inference() -> None:
    model = graphkit.passes.infer_shapes(as_ir(if_with_lstms()))
    names = sorted(v.name for g in model.graphs() for n in g for v in n.outputs)
    assert not [n for n in names if "graphkit" in n]
    assert names.count("feat") == 2


def stale_output_declaration() -> onnx.ModelProto:
    """An old export: the output is declared [1, seqlen], the graph computes [batch, 1, 8210]."""
    graph = helper.make_graph(
        [helper.make_node("Unsqueeze", ["x", "axis_1"], ["logits"])],
        "stale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8210])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "seqlen"])],
        [numpy_helper.from_array(np.array([1], np.int64), "axis_1")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize(
    ("name", "params", "computed"),
    [
        ("fix_dims", {"dims": {"batch": 32}}, [32, 1, 8210]),
        ("infer_shapes", {}, ["batch", 1, 8210]),
        ("infer_shapes", {"strict": False}, ["batch", 1, 8210]),
    ],
    ids=["fix_dims", "infer_shapes", "infer_shapes-lenient"],
)
def test_a_declared_output_shape_the_graph_contradicts_is_replaced(
    name: str, params: dict, computed: list
) -> None:
    # Strict inference used to fail on the declaration, lenient inference kept it.
    shown = ", ".join(map(str, computed))
    pass_ = getattr(graphkit.passes, name)
    result = pass_.run(as_ir(stale_output_declaration()), pass_.validate(params))
    proto = to_proto(result.model)
    dims = [d.dim_value or d.dim_param for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert dims == computed
    assert result.notes == [
        f"output 'logits' was declared [1, seqlen], but the graph computes [{shown}]: "
        "the computed shape is recorded"
    ]
    x = np.ones((32, 8210), np.float32)
    assert run(proto, {"x": x})["logits"].shape == (32, 1, 8210)


def test_a_declared_output_shape_inference_agrees_with_keeps_its_names() -> None:
    # [N, 2] declared, inference proves only the 2 (and would name the first dim itself).
    source = from_text(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[batch, 2] x) => (float[N, 2] y) { y = Relu(x) }"""
    )
    result = graphkit.passes.infer_shapes.run(
        as_ir(source), graphkit.passes.infer_shapes.validate({})
    )
    assert result.notes == []
    output = to_proto(result.model).graph.output[0]
    assert [d.dim_value or d.dim_param for d in output.type.tensor_type.shape.dim] == ["N", 2]


def test_check_runtime_catches_what_onnx_inference_alone_leaves_behind() -> None:
    # onnx's own inference with data propagation records the wrong shapes; its
    # checker accepts the result, ONNX Runtime does not.
    broken = onnx.shape_inference.infer_shapes(if_with_lstms(), data_prop=True)
    check = graphkit.passes.check
    assert check.run(as_ir(broken), check.validate({"full": False})).modified is False
    with pytest.raises(graphkit.PassError, match=r"ONNX Runtime cannot load the model: .*Squeeze"):
        check(as_ir(broken), full=False, runtime=True)
    check(as_ir(if_with_lstms()), runtime=True)
