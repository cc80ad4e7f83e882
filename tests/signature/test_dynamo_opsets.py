"""The example recipes: the dynamo exporter's opset-18 export lowered to 17 and 13, verified."""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

import graphkit
from graphkit._cli import main
from tests.models import run

torch = pytest.importorskip("torch")

from graphkit_plugins.signature.siamese import (  # noqa: E402  (needs torch)
    SiameseModel,
    build_verification_checkpoint,
)

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_verification_checkpoint(
        tmp_path_factory.mktemp("downloads") / "convnet_best_loss.pt"
    )


@pytest.mark.slow
@pytest.mark.parametrize("opset", [17, 13])
def test_the_example_recipe_lowers_the_dynamo_export_and_verifies(
    opset: int, checkpoint: Path, tmp_path: Path
) -> None:
    # setup
    recipe = EXAMPLES / f"signature-verification-opset{opset}.yaml"
    loaded = graphkit.load_recipe(recipe)
    assert loaded.source is not None
    options = loaded.source.options.model_dump()
    assert (options["exporter"], options["opset"]) == ("dynamo", 18)
    result = tmp_path / "model.onnx"
    out = io.StringIO()
    # execute
    with contextlib.redirect_stdout(out):
        code = main(["apply", str(recipe), "--source", str(checkpoint), "-o", str(result)])
    # assert: the recipe's verify step passed against torch
    assert code == 0, out.getvalue()
    text = out.getvalue()
    assert "note: exported with the dynamo exporter at opset 18" in text
    assert "note: expanded into their function bodies: Mish x14" in text
    assert "verify against source: 2 input sets" in text
    assert "FAIL" not in text
    # assert: the model is valid at the target opset, with Mish expanded
    model = onnx.load(result)
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain: o.version for o in model.opset_import} == {"": opset}
    ops = Counter(node.op_type for node in model.graph.node)
    assert "Mish" not in ops
    assert ops["Softplus"] == ops["Tanh"] == 14
    # assert: ONNX Runtime gives torch's numbers, checked here as well as by verify
    state = torch.load(checkpoint, weights_only=True)["model"]
    torch_model = SiameseModel()
    torch_model.load_state_dict(state)
    torch_model.eval()
    rng = np.random.default_rng(1)
    feeds = {
        name: rng.integers(0, 256, (150, 220), dtype=np.uint8) for name in ("input0", "input1")
    }
    with torch.no_grad():
        expected = torch_model(*(torch.from_numpy(feeds[n]) for n in ("input0", "input1")))
    got = run(model, feeds)
    assert list(got) == ["output0", "output1", "output2"]
    for name, want in zip(got, expected, strict=True):
        np.testing.assert_allclose(got[name], want.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
