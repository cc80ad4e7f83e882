"""verify's per-output tolerances and summary metrics (cosine, top-k agreement)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphkit
from graphkit._cli import main
from graphkit._errors import ParityError, RecipeError
from graphkit._verify import Tolerance, VerifyOptions, _metric
from tests.core.test_verify import SCALE_PLUGIN
from tests.models import tf2onnx_like, write


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tf2onnx_like(), tmp_path / "model.onnx")
    (tmp_path / "scale.py").write_text(SCALE_PLUGIN)
    return tmp_path


def recipe(project: Path, factor: float, verify: str) -> Path:
    """A recipe that scales the output ``out`` by ``factor``, and its verify block."""
    path = project / "recipe.yaml"
    path.write_text(
        "version: 1\nplugins: [scale.py]\nsource: {path: model.onnx}\npasses:\n"
        "  - rename_io: {outputs: {conv2d_6: out}}\n"
        f"  - scale_output: {{factor: {factor}}}\n"
        "  - fix_dims: {dims: {unk__127: 1}}\n"
        f"output: result.onnx\nverify:\n{textwrap.indent(textwrap.dedent(verify), '  ')}"
    )
    return path


def test_a_per_output_rtol_accepts_a_small_drift(project: Path, capsys) -> None:
    with pytest.raises(ParityError, match=r"\(rtol 0\.0001, atol 1e-05\)$"):
        graphkit.apply(recipe(project, 1.01, "samples: 1\n"))
    path = recipe(project, 1.01, "samples: 1\noutputs:\n  out: {rtol: 0.02}\n")
    assert main(["apply", str(path)]) == 0
    out = capsys.readouterr().out
    assert "rtol 0.0001, atol 1e-05 (1 with their own)\n" in out
    assert "  out: max abs err" in out


def test_a_per_output_rtol_too_tight_names_its_own_tolerance(project: Path) -> None:
    path = recipe(project, 1.01, "samples: 1\noutputs:\n  out: {rtol: 0.001, atol: 0}\n")
    with pytest.raises(ParityError, match=r"\(rtol 0\.001, atol 0\)$"):
        graphkit.apply(path)


def test_the_cosine_metric_is_printed_and_checked(project: Path, capsys) -> None:
    path = recipe(project, 1.01, "samples: 2\natol: 0.1\nmetric: cosine\nmin: 0.99\n")
    assert main(["apply", str(path)]) == 0
    out = capsys.readouterr().out
    assert "rtol 0.0001, atol 0.1, cosine >= 0.99\n" in out
    assert ", cosine 1  ok\n" in out


def test_a_cosine_below_min_fails_even_within_atol(project: Path) -> None:
    """A sign flip keeps every element within a wide atol but points the other way."""
    path = recipe(project, -1.0, "samples: 1\natol: 10\nmetric: cosine\nmin: 0.99\n")
    with pytest.raises(ParityError, match=r"cosine -1 \(rtol 0\.0001, atol 10, cosine >= 0\.99\)"):
        graphkit.apply(path)


def test_a_metric_for_one_output_only(project: Path, capsys) -> None:
    verify = "samples: 1\noutputs:\n  out: {atol: 1, metric: cosine, min: 0.999}\n"
    assert main(["apply", str(recipe(project, 1.5, verify))]) == 0
    assert "cosine 1  ok" in capsys.readouterr().out


def test_an_unknown_output_in_outputs_is_named(project: Path) -> None:
    path = recipe(project, 1.0, "samples: 1\noutputs:\n  conv2d_6: {rtol: 0.1}\n")
    with pytest.raises(
        ParityError, match=r"verify.outputs: no output named 'conv2d_6' \(outputs: 'out'\)"
    ):
        graphkit.apply(path)


@pytest.mark.parametrize(
    ("verify", "message"),
    [
        ({"metric": "cosine"}, "metric cosine needs a 'min'"),
        ({"min": 0.9}, "min needs a 'metric'"),
        ({"outputs": {"y": {"metric": "top_k"}}}, "outputs.y: metric top_k needs a 'min'"),
        ({"metric": "psnr", "min": 1}, "metric"),
        ({"k": 0, "metric": "top_k", "min": 1}, "greater than or equal to 1"),
    ],
    ids=["metric-without-min", "min-without-metric", "output-metric", "unknown", "k"],
)
def test_metric_settings_are_checked_with_the_recipe(verify: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        graphkit.load_recipe({"version": 1, "passes": [], "verify": verify})


def test_top_k_agreement() -> None:
    want = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    got = np.array([[0.1, 0.6, 0.3], [0.3, 0.5, 0.2]])  # row 2's argmax moved
    top1 = Tolerance(0, 0, "top_k", 0.5, k=1)
    assert _metric(top1, [want], [got]) == 0.5
    top2 = Tolerance(0, 0, "top_k", 0.5, k=2)
    assert _metric(top2, [want], [got]) == 1.0  # the two highest are the same two classes
    with pytest.raises(ParityError, match="needs outputs with at least 4 classes"):
        _metric(Tolerance(0, 0, "top_k", 0.5, k=4), [want], [got])


def test_cosine_is_the_lowest_over_input_sets() -> None:
    same = np.array([1.0, 2.0])
    cosine = Tolerance(0, 0, "cosine", 0.9)
    assert _metric(cosine, [same, same], [same, np.array([2.0, -1.0])]) == 0.0
    zeros = np.zeros(2)
    assert _metric(cosine, [zeros], [zeros]) == 1.0
    assert _metric(cosine, [zeros], [same]) == 0.0


def test_per_output_values_fall_back_to_the_block() -> None:
    options = VerifyOptions.model_validate(
        {"rtol": 0.1, "metric": "cosine", "min": 0.9, "outputs": {"a": {"atol": 1.0}}}
    )
    assert options.tolerance("a") == Tolerance(0.1, 1.0, "cosine", 0.9, 1)
    assert options.tolerance("b") == Tolerance(0.1, 1e-5, "cosine", 0.9, 1)
