"""Recipes usable by name: the ``*.yaml`` files in folders plugins register."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from graphkit._errors import RecipeError
from graphkit._plugins import default_plugins, load_plugins


def builtin_recipes(plugin_files: Sequence[str | os.PathLike[str]] = ()) -> dict[str, Path]:
    """Map each recipe name (file stem) to its file; the first plugin to register a name wins."""
    plugins = load_plugins(plugin_files) if plugin_files else default_plugins()
    found: dict[str, Path] = {}
    for folder in plugins.recipe_dirs():
        for path in sorted(Path(folder).glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def find_recipe(
    name: str | os.PathLike[str], plugin_files: Sequence[str | os.PathLike[str]] = ()
) -> tuple[Path, bool]:
    """A recipe argument is a file, or else the name of a built-in recipe.

    Returns:
        The recipe file, and whether it is a built-in one.

    Raises:
        RecipeError: it is neither.
    """
    path = Path(name)
    text = os.fspath(name)
    if path.is_file() or path.suffix in (".yaml", ".yml") or os.sep in text or "/" in text:
        return path, False
    found = builtin_recipes(plugin_files)
    if text in found:
        return found[text], True
    known = ", ".join(sorted(found)) or "none"
    raise RecipeError(
        f"{text}: no such recipe file, and no built-in recipe of that name (built-in: {known})"
    )


def recipe_summary(path: Path) -> str:
    """The recipe's ``description``, or its first comment line."""
    from graphkit._recipe.recipe import read_recipe_file

    try:
        data = read_recipe_file(path).data
    except RecipeError as error:
        return f"(invalid: {error})"
    if isinstance(data, dict) and isinstance(data.get("description"), str):
        return data["description"].strip().splitlines()[0]
    return ""
