"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from graphkit._plugins import DISABLE_AUTOLOAD_ENV


@pytest.fixture
def in_other_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from an unrelated working folder, so paths relative to it would break."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return elsewhere


@pytest.fixture(autouse=True)
def _no_stray_entry_point_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only built-in plugins unless they ask for entry points."""
    if os.environ.get("GRAPHKIT_TEST_ENTRY_POINTS") != "1":
        monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
