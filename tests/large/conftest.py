"""Fixtures for models whose weights are kept as external data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.large.builders import external_model, write_external


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """``tmp_path/src/model.onnx`` with its weights in ``model.onnx.data`` beside it."""
    return write_external(external_model(), tmp_path / "src")
