"""simplify: the engines' folding, with the model's interface guarded."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphkit
from graphkit import PassError, _onnx_tools
from graphkit._modelio.proto import to_proto
from tests.models import as_ir, from_text, ir3_weights_as_inputs, random_input, run, with_if

simplify = graphkit.passes.simplify

FOLDABLE = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[1, 4] x) => (float[1, 4] y, float[1, 4] z)
    <float[4] a = {1.0, 2.0, 3.0, 4.0}, float[4] b = {0.5, 0.5, 0.5, 0.5}> {
        c = Add(a, b)
        d = Mul(c, a)
        e = Identity(x)
        y = Add(e, d)
        z = Relu(y)
    }"""


def test_folds_constants_and_keeps_the_interface() -> None:
    source = from_text(FOLDABLE)
    result = simplify.run(as_ir(source), simplify.validate({}))
    assert result.modified
    proto = to_proto(result.model)
    assert [n.op_type for n in proto.graph.node] == ["Add", "Relu"]
    assert [i.name for i in proto.graph.input] == ["x"]
    assert [o.name for o in proto.graph.output] == ["y", "z"]
    x = random_input((1, 4))
    for name, value in run(source, {"x": x}).items():
        np.testing.assert_allclose(run(proto, {"x": x})[name], value, rtol=1e-6)


def test_options_reach_onnxsim() -> None:
    result = simplify.run(
        as_ir(from_text(FOLDABLE)),
        simplify.validate({"constant_folding": False, "engine": "onnxsim"}),
    )
    ops = [n.op_type for n in to_proto(result.model).graph.node]
    assert "Mul" in ops, "with folding off the constant Mul stays"


def test_with_folding_and_optimisations_off_nothing_changes() -> None:
    params = {"engine": "onnxsim", "constant_folding": False, "optimize": False}
    result = simplify.run(as_ir(from_text(FOLDABLE)), simplify.validate(params))
    assert [n.op_type for n in result.model.graph] == ["Add", "Mul", "Identity", "Add", "Relu"]


def test_onnxslim_with_folding_off_miscomputes_and_is_refused() -> None:
    """It replaces d = (a + b) * a by a constant computed as a * a."""
    params = {"constant_folding": False, "optimize": False, "engine": "onnxslim"}
    with pytest.raises(PassError) as caught:
        simplify.run(as_ir(from_text(FOLDABLE)), simplify.validate(params))
    assert str(caught.value) == (
        "onnxslim changed what the model computes: output 'y' differs (max abs error 2)"
    )


def test_an_engine_that_changes_nothing_leaves_the_model_as_it_was() -> None:
    """Neither engine result is run: onnxsim, first on a tie, gave the same graph back."""
    params = {"constant_folding": False, "optimize": False}
    model = as_ir(from_text(FOLDABLE))
    result = simplify.run(model, simplify.validate(params))
    assert result.model is model
    assert not result.modified
    assert result.notes == [
        "onnxsim left the graph as it was",
        "onnxslim not used: it left 5 nodes",
    ]


def test_weights_listed_as_inputs_become_constants_by_default() -> None:
    source = ir3_weights_as_inputs()
    result = simplify.run(as_ir(source), simplify.validate({}))
    assert [v.name for v in result.model.graph.inputs] == ["data"]
    assert result.notes[-1] == (
        "2 weights listed as inputs became constants (fold_weight_inputs: false keeps them inputs)"
    )
    x = random_input((2, 3))
    proto = to_proto(result.model)
    np.testing.assert_allclose(run(proto, {"data": x})["prob"], run(source, {"data": x})["prob"])


@pytest.mark.parametrize("engine", ["onnxsim", "onnxslim"])
def test_weights_kept_as_inputs_can_still_be_overridden(engine: str) -> None:
    """onnxslim dropped such inputs; onnxsim folded what was computed from them."""
    source = ir3_weights_as_inputs()
    source.ir_version = 7  # from IR 4 on, ONNX Runtime lets a caller feed such a weight
    proto = to_proto(simplify(as_ir(source), fold_weight_inputs=False, engine=engine))
    assert [i.name for i in proto.graph.input] == ["data", "W", "B"]
    x = random_input((2, 3))
    np.testing.assert_allclose(run(proto, {"data": x})["prob"], run(source, {"data": x})["prob"])
    other = {"data": x, "W": random_input((4, 3)), "B": random_input((4,))}
    np.testing.assert_allclose(run(proto, other)["prob"], run(source, other)["prob"])


def test_subgraphs_survive() -> None:
    source = with_if()
    proto = to_proto(simplify(as_ir(source)))
    x = -np.ones((2, 2), np.float32)
    np.testing.assert_array_equal(run(proto, {"x": x})["y"], run(source, {"x": x})["y"])


def test_an_interface_change_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxsim#227 and #79: outputs dropped or renamed."""

    def renaming(model: onnx.ModelProto, **options):
        model.graph.output[1].name = "renamed"
        model.graph.node[-1].output[0] = "renamed"
        return model

    monkeypatch.setattr(_onnx_tools, "onnxsim_simplify", renaming)
    with pytest.raises(PassError) as caught:
        simplify(as_ir(from_text(FOLDABLE)), engine="onnxsim")
    assert str(caught.value) == (
        "onnxsim changed the model's interface: "
        "outputs [y float32, z float32] became [y float32, renamed float32]"
    )

    def dropping(model: onnx.ModelProto, **options):
        del model.graph.output[1]
        return model

    monkeypatch.setattr(_onnx_tools, "onnxsim_simplify", dropping)
    with pytest.raises(PassError, match=r"outputs \[y float32, z float32\] became \[y float32\]"):
        simplify(as_ir(from_text(FOLDABLE)), engine="onnxsim")


# onnxsim 0.7.3's C++ code aborts the process on a MatMul of two 1-D tensors; 0.8
# does not. This stand-in, imported into onnxsim's helper process after onnxsim,
# aborts on any MatMul, so containment is tested whichever release is installed.
ABORTING_ONNXSIM = """
import os
import onnxsim

_simplify = onnxsim.simplify


def _aborting(model, *args, **kwargs):
    if any(node.op_type == "MatMul" for node in model.graph.node):
        os.abort()
    return _simplify(model, *args, **kwargs)


onnxsim.simplify = _aborting
"""


def test_onnxsim_crashing_is_contained(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxsim aborting its process fails that engine only, in one line."""
    (tmp_path / "aborting_onnxsim.py").write_text(ABORTING_ONNXSIM)
    monkeypatch.syspath_prepend(str(tmp_path))
    helper = _onnx_tools._Worker(preload=("onnxsim", "aborting_onnxsim"))
    monkeypatch.setattr(_onnx_tools, "_ONNXSIM", helper)
    source = from_text("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[3] a, float[3] b) => (float c) {
        c = MatMul(a, b)
    }""")
    try:
        with pytest.raises(PassError) as caught:
            simplify(as_ir(source), engine="onnxsim")
        assert str(caught.value) == "onnxsim crashed (SIGABRT)"
        result = simplify.run(as_ir(source), simplify.validate({}))
    finally:
        helper.close()
    assert result.notes == [
        "onnxslim left the graph as it was",
        "onnxsim not used: it crashed (SIGABRT)",
    ]


def _merged_wrongly(model: onnx.ModelProto) -> onnx.ModelProto:
    """What onnxsim 0.7.3 makes of the two Reshapes below: one Reshape(x, [0, 0, -1]).

    Its 0s now keep x's dims (3, 4), not the grouped ones (3, 2). onnxsim 0.8
    gets this right, so the test gives graphkit 0.7.3's result whichever
    release is installed.
    """
    graph = model.graph
    del graph.node[:], graph.initializer[:], graph.value_info[:]
    graph.node.append(onnx.helper.make_node("Reshape", ["x", "keep"], ["y"]))
    graph.initializer.append(onnx.numpy_helper.from_array(np.array([0, 0, -1]), "keep"))
    return model


def test_a_result_that_computes_something_else_is_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """onnxsim merges a Reshape into one whose 0 ("keep this dim") then reads another input."""
    real = _onnx_tools.onnxsim_simplify
    monkeypatch.setattr(
        _onnx_tools, "onnxsim_simplify", lambda model, **o: _merged_wrongly(real(model, **o))
    )
    source = from_text("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[3, 4, 2, 2] x) => (float[3, 2, 8] y) <int64[3] grouped = {3, 2, 8},
                                                   int64[3] keep = {0, 0, -1}> {
        g1 = Reshape(x, grouped)
        y = Reshape(g1, keep)
    }""")
    with pytest.raises(PassError) as caught:
        simplify(as_ir(source), engine="onnxsim")
    assert str(caught.value).startswith("onnxsim changed what the model computes: output 'y'")
    result = simplify.run(as_ir(source), simplify.validate({}))
    assert result.notes[1].startswith("onnxsim not used: it changed what the model computes")
    x = random_input((3, 4, 2, 2))
    np.testing.assert_array_equal(
        run(to_proto(result.model), {"x": x})["y"], run(source, {"x": x})["y"]
    )
