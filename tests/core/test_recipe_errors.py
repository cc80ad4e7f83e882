"""Golden tests of the exact error text for invalid recipes.

Each ``golden/NAME.yaml`` is validated through the CLI; its stderr must equal
``golden/NAME.err`` and the exit code must be the invalid-recipe code.
Regenerate the expectations after a deliberate wording change with
``GRAPHKIT_UPDATE_GOLDEN=1 pytest tests/core/test_recipe_errors.py`` and
review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from graphkit._cli import main
from graphkit._errors import RecipeError

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml"))


@pytest.mark.parametrize("case", CASES)
def test_error_text(case: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(GOLDEN)
    code = main(["validate", f"{case}.yaml"])
    captured = capsys.readouterr()
    expected = GOLDEN / f"{case}.err"
    if os.environ.get("GRAPHKIT_UPDATE_GOLDEN") == "1":
        expected.write_text(captured.err)
    assert code == RecipeError.exit_code
    assert captured.out == ""
    assert captured.err == expected.read_text()


def test_every_case_has_its_expectation() -> None:
    assert CASES, "no golden cases found"
    assert sorted(p.stem for p in GOLDEN.glob("*.err")) == CASES
