"""Property test: a model with If branches that ONNX Runtime loads still loads after each pass.

Random If models whose two branches compute different shapes from the same
input and draw their value names from one small pool, so the branches often
name values alike (as exporters do, naming values after the module that
computes them). Shape computations (Shape then Reshape), LSTMs, reductions,
Unsqueeze/Squeeze pairs and MatMuls make the shapes depend on each branch.
Each pass then runs on the model alone, with parameters that fit it: it must
not refuse, and what it returns must load in ONNX Runtime and give the same
numbers in both branches.

    GRAPHKIT_FUZZ_EXAMPLES=2000 pytest tests/reliability/test_fuzz_subgraphs.py
"""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import event, given, note
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import graphkit
from tests.models import run
from tests.reliability.test_fuzz import fuzz, workdir

#: Value names both branches draw from; "a'" and so on when a branch reuses one.
POOL = ["shp", "feat", "y", "h", "m", "t"]
STEPS = [
    "reshape_to_shape", "lstm", "reduce", "squeeze_last", "unsqueeze_squeeze", "matmul", "unary",
]  # fmt: skip


@st.composite
def branch(draw: st.DrawFn, name: str, rng: np.random.Generator) -> onnx.GraphProto:
    """A branch reading ``x`` [N, S, 3] (no inputs of its own), with one rank-2 output."""
    used: set[str] = set()

    def fresh() -> str:
        value = draw(st.sampled_from(POOL))
        while value in used:
            value += "'"
        used.add(value)
        return value

    def constant(array: np.ndarray) -> str:
        value = fresh()
        nodes.append(
            helper.make_node("Constant", [], [value], value=numpy_helper.from_array(array))
        )
        return value

    nodes: list[onnx.NodeProto] = []
    weights: list[onnx.TensorProto] = []
    current, rank, width = "x", 3, 3
    for _ in range(draw(st.integers(1, 5))):
        step = draw(st.sampled_from(STEPS))
        if step == "reshape_to_shape":
            shape, out = fresh(), fresh()
            nodes.append(helper.make_node("Shape", [current], [shape]))
            nodes.append(helper.make_node("Reshape", [current, shape], [out]))
        elif step == "lstm" and rank == 3:
            hidden = draw(st.integers(1, 4))
            w, r = (f"{name}_W{len(weights)}", f"{name}_R{len(weights)}")
            weights.append(
                numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, width)).astype("f"), w)
            )
            weights.append(
                numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, hidden)).astype("f"), r)
            )
            seq, axis, out = fresh(), constant(np.array([1], np.int64)), fresh()
            nodes.append(helper.make_node("LSTM", [current, w, r], [seq], hidden_size=hidden))
            nodes.append(helper.make_node("Squeeze", [seq, axis], [out]))
            width = hidden
        elif step == "reduce" and rank > 1:
            keep = draw(st.booleans())
            out = fresh()
            nodes.append(
                helper.make_node("ReduceMean", [current], [out], axes=[-1], keepdims=int(keep))
            )
            rank, width = (rank, 1) if keep else (rank - 1, None)
        elif step == "squeeze_last" and width == 1:
            # Squeezing needs the axis to be 1: ONNX Runtime refuses a recorded size that is not.
            axis, middle, out = constant(np.array([rank - 1], np.int64)), fresh(), fresh()
            nodes.append(helper.make_node("Squeeze", [current, axis], [middle]))
            nodes.append(helper.make_node("Unsqueeze", [middle, axis], [out]))
        elif step == "unsqueeze_squeeze":
            axis, middle, out = constant(np.array([rank], np.int64)), fresh(), fresh()
            nodes.append(helper.make_node("Unsqueeze", [current, axis], [middle]))
            nodes.append(helper.make_node("Squeeze", [middle, axis], [out]))
        elif step == "matmul" and width is not None:
            new_width = draw(st.integers(1, 4))
            w = f"{name}_M{len(weights)}"
            weights.append(
                numpy_helper.from_array(rng.standard_normal((width, new_width)).astype("f"), w)
            )
            out = fresh()
            nodes.append(helper.make_node("MatMul", [current, w], [out]))
            width = new_width
        else:
            op, out = draw(st.sampled_from(["Relu", "Tanh"])), fresh()
            nodes.append(helper.make_node(op, [current], [out]))
        current = out
    # Rank 2 whatever the branch did, so the If's output has a rank to declare.
    result = f"out_{name}"
    nodes.append(helper.make_node("Flatten", [current], [result], axis=1))
    output = helper.make_tensor_value_info(result, TensorProto.FLOAT, None)
    return helper.make_graph(nodes, name, [], [output], weights)


@st.composite
def if_models(draw: st.DrawFn) -> onnx.ModelProto:
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    then_branch = draw(branch("then", rng))
    else_branch = draw(branch("else", rng))
    graph = helper.make_graph(
        [helper.make_node("If", ["flag"], ["y_out"], then_branch=then_branch,
                          else_branch=else_branch)],
        "branches",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "S", 3]),
            helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y_out", TensorProto.FLOAT, ["rows", "columns"])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


PASSES = {
    "rename_io": {"inputs": {"x": "features", "flag": "wide"}, "outputs": {"y_out": "score"}},
    "fix_dims": "data shapes",
    "fix_dims_batch": {"dims": {"N": 2}},
    "infer_shapes": {},
    "infer_shapes_lenient": {"strict": False},
    "cleanup": {},
}


@fuzz(100)
@given(model=if_models(), name=st.sampled_from(sorted(PASSES)), sizes=st.tuples(
    st.integers(2, 3), st.integers(1, 3)))  # fmt: skip
def test_a_model_onnx_runtime_loads_still_loads_after_each_pass(
    model: onnx.ModelProto, name: str, sizes: tuple[int, int]
) -> None:
    note(onnx.printer.to_text(model))
    x = np.random.default_rng(0).standard_normal((*sizes, 3)).astype("f")
    feeds = [{"x": x, "flag": np.array(flag)} for flag in (True, False)]
    expected = [run(model, f)["y_out"] for f in feeds]

    params = PASSES[name]
    if params == "data shapes":
        params = {"shapes": {"x": list(x.shape), "flag": []}}
    if name == "fix_dims_batch":
        params = {"dims": {"N": sizes[0]}}
    pass_ = getattr(graphkit.passes, name.replace("_batch", "").replace("_lenient", ""))
    with workdir() as folder:
        onnx.save(model, folder / "m.onnx")
        # Every model here is valid and its parameters fit, so a refusal is a failure too.
        result = pass_(graphkit.load(folder / "m.onnx"), **params)
        graphkit.save(result, folder / "out.onnx")
        renamed = name == "rename_io"
        for feed, want in zip(feeds, expected, strict=True):
            if renamed:
                feed = {"features": feed["x"], "wide": feed["flag"]}
            got = run(folder / "out.onnx", feed)["score" if renamed else "y_out"]
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    event(f"{name} ran")
