"""The example recipes: the signature-verification stand-in in float16 and in int8, verified."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

import graphkit

torch = pytest.importorskip("torch")

from graphkit_plugins.signature.siamese import build_verification_checkpoint  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.slow]

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_verification_checkpoint(tmp_path_factory.mktemp("stand_in") / "model.pt")


def _apply(name: str, checkpoint: Path, folder: Path) -> tuple[graphkit.ApplyResult, Path]:
    """Run an example recipe from a copy beside ``folder``'s calibration data."""
    recipe = folder / name
    recipe.write_text((EXAMPLES / name).read_text())
    output = folder / "out.onnx"
    result = graphkit.apply(recipe, source=checkpoint, output=output)
    return result, output


def test_the_examples_and_the_benchmarks_variants_are_valid_recipes() -> None:
    benchmarks = EXAMPLES.parent / "benchmarks" / "recipes"
    recipes = [*EXAMPLES.glob("*.yaml"), *benchmarks.glob("signature-verification-*.yaml")]
    assert {"signature-verification-float16.yaml", "signature-verification-int8.yaml"} <= {
        r.name for r in recipes
    }
    for recipe in recipes:
        graphkit.load_recipe(recipe)


def test_float16_halves_the_file_and_verifies(checkpoint: Path, tmp_path: Path) -> None:
    result, output = _apply("signature-verification-float16.yaml", checkpoint, tmp_path)
    assert result.parity is not None and result.parity.ok
    assert all(o.metric is not None and o.metric >= 0.999 for o in result.parity.outputs)
    model = onnx.load(output)
    floats = Counter(t.data_type for t in model.graph.initializer)
    assert floats[onnx.TensorProto.FLOAT16] > 0 and floats[onnx.TensorProto.FLOAT] == 0
    assert output.stat().st_size < 0.55 * checkpoint.stat().st_size
    inputs = [(i.name, i.type.tensor_type.elem_type) for i in model.graph.input]
    assert inputs == [("input0", onnx.TensorProto.UINT8), ("input1", onnx.TensorProto.UINT8)]
    outputs = [(o.name, o.type.tensor_type.elem_type) for o in model.graph.output]
    assert outputs == [(f"output{i}", onnx.TensorProto.FLOAT) for i in range(3)]


def test_int8_quarters_the_file_and_verifies(checkpoint: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    images = {n: rng.integers(0, 256, (4, 150, 220), dtype=np.uint8) for n in ("input0", "input1")}
    np.savez(tmp_path / "calibration.npz", **images)
    result, output = _apply("signature-verification-int8.yaml", checkpoint, tmp_path)
    assert result.parity is not None and result.parity.ok
    embeddings = result.parity.outputs[:2]
    assert all(o.metric is not None and o.metric >= 0.99 for o in embeddings)
    assert output.stat().st_size < 0.3 * checkpoint.stat().st_size
    ops = Counter(n.op_type for n in onnx.load(output).graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
