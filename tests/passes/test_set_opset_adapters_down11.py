"""set_opset down to opset 11: versions 12 and 13 that only added types, and what 12/13 changed."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from graphkit_plugins._opset import adapters_types

from graphkit._modelio.proto import to_proto
from tests.models import as_ir, random_input, run
from tests.passes.test_set_opset_adapters import (
    assert_parity,
    model,
    ops,
    refusal,
    set_opset,
)

# Versions after 11 that only allowed more types (12 read one by one, 13 by the rule).


def test_reviewed_versions_before_13_are_types_only() -> None:
    table = adapters_types.types_only_versions()
    assert {("Max", 12), ("Min", 12), ("ReduceMax", 12), ("Clip", 12), ("Mod", 13)} <= table
    assert {("Erf", 13), ("ScatterElements", 13), ("ScatterND", 13)} <= table
    # Not reviewed, or more than types: Max 8 brought broadcasting, MaxPool 12 new text.
    assert not {("Max", 8), ("MaxPool", 12), ("Mod", 28), ("ScatterND", 18)} & table


@pytest.mark.parametrize(
    ("opset", "body"),
    [
        (13, "y = Max (x, x2)"),
        (13, "y = Min (x, x2)"),
        (13, "y = Erf (x)"),
        (13, "y = Clip (x, lo, hi)"),
        (13, "y = ReduceMax <axes = [1], keepdims = 1> (x)"),
        (17, "y = ReduceMin <axes = [-1], keepdims = 1> (x)"),
        (23, "y = Mod <fmod = 1> (x, x2)"),
    ],
    ids=["max", "min", "erf", "clip", "reduce_max", "reduce_min", "mod"],
)
def test_an_op_whose_versions_after_11_only_added_types_goes_down_to_11(
    opset: int, body: str
) -> None:
    source = model(
        opset,
        "(float[2, 3] x, float[2, 3] x2) => (float[2, y1] y)",
        "lo = Constant <value = float {-0.2}> ()\nhi = Constant <value = float {0.3}> ()\n" + body,
    )
    feeds = {"x": random_input((2, 3)) - 0.5, "x2": random_input((2, 3), seed=1) + 0.5}
    assert_parity(source, 11, feeds)


def test_an_integer_mod_goes_down_to_11() -> None:
    source = model(23, "(int32[4] a, int32[4] b) => (int32[4] y)", "y = Mod (a, b)")
    feeds = {"a": np.array([7, -7, 7, -7], np.int32), "b": np.array([3, 3, -3, -3], np.int32)}
    assert_parity(source, 11, feeds)


def test_scatter_elements_13_goes_down_to_11() -> None:
    source = model(
        13,
        "(float[3, 3] x, int64[1, 2] i, float[1, 2] u) => (float[3, 3] y)",
        "y = ScatterElements <axis = 1> (x, i, u)",
    )
    feeds = {"x": random_input((3, 3)), "i": np.array([[1, 0]]), "u": random_input((1, 2), 1)}
    assert_parity(source, 11, feeds)


@pytest.mark.parametrize("op", ["Max", "Min"])
def test_an_integer_max_or_min_becomes_where_before_12(op: str) -> None:
    source = model(
        13,
        "(int32[2, 3] a, int32[3] b, int32[2, 1] c) => (int32[2, 3] y)",
        f"y = {op} (a, b, c)",
    )
    rng = np.random.default_rng(0)
    feeds = {
        "a": rng.integers(-9, 9, (2, 3), dtype=np.int32),
        "b": rng.integers(-9, 9, (3,), dtype=np.int32),
        "c": rng.integers(-9, 9, (2, 1), dtype=np.int32),
    }
    converted = assert_parity(source, 11, feeds)
    assert op not in ops(converted)


def test_an_integer_max_of_a_type_onnx_runtime_cannot_select_is_refused() -> None:
    source = model(13, "(uint64[3] a, uint64[3] b) => (uint64[3] y)", "y = Max (a, b)")
    assert "input is uint64: Max at opset 11 takes no integers" in refusal(source, 11)


# Mod 28 took floats with fmod=0.


def test_mod_28_of_integers_goes_down_to_11() -> None:
    source = model(28, "(int64[4] a, int64[4] b) => (int64[4] y)", "y = Mod (a, b)")
    feeds = {"a": np.array([7, -7, 7, -7]), "b": np.array([3, 3, -3, -3])}
    assert_parity(source, 11, feeds)


def test_mod_28_of_floats_with_fmod_0_is_refused_at_11() -> None:
    source = model(28, "(float[4] a, float[4] b) => (float[4] y)", "y = Mod (a, b)")
    assert refusal(source, 11).endswith(
        "input 0 is float with fmod=0, a floored remainder that Mod at opset 11 computes "
        "for integers only"
    )


# Pow 12 let the exponent take another type than the base.


def test_pow_of_one_float_type_goes_down_to_11() -> None:
    source = model(15, "(float[2, 3] x, float[3] e) => (float[2, 3] y)", "y = Pow (x, e)")
    feeds = {"x": random_input((2, 3)) + 0.5, "e": np.array([0.5, 2.0, -1.0], np.float32)}
    assert_parity(source, 11, feeds)


def test_pow_with_an_integer_exponent_is_refused_at_11() -> None:
    source = model(15, "(float[3] x, int32[3] e) => (float[3] y)", "y = Pow (x, e)")
    assert "input 1 ('Y') is int32, which Pow does not accept at opset 11" in refusal(source, 11)


# ArgMax/ArgMin 12 select_last_index, GatherND 12 batch_dims.


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_arg_max_without_select_last_index_goes_down_to_11(op: str) -> None:
    source = model(
        13,
        "(float[3, 4] x) => (int64[3, 1] y)",
        f"y = {op} <axis = -1, select_last_index = 0> (x)",
    )
    converted = assert_parity(source, 11, {"x": random_input((3, 4))})
    assert [a.name for a in converted.graph.node[0].attribute] == ["axis"]


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize(("axis", "keepdims"), [(1, 1), (-1, 0), (0, 1)])
def test_arg_max_selecting_the_last_index_reverses_the_axis(
    op: str, axis: int, keepdims: int
) -> None:
    out = {(1, 1): "[3, 1]", (-1, 0): "[3]", (0, 1): "[1, 4]"}[(axis, keepdims)]
    source = model(
        13,
        f"(float[3, 4] x) => (int64{out} y)",
        f"y = {op} <axis = {axis}, keepdims = {keepdims}, select_last_index = 1> (x)",
    )
    # Ties everywhere, so the first and the last index differ.
    x = np.array([[1, 3, 3, 0], [2, 2, 2, 2], [0, 0, 5, 5]], dtype=np.float32)
    assert_parity(source, 11, {"x": x})


def test_gather_nd_without_batch_dims_goes_down_and_with_them_is_refused() -> None:
    signature = "(float[2, 2, 2] x, int64[2, 1] i) => (float[2, 2, 2] y)"
    source = model(13, signature, "y = GatherND (x, i)")
    assert_parity(source, 11, {"x": random_input((2, 2, 2)), "i": np.array([[1], [0]])})
    batched = model(
        13,
        "(float[2, 2, 2] x, int64[2, 1] i) => (float[2, 2] y)",
        "y = GatherND <batch_dims = 1> (x, i)",
    )
    assert "batch_dims=1 gathers per batch" in refusal(batched, 11)


# Softmax, LogSoftmax, Hardmax: 13 normalises over 'axis' alone, 11 over every axis from it on.


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("axis", [0, 1, -2])
def test_normalising_over_an_inner_axis_goes_down_to_11_through_transposes(
    op: str, axis: int
) -> None:
    source = model(13, "(float[2, 3, 4] x) => (float[2, 3, 4] y)", f"y = {op} <axis = {axis}> (x)")
    converted = assert_parity(source, 11, {"x": random_input((2, 3, 4))})
    assert ops(converted) == ["Transpose", op, "Transpose"]
    assert converted.graph.output[0].name == "y"


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
def test_normalising_over_the_default_last_axis_goes_down_to_11(op: str) -> None:
    # 11's default axis is 1, so the node must say which axis it means.
    source = model(13, "(float[2, 3, 4] x) => (float[2, 3, 4] y)", f"y = {op} (x)")
    converted = assert_parity(source, 11, {"x": random_input((2, 3, 4))})
    assert ops(converted) == [op]


def unknown_rank(op: str) -> onnx.ModelProto:
    source = model(13, "(float[2, 3] x) => (float[2, 3] y)", f"y = {op} <axis = 1> (x)")
    for value in (source.graph.input[0], source.graph.output[0]):
        value.type.tensor_type.ClearField("shape")
    return source


def test_hardmax_over_an_inner_axis_of_unknown_rank_is_refused() -> None:
    assert "the rank of input 0 is unknown, so axis 1 cannot be moved last" in refusal(
        unknown_rank("Hardmax"), 11
    )


def test_softmax_over_an_inner_axis_of_unknown_rank_falls_back_to_its_function_body() -> None:
    source = unknown_rank("Softmax")
    converted = to_proto(set_opset(as_ir(source), version=11))
    assert "Softmax" not in ops(converted)
    feeds = {"x": random_input((2, 3, 4))}
    np.testing.assert_allclose(run(converted, feeds)["y"], run(source, feeds)["y"], rtol=1e-6)


# Trilu (14) has no function body: a Where over column minus row indices.


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [-1, 0, 2])
@pytest.mark.parametrize("target", [11, 13])
def test_trilu_becomes_a_where_before_14(upper: int, k: int, target: int) -> None:
    source = model(
        14,
        "(float[2, 3, 4] x, int64 k) => (float[2, 3, 4] y)",
        f"y = Trilu <upper = {upper}> (x, k)",
    )
    x = random_input((2, 3, 4)) + 1.0
    x[0, 0, 0] = np.inf
    converted = assert_parity(source, target, {"x": x, "k": np.array(k)})
    assert "Trilu" not in ops(converted)


def test_trilu_without_k_keeps_the_diagonal() -> None:
    source = model(14, "(int32[3, 3] x) => (int32[3, 3] y)", "y = Trilu <upper = 0> (x)")
    assert_parity(source, 11, {"x": np.arange(1, 10, dtype=np.int32).reshape(3, 3)})


# Dropout 12 took training_mode as an input; outside training it copies its input.


@pytest.mark.parametrize("training", ["", ", ratio, off"])
def test_dropout_outside_training_goes_down_to_11(training: str) -> None:
    source = model(
        22,
        "(float[2, 3] x) => (float[2, 3] y, bool[2, 3] mask)",
        "ratio = Constant <value = float {0.4}> ()\n"
        "off = Constant <value = bool {0}> ()\n"
        f"y, mask = Dropout (x{training})",
    )
    converted = assert_parity(source, 11, {"x": random_input((2, 3))})
    assert "Dropout" not in ops(converted)


def test_dropout_in_training_is_refused() -> None:
    source = model(
        22,
        "(float[2, 3] x) => (float[2, 3] y)",
        "ratio = Constant <value = float {0.4}> ()\non = Constant <value = bool {1}> ()\n"
        "y = Dropout (x, ratio, on)",
    )
    assert "training_mode=true drops at random, which opset 11 cannot" in refusal(source, 11)


# If and Loop 13 and 16 only allowed sequences and optionals; onnx's converter has no
# adapter down across them, so graphkit converts their subgraphs itself.

IF_16 = """
    ax = Constant <value = int64[1] {1}> ()
    y = If (c) <
        then_branch = t () => (float[2, 1] a) {
            s = Softmax <axis = 0> (x)
            a = ReduceSum <keepdims = 1> (s, ax)
        },
        else_branch = e () => (float[2, 1] b) {
            b = ReduceMax <keepdims = 1> (x, ax)
        }
    >
"""


@pytest.mark.parametrize("target", [15, 13, 11])
@pytest.mark.parametrize("condition", [True, False])
def test_an_if_goes_down_across_16_and_13_with_its_branches_converted(
    target: int, condition: bool
) -> None:
    source = model(18, "(bool c, float[2, 3] x) => (float[2, 1] y)", IF_16)
    feeds = {"c": np.array(condition), "x": random_input((2, 3))}
    converted = assert_parity(source, target, feeds)
    branch = onnx.helper.get_attribute_value(converted.graph.node[-1].attribute[0])
    inner = {n.op_type: n for n in branch.node}
    if target < 13:  # the branches' nodes took their opset-11 forms
        assert sorted(a.name for a in inner["ReduceSum"].attribute) == ["axes", "keepdims"]
        assert "Transpose" in inner


def test_a_loop_goes_down_across_16_with_its_body_converted() -> None:
    source = model(
        16,
        "(int64 trips, float[2] x) => (float[2] total, float[3, 1, 2] each)",
        """
        go = Constant <value = bool {1}> ()
        total, each = Loop (trips, go, x) <
            body = b (int64 i, bool cond, float[2] acc)
                => (bool out, float[2] next, float[1, 2] scan) {
                ax = Constant <value = int64[1] {0}> ()
                out = Identity (cond)
                next = Add (acc, x)
                scan = Unsqueeze (next, ax)
            }
        >
        """,
    )
    converted = assert_parity(source, 11, {"trips": np.array(3), "x": random_input((2,))})
    body = onnx.helper.get_attribute_value(converted.graph.node[-1].attribute[0])
    unsqueeze = next(n for n in body.node if n.op_type == "Unsqueeze")
    assert [a.name for a in unsqueeze.attribute] == ["axes"]


def test_an_if_that_passes_a_sequence_is_refused_before_13() -> None:
    source = model(
        16,
        "(bool c, float[2] x) => (float[2] y)",
        """
        s = If (c) <
            then_branch = t () => (seq(float[2]) a) { a = SequenceConstruct (x) },
            else_branch = e () => (seq(float[2]) b) { b = SequenceConstruct (x, x) }
        >
        z = Constant <value = int64 {0}> ()
        y = SequenceAt (s, z)
        """,
    )
    message = refusal(source, 11)
    assert "If node" in message and "seq(tensor(float))" in message


# ScatterElements/ScatterND 16 took 'reduction'; onnx's converter stops at 13.


@pytest.mark.parametrize("target", [12, 11])
def test_scatter_elements_18_without_reduction_goes_down_below_13(target: int) -> None:
    source = model(
        18,
        "(float[3, 3] x, int64[1, 2] i, float[1, 2] u) => (float[3, 3] y)",
        'y = ScatterElements <axis = 1, reduction = "none"> (x, i, u)',
    )
    feeds = {"x": random_input((3, 3)), "i": np.array([[1, -1]]), "u": random_input((1, 2), 1)}
    converted = assert_parity(source, target, feeds)
    assert [a.name for a in converted.graph.node[0].attribute] == ["axis"]


def test_scatter_nd_18_that_adds_is_refused_below_13() -> None:
    source = model(
        18,
        "(float[4] x, int64[2, 1] i, float[2] u) => (float[4] y)",
        'y = ScatterND <reduction = "add"> (x, i, u)',
    )
    assert "reduction 'add' has no equivalent at opset 11" in refusal(source, 11)
