"""The wheel ships the core, the built-in plugins and the built-in recipes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a clean copy: setuptools reuses build/ in the source tree, where a
    # file deleted from the repository could linger and hide a packaging mistake.
    source = tmp_path_factory.mktemp("src") / "graphkit"
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "benchmarks"
    )
    shutil.copytree(ROOT, source, ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(source)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    [built] = out.glob("graphkit-*.whl")
    return built


def test_the_wheel_contains_plugins_and_recipes(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "graphkit_plugins/passes/rename_io.py" in names
    for plugin in ROOT.joinpath("plugins").rglob("*.py"):
        relative = plugin.relative_to(ROOT / "plugins").as_posix()
        assert f"graphkit_plugins/{relative}" in names
    for recipe in ROOT.joinpath("recipes").glob("*.yaml"):
        assert f"graphkit_recipes/{recipe.name}" in names
    for module in ROOT.joinpath("graphkit").rglob("*.py"):
        assert module.relative_to(ROOT).as_posix() in names
    assert not any(n.startswith("tests/") for n in names)
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "graphkit = graphkit._cli:run" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_installed_wheel_lists_its_passes(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         str(wheel)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import graphkit, graphkit_plugins; print(graphkit.__file__, graphkit_plugins.__file__)"
    where = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert where.stdout.split() == [
        str(target / "graphkit" / "__init__.py"),
        str(target / "graphkit_plugins" / "__init__.py"),
    ]
    listing = subprocess.run(
        [sys.executable, "-m", "graphkit", "passes"], env=env, cwd=tmp_path, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    for name in ("rename_io", "fix_dims", "simplify", "set_opset", "cleanup", "check"):
        assert f"{name} " in listing.stdout
