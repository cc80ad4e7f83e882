"""Work started ahead of a run: passes' warm-ups and the helper processes' imports."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from graphkit import _onnx_tools
from graphkit._recipe.recipe import load_recipe
from tests.models import tf2onnx_like, write

COUNTING_PASS = """
    import graphkit
    from pydantic import Field

    CALLS = []

    def _warm(params):
        CALLS.append(params.label)
        if params.label == "fails":
            raise RuntimeError("no head start today")

    class Params(graphkit.Params):
        label: str = Field("", description="Told to the warm-up.")

    @graphkit.graph_pass("counted", Params, warm_up=_warm)
    def counted(model, params):
        '''Do nothing, after a warm-up.'''
        return graphkit.PassResult(model, modified=False)

    @graphkit.hookimpl
    def graphkit_passes():
        return [counted]
"""


def _recipe(folder: Path, labels: list[str]):
    write(tf2onnx_like(size=8), folder / "model.onnx")
    (folder / "counting.py").write_text(textwrap.dedent(COUNTING_PASS))
    passes = [{"counted": {"label": label}} for label in labels]
    document = {"version": 1, "source": {"path": "model.onnx"}, "passes": passes}
    document["plugins"] = ["counting.py"]
    (folder / "recipe.yaml").write_text(yaml.safe_dump(document))
    return load_recipe(folder / "recipe.yaml")


def test_each_step_warms_up_once_with_its_parameters(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, ["first", "second"])
    recipe.warm_up()
    recipe.warm_up()
    calls = recipe.steps[0].pass_.warm_up.__globals__["CALLS"]
    assert calls == ["first", "second"]


def test_a_failing_warm_up_does_not_stop_the_run(tmp_path: Path) -> None:
    """The pass meets the problem again when it runs and reports it then."""
    import graphkit

    recipe = _recipe(tmp_path, ["fails", "after"])
    result = graphkit.apply(recipe)
    assert recipe.steps[0].pass_.warm_up.__globals__["CALLS"] == ["fails", "after"]
    assert [report.step.pass_.name for report in result.steps] == ["counted", "counted"]


# -- the helper's imports ------------------------------------------------------------------------

# A module standing in for onnxsim 0.8, which imports torch when it is imported, for
# features simplify never uses; it records whether torch came in.
OPTIONAL_TORCH = """
from pathlib import Path
try:
    import torch
    found = "torch"
except ImportError:
    found = "no torch"
Path(__file__).with_suffix(".seen").write_text(found)
"""

# One that cannot be imported without torch.
NEEDS_TORCH = """
from pathlib import Path
import torch
Path(__file__).with_suffix(".seen").write_text("torch")
"""


@pytest.mark.parametrize(
    ("body", "seen"),
    [(OPTIONAL_TORCH, "no torch"), (NEEDS_TORCH, "torch")],
    ids=["torch-kept-out", "torch-given-when-needed"],
)
def test_a_preloaded_module_imports_without_torch_when_it_can(
    body: str, seen: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    (tmp_path / "fake_simplifier.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    worker = _onnx_tools._Worker(preload=("fake_simplifier",))
    try:
        # The helper imports what it preloads before it reads its first request.
        worker.call("check_model", {}, tf2onnx_like(size=8))
    finally:
        worker.close()
    assert (tmp_path / "fake_simplifier.seen").read_text() == seen


def test_a_preload_that_fails_leaves_the_helper_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "broken_simplifier.py").write_text("raise ImportError('not today')\n")
    worker = _onnx_tools._Worker(preload=("broken_simplifier",))
    try:
        worker.call("check_model", {}, tf2onnx_like(size=8))
    finally:
        worker.close()


def test_listing_the_tools_module_does_not_import_onnx() -> None:
    """The CLI starts the helpers before it imports onnx, so their imports run beside its own."""
    import subprocess
    import sys

    code = "import sys, graphkit._onnx_tools; print('onnx' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"


def test_an_unknown_tool_is_refused() -> None:
    with pytest.raises(ValueError, match="no helper runs 'fold'"):
        _onnx_tools.prestart("fold")
