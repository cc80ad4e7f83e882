"""Every registered pass, built-in or from an installed plugin, as a function.

``graphkit.passes.fix_dims(model, dims={"unk__127": 1})`` validates the
parameters, runs the pass and returns the resulting model (which may be the
same object, changed in place: always use the return value).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from graphkit._plugins import default_plugins
    from graphkit._recipe.params import did_you_mean

    registry = default_plugins().passes
    if name not in registry:
        raise AttributeError(f"graphkit has no pass named {name!r}{did_you_mean(name, registry)}")
    return registry[name]


def __dir__() -> list[str]:
    from graphkit._plugins import default_plugins

    return sorted(default_plugins().passes)
