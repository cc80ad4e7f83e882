"""The example recipe giving the signature-cleaning stand-in a uint8 NHWC input, /255 inside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from graphkit_plugins.signature.cleaning import build_cleaning_savedmodel

import graphkit
from graphkit._cli import main
from tests.models import run

RECIPE = Path(__file__).parents[2] / "examples" / "signature-cleaning-uint8.yaml"
SHAPE = "shape: [1, 224, 224, 3]"


def tensorflow_output(folder: Path, pixels: np.ndarray) -> np.ndarray:
    """What the SavedModel gives for ``pixels``, scaled to 0..1 as its training code did."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder))
    image = tf.constant(pixels.astype(np.float32) / 255)
    return loaded.signatures["serving_default"](input_1=image)["conv2d_6"].numpy()


def check_contract(path: Path, size: int) -> None:
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    [given], [made] = model.graph.input, model.graph.output
    assert (given.name, given.type.tensor_type.elem_type) == ("input", onnx.TensorProto.UINT8)
    assert (made.name, made.type.tensor_type.elem_type) == ("output", onnx.TensorProto.FLOAT)
    for info in (given, made):
        assert [d.dim_value for d in info.type.tensor_type.shape.dim] == [1, size, size, 3]


def test_the_example_is_a_valid_recipe() -> None:
    recipe = graphkit.load_recipe(RECIPE)
    [step] = [s for s in recipe.steps if s.pass_.name == "set_inputs"]
    contract = step.params.inputs["input"]
    assert (contract.dtype, contract.layout, contract.scale) == ("uint8", None, 1 / 255)
    assert contract.shape == [1, 224, 224, 3]
    assert recipe.verify is not None and recipe.verify.against == "source"


@pytest.mark.tf
def test_a_small_stand_in_verifies_against_tensorflow(tmp_path: Path) -> None:
    pytest.importorskip("tf_keras")
    folder = build_cleaning_savedmodel(tmp_path / "model", size=32)
    text = RECIPE.read_text()
    assert text.count(SHAPE) == 1
    small = tmp_path / "recipe.yaml"
    small.write_text(text.replace(SHAPE, "shape: [1, 32, 32, 3]"))

    result = graphkit.apply(small, source=folder, output=tmp_path / "out.onnx")

    assert result.parity is not None and result.parity.ok
    check_contract(tmp_path / "out.onnx", 32)
    pixels = np.random.default_rng(3).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    got = run(tmp_path / "out.onnx", {"input": pixels})["output"]
    np.testing.assert_allclose(got, tensorflow_output(folder, pixels), rtol=1e-4, atol=1e-5)


@pytest.mark.tf
@pytest.mark.slow
def test_the_full_size_stand_in_through_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tf_keras")
    folder = build_cleaning_savedmodel(tmp_path / "model")
    out = tmp_path / "cleaning-uint8.onnx"
    code = main(["apply", str(RECIPE), "--source", str(folder), "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert " -> input uint8[1,224,224,3]\n" in printed
    assert "the reference's inputs and outputs follow the contract of passes[1] set_inputs" in (
        printed
    )
    check_contract(out, 224)
    pixels = np.random.default_rng(4).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    got = run(out, {"input": pixels})["output"]
    np.testing.assert_allclose(got, tensorflow_output(folder, pixels), rtol=1e-4, atol=1e-5)
