"""Running a recipe: import the source, apply each pass, write the output."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx_ir as ir

from graphkit._errors import GraphkitError, ParityError, PassError, RecipeError
from graphkit._frontends import Imported, ReferenceRunner, SourceContext
from graphkit._inspect import Signature, real_inputs
from graphkit._modelio.save import save
from graphkit._recipe.recipe import Recipe, Step, load_recipe
from graphkit._verify import (
    OrtModel,
    OutputParity,
    ParityReport,
    Verifier,
    VerifyOptions,
    load_real_inputs,
)

if TYPE_CHECKING:
    from graphkit._passes import IOAdapter

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
    adapter: IOAdapter | None = None


@dataclasses.dataclass
class ApplyResult:
    """The outcome of :func:`apply`."""

    model: ir.Model
    output: Path | None
    steps: list[StepReport]
    parity: ParityReport | None = None  # the final model against the reference, if verified
    #: Wall-clock seconds of each phase that ran: import, passes, verify, save.
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)


def apply(
    recipe: str | os.PathLike[str] | Mapping[str, Any] | Recipe,
    *,
    output: str | os.PathLike[str] | None = None,
    source: str | os.PathLike[str] | None = None,
    plugins: Sequence[str | os.PathLike[str]] = (),
    keep_failed: bool = False,
    echo: Echo | None = None,
) -> ApplyResult:
    """Run a recipe, verify the result if the recipe asks, and write its output.

    Args:
        recipe: A recipe file, the name of a built-in recipe, a recipe as a
            dict, or a loaded :class:`Recipe`.
        output: Overrides the recipe's ``output``. With neither, nothing is
            written and the model is only returned.
        source: Overrides the recipe's ``source.path``.
        plugins: More plugin files to load.
        keep_failed: Write the output even when the parity check fails (the
            run still fails).
        echo: Called with each line of the run's report; silent by default.

    Returns:
        The resulting model, where it was written, and what each pass did.

    Raises:
        GraphkitError: the recipe is invalid, the source cannot be imported, a
            pass fails, parity fails, or the output cannot be written. A failed
            run writes nothing (but see ``keep_failed``).
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, plugin_files=plugins, source=source, output=output)
    say = echo or (lambda line: None)
    if recipe.source is None:
        raise RecipeError(f"{recipe.file}: no source: give source.path in the recipe or --source")

    recipe.warm_up()  # helper processes start while the model loads
    clock = _Clock()
    with tempfile.TemporaryDirectory(prefix="graphkit-") as tmp:
        workdir = Path(tmp)
        src = recipe.source
        say(f"import {src.path} ({src.frontend.name})")
        context = SourceContext(recipe_dir=recipe.base_dir, workdir=workdir / "frontend")
        context.workdir.mkdir()
        imported = src.frontend.load(src.path, src.options, context)
        clock.lap("import")
        model = imported.model
        for note in imported.notes:
            say(f"  note: {note}")
        signature = Signature.of(model)
        say(_describe_signature(signature))

        stage = f"the import ({src.frontend.name} frontend)"
        checkpoints = _Checkpoints(recipe, imported, stage, workdir)

        reports = []
        for step in recipe.steps:
            model, report = run_step(step, model, signature)
            reports.append(report)
            signature = report.after
            say(_describe_step(report, len(recipe.steps)))
            if report.adapter is not None:
                checkpoints.adapters.append((step.label, report.adapter))
            if report.modified and checkpoints.per_pass:
                checkpoints.add(model, f"{step.label} ({step.place})")

        clock.lap("passes")
        parity, failure = None, None
        if recipe.verify:
            parity, failure = checkpoints.verify(model, say)
            clock.lap("verify")
        if recipe.output is not None and (failure is None or keep_failed):
            for note in save(model, recipe.output, recipe.save):
                say(f"  note: {note}")
            say(f"wrote {recipe.output}")
            clock.lap("save")
        if failure is not None:
            kept = (
                f"; the output was kept at {recipe.output}" if keep_failed and recipe.output else ""
            )
            raise ParityError(failure + kept)
    say("time: " + ", ".join(f"{phase} {seconds:.2f}s" for phase, seconds in clock.laps.items()))
    return ApplyResult(
        model=model, output=recipe.output, steps=reports, parity=parity, seconds=clock.laps
    )


class _Clock:
    """Wall-clock seconds between laps, by the name of the phase each lap ends."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.laps[phase] = now - self._last
        self._last = now


class _Checkpoints:
    """Copies of the model taken during a run, for the parity check.

    The imported model is kept when it is the reference (``against:
    imported``, or a source with no framework to run) or when every pass is
    checked; with ``per_pass`` the model is kept after every pass that
    changed it.
    """

    def __init__(self, recipe: Recipe, imported: Imported, stage: str, workdir: Path) -> None:
        self.options = recipe.verify
        self.real_inputs = recipe.verify_inputs
        self.per_pass = bool(self.options and self.options.per_pass)
        self.folder = workdir / "checkpoints"
        self.saved: list[tuple[str, Path]] = []
        # Contract changes so far, and how many came before each saved model.
        self.adapters: list[tuple[str, IOAdapter]] = []
        self.applied: dict[Path, int] = {}
        self.reference: ReferenceRunner | None = None
        if self.options is None:
            return
        if self.options.against == "source":
            self.reference = imported.reference
        graph = imported.model.graph
        self.source_io = (
            [v.name or "" for v in real_inputs(graph)],
            [v.name or "" for v in graph.outputs],
        )
        if self.reference is None or self.per_pass:
            self.add(imported.model, stage)

    def add(self, model: ir.Model, stage: str) -> None:
        path = self.folder / f"{len(self.saved)}" / "model.onnx"
        save(model, path)
        self.saved.append((stage, path))
        self.applied[path] = len(self.adapters)

    def verify(self, final: ir.Model, say: Echo) -> tuple[ParityReport | None, str | None]:
        """Compare the final model (and with per_pass, each checkpoint); describe any failure.

        With per_pass, a checkpoint that ONNX Runtime cannot load or run is
        blamed on its pass like one whose numbers differ. The report is
        ``None`` when the final model itself does not run.
        """
        options = self.options
        assert options is not None
        if self.reference is not None:
            reference, stages = self.reference, self.saved
        else:  # the imported model is the reference: no use comparing it with itself
            reference, stages = OrtModel(self.saved[0][1]).as_reference(), self.saved[1:]
        real = load_real_inputs(self.real_inputs) if self.real_inputs else None
        adapters = [adapter for _, adapter in self.adapters]
        verifier = Verifier(options, self.source_io, final, reference, real, adapters)
        say(verifier.describe())
        if self.adapters:
            changed = ", ".join(label for label, _ in self.adapters)
            say(f"  the reference's inputs and outputs follow the contract of {changed}")

        final_path = self.folder / "final" / "model.onnx"
        save(final, final_path)
        result: ParityReport | None = None
        unrunnable = ""
        try:
            result = verifier.compare("the result", OrtModel(final_path))
        except ParityError as error:
            if not self.per_pass:
                raise
            unrunnable = str(error)  # the checkpoints below say which pass caused it
        else:
            for line in (o.describe(options.rtol, options.atol) for o in result.outputs):
                say(f"  {line}")
        if self.per_pass:
            for stage, path in stages:
                try:
                    bad = verifier.compare(stage, OrtModel(path), self.applied[path]).first_failure
                except ParityError as error:
                    return result, f"parity broken by {stage}: {error}"
                if bad is not None:
                    return result, f"parity broken by {stage}: {_failure(bad, options)}"
        if result is None:
            return None, unrunnable
        bad = result.first_failure
        return result, None if bad is None else f"parity check failed: {_failure(bad, options)}"


def _failure(output: OutputParity, options: VerifyOptions) -> str:
    return output.failure(options.rtol, options.atol)


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
        adapter=result.adapter,
    )
    return result.model, report


def _describe_signature(signature: Signature) -> str:
    opset = "no default-domain opset" if signature.opset is None else f"opset {signature.opset}"
    lines = [f"  {signature.node_count} nodes, {opset}"]
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
