"""graphkit: declarative ONNX graph surgery with plugin passes.

Library use::

    import graphkit

    model = graphkit.load("model.onnx")
    model = graphkit.passes.rename_io(model, inputs={"input_1": "input"})
    model = graphkit.passes.fix_dims(model, dims={"unk__127": 1})
    graphkit.save(model, "out.onnx")

    graphkit.apply("recipe.yaml")  # or a dict

What a plugin needs (``hookimpl``, ``graph_pass``, ``Params``, ...) imports
quickly; the model machinery (``load``, ``save``, ``apply``) is imported on
first use, so ``graphkit --help`` and ``graphkit passes`` start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from graphkit import passes
from graphkit._errors import (
    GraphkitError,
    ModelError,
    ParityError,
    PassError,
    PluginError,
    RecipeError,
    UsageError,
)
from graphkit._frontends import Frontend, Imported, SourceContext, frontend
from graphkit._passes import Pass, PassResult, graph_pass
from graphkit._recipe.params import NoParams, Params, RecipePath, SaveOptions
from graphkit.hookspecs import hookimpl

if TYPE_CHECKING:
    from graphkit._modelio.load import load
    from graphkit._modelio.save import save
    from graphkit._passes import IOAdapter
    from graphkit._recipe.recipe import Recipe, load_recipe
    from graphkit._runner import ApplyResult, apply

_LAZY = {
    "IOAdapter": "graphkit._passes",
    "load": "graphkit._modelio.load",
    "save": "graphkit._modelio.save",
    "Recipe": "graphkit._recipe.recipe",
    "load_recipe": "graphkit._recipe.recipe",
    "ApplyResult": "graphkit._runner",
    "apply": "graphkit._runner",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'graphkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ApplyResult",
    "Frontend",
    "GraphkitError",
    "IOAdapter",
    "Imported",
    "ModelError",
    "NoParams",
    "Params",
    "ParityError",
    "Pass",
    "PassError",
    "PassResult",
    "PluginError",
    "Recipe",
    "RecipeError",
    "RecipePath",
    "SaveOptions",
    "SourceContext",
    "UsageError",
    "apply",
    "frontend",
    "graph_pass",
    "hookimpl",
    "load",
    "load_recipe",
    "passes",
    "save",
]
