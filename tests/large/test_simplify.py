"""simplify on models past 2 GiB: onnxsim gets the graph, the weights are held back."""

from __future__ import annotations

from pathlib import Path

import graphkit_plugins.passes.simplify as simplify_module
import numpy as np
import onnx
import onnx_ir as ir
import pytest

import graphkit
import graphkit._modelio.tensors as tensors
from graphkit import PassError, _onnx_tools
from graphkit._modelio.proto import to_proto
from tests.large.builders import DATA_NAME, external_model
from tests.models import as_ir, random_input, run

simplify = graphkit.passes.simplify
REAL_LIMIT = tensors.PROTOBUF_LIMIT


def _ops(model: ir.Model) -> list[str]:
    return [n.op_type for n in model.graph]


def _outputs(model: onnx.ModelProto) -> np.ndarray:
    x = random_input((1, 8, 8, 3))
    return np.stack([run(model, {"input_1": s * x})["conv2d_6"] for s in (1.0, -1.0)])


def test_held_back_weights_are_never_read(source: Path, in_other_dir: Path) -> None:
    # setup
    (source.parent / DATA_NAME).unlink()

    # execute
    result = simplify.run(graphkit.load(source), simplify.validate({"hold_back_weights": True}))

    # assert
    assert (
        "2 weights (0.00 GiB) held back from onnxsim, so expressions of them were not folded"
        in result.notes
    )
    assert isinstance(result.model.graph.initializers["W"].const_value, ir.ExternalTensor)
    [if_node] = [n for n in result.model.graph if n.op_type == "If"]
    gain = if_node.attributes["then_branch"].as_graph().initializers["gain"]
    assert isinstance(gain.const_value, ir.ExternalTensor), "back in its branch, still on disk"
    assert [v.name for v in result.model.graph.inputs] == ["input_1"]


def test_both_routes_compute_the_same(source: Path, in_other_dir: Path) -> None:
    expected = _outputs(external_model())
    for engine in ("onnxsim", "onnxslim"):
        for hold in (False, True):
            result = simplify(graphkit.load(source), hold_back_weights=hold, engine=engine)
            np.testing.assert_allclose(
                _outputs(to_proto(result)), expected, rtol=1e-6, err_msg=f"{engine} {hold}"
            )


def test_holding_back_keeps_folding_what_does_not_read_weights() -> None:
    text = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[1, 512] x) => (float[1, 512] y) <float[512, 512] w = {...}> {
        two = Constant <value = float {2.0}> ()
        four = Mul(two, two)
        m = MatMul(x, w)
        d = Div(m, four)
        y = Identity(d)
    }"""
    proto = onnx.parser.parse_model(
        text.replace("{...}", "{" + ", ".join(["0.5"] * 512 * 512) + "}")
    )
    result = simplify(as_ir(proto), hold_back_weights=True)
    assert _ops(result) == ["MatMul", "Div"]
    assert result.graph.initializers["w"].const_value.nbytes == 512 * 512 * 4


class TestPastTheLimit:
    """Shrinks the 2 GiB limit so that a small model is past it."""

    @pytest.fixture(autouse=True)
    def _small_limit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(tensors, "PROTOBUF_LIMIT", 4000)

    def test_weights_are_held_back_by_default(
        self, source: Path, in_other_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        result = simplify.run(graphkit.load(source), simplify.validate({}))
        assert (
            "2 weights (0.00 GiB) held back from onnxsim, so expressions of them were not folded"
            in result.notes
        )
        monkeypatch.setattr(simplify_module, "TRY_EVERY_ENGINE_BYTES", 4000)
        notes = simplify.run(graphkit.load(source), simplify.validate({})).notes
        assert notes[1] == (
            "onnxslim not tried: past 0 MiB of tensors auto keeps the first engine that "
            "succeeds (engine: onnxslim runs it)"
        )
        monkeypatch.setattr(tensors, "PROTOBUF_LIMIT", REAL_LIMIT)
        np.testing.assert_allclose(
            _outputs(to_proto(result.model)), _outputs(external_model()), rtol=1e-6
        )

    def test_loading_every_weight_is_refused(self, source: Path) -> None:
        with pytest.raises(
            PassError, match=r"past protobuf's 2 GiB limit.*allow hold_back_weights"
        ):
            simplify(graphkit.load(source), hold_back_weights=False)

    def test_the_interface_is_still_guarded(
        self, source: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def renaming(model: onnx.ModelProto, **options: object) -> onnx.ModelProto:
            model.graph.output[0].name = "renamed"
            model.graph.node[-1].output[0] = "renamed"
            return model

        monkeypatch.setattr(_onnx_tools, "onnxsim_simplify", renaming)
        with pytest.raises(PassError, match="onnxsim changed the model's interface"):
            simplify(graphkit.load(source), engine="onnxsim")
        result = simplify.run(graphkit.load(source), simplify.validate({}))
        assert result.notes[0].startswith("onnxslim simplified the graph")
        assert result.notes[1].startswith("onnxsim not used: it changed the model's interface")


def test_weights_listed_as_inputs_can_be_folded_when_held_back() -> None:
    """An IR 3 model lists its weights as inputs; held back, they are dropped from them too."""
    rng = np.random.default_rng(0)
    weight = onnx.numpy_helper.from_array(rng.random((300, 3), dtype=np.float32), "W")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["W", "data"], ["prob"])],
        "ir3",
        [
            onnx.helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT, [3, 2]),
            onnx.helper.make_tensor_value_info("W", onnx.TensorProto.FLOAT, [300, 3]),
        ],
        [onnx.helper.make_tensor_value_info("prob", onnx.TensorProto.FLOAT, [300, 2])],
        [weight],
    )
    source = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", 8)], ir_version=3
    )
    result = simplify.run(
        as_ir(source), simplify.validate({"fold_weight_inputs": True, "hold_back_weights": True})
    )
    assert [v.name for v in result.model.graph.inputs] == ["data"]
    assert result.model.ir_version == 4
    assert result.notes[-1].startswith("1 weights listed as inputs became constants")
    x = random_input((3, 2))
    np.testing.assert_allclose(
        run(to_proto(result.model), {"data": x})["prob"], run(source, {"data": x})["prob"]
    )
