"""The Siamese signature-verification model, its stand-in, and the built-in recipe's contract."""

from __future__ import annotations

import contextlib
import io
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import graphkit_recipes
import numpy as np
import onnx
import onnx_ir as ir
import pytest

import graphkit
from graphkit import SourceContext
from graphkit._cli import main
from graphkit._recipe.index import builtin_recipes
from tests.models import run

torch = pytest.importorskip("torch")

from graphkit_plugins.signature.siamese import (  # noqa: E402  (needs torch)
    SiameseModel,
    build_verification_checkpoint,
)

pytestmark = pytest.mark.torch

RECIPE = Path(graphkit_recipes.__file__).parent / "signature-verification.yaml"
CHECKPOINT = Path("signature-verification") / "convnet_best_loss.pt"


def conv_block(name: str, out_channels: int, in_channels: int, kernel: int) -> dict:
    prefix = f"model.conv_layers.{name}"
    return {
        f"{prefix}.conv.weight": [out_channels, in_channels, kernel, kernel],
        **norm(f"{prefix}.bn", out_channels),
    }


def fc_block(name: str, out_features: int, in_features: int) -> dict:
    prefix = f"model.fc_layers.{name}"
    return {
        f"{prefix}.fc.weight": [out_features, in_features],
        **norm(f"{prefix}.bn", out_features),
    }


def norm(prefix: str, size: int) -> dict:
    return {
        f"{prefix}.weight": [size],
        f"{prefix}.bias": [size],
        f"{prefix}.running_mean": [size],
        f"{prefix}.running_var": [size],
        f"{prefix}.num_batches_tracked": [],
    }


#: Every key of the original checkpoint's state dict, with its shape.
CHECKPOINT_KEYS = {
    **conv_block("conv1", 96, 1, 11),
    **conv_block("conv2", 256, 96, 5),
    **conv_block("conv3", 384, 256, 3),
    **conv_block("conv4", 384, 384, 3),
    **conv_block("conv5", 256, 384, 3),
    **fc_block("fc1", 2048, 3840),
    **fc_block("fc2", 2048, 2048),
    "probs.weight": [1, 4096],
    "probs.bias": [1],
    "projection2d.weight": [2, 2048],
    "projection2d.bias": [2],
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_verification_checkpoint(tmp_path_factory.mktemp("stand_in") / "model.pt")


def load(path: Path) -> SiameseModel:
    model = SiameseModel()
    model.load_state_dict(torch.load(path, weights_only=True)["model"], strict=True)
    return model.eval()


# -- the model class -------------------------------------------------------------------------


def test_the_state_dict_has_the_original_keys_and_shapes() -> None:
    state = SiameseModel().state_dict()
    assert {key: list(tensor.shape) for key, tensor in state.items()} == CHECKPOINT_KEYS
    assert list(state) == list(CHECKPOINT_KEYS)  # and in the original's order


def test_a_150_by_220_image_flattens_to_3840() -> None:
    # conv1 (11, stride 4): 35x53; pool: 17x26; conv2 (pad 2) keeps it; pool: 8x12;
    # conv3-5 (pad 1) keep it; pool: 3x5. 256 channels x 3 x 5 = 3840.
    trunk = SiameseModel().model.conv_layers
    sizes = {}
    x = torch.zeros(1, 1, 150, 220)
    with torch.no_grad():
        for name, layer in trunk.named_children():
            x = layer(x)
            sizes[name] = tuple(x.shape[1:])
    assert sizes == {
        "conv1": (96, 35, 53),
        "maxpool1": (96, 17, 26),
        "conv2": (256, 17, 26),
        "maxpool2": (256, 8, 12),
        "conv3": (384, 8, 12),
        "conv4": (384, 8, 12),
        "conv5": (256, 8, 12),
        "maxpool3": (256, 3, 5),
    }


def test_forward_takes_uint8_images_and_ignores_projection2d(checkpoint: Path) -> None:
    model = load(checkpoint)
    rng = np.random.default_rng(3)
    images = [torch.from_numpy(rng.integers(0, 256, (150, 220), dtype=np.uint8)) for _ in "ab"]
    with torch.no_grad():
        first = model(*images)
        model.projection2d.weight.fill_(7.0)
        second = model(*images)
        as_floats = model(*(image.float() for image in images))
    assert [tuple(t.shape) for t in first] == [(1, 2048), (1, 2048), (1, 1)]
    assert all(t.dtype == torch.float32 for t in first)
    for a, b, c in zip(first, second, as_floats, strict=True):
        assert torch.equal(a, b)
        assert torch.equal(a, c)
    expected = model.probs(torch.cat([first[0], first[1]], dim=1))
    assert torch.allclose(first[2], expected)


# -- the stand-in ----------------------------------------------------------------------------------


def test_the_stand_in_is_laid_out_like_the_original(checkpoint: Path) -> None:
    loaded = torch.load(checkpoint, weights_only=True)
    assert list(loaded) == ["model"]
    assert {k: list(v.shape) for k, v in loaded["model"].items()} == CHECKPOINT_KEYS


def test_the_stand_in_has_real_batch_norm_statistics(checkpoint: Path) -> None:
    state = torch.load(checkpoint, weights_only=True)["model"]
    for key, tensor in state.items():
        if key.endswith("running_mean"):
            assert tensor.abs().min() > 0 and tensor.std() > 0.01, key
        elif key.endswith("running_var"):
            assert (tensor - 1).abs().max() > 0.1 and tensor.min() > 0, key
    # Eval mode (running statistics) and train mode (batch statistics) must differ.
    model = load(checkpoint)
    images = torch.randint(0, 256, (2, 150, 220), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        evaluated = model(images, images.flip(0))[0]
        trained = model.train()(images, images.flip(0))[0]
    assert not torch.allclose(evaluated, trained, atol=1e-2)


def test_the_seed_decides_the_weights(checkpoint: Path, tmp_path: Path) -> None:
    same = torch.load(build_verification_checkpoint(tmp_path / "same.pt"), weights_only=True)
    other = torch.load(
        build_verification_checkpoint(tmp_path / "a" / "other.pt", seed=1), weights_only=True
    )
    first = torch.load(checkpoint, weights_only=True)["model"]
    for key, tensor in first.items():
        assert torch.equal(tensor, same["model"][key]), key
        if tensor.is_floating_point():
            assert not torch.equal(tensor, other["model"][key]), key


# -- the built-in recipe ---------------------------------------------------------------------------


def test_the_recipe_is_listed_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert builtin_recipes()["signature-verification"] == RECIPE
    assert main(["recipes"]) == 0
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if "signature-verification" in ln]
    assert line.split(maxsplit=1)[1] == (
        "SigNet Siamese signature verification: PyTorch checkpoint (convnet_best_loss.pt; "
        "--source PATH) to ONNX, verified against torch"
    )


def test_the_recipe_reads_the_original_layout(in_other_dir: Path) -> None:
    # Run by name, a built-in recipe's paths are relative to the current folder.
    recipe = graphkit.load_recipe("signature-verification")
    assert recipe.file == str(RECIPE)
    assert recipe.source is not None
    assert recipe.source.frontend.name == "torch"
    assert recipe.source.path == in_other_dir.resolve() / CHECKPOINT
    assert recipe.output == in_other_dir.resolve() / CHECKPOINT.parent / (
        "signature-verification.onnx"
    )
    options = recipe.source.options.model_dump()
    assert options["module"] == "graphkit_plugins.signature.siamese:SiameseModel"
    assert options["state_dict_key"] == "model"
    assert options["trust"] is False
    assert options["inputs"] == {
        "input0": {"shape": [150, 220], "dtype": "uint8"},
        "input1": {"shape": [150, 220], "dtype": "uint8"},
    }
    assert options["outputs"] == ["output0", "output1", "output2"]
    assert (options["opset"], options["exporter"], options["dynamic"]) == (18, "dynamo", {})
    assert recipe.verify is not None
    assert (recipe.verify.against, recipe.verify.samples) == ("source", 2)
    assert (recipe.verify.rtol, recipe.verify.atol) == (1e-4, 1e-5)
    overridden = graphkit.load_recipe("signature-verification", source="downloads/model.pt")
    assert overridden.source is not None
    assert overridden.source.path == Path("downloads/model.pt")


def test_the_recipe_runs_by_name_in_the_original_layout(
    in_other_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The original project keeps the checkpoint in a folder named like the recipe.
    (in_other_dir / CHECKPOINT.parent).mkdir()
    assert main(["validate", "signature-verification"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out == (
        f"{RECIPE}: valid: 4 passes, source {in_other_dir.resolve() / CHECKPOINT} (torch), "
        f"output {in_other_dir.resolve() / CHECKPOINT.parent / 'signature-verification.onnx'}\n"
    )


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The built-in recipe run by name on a stand-in elsewhere, from an unrelated folder."""
    downloads = tmp_path_factory.mktemp("downloads")
    checkpoint = build_verification_checkpoint(downloads / "convnet_best_loss.pt")
    result = downloads / "out" / "signature-verification.onnx"
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    here = os.getcwd()
    out = io.StringIO()
    os.chdir(elsewhere)
    try:
        with contextlib.redirect_stdout(out):
            code = main(
                ["apply", "signature-verification", "--source", str(checkpoint), "-o", str(result)]
            )
    finally:
        os.chdir(here)
    assert code == 0, out.getvalue()
    assert not list(elsewhere.iterdir())
    return result, out.getvalue()


@pytest.mark.slow
def test_the_recipe_converts_and_verifies_the_stand_in(converted: tuple[Path, str]) -> None:
    result, out = converted
    assert f"import {result.parent.parent / 'convnet_best_loss.pt'} (torch)" in out
    assert "  note: loaded 46 tensors from 'model' into " in out
    assert "verify against source: 2 input sets, rtol 0.0001, atol 1e-05" in out
    for name in ("output0", "output1", "output2"):
        assert f"\n  {name}: max abs err " in out
    assert "FAIL" not in out
    assert f"wrote {result}" in out


@pytest.mark.slow
def test_the_result_meets_the_sdk_contract(converted: tuple[Path, str]) -> None:
    # setup
    result, _ = converted
    model = onnx.load(result)
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph

    def signature(values: Iterable[onnx.ValueInfoProto]) -> list[tuple[str, int, list[int]]]:
        return [
            (
                v.name,
                v.type.tensor_type.elem_type,
                [d.dim_value for d in v.type.tensor_type.shape.dim],
            )
            for v in values
        ]

    # assert: the interface, exactly
    uint8, float32 = onnx.TensorProto.UINT8, onnx.TensorProto.FLOAT
    assert signature(graph.input) == [("input0", uint8, [150, 220]), ("input1", uint8, [150, 220])]
    assert signature(graph.output) == [
        ("output0", float32, [1, 2048]),
        ("output1", float32, [1, 2048]),
        ("output2", float32, [1, 1]),
    ]
    for info in [*graph.input, *graph.output]:
        assert all(d.HasField("dim_value") for d in info.type.tensor_type.shape.dim), info.name
    assert {o.domain: o.version for o in model.opset_import} == {"": 18}

    # assert: ONNX Runtime gives torch's numbers on the inputs the recipe verifies with
    torch_model = load(result.parent.parent / "convnet_best_loss.pt")
    names = ["input0", "input1"]
    rng = np.random.default_rng(0)
    for _ in range(2):
        feeds = {name: rng.integers(0, 256, (150, 220), dtype=np.uint8) for name in names}
        with torch.no_grad():
            expected = torch_model(*(torch.from_numpy(feeds[name]) for name in names))
        got = run(result, feeds)
        assert list(got) == ["output0", "output1", "output2"]
        for name, want in zip(got, expected, strict=True):
            assert got[name].dtype == np.float32
            np.testing.assert_allclose(got[name], want.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.slow
def test_dynamo_keeps_mish_whole(converted: tuple[Path, str]) -> None:
    result, _ = converted
    ops = Counter(node.op_type for node in onnx.load(result).graph.node)
    assert ops["Mish"] == 14  # 7 blocks, 2 images
    assert not {"Softplus", "Tanh"} & set(ops)


@pytest.mark.slow
def test_the_torchscript_exporter_converts_it_too(tmp_path: Path) -> None:
    # setup: the recipe's own source options, with the other exporter
    checkpoint = build_verification_checkpoint(tmp_path / "convnet_best_loss.pt")
    recipe = graphkit.load_recipe(RECIPE)
    assert recipe.source is not None
    options = recipe.source.options.model_copy(update={"exporter": "torchscript"})
    (tmp_path / "work").mkdir()
    context = SourceContext(recipe_dir=tmp_path, workdir=tmp_path / "work")
    # execute
    imported = recipe.source.frontend.load(checkpoint, options, context)
    # assert
    assert "exported with the torchscript exporter at opset 18" in imported.notes
    proto = ir.serde.serialize_model(imported.model)
    assert [v.name for v in proto.graph.input] == ["input0", "input1"]
    assert [v.name for v in proto.graph.output] == ["output0", "output1", "output2"]
    assert imported.reference is not None
    rng = np.random.default_rng(0)
    feeds = {
        name: rng.integers(0, 256, (150, 220), dtype=np.uint8) for name in ("input0", "input1")
    }
    want = imported.reference(feeds)
    got = run(proto, feeds)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5, err_msg=name)
