"""Recipes: reading, validating and resolving them into steps ready to run.

Validation happens in two stages, as in pre-commit and llm: first the recipe's
own structure, then each pass's parameters against that pass's schema. Every
problem found is reported at once, each with ``FILE:LINE:COL: path: message``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic

from graphkit._errors import RecipeError
from graphkit._frontends import Frontend
from graphkit._passes import Pass
from graphkit._plugins import Plugins, default_plugins, load_plugins
from graphkit._recipe.index import find_recipe
from graphkit._recipe.params import (
    Params,
    SaveOptions,
    did_you_mean,
    format_loc,
    validation_problems,
)
from graphkit._recipe.safe_yaml import MAX_BYTES, Located, load_yaml
from graphkit._verify import VerifyOptions


class _RecipeSchema(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    # The descriptions are what `graphkit schema` gives editors.
    version: Literal[1] = pydantic.Field(description="The recipe format version: 1.")
    name: str | None = pydantic.Field(None, description="A name; the file's stem by default.")
    description: str | None = pydantic.Field(
        None, description="What the recipe does; `graphkit recipes` shows its first line."
    )
    plugins: list[str] = pydantic.Field(
        [], description="Plugin files (Python), relative to the recipe, whose passes it uses."
    )
    source: dict[str, Any] | None = pydantic.Field(
        None, description="Where the model comes from: path, format and the format's options."
    )
    passes: list[Any] = pydantic.Field(
        [], description="The passes, in order: a name, or {name: parameters}."
    )
    output: Annotated[str, pydantic.Field(min_length=1)] | None = pydantic.Field(
        None, description="Where the result is written, relative to the recipe; -o overrides it."
    )
    save: dict[str, Any] | None = pydantic.Field(
        None, description="How the output is written (external data, shards)."
    )
    verify: dict[str, Any] | None = pydantic.Field(
        None, description="Parity of the result with the source, checked before writing it."
    )

    @pydantic.field_validator("version", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        # Literal[1] takes True, since True == 1 in Python: refuse `version: true`.
        if isinstance(value, bool):
            raise ValueError("Input should be 1")
        return value


@dataclasses.dataclass(frozen=True)
class Step:
    """One pass of a recipe, with its validated parameters."""

    index: int
    pass_: Pass[Any]
    params: Params
    place: str  # "recipe.yaml:14:5"

    @property
    def label(self) -> str:
        return f"passes[{self.index}] {self.pass_.name}"


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a recipe's model comes from, and which frontend imports it."""

    path: Path
    frontend: Frontend[Any]
    options: Params


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A validated recipe, its paths resolved against its folder."""

    file: str
    base_dir: Path
    name: str
    source: Source | None
    steps: list[Step]
    output: Path | None
    save: SaveOptions
    plugins: Plugins
    verify: VerifyOptions | None = None
    verify_inputs: Path | None = None  # verify.inputs, resolved against the recipe's folder
    # Set once warm_up has run (a list: the recipe itself is frozen).
    _warmed: list[bool] = dataclasses.field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def warm_up(self) -> None:
        """Start what the passes will need, once, so it overlaps whatever runs next.

        That is onnx's helper process (most passes call onnx's C++ tools
        there) and each pass's own warm-up (see :attr:`graphkit.Pass.warm_up`).
        Call it as early as possible: it imports no framework, not even onnx.
        """
        if self._warmed or not self.steps:
            return
        self._warmed.append(True)
        from graphkit import _onnx_tools

        _onnx_tools.prestart()
        for step in self.steps:
            if step.pass_.warm_up is None:
                continue
            # Only a head start: a pass whose warm-up fails meets the problem again
            # when it runs, and reports it then.
            with contextlib.suppress(Exception):
                step.pass_.warm_up(step.params)


class _Problems:
    """Collects ``FILE:LINE:COL: path: message`` lines, in the order of the file."""

    def __init__(self, file: str, located: Located | None) -> None:
        self.file = file
        self.located = located
        self._found: list[tuple[tuple[int, int], str]] = []

    def add(self, path: tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        place, position = self.file, (0, 0)
        if self.located is not None:
            position = self.located.where(path, key=key)
            place = f"{self.file}:{position[0]}:{position[1]}"
        self._found.append((position, f"{place}: {format_loc(path) or '(recipe)'}: {message}"))

    @property
    def lines(self) -> list[str]:
        return [line for _, line in sorted(self._found, key=lambda found: found[0])]

    def place(self, path: tuple[str | int, ...]) -> str:
        if self.located is None:
            return f"{self.file}: {format_loc(path)}"
        line, col = self.located.where(path)
        return f"{self.file}:{line}:{col}"


def read_recipe_file(path: str | os.PathLike[str]) -> Located:
    """Read and parse a recipe file, without validating it."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            # Read no more than a recipe may hold: the path may be /dev/zero or a FIFO.
            raw = file.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except IsADirectoryError:
        raise RecipeError(f"{path}: is a folder, not a recipe file") from None
    except OSError as error:
        raise RecipeError(f"{path}: cannot read: {error.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise RecipeError(f"{path}: larger than {MAX_BYTES // 1024} KiB; not a recipe")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not a text file (invalid UTF-8)") from None
    return load_yaml(text, str(path))


def load_recipe(
    recipe: str | os.PathLike[str] | Mapping[str, Any],
    *,
    plugin_files: Sequence[str | os.PathLike[str]] = (),
    source: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Recipe:
    """Read and validate a recipe.

    Args:
        recipe: A recipe file, the name of a built-in recipe, or the recipe
            itself as a dict.
        plugin_files: More plugin files to load (the CLI's ``--plugin``).
        source: Overrides ``source.path``.
        output: Overrides ``output``.
        base_dir: The folder relative paths are resolved against. By default
            a recipe file's own folder; for a built-in recipe (which lives
            inside the installed package) and a dict, the current folder.

    Raises:
        RecipeError: listing every problem found.
    """
    if isinstance(recipe, Mapping):
        file = "<recipe>"
        located = Located(dict(recipe), {}, {})
        folder = Path(base_dir or ".").resolve()
        problems = _Problems(file, None)
    else:
        path, builtin = find_recipe(recipe, plugin_files)
        file = os.fspath(path)
        located = read_recipe_file(path)
        folder = Path(base_dir or ("." if builtin else path.parent)).resolve()
        problems = _Problems(file, located)

    data = located.data
    if not isinstance(data, dict):
        problems.add((), "a recipe must be a mapping with at least 'version' and 'passes'")
        raise RecipeError(problems.lines)

    try:
        schema = _RecipeSchema.model_validate(data)
    except pydantic.ValidationError as error:
        for loc, message in validation_problems(error, known=_RecipeSchema.model_fields):
            problems.add(loc, message, key=message.startswith("unknown"))
        raise RecipeError(problems.lines) from None

    files = []
    for index, name in enumerate(schema.plugins):
        plugin_path = folder / name
        if not plugin_path.is_file():
            problems.add(("plugins", index), f"plugin file not found: {name} (next to the recipe)")
        files.append(plugin_path)
    files.extend(Path(f) for f in plugin_files)
    if problems.lines:
        raise RecipeError(problems.lines)
    plugins = load_plugins(files) if files else default_plugins()

    steps = [
        step
        for index, item in enumerate(schema.passes)
        if (step := _step(index, item, plugins, problems, folder)) is not None
    ]
    resolved_source = _source(schema.source, source, folder, plugins, problems)
    save = _options(SaveOptions, "save", schema.save, problems) or SaveOptions()
    verify = (
        _options(VerifyOptions, "verify", schema.verify, problems)
        if schema.verify is not None
        else None
    )
    if problems.lines:
        raise RecipeError(problems.lines)

    out = (
        Path(output) if output is not None else (folder / schema.output if schema.output else None)
    )
    return Recipe(
        file=file,
        base_dir=folder,
        name=schema.name or Path(file).stem,
        source=resolved_source,
        steps=steps,
        output=out,
        save=save,
        plugins=plugins,
        verify=verify,
        verify_inputs=folder / verify.inputs if verify and verify.inputs else None,
    )


def _step(
    index: int, item: Any, plugins: Plugins, problems: _Problems, folder: Path
) -> Step | None:
    here: tuple[str | int, ...] = ("passes", index)
    if isinstance(item, str):
        name, params = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        [(name, params)] = item.items()
        if params is None:
            params = {}
        if not isinstance(name, str):
            problems.add(here, f"a pass name must be text, not {name!r}")
            return None
        if not isinstance(params, dict):
            problems.add((*here, name), "parameters must be a mapping of names to values")
            return None
    else:
        problems.add(here, "a pass is a name, or a mapping of one name to its parameters")
        return None

    pass_ = plugins.passes.get(name)
    if pass_ is None:
        problems.add(here, f"unknown pass {name!r}{did_you_mean(name, plugins.passes)}")
        return None
    try:
        # Paths among the parameters (graphkit.RecipePath) are relative to the recipe.
        validated = pass_.params.model_validate(params, context={"recipe_dir": folder})
    except pydantic.ValidationError as error:
        fields = pass_.params.model_fields
        for loc, message in validation_problems(error, unknown="unknown parameter", known=fields):
            if message.startswith("unknown"):
                listing = ", ".join(fields) or "none"
                problems.add((*here, name, *loc), f"{message} (parameters: {listing})", key=True)
            else:
                problems.add((*here, name, *loc), message)
        return None
    return Step(index=index, pass_=pass_, params=validated, place=problems.place((*here,)))


def _source(
    block: dict[str, Any] | None,
    override: str | os.PathLike[str] | None,
    folder: Path,
    plugins: Plugins,
    problems: _Problems,
) -> Source | None:
    block = dict(block or {})
    here: tuple[str | int, ...] = ("source",)
    raw_path = block.pop("path", None)
    format_name = block.pop("format", None)
    if raw_path is not None and (not isinstance(raw_path, str) or not raw_path):
        problems.add((*here, "path"), "must be a path written as text")
        return None
    if format_name is not None and not isinstance(format_name, str):
        problems.add((*here, "format"), "must be a format name written as text")
        return None
    if override is not None:
        path = Path(override)
    elif raw_path is not None:
        path = folder / raw_path
    else:
        if block or format_name:
            problems.add(here, "source.path is missing (give it here or with --source)")
        return None

    if format_name is None:
        detected = [f for f in plugins.frontends.values() if f.detect(path)]
        if not detected:
            known = ", ".join(sorted(plugins.frontends))
            problems.add(here, f"cannot tell the format of {path}; set source.format ({known})")
            return None
        frontend = detected[0]
    else:
        frontend = plugins.frontends.get(format_name)
        if frontend is None:
            known = ", ".join(sorted(plugins.frontends))
            hint = did_you_mean(format_name, plugins.frontends)
            problems.add(
                (*here, "format"), f"unknown format {format_name!r}{hint} (known: {known})"
            )
            return None
    try:
        options = frontend.params.model_validate(block)
    except pydantic.ValidationError as error:
        allowed = ["path", "format", *frontend.params.model_fields]
        unknown = f"unknown key for format {frontend.name!r}"
        for loc, message in validation_problems(error, unknown=unknown, known=allowed):
            if message.startswith("unknown"):
                message += f" (keys: {', '.join(allowed)})"
            problems.add((*here, *loc), message, key=message.startswith("unknown"))
        return None
    return Source(path=path, frontend=frontend, options=options)


def _options(
    schema: type[Params], key: str, block: dict[str, Any] | None, problems: _Problems
) -> Any:
    try:
        return schema.model_validate(block or {})
    except pydantic.ValidationError as error:
        for loc, message in validation_problems(error, known=schema.model_fields):
            problems.add((key, *loc), message, key=message.startswith("unknown"))
        return None
