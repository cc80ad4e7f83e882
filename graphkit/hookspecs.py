"""Hook specifications: everything a plugin, built-in or third-party, can provide.

A plugin is a module (or object) with functions named after these hooks and
marked with ``@graphkit.hookimpl``. graphkit finds plugins in three places:
its own built-ins, the ``graphkit`` entry-point group of installed
distributions, and plugin files named by a recipe or ``--plugin``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from graphkit._frontends import Frontend
    from graphkit._passes import Pass

hookspec = pluggy.HookspecMarker("graphkit")
hookimpl = pluggy.HookimplMarker("graphkit")


@hookspec
def graphkit_passes() -> list[Pass]:
    """Return the graph passes this plugin provides."""


@hookspec
def graphkit_frontends() -> list[Frontend]:
    """Return the importers this plugin provides, one per recipe ``source.format``."""


@hookspec
def graphkit_recipe_dirs() -> list[Path]:
    """Return folders whose ``*.yaml`` files are recipes usable by name."""
