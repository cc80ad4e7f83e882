"""Finding plugins and collecting what they register.

Built-in plugins are registered exactly like third-party ones; only the place
they are found differs.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import importlib.util
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from graphkit import hookspecs
from graphkit._errors import PluginError
from graphkit._frontends import Frontend
from graphkit._passes import Pass
from graphkit._pyfiles import FileImportError, import_python_file

ENTRY_POINT_GROUP = "graphkit"
DISABLE_AUTOLOAD_ENV = "GRAPHKIT_DISABLE_PLUGIN_AUTOLOAD"

#: The plugins graphkit ships, registered before any other.
BUILTIN_PLUGINS = (
    "graphkit_plugins.frontends.onnx_source",
    "graphkit_plugins.frontends.torch_source",
    "graphkit_plugins.frontends.savedmodel",
    "graphkit_plugins.passes.rename_io",
    "graphkit_plugins.passes.fix_dims",
    "graphkit_plugins.passes.set_inputs",
    "graphkit_plugins.passes.simplify",
    "graphkit_plugins.passes.set_opset",
    "graphkit_plugins.passes.infer_shapes",
    "graphkit_plugins.passes.check",
    "graphkit_plugins.passes.cleanup",
    "graphkit_plugins.passes.set_metadata",
    "graphkit_plugins.passes.convert_float",
    "graphkit_plugins.passes.quantize",
    "graphkit_plugins.passes.extract",
    "graphkit_plugins.builtin_recipes",
)


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """Where a loaded plugin came from."""

    name: str
    kind: str  # "builtin", "entry point" or "file"
    location: str
    passes: tuple[str, ...]
    frontends: tuple[str, ...]


class Plugins:
    """A set of loaded plugins and the passes, frontends and recipes they provide."""

    def __init__(self, manager: pluggy.PluginManager, kinds: dict[str, tuple[str, str]]) -> None:
        self.manager = manager
        self._kinds = kinds
        self.passes: dict[str, Pass[Any]] = {}
        self.frontends: dict[str, Frontend[Any]] = {}
        self.owner: dict[tuple[str, str], str] = {}  # ("pass", name) -> plugin name
        self._collect("pass", manager.hook.graphkit_passes, Pass, self.passes)
        self._collect("frontend", manager.hook.graphkit_frontends, Frontend, self.frontends)

    def _collect(self, what: str, hook: Any, kind: type, into: dict[str, Any]) -> None:
        for impl in hook.get_hookimpls():  # in registration order
            try:
                items = impl.function()
            except Exception as error:
                raise PluginError(
                    f"plugin {impl.plugin_name!r}: {hook.name} failed: {error}"
                ) from error
            for item in items or ():
                if not isinstance(item, kind):
                    raise PluginError(
                        f"plugin {impl.plugin_name!r}: {hook.name} returned {item!r}, "
                        f"not a graphkit.{kind.__name__}"
                    )
                first = self.owner.get((what, item.name))
                if first is not None:
                    raise PluginError(
                        f"{what} {item.name!r} is registered by two plugins: "
                        f"{first!r} and {impl.plugin_name!r}"
                    )
                self.owner[(what, item.name)] = impl.plugin_name
                into[item.name] = item

    def recipe_dirs(self) -> list[Path]:
        dirs: list[Path] = []
        for found in reversed(self.manager.hook.graphkit_recipe_dirs()):
            dirs.extend(Path(d) for d in found)
        return dirs

    def describe(self) -> list[PluginInfo]:
        """Every loaded plugin, in registration order."""
        infos = []
        for name, plugin in self.manager.list_name_plugin():
            kind, location = self._kinds.get(name, ("registered", _module_location(plugin)))
            infos.append(
                PluginInfo(
                    name=name,
                    kind=kind,
                    location=location,
                    passes=self._owned("pass", name),
                    frontends=self._owned("frontend", name),
                )
            )
        return infos

    def _owned(self, what: str, plugin: str) -> tuple[str, ...]:
        return tuple(n for (w, n), owner in self.owner.items() if w == what and owner == plugin)


def load_plugins(
    files: Iterable[str | os.PathLike[str]] = (), *, autoload: bool | None = None
) -> Plugins:
    """Load the built-in plugins, installed entry-point plugins and plugin files.

    Args:
        files: Python files to load as plugins, in order.
        autoload: Whether to load entry-point plugins; by default yes, unless
            the ``GRAPHKIT_DISABLE_PLUGIN_AUTOLOAD`` environment variable is set.

    Raises:
        PluginError: a plugin cannot be imported, has a hook graphkit does not
            know, or registers a name another plugin already has.
    """
    manager = pluggy.PluginManager("graphkit")
    manager.add_hookspecs(hookspecs)
    kinds: dict[str, tuple[str, str]] = {}

    for module_name in BUILTIN_PLUGINS:
        module = importlib.import_module(module_name)
        _register(manager, module, module_name)
        kinds[module_name] = ("builtin", _module_location(module))

    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if autoload:
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if manager.get_plugin(entry_point.name) is not None or manager.is_blocked(
                entry_point.name
            ):
                continue
            try:
                plugin = entry_point.load()
            except Exception as error:
                raise PluginError(
                    f"entry point {entry_point.name!r} ({entry_point.value}) cannot be loaded: "
                    f"{type(error).__name__}: {error}"
                ) from error
            _register(manager, plugin, entry_point.name)
            dist = entry_point.dist
            origin = f"{dist.name} {dist.version}" if dist is not None else entry_point.value
            kinds[entry_point.name] = ("entry point", f"{origin} ({entry_point.value})")

    for file in _unique_paths(files):
        name = str(file)
        if manager.get_plugin(name) is None:
            _register(manager, import_plugin_file(file), name)
            kinds[name] = ("file", name)

    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        raise PluginError(f"plugin {error.plugin!r}: {error}") from error
    return Plugins(manager, kinds)


@functools.cache
def default_plugins() -> Plugins:
    """The plugins every library call sees: built-ins and installed entry points."""
    return load_plugins()


def import_plugin_file(path: Path) -> ModuleType:
    """Import a Python file as a plugin module.

    Raises:
        PluginError: the file is missing or raises while being imported.
    """
    try:
        return import_python_file(path, "graphkit_plugin_file")
    except FileImportError as problem:
        raised = problem.raised
        if raised is not None:
            reason = f"plugin failed to import: {type(raised).__name__}: {raised}"
        else:
            reason = "plugin file not found" if problem.missing else str(problem)
        raise PluginError(f"{path}: {reason}") from raised


def _register(manager: pluggy.PluginManager, plugin: object, name: str) -> None:
    try:
        manager.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as error:
        raise PluginError(f"plugin {name!r}: {error}") from error


def _unique_paths(files: Iterable[str | os.PathLike[str]]) -> Sequence[Path]:
    seen: dict[Path, None] = {}
    for file in files:
        seen.setdefault(Path(file).resolve(), None)
    return list(seen)


def _module_location(plugin: object) -> str:
    return str(getattr(plugin, "__file__", None) or getattr(plugin, "__name__", repr(plugin)))
