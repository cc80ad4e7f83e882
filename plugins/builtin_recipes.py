"""Makes the recipes in the repository's ``recipes/`` folder usable by name."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from graphkit import hookimpl


@hookimpl
def graphkit_recipe_dirs() -> list[Path]:
    return [Path(str(files("graphkit_recipes")))]
