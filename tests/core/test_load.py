"""What load accepts and refuses: valid models of any domain load, invalid ones are called so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import graphkit
from graphkit import ModelError
from tests.models import random_input, run, write

OFFSET = np.array([1.0, 2.0, 3.0], np.float32)
SCALE = np.array([0.5, 2.0, 1.0], np.float32)


def classical_ml() -> onnx.ModelProto:
    """A scikit-learn style pipeline, Scaler then L2 Normalizer: only the ai.onnx.ml domain."""
    nodes = [
        helper.make_node(
            "Scaler", ["x"], ["scaled"], domain="ai.onnx.ml", offset=OFFSET, scale=SCALE
        ),
        helper.make_node("Normalizer", ["scaled"], ["y"], domain="ai.onnx.ml", norm="L2"),
    ]
    graph = helper.make_graph(
        nodes,
        "pipeline",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 3])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("ai.onnx.ml", 3)], ir_version=8
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def expected(x: np.ndarray) -> np.ndarray:
    scaled = (x - OFFSET) * SCALE
    return scaled / np.linalg.norm(scaled, axis=1, keepdims=True)


def test_a_model_of_only_ai_onnx_ml_ops_loads_passes_and_saves(tmp_path: Path) -> None:
    # setup
    source = write(classical_ml(), tmp_path / "pipeline.onnx")
    x = random_input((4, 3))
    np.testing.assert_allclose(run(source, {"x": x})["y"], expected(x), rtol=1e-6)
    # execute: the passes that apply to any graph
    passes = graphkit.passes
    model = graphkit.load(source)
    model = passes.rename_io(model, inputs={"x": "features"}, outputs={"y": "normalized"})
    model = passes.fix_dims(model, dims={"n": 4})
    model = passes.infer_shapes(model)
    model = passes.simplify(model)
    model = passes.cleanup(model)
    model = passes.check(model, full=True)
    graphkit.save(model, tmp_path / "out.onnx")
    # assert: still the ai.onnx.ml graph, and ONNX Runtime gives the same numbers
    result = onnx.load(tmp_path / "out.onnx")
    assert [(o.domain, o.version) for o in result.opset_import] == [("ai.onnx.ml", 3)]
    assert [n.op_type for n in result.graph.node] == ["Scaler", "Normalizer"]
    assert [d.dim_value for d in result.graph.input[0].type.tensor_type.shape.dim] == [4, 3]
    got = run(tmp_path / "out.onnx", {"features": x})["normalized"]
    np.testing.assert_allclose(got, expected(x), rtol=1e-6)


def test_the_cli_runs_a_recipe_on_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from graphkit._cli import main

    write(classical_ml(), tmp_path / "pipeline.onnx")
    (tmp_path / "recipe.yaml").write_text(
        "version: 1\nsource: {path: pipeline.onnx}\npasses: [cleanup]\n"
        "output: out.onnx\nverify: {against: imported}\n"
    )
    assert main(["apply", str(tmp_path / "recipe.yaml")]) == 0
    out = capsys.readouterr().out
    assert "  2 nodes, no default-domain opset\n" in out
    assert "  y: max abs err 0, max rel err 0  ok\n" in out


@pytest.mark.parametrize("named", [True, False], ids=["named", "unnamed"])
def test_a_default_domain_op_without_its_opset_is_refused_as_invalid(
    tmp_path: Path, named: bool
) -> None:
    model = classical_ml()
    relu = helper.make_node("Relu", ["y"], ["z"], name="relu" if named else "")
    model.graph.node.append(relu)
    model.graph.output[0].name = "z"
    path = write(model, tmp_path / "model.onnx")
    with pytest.raises(ModelError) as caught:
        graphkit.load(path)
    what = "Relu node 'relu'" if named else "a Relu node"
    assert str(caught.value) == (
        f"{path}: invalid model: {what} is in the default ONNX domain, "
        "for which the model imports no opset"
    )
