"""Loading and saving through the library, as a user's script would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import graphkit
from tests.models import matmul, random_input, run


def external_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    path = folder / "m.onnx"
    onnx.save(matmul(64), path, save_as_external_data=True, location="m.data", size_threshold=0)
    return path


def test_a_model_loaded_by_relative_path_saves_after_a_change_of_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = external_model(tmp_path / "src")
    monkeypatch.chdir(tmp_path)
    model = graphkit.load(Path("src") / "m.onnx")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    graphkit.save(model, tmp_path / "out" / "m.onnx")
    x = random_input((1, 64))
    np.testing.assert_array_equal(
        run(tmp_path / "out" / "m.onnx", {"x": x})["y"], run(source, {"x": x})["y"]
    )
