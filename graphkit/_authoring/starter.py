"""``graphkit new``: a starter recipe for a model nobody has written one for.

The model is imported exactly as a recipe would import it, so the recipe
names its real inputs, outputs and symbolic dims. The recipe is written so
that it validates and runs unchanged: ``rename_io`` maps every name to itself,
and the ``fix_dims`` block, which needs sizes only a person knows, is
commented out with every dim and the values that use it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pydantic

from graphkit._authoring.schema import SCHEMA_FILE, schema_text
from graphkit._errors import RecipeError, UsageError
from graphkit._frontends import Frontend, SourceContext
from graphkit._plugins import Plugins, load_plugins
from graphkit._recipe.params import describe_fields, format_loc, validation_problems

Echo = Callable[[str], None]

#: Plain YAML scalars that would not read back as the same text.
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~", ""}
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
#: How many values using a dim the comments list before counting the rest.
_SHOWN_USES = 6


@dataclasses.dataclass(frozen=True)
class Starter:
    """What :func:`write_starter` wrote."""

    recipe: Path
    schema: Path | None  # None when an existing, different schema file was left alone
    inputs: int
    outputs: int
    dims: int


def default_recipe_path(model: Path) -> Path:
    """``model.onnx`` -> ``model.recipe.yaml``, in the current folder."""
    return Path(f"{model.resolve().stem or 'model'}.recipe.yaml")


def parse_input(text: str) -> tuple[str, dict[str, Any]]:
    """``img=1,3,224,224:uint8`` (or ``1x3x224x224``) -> ``("img", {shape, dtype})``.

    Raises:
        UsageError: the text does not have that form.
    """
    name, sep, rest = text.partition("=")
    shape_text, _, dtype = rest.partition(":")
    dims = [d for d in re.split(r"[x,]", shape_text.strip()) if d.strip()] if sep else []
    if not name or not sep or not all(d.strip().isdigit() for d in dims):
        raise UsageError(
            f"--input {text!r}: expected NAME=SHAPE[:DTYPE], such as img=1,3,224,224:float32"
        )
    spec: dict[str, Any] = {"shape": [int(d) for d in dims]}
    if dtype:
        spec["dtype"] = dtype
    return name, spec


def write_starter(
    model: str | os.PathLike[str],
    recipe: str | os.PathLike[str] | None = None,
    *,
    format: str | None = None,
    options: Mapping[str, Any] | None = None,
    plugin_files: Sequence[str | os.PathLike[str]] = (),
    force: bool = False,
    echo: Echo | None = None,
) -> Starter:
    """Import ``model`` and write a starter recipe for it.

    Args:
        model: An ONNX file, a SavedModel folder, a checkpoint: anything a
            frontend reads.
        recipe: Where to write the recipe; ``<model stem>.recipe.yaml`` by default.
        format: The frontend; detected from the path by default.
        options: The frontend's options, as a recipe's source block gives them
            (``module``, ``inputs``, ...). A ``module`` file is taken relative
            to the current folder and written relative to the recipe.
        plugin_files: Plugin files to load; the recipe lists them.
        force: Replace an existing recipe (and schema file).
        echo: Called with each line of the report.

    Raises:
        UsageError: the recipe exists and ``force`` is not given, or the
            format's options are incomplete.
        GraphkitError: the model cannot be imported.
    """
    say = echo or (lambda line: None)
    model_path = Path(model)
    recipe_path = Path(recipe) if recipe is not None else default_recipe_path(model_path)
    if recipe_path.is_dir():
        raise UsageError(f"{recipe_path}: is a folder; give the recipe file's name with -o")
    if recipe_path.exists() and not force:
        raise UsageError(f"{recipe_path}: already exists; use --force to replace it")
    folder = recipe_path.resolve().parent
    if not folder.is_dir():
        raise UsageError(f"{recipe_path}: the folder {folder} does not exist")

    plugins = load_plugins(plugin_files)
    frontend = _frontend(model_path, format, plugins)
    given = _relative_options(dict(options or {}), folder)
    if frontend.name == "torch" and given.get("module") and "state_dict_key" not in given:
        key = _suggested_state_dict_key(model_path)
        if key:
            given["state_dict_key"] = key
    validated = _validated(frontend, given)

    say(f"import {model_path} ({frontend.name})")
    with tempfile.TemporaryDirectory(prefix="graphkit-new-") as tmp:
        context = SourceContext(recipe_dir=folder, workdir=Path(tmp))
        imported = frontend.load(model_path, validated, context)
    model_ir = imported.model
    from graphkit._inspect import real_inputs, symbolic_dims

    inputs, outputs = len(real_inputs(model_ir.graph)), len(model_ir.graph.outputs)
    dims = len(symbolic_dims(model_ir))

    source = {"path": _relative(model_path, folder), "format": frontend.name, **given}
    plugin_paths = [_relative(Path(f), folder) for f in plugin_files]
    text = starter_text(model_ir, model_path, recipe_path, frontend, source, plugin_paths)
    # The tidying passes are tried on the model, and one that fails on it is left
    # out, commented with the reason, so the recipe runs as written.
    for name, reason in _failing_passes(model_ir, plugins).items():
        say(f"  note: {name} fails on this model, so it is commented out: {reason}")
        text = text.replace(f"  - {name}\n", f"  # - {name}    # fails on this model: {reason}\n")
    _write_checked(recipe_path, text)
    say(f"wrote {recipe_path}")

    schema_path: Path | None = recipe_path.parent / SCHEMA_FILE
    wanted = schema_text(plugins)
    current = schema_path.read_text() if schema_path.is_file() else None
    if current != wanted and (current is None or force):
        _write_atomically(schema_path, wanted)
        say(f"wrote {schema_path} (the JSON Schema editors check the recipe against)")
    elif current != wanted:
        say(f"kept {schema_path}, which differs from `graphkit schema`; --force replaces it")
        schema_path = None

    return Starter(
        recipe=recipe_path, schema=schema_path, inputs=inputs, outputs=outputs, dims=dims
    )


def starter_text(
    model: Any,
    model_path: Path,
    recipe_path: Path,
    frontend: Frontend[Any],
    source: dict[str, Any],
    plugin_paths: list[str],
) -> str:
    """The recipe's text, comments included."""
    from graphkit._inspect import real_inputs, symbolic_dims, value_signature

    graph = model.graph
    inputs = real_inputs(graph)
    outputs = list(graph.outputs)
    dims = symbolic_dims(model)
    stem = model_path.resolve().stem or "model"
    name = recipe_path.name
    opset = model.opset_imports.get("")
    description = f"{model_path.name} ({frontend.name}) to ONNX: a starter recipe"
    lines = [
        f"# yaml-language-server: $schema={SCHEMA_FILE}",
        "#",
        f"# A starter recipe for {model_path.name}, written by `graphkit new`. As written it",
        "# renames and fixes nothing: edit the names and sizes below, then",
        "#",
        f"#   graphkit validate {name}",
        f"#   graphkit apply {name} --dry-run     # what it would do, without doing it",
        f"#   graphkit apply {name}",
        "#",
        f"# The model as the {frontend.name} frontend imports it"
        f" ({len(graph)} nodes, opset {opset}):",
    ]
    lines += [f"#   input  {value_signature(v)}" for v in inputs]
    lines += [f"#   output {value_signature(v)}" for v in outputs]
    lines += [
        "version: 1",
        f"name: {yaml_scalar(stem)}",
        f"description: {yaml_scalar(description)}",
    ]
    if plugin_paths:
        lines.append("# Plugin files this recipe's passes or format come from.")
        lines.append(f"plugins: {yaml_flow(plugin_paths)}")
    lines += _source_lines(frontend, source)
    lines += ["passes:"]
    lines += _rename_lines(inputs, outputs)
    lines += _fix_dims_lines(inputs, dims)
    lines += [
        "  # onnxsim's constant folding and fusions; the run fails if it would change",
        "  # the inputs or outputs.",
        "  - simplify",
        "  # Dead nodes, unused weights and Identity chains out; nodes in topological order.",
        "  - cleanup",
        "  # onnx's full checker: the run fails on an invalid model. Changes nothing.",
        "  - check",
        "# Where the result goes, relative to this file (-o overrides); a folder of its",
        "# own, so it never replaces the source.",
        f"output: {yaml_scalar(f'build/{stem}.onnx')}",
        "# The result must give the source's numbers: both run on random inputs (dims",
        "# still symbolic get size 1) and every output is compared. 'source' is the",
        f"# {_reference_words(frontend.name)}; `per_pass: true` names the first pass",
        "# that breaks parity.",
        "verify:",
        "  against: source",
        "  samples: 2",
        "  rtol: 1.0e-4",
        "  atol: 1.0e-5",
    ]
    return "\n".join(lines) + "\n"


#: The passes every starter recipe runs after rename_io, in order.
TIDY_PASSES = ("simplify", "cleanup", "check")


def _failing_passes(model: Any, plugins: Plugins) -> dict[str, str]:
    """Run the tidying passes on ``model`` (which they may change); the reason each fails."""
    failing = {}
    for name in TIDY_PASSES:
        pass_ = plugins.passes[name]
        try:
            model = pass_.run(model, pass_.validate({})).model
        except Exception as error:  # whatever stops the pass stops the recipe too
            text = " ".join(str(error).split()) or type(error).__name__
            failing[name] = text if len(text) <= 160 else text[:157] + "..."
    return failing


def _reference_words(format_name: str) -> str:
    return {
        "onnx": "source model itself, run by ONNX Runtime",
        "savedmodel": "SavedModel, run by TensorFlow",
        "torch": "torch module, run by torch",
    }.get(format_name, "source framework")


def _source_lines(frontend: Frontend[Any], source: dict[str, Any]) -> list[str]:
    lines = [
        "# The model, relative to this file (--source overrides), and its importer.",
        "source:",
    ]
    order = ["path", "format", *frontend.params.model_fields]
    for key in sorted(source, key=lambda k: order.index(k) if k in order else len(order)):
        value = source[key]
        if isinstance(value, Mapping) and value:  # one entry a line: torch's inputs, say
            lines.append(f"  {yaml_scalar(key)}:")
            lines += [f"    {yaml_scalar(k)}: {yaml_flow(v)}" for k, v in value.items()]
        else:
            lines.append(f"  {yaml_scalar(key)}: {yaml_flow(value)}")
    rest = [row for row in describe_fields(frontend.params) if row[0] not in source]
    if rest:
        lines.append(f"  # The other options of format {frontend.name}, at their defaults")
        lines.append("  # (`graphkit schema` and the README describe them):")
        for field, *_ in rest:
            value = frontend.params.model_fields[field].get_default(call_default_factory=True)
            lines.append(f"  # {field}: {yaml_flow(value)}")
    return lines


def _rename_lines(inputs: list[Any], outputs: list[Any]) -> list[str]:
    from graphkit._inspect import value_signature

    lines = [
        "  # Every input and output under its current name, mapped to itself: change",
        "  # the right-hand side to rename one (consumers and subgraphs follow).",
        "  - rename_io:",
    ]
    for kind, values in (("inputs", inputs), ("outputs", outputs)):
        if not values:
            lines.append(f"      {kind}: {{}}")
            continue
        lines.append(f"      {kind}:")
        for value in values:
            key = yaml_scalar(value.name or "")
            shape = value_signature(value).removeprefix(f"{value.name} ")
            lines.append(f"        {key}: {key}    # {shape}")
    return lines


def _fix_dims_lines(inputs: list[Any], dims: dict[str, list[str]]) -> list[str]:
    if not dims:
        return ["  # No symbolic dims: every shape is already fixed, so no fix_dims."]
    lines = [
        "  # The symbolic dims and the values that use them. Uncomment and give sizes to",
        "  # fix them: every use changes, and shapes are inferred again. `shapes:` fixes",
        "  # whole input shapes instead, which keeps working when a converter renumbers",
        "  # its dims (tf2onnx's unk__127); it names inputs as rename_io leaves them.",
        "  # - fix_dims:",
        "  #     dims:",
    ]
    for dim, users in sorted(dims.items()):
        shown = ", ".join(users[:_SHOWN_USES])
        if len(users) > _SHOWN_USES:
            shown += f", +{len(users) - _SHOWN_USES} more"
        lines.append(f"  #       {yaml_scalar(dim)}: 1    # used by {shown}")
    shapes = {
        v.name or "": [d if isinstance(d, int) else 1 for d in v.shape]
        for v in inputs
        if v.shape is not None and any(not isinstance(d, int) for d in v.shape)
    }
    if shapes:
        lines.append(f"  #     # or: shapes: {yaml_flow(shapes)}")
    return lines


def _frontend(path: Path, format_name: str | None, plugins: Plugins) -> Frontend[Any]:
    from graphkit._recipe.params import did_you_mean

    known = ", ".join(sorted(plugins.frontends))
    if format_name is not None:
        frontend = plugins.frontends.get(format_name)
        if frontend is None:
            hint = did_you_mean(format_name, plugins.frontends)
            raise UsageError(f"unknown format {format_name!r}{hint} (known: {known})")
        return frontend
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    for frontend in plugins.frontends.values():
        if frontend.detect(path):
            return frontend
    raise UsageError(f"{path}: cannot tell its format; give --format ({known})")


def _validated(frontend: Frontend[Any], options: dict[str, Any]) -> Any:
    try:
        return frontend.params.model_validate(options)
    except pydantic.ValidationError as error:
        problems = []
        for loc, message in validation_problems(error, unknown="unknown option"):
            where = format_loc(loc)
            if where == "inputs" and message == "required, but missing":
                message = (
                    "required: the model's inputs cannot be read from the file; give "
                    "--input NAME=SHAPE[:DTYPE] for each argument of forward, in order"
                )
            problems.append(f"format {frontend.name!r}: {where}: {message}")
        raise UsageError("\n".join(problems)) from None


def _relative_options(options: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A ``module`` file given from the current folder, rewritten relative to the recipe."""
    module = options.get("module")
    if isinstance(module, str):
        where, _, name = module.rpartition(":")
        if where.endswith(".py") or "/" in where or "\\" in where:
            options["module"] = f"{_relative(Path(where), folder)}:{name}"
    return options


def _suggested_state_dict_key(path: Path) -> str | None:
    """Where a torch checkpoint keeps its weights; asked of the torch frontend.

    A file it cannot tell about (a TorchScript archive, a pickled model) gets
    no key here; the import that follows explains what is wrong, if anything.
    """
    from graphkit_plugins.frontends.torch_source import find_state_dict_key

    from graphkit._errors import GraphkitError

    try:
        return find_state_dict_key(path)
    except GraphkitError:
        return None


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path.resolve(), folder)).as_posix()


def _write_checked(path: Path, text: str) -> None:
    """Write the recipe only if graphkit accepts it, atomically."""
    from graphkit._recipe.recipe import load_recipe

    staged = _stage(path, text)
    try:
        try:
            load_recipe(staged)
        except RecipeError as error:  # pragma: no cover - a fault of the text written above
            raise RecipeError(f"graphkit new wrote a recipe it cannot read: {error}") from error
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def _write_atomically(path: Path, text: str) -> None:
    staged = _stage(path, text)
    try:
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def _stage(path: Path, text: str) -> Path:
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.resolve().parent)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    return Path(name)


def yaml_scalar(value: Any) -> str:
    """One YAML scalar that reads back as ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


def yaml_flow(value: Any) -> str:
    """``value`` in YAML's flow style, on one line."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{yaml_scalar(k)}: {yaml_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(yaml_flow(v) for v in value) + "]"
    if isinstance(value, pydantic.BaseModel):
        return yaml_flow(value.model_dump())
    return yaml_scalar(value)
