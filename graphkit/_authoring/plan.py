"""``graphkit apply --dry-run``: what a recipe would do, worked out without doing it.

An ONNX source is read without its weights; a framework source is only
described (its import would load TensorFlow or torch and run the model).
What each pass would touch is shown where the parameters and the source's
graph tell it: the names ``rename_io`` changes, the dims ``fix_dims`` sets and
the values that use them. Nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from graphkit._authoring.starter import yaml_flow
from graphkit._errors import GraphkitError, ModelError, PassError, RecipeError
from graphkit._recipe.recipe import Recipe, Step, load_recipe

Echo = Callable[[str], None]

#: Passes that keep the names of inputs, outputs and symbolic dims, so the plan
#: can follow names past them.
_KEEP_NAMES = {"simplify", "cleanup", "check", "set_opset", "set_metadata", "infer_shapes"}
#: Frontends whose source the dry run reads (the graph only).
_READ_FORMATS = {"onnx"}
_SHOWN_USES = 8


class _Graph:
    """The names of the source's interface and dims, followed through the passes."""

    def __init__(self, model: Any) -> None:
        from graphkit._inspect import real_inputs, symbolic_dims

        self.inputs = [v.name or "" for v in real_inputs(model.graph)]
        self.outputs = [v.name or "" for v in model.graph.outputs]
        self.dims = symbolic_dims(model)

    def rename(self, mapping: Mapping[str, str], kind: str) -> None:
        names = self.inputs if kind == "inputs" else self.outputs
        names[:] = [mapping.get(n, n) for n in names]
        for dim, users in self.dims.items():
            self.dims[dim] = [mapping.get(n, n) for n in users]


def dry_run(
    recipe: str | os.PathLike[str] | Mapping[str, Any] | Recipe,
    *,
    output: str | os.PathLike[str] | None = None,
    source: str | os.PathLike[str] | None = None,
    plugins: Sequence[str | os.PathLike[str]] = (),
    echo: Echo = print,
) -> None:
    """Validate a recipe and print its plan.

    Raises:
        RecipeError: the recipe is invalid or has no source.
        ModelError: the source is missing or cannot be read.
        PassError: a pass's parameters do not fit the source (names or dims
            it does not have).
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, plugin_files=plugins, source=source, output=output)
    problems: list[tuple[type[GraphkitError], str]] = []
    echo(f"plan for {recipe.file} (dry run: no weights read, no framework run, nothing written)")

    graph, model = _source(recipe, echo, problems)
    echo(f"passes: {len(recipe.steps)}" if recipe.steps else "passes: none")
    for step in recipe.steps:
        echo(f"  [{step.index + 1}/{len(recipe.steps)}] {step.pass_.name}  ({step.place})")
        _parameters(step, echo)
        graph = _touches(step, graph, echo, problems)
    _output(recipe, model, echo, problems)
    _verify(recipe, echo)

    if problems:
        echo(f"the run would fail: {len(problems)} problem{'s' if len(problems) > 1 else ''}")
        kind = problems[0][0]
        raise kind("\n".join(message for _, message in problems))


def _source(
    recipe: Recipe, echo: Echo, problems: list[tuple[type[GraphkitError], str]]
) -> tuple[_Graph | None, Any]:
    src = recipe.source
    if src is None:
        echo("source: none")
        message = f"{recipe.file}: no source: give source.path in the recipe or --source"
        problems.append((RecipeError, message))
        return None, None
    frontend = src.frontend
    echo(f"source: {src.path} (format {frontend.name})")
    if not src.path.exists():
        echo("  ! missing")
        problems.append((ModelError, f"{src.path}: no such file or folder"))
        return None, None
    if frontend.name not in _READ_FORMATS:
        if not frontend.detect(src.path):
            echo(f"  ! does not look like a {frontend.name} source")
        echo(f"  import: {frontend.summary}")
        for name, value, given in _fields(src.options):
            echo(f"    {name}: {yaml_flow(value)}{'' if given else '  (default)'}")
        echo("  not imported in a dry run: its inputs, outputs and dims are known after import")
        return None, None

    # onnx and onnx-ir, slow to import, only when there is an ONNX model to read.
    from graphkit._inspect import _size, op_histogram, real_inputs, value_signature
    from graphkit._modelio.load import load
    from graphkit._modelio.tensors import tensor_bytes

    try:
        model = load(src.path)
    except ModelError as error:
        problems.append((ModelError, str(error)))
        echo(f"  ! {error}")
        return None, None
    external = _external_files(model)
    echo(
        f"  read without its weights: {sum(op_histogram(model).values())} nodes, "
        f"opset {model.opset_imports.get('')}, {_size(tensor_bytes(model))} of weights"
        + (f" ({', '.join(sorted(external))} external)" if external else "")
    )
    for value in real_inputs(model.graph):
        echo(f"  input  {value_signature(value)}")
    for value in model.graph.outputs:
        echo(f"  output {value_signature(value)}")
    return _Graph(model), model


def _parameters(step: Step, echo: Echo) -> None:
    for name, value, given in _fields(step.params):
        echo(f"      {name}: {yaml_flow(value)}{'' if given else '  (default)'}")


def _fields(params: Any) -> list[tuple[str, Any, bool]]:
    dumped = params.model_dump()
    return [(name, dumped[name], name in params.model_fields_set) for name in dumped]


def _touches(
    step: Step,
    graph: _Graph | None,
    echo: Echo,
    problems: list[tuple[type[GraphkitError], str]],
) -> _Graph | None:
    """Say what the step would change; with the source's graph, check and follow its names.

    Without a graph (a framework source, or after a pass that may rename
    things) only what the parameters themselves say is shown.
    """
    name, params = step.pass_.name, step.params
    found: list[str] = []
    if name == "rename_io":
        for kind in ("inputs", "outputs"):
            mapping = getattr(params, kind)
            names = getattr(graph, kind) if graph is not None else list(mapping)
            for old, new in mapping.items():
                if old not in names:
                    found.append(f"no graph {kind[:-1]} named {old!r} ({kind}: {names})")
                elif old != new:
                    echo(f"    renames {kind[:-1]} {old} -> {new}")
            if graph is not None:
                graph.rename(mapping, kind)
        if all(o == n for m in (params.inputs, params.outputs) for o, n in m.items()):
            echo("    renames nothing (every name maps to itself)")
    elif name == "fix_dims":
        for dim, size in params.dims.items():
            if graph is None:
                echo(f"    sets {dim} = {size} wherever it is used")
                continue
            users = graph.dims.pop(dim, None)
            if users is None:
                found.append(f"no symbolic dim named {dim!r} (the model has: {sorted(graph.dims)})")
                continue
            shown = ", ".join(users[:_SHOWN_USES])
            more = len(users) - _SHOWN_USES
            echo(f"    sets {dim} = {size}, used by {shown}{f', +{more} more' if more > 0 else ''}")
        for input_name, shape in params.shapes.items():
            if graph is not None and input_name not in graph.inputs:
                found.append(f"no graph input named {input_name!r} (inputs: {graph.inputs})")
            else:
                echo(f"    sets input {input_name} to shape {yaml_flow(shape)}")
        if params.dims or params.shapes:
            echo("    then infers every shape again")
    elif name == "set_opset":
        echo(f"    converts the default domain's opset to {params.version}")
    elif name == "extract":
        cut = [
            f"from {params.inputs}" if params.inputs else "",
            f"to {params.outputs}" if params.outputs else "",
        ]
        echo(f"    keeps the graph {' '.join(c for c in cut if c)}, removes the rest")
    if graph is not None and name not in _KEEP_NAMES | {"rename_io", "fix_dims"}:
        echo(f"    (names are not followed past {name}: it may change them)")
        graph = None
    for problem in found:
        echo(f"    ! {problem}")
        problems.append((PassError, f"{step.label} ({step.place}): {problem}"))
    return graph


def _output(
    recipe: Recipe, model: Any, echo: Echo, problems: list[tuple[type[GraphkitError], str]]
) -> None:
    out = recipe.output
    if out is None:
        echo("output: none (nothing would be written; give output: or -o)")
        return
    exists = " (exists: would be replaced)" if out.exists() else ""
    echo(f"output: {out}{exists}")
    save = recipe.save
    threshold = f"tensors under {save.threshold_bytes} B stay inline"
    shards = f", in shards of at most {save.max_shard_bytes} B" if save.max_shard_bytes else ""
    if save.external_data is False:
        echo("  layout: one file, every weight inline")
    elif save.external_data is True:
        echo(f"  layout: weights in {out.name}.data beside it{shards}; {threshold}")
    elif isinstance(save.external_data, str):
        echo(f"  layout: weights in {save.external_data} beside it{shards}; {threshold}")
    elif model is not None:
        from graphkit._modelio.save import _external_data_name

        notes: list[str] = []
        try:
            name = _external_data_name(model, out, save, notes)
        except ModelError as error:
            problems.append((ModelError, str(error)))
            echo(f"  ! {error}")
            return
        where = f"weights in {name} beside it{shards}; {threshold}" if name else "one file"
        echo(f"  layout (as for the source; passes may change sizes): {where}")
    else:
        echo(
            "  layout: one file, unless the weights pass protobuf's 2 GiB limit "
            f"(then {out.name}.data beside it)"
        )


def _verify(recipe: Recipe, echo: Echo) -> None:
    options = recipe.verify
    if options is None:
        echo("verify: no")
        return
    src = recipe.source
    if options.against == "imported" or src is None:
        reference = "the ONNX model straight from the import, run by ONNX Runtime"
    elif src.frontend.name in _READ_FORMATS:
        reference = "the source model, run by ONNX Runtime"
    else:
        reference = f"the source, run by its framework ({src.frontend.name} frontend)"
    sets = f"{options.samples} random input set{'s' if options.samples != 1 else ''}"
    if recipe.verify_inputs is not None:
        sets += f" and the real inputs in {recipe.verify_inputs}"
    echo(f"verify: against {options.against}: {reference}")
    echo(
        f"  {sets} (seed {options.seed}), rtol {options.rtol:g}, atol {options.atol:g}"
        + (", after every pass" if options.per_pass else "")
    )


def _external_files(model: Any) -> set[str]:
    import onnx_ir as ir

    return {
        str(v.const_value.location)
        for g in model.graphs()
        for v in g.initializers.values()
        if isinstance(v.const_value, ir.ExternalTensor)
    }
