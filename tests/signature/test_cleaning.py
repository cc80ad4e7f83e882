"""The signature-cleaning stand-in and the built-in recipe that converts it for the .NET SDK."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import graphkit_recipes
import numpy as np
import onnx
import pytest
from graphkit_plugins.signature.cleaning import build_cleaning_savedmodel

import graphkit
from graphkit._cli import main
from graphkit._recipe.index import builtin_recipes

RECIPE = Path(graphkit_recipes.__file__).parent / "signature-cleaning.yaml"

LAYERS = [
    ("InputLayer", "input_1"),
    ("Conv2D", "conv2d"),
    ("Dropout", "dropout"),
    ("Conv2D", "conv2d_1"),
    ("MaxPooling2D", "max_pooling2d"),
    ("Conv2D", "conv2d_2"),
    ("Dropout", "dropout_1"),
    ("Conv2D", "conv2d_3"),
    ("MaxPooling2D", "max_pooling2d_1"),
    ("Conv2D", "conv2d_4"),
    ("Dropout", "dropout_2"),
    ("Conv2D", "conv2d_5"),
    ("MaxPooling2D", "max_pooling2d_2"),
    ("Dropout", "dropout_3"),
    ("Conv2DTranspose", "conv2d_transpose"),
    ("Conv2DTranspose", "conv2d_transpose_1"),
    ("Conv2DTranspose", "conv2d_transpose_2"),
    ("Conv2D", "conv2d_6"),
]
FILTERS = {
    "conv2d": 64,
    "conv2d_1": 64,
    "conv2d_2": 128,
    "conv2d_3": 128,
    "conv2d_4": 256,
    "conv2d_5": 256,
    "conv2d_transpose": 256,
    "conv2d_transpose_1": 128,
    "conv2d_transpose_2": 64,
    "conv2d_6": 3,
}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tf_keras")
    return build_cleaning_savedmodel(tmp_path_factory.mktemp("small") / "model", size=32)


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in at the original's size, laid out as the original project keeps it."""
    pytest.importorskip("tf_keras")
    folder = tmp_path_factory.mktemp("full") / "signature-image-cleaning" / "model"
    return build_cleaning_savedmodel(folder)


def keras_metadata(folder: Path) -> dict:
    """The model's description that Keras 2 writes to keras_metadata.pb."""
    from tf_keras.protobuf import saved_metadata_pb2

    metadata = saved_metadata_pb2.SavedMetadata.FromString(
        (folder / "keras_metadata.pb").read_bytes()
    )
    [root] = [node for node in metadata.nodes if node.node_path == "root"]
    return json.loads(root.metadata)


def weights(folder: Path) -> dict[str, np.ndarray]:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(folder / "variables" / "variables"))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name.startswith("layer_with_weights")
    }


# -- the builder -----------------------------------------------------------------------------------


def test_the_module_imports_without_tensorflow() -> None:
    script = (
        "import sys, graphkit_plugins.signature.cleaning\n"
        "print(sorted(m for m in ('tensorflow', 'tf_keras', 'keras') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout == "[]\n"


@pytest.mark.parametrize("size", [0, -8, 12, 225])
def test_size_must_be_a_positive_multiple_of_8(size: int, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"size must be a positive multiple of 8, not {size}"):
        build_cleaning_savedmodel(tmp_path / "model", size=size)
    assert not (tmp_path / "model").exists()


def test_a_folder_in_use_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        build_cleaning_savedmodel(tmp_path / "model", size=8)
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["notes.txt"]


@pytest.mark.tf
def test_the_stand_in_is_a_keras2_savedmodel_like_the_original(small: Path) -> None:
    assert {p.name for p in small.iterdir()} >= {"saved_model.pb", "keras_metadata.pb", "variables"}
    meta = keras_metadata(small)
    assert meta["name"] == "autoencoder"
    assert meta["class_name"] == "Functional"
    assert meta["keras_version"].startswith("2.")
    layers = meta["config"]["layers"]
    assert [(layer["class_name"], layer["config"]["name"]) for layer in layers] == LAYERS
    assert layers[0]["config"]["batch_input_shape"]["items"] == [None, 32, 32, 3]
    for layer in layers:
        config = layer["config"]
        if layer["class_name"] in ("Conv2D", "Conv2DTranspose"):
            assert config["filters"] == FILTERS[config["name"]]
            assert config["kernel_size"]["items"] == [3, 3]
            assert config["padding"] == "same"
            stride = 2 if layer["class_name"] == "Conv2DTranspose" else 1
            assert config["strides"]["items"] == [stride, stride]
            last = config["name"] == "conv2d_6"
            assert config["activation"] == ("sigmoid" if last else "relu")
        elif layer["class_name"] == "Dropout":
            assert config["rate"] == 0.2
        elif layer["class_name"] == "MaxPooling2D":
            assert config["pool_size"]["items"] == [2, 2]
            assert config["padding"] == "same"
    training = meta["training_config"]
    assert training["loss"] == "mse"
    assert [m["config"]["name"] for m in training["metrics"][0]] == ["PSNR", "SSIM", "rmse"]
    assert training["metrics"][0][2]["class_name"] == "RootMeanSquaredError"


@pytest.mark.tf
def test_the_seed_decides_the_weights(small: Path, tmp_path: Path) -> None:
    again = build_cleaning_savedmodel(tmp_path / "again", size=32)
    other = build_cleaning_savedmodel(tmp_path / "other", size=32, seed=1)
    first, second, third = weights(small), weights(again), weights(other)
    assert len(first) == 2 * len(FILTERS)  # a kernel and a bias per convolution
    assert first.keys() == second.keys() == third.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    assert all(not np.array_equal(first[n], third[n]) for n in first if "kernel" in n)


# -- the built-in recipe ---------------------------------------------------------------------------


def test_the_recipe_is_listed_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert builtin_recipes()["signature-cleaning"] == RECIPE
    assert main(["recipes"]) == 0
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if "signature-cleaning" in ln]
    assert line.split(maxsplit=1)[1] == (
        "Signature-cleaning autoencoder: TensorFlow SavedModel (the model folder; --source PATH) "
        "to ONNX, verified against TensorFlow"
    )


def test_the_recipe_reads_the_original_layout_and_verifies(in_other_dir: Path) -> None:
    # Run by name, a built-in recipe's paths are relative to the current folder.
    recipe = graphkit.load_recipe("signature-cleaning")
    assert recipe.file == str(RECIPE)
    assert recipe.source is not None
    assert recipe.source.frontend.name == "savedmodel"
    assert recipe.source.options.model_dump() == {
        "signature": "serving_default",
        "tag": "serve",
        "opset": 17,
        "inputs_as_nchw": [],
        "large_model": False,
    }
    assert recipe.source.path == in_other_dir.resolve() / "signature-image-cleaning" / "model"
    assert (
        recipe.output
        == in_other_dir.resolve() / "signature-image-cleaning" / "signature-cleaning.onnx"
    )
    assert [step.pass_.name for step in recipe.steps][:3] == ["rename_io", "fix_dims", "simplify"]
    assert recipe.verify is not None
    assert (recipe.verify.against, recipe.verify.samples) == ("source", 2)
    assert (recipe.verify.rtol, recipe.verify.atol) == (1e-4, 1e-5)
    overridden = graphkit.load_recipe("signature-cleaning", source="downloads/model")
    assert overridden.source is not None
    assert overridden.source.path == Path("downloads/model")


def test_the_recipe_does_not_depend_on_tf2onnx_dim_numbers() -> None:
    recipe = graphkit.load_recipe(RECIPE)
    [fix_dims] = [step for step in recipe.steps if step.pass_.name == "fix_dims"]
    assert fix_dims.params.dims == {}
    assert fix_dims.params.shapes == {"input": [1, 224, 224, 3]}
    assert "unk__" not in "".join(line.split("#")[0] for line in RECIPE.read_text().splitlines())


@pytest.mark.tf
@pytest.mark.slow
def test_the_recipe_meets_the_sdk_contract_on_the_full_size_stand_in(
    full: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tensorflow as tf

    from tests.models import random_input, run

    # From the root of the original project's layout, no path needs giving.
    project = full.parent.parent
    monkeypatch.chdir(project)
    code = main(["apply", "signature-cleaning"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"import {project.resolve() / 'signature-image-cleaning' / 'model'} (savedmodel)" in out
    assert "verify against source: 2 input sets, rtol 0.0001, atol 1e-05" in out
    assert "  output: max abs err" in out
    result = project / "signature-image-cleaning" / "signature-cleaning.onnx"
    assert sorted(p.name for p in project.iterdir()) == ["signature-image-cleaning"]
    assert sorted(p.name for p in full.parent.iterdir()) == ["model", "signature-cleaning.onnx"]

    model = onnx.load(result)
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph
    float32 = onnx.TensorProto.FLOAT
    for values, name in ((graph.input, "input"), (graph.output, "output")):
        assert [v.name for v in values] == [name]
        tensor = values[0].type.tensor_type
        assert tensor.elem_type == float32
        assert [d.dim_value for d in tensor.shape.dim] == [1, 224, 224, 3]
    for info in [*graph.input, *graph.output, *graph.value_info]:
        for dim in info.type.tensor_type.shape.dim:
            assert dim.HasField("dim_value") and not dim.dim_param, f"{info.name} is not static"

    x = random_input((1, 224, 224, 3), seed=7)
    loaded = tf.saved_model.load(str(full))
    expected = loaded.signatures["serving_default"](input_1=tf.constant(x))["conv2d_6"].numpy()
    got = run(result, {"input": x})["output"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
