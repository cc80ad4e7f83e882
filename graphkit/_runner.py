"""Running a recipe: import the source, apply each pass, write the output."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx_ir as ir

from graphkit._errors import GraphkitError, PassError, RecipeError
from graphkit._frontends import SourceContext
from graphkit._inspect import Signature
from graphkit._model_io import save
from graphkit._recipe import Recipe, Step, load_recipe

Echo = Callable[[str], None]


@dataclasses.dataclass
class StepReport:
    """What one pass did."""

    step: Step
    modified: bool
    before: Signature
    after: Signature
    notes: list[str]
    seconds: float


@dataclasses.dataclass
class ApplyResult:
    """The outcome of :func:`apply`."""

    model: ir.Model
    output: Path | None
    steps: list[StepReport]


def apply(
    recipe: str | os.PathLike[str] | Mapping[str, Any] | Recipe,
    *,
    output: str | os.PathLike[str] | None = None,
    source: str | os.PathLike[str] | None = None,
    plugins: Sequence[str | os.PathLike[str]] = (),
    echo: Echo | None = None,
) -> ApplyResult:
    """Run a recipe and write its output.

    Args:
        recipe: A recipe file, a recipe as a dict, or a loaded :class:`Recipe`.
        output: Overrides the recipe's ``output``. With neither, nothing is
            written and the model is only returned.
        source: Overrides the recipe's ``source.path``.
        plugins: More plugin files to load.
        echo: Called with each line of the run's report; silent by default.

    Returns:
        The resulting model, where it was written, and what each pass did.

    Raises:
        GraphkitError: the recipe is invalid, the source cannot be imported, a
            pass fails, or the output cannot be written. A failed run writes
            nothing.
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, plugin_files=plugins, source=source, output=output)
    say = echo or (lambda line: None)
    if recipe.source is None:
        raise RecipeError(f"{recipe.file}: no source: give source.path in the recipe or --source")

    with tempfile.TemporaryDirectory(prefix="graphkit-") as workdir:
        src = recipe.source
        say(f"import {src.path} ({src.frontend.name})")
        context = SourceContext(recipe_dir=recipe.base_dir, workdir=Path(workdir))
        imported = src.frontend.load(src.path, src.options, context)
        model = imported.model
        for note in imported.notes:
            say(f"  note: {note}")
        signature = Signature.of(model)
        say(_describe_signature(signature))

        reports = []
        for step in recipe.steps:
            model, report = run_step(step, model, signature)
            reports.append(report)
            signature = report.after
            say(_describe_step(report, len(recipe.steps)))

    if recipe.output is not None:
        for note in save(model, recipe.output, recipe.save):
            say(f"  note: {note}")
        say(f"wrote {recipe.output}")
    return ApplyResult(model=model, output=recipe.output, steps=reports)


def run_step(step: Step, model: ir.Model, before: Signature) -> tuple[ir.Model, StepReport]:
    """Run one step; any failure becomes a :class:`PassError` naming the step and its place."""
    started = time.perf_counter()
    try:
        result = step.pass_.run(model, step.params)
    except GraphkitError as error:
        raise PassError(f"{step.label} ({step.place}): {error}") from error
    except Exception as error:
        raise PassError(
            f"{step.label} ({step.place}) failed: {type(error).__name__}: {error}"
        ) from error
    report = StepReport(
        step=step,
        modified=result.modified,
        before=before,
        after=Signature.of(result.model) if result.modified else before,
        notes=result.notes,
        seconds=time.perf_counter() - started,
    )
    return result.model, report


def _describe_signature(signature: Signature) -> str:
    lines = [f"  {signature.node_count} nodes, opset {signature.opset}"]
    lines.extend(f"  input  {s}" for s in signature.inputs)
    lines.extend(f"  output {s}" for s in signature.outputs)
    return "\n".join(lines)


def _describe_step(report: StepReport, total: int) -> str:
    step = report.step
    head = f"[{step.index + 1}/{total}] {step.pass_.name}"
    if not report.modified:
        lines = [f"{head}: no change ({report.seconds:.2f}s)"]
    else:
        before, after = report.before, report.after
        lines = [f"{head}: {before.node_count} -> {after.node_count} nodes ({report.seconds:.2f}s)"]
        delta = after.ops.copy()
        delta.subtract(before.ops)
        changed = [f"{'+' if n > 0 else ''}{n} {op}" for op, n in sorted(delta.items()) if n]
        if changed:
            lines.append(f"  ops: {', '.join(changed)}")
        if before.opset != after.opset:
            lines.append(f"  opset: {before.opset} -> {after.opset}")
        lines.extend(_io_changes("input ", before.inputs, after.inputs))
        lines.extend(_io_changes("output", before.outputs, after.outputs))
    lines.extend(f"  note: {note}" for note in report.notes)
    return "\n".join(lines)


def _io_changes(kind: str, before: tuple[str, ...], after: tuple[str, ...]) -> list[str]:
    if before == after:
        return []
    lines = []
    for index in range(max(len(before), len(after))):
        old = before[index] if index < len(before) else "(none)"
        new = after[index] if index < len(after) else "(none)"
        lines.append(f"  {kind} {old} -> {new}" if old != new else f"  {kind} {old}")
    return lines
