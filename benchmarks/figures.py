"""The figures: each measures graphkit against an alternative in one environment.

Every figure is a function ``(environment, runs) -> Row``; its commands run
with that environment's python and graphkit. Generated models live in
benchmarks/work/.
"""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from benchmarks import large_model
from benchmarks.environments import Environment
from benchmarks.harness import (
    HERE,
    WORK,
    Failed,
    Measure,
    Row,
    Side,
    chain,
    command_environment,
    compare,
    measured_row,
    not_run,
    peak,
    remove,
    run_command,
    size,
    sync,
    yes,
)

RECIPES = HERE / "recipes"
#: Runs of the figures that take minutes and many GiB a run (onnxsim on 2.5 GiB).
HEAVY_RUNS = 3


def apply(
    env: Environment, recipe: str | Path, source: Path, output: Path | None, log: str
) -> Measure:
    """Time ``graphkit apply RECIPE --source SOURCE [-o OUTPUT]`` in ``env``."""
    command = [env.graphkit, "apply", str(recipe), "--source", str(source)]
    if output is not None:
        command += ["-o", str(output)]
    return run_command(command, log=env.log(log))


# --- figure 1 ---------------------------------------------------------------------------


@functools.cache
def cleaning_savedmodel() -> Path:
    """The signature-cleaning SavedModel stand-in, built once per session for figures 1 and 6.

    Raises:
        ImportError: the stand-in builder (or TensorFlow) is missing.
    """
    from graphkit_plugins.signature.cleaning import build_cleaning_savedmodel

    folder = WORK / "cleaning-source"
    remove(folder)
    return build_cleaning_savedmodel(folder / "model", seed=0, size=224)


def cleaning(env: Environment, runs: int) -> Row:
    """The signature-cleaning recipe against tf2onnx's command line and a renaming script."""
    title = "signature-cleaning: SavedModel to the SDK's ONNX"
    try:
        savedmodel = cleaning_savedmodel()
    except ImportError as error:
        return not_run(1, title, f"the stand-in builder is missing ({error})", "≤ 1.0")
    folder = WORK / "cleaning"
    remove(folder)
    folder.mkdir(parents=True)
    ours = folder / "graphkit.onnx"
    manual = folder / "manual.onnx"

    graphkit = Side(
        "graphkit",
        lambda: apply(env, "signature-cleaning", savedmodel, ours, "cleaning-graphkit"),
        prepare=lambda: remove(ours),
    )
    alternative = Side(
        "manual",
        chain(
            lambda: run_command(
                [
                    *(env.python, "-m", "tf2onnx.convert"),
                    *("--saved-model", str(savedmodel), "--output", str(manual)),
                ],
                log=env.log("cleaning-tf2onnx"),
            ),
            lambda: run_command(
                [env.python, str(HERE / "manual_cleaning.py"), str(manual)],
                log=env.log("cleaning-script"),
            ),
        ),
        prepare=lambda: remove(manual),
    )
    a, b = compare(graphkit, alternative, runs)
    return measured_row(
        1,
        title,
        a,
        b,
        "≤ 1.0",
        lambda ratio: yes(ratio <= 1.0),
        [
            "graphkit: `graphkit apply signature-cleaning` (conversion, passes including "
            "simplify and check, and a parity check against TensorFlow); manual: "
            "`python -m tf2onnx.convert` then benchmarks/manual_cleaning.py (renames and "
            "batch dims with plain onnx, no simplification, no parity check).",
            time_spent(env, "cleaning-graphkit", a),
        ],
    )


# --- figures 2 and 3 --------------------------------------------------------------------


def large_source() -> Path:
    """The generated 2.5 GiB model, built once per session."""
    path = WORK / "large" / "model.onnx"
    if not (path.exists() and (path.parent / "model.onnx.data").exists()):
        remove(path.parent)
        print("  generating the 2.5 GiB model ...", flush=True)
        large_model.build(path.parent)
    return path


def large_passes(env: Environment, runs: int) -> Row:
    """rename_io, fix_dims and set_opset on the 2.5 GiB model against copying its folder."""
    title = "rename_io + fix_dims + set_opset on a 2.5 GiB external-data model"
    source = large_source()
    out = WORK / "large-out"
    copy = WORK / "large-copy"
    graphkit = Side(
        "graphkit",
        lambda: apply(
            env, RECIPES / "large-passes.yaml", source, out / "model.onnx", "large-passes"
        ),
        prepare=lambda: (remove(out), sync()),
    )
    alternative = Side(
        "cp -r",
        lambda: run_command(["cp", "-r", str(source.parent), str(copy)], log=env.log("large-cp")),
        prepare=lambda: (remove(copy), sync()),
    )
    try:
        a, b = compare(graphkit, alternative, runs)
    finally:
        remove(out, copy)
    memory_ok = peak(a) <= 2**30
    checked = apply(env, RECIPES / "large-check.yaml", source, None, "large-check")
    return measured_row(
        2,
        title,
        a,
        b,
        "≤ 1.3, peak ≤ 1 GiB",
        lambda ratio: f"{yes(ratio <= 1.3)} (time), {yes(memory_ok)} (memory)",
        [
            "graphkit: `graphkit apply benchmarks/recipes/large-passes.yaml` into another "
            "folder (load, three passes, save with the weights copied to the new folder); "
            "alternative: `cp -r` of the model's folder. The page cache is flushed (sync) "
            "before each run, untimed.",
            time_spent(env, "large-passes", a),
            "infer_shapes and check (benchmarks/recipes/large-check.yaml) on the same model, "
            f"past protobuf's 2 GiB limit: passed in {checked.seconds:.2f} s, "
            f"peak {size(checked.peak_bytes)}.",
        ],
    )


def large_simplify(env: Environment, runs: int) -> Row:
    """simplify on the 2.5 GiB model against onnxsim's command line on the same file."""
    title = "simplify on the 2.5 GiB model"
    runs = min(runs, HEAVY_RUNS)
    source = large_source()
    out = WORK / "simplify-graphkit"
    onnxsim_out = WORK / "simplify-onnxsim"
    graphkit = Side(
        "graphkit",
        lambda: apply(
            env, RECIPES / "large-simplify.yaml", source, out / "model.onnx", "simplify-graphkit"
        ),
        prepare=lambda: (remove(out), sync()),
    )

    def onnxsim() -> Measure:
        onnxsim_out.mkdir(parents=True, exist_ok=True)
        measure = run_command(
            [
                *(env.python, "-m", "onnxsim", str(source), str(onnxsim_out / "model.onnx")),
                "--save-as-external-data",
            ],
            cwd=onnxsim_out,
            log=env.log("simplify-onnxsim"),
            # onnxsim 0.7 writes the model, then fails printing its summary past 2 GiB.
            allowed=(0, 1),
        )
        written = onnxsim_out / "model.onnx"
        if not (written.exists() and Path(f"{written}.data").exists()):
            raise Failed("onnxsim wrote no model; see benchmarks/work/logs/simplify-onnxsim.log")
        return measure

    alternative = Side("onnxsim", onnxsim, prepare=lambda: (remove(onnxsim_out), sync()))
    try:
        a, b = compare(graphkit, alternative, runs)
    finally:
        remove(out, onnxsim_out)
    return measured_row(
        3,
        title,
        a,
        b,
        "none set; report time and memory",
        None,
        [
            f"peak memory ratio {peak(a) / peak(b):.3f}; {runs} runs each (minutes and many "
            "GiB a run for onnxsim).",
            "graphkit: `graphkit apply benchmarks/recipes/large-simplify.yaml`; past 2 GiB the "
            "pass hands onnxsim the graph with the weights held back, so it does not fold "
            "expressions of weights (this model has none). onnxsim: `python -m onnxsim in.onnx "
            "out.onnx --save-as-external-data` (without that flag it fails writing a model "
            "past 2 GiB), which loads every weight; onnxsim 0.7.3 then exits with status 1 "
            "while printing its summary (it serialises the whole model once more), after "
            "the model is written; either way onnxsim is timed up to its exit. Both fold the "
            "same Constant/Sqrt and drop the Identity here.",
        ],
    )


# --- figure 4 ---------------------------------------------------------------------------


def startup(env: Environment, runs: int) -> Row:
    """`graphkit passes` against `python -c "import onnx"`."""
    title = "start-up: `graphkit passes`"
    graphkit = Side(
        "graphkit", lambda: run_command([env.graphkit, "passes"], log=env.log("startup-graphkit"))
    )
    alternative = Side(
        "import onnx",
        lambda: run_command([env.python, "-c", "import onnx"], log=env.log("startup-onnx")),
    )
    # Warm the page cache for both, untimed.
    graphkit.run()
    alternative.run()
    a, b = compare(graphkit, alternative, runs)
    return measured_row(
        4,
        title,
        a,
        b,
        "≤ 1.5",
        lambda ratio: yes(ratio <= 1.5),
        ['alternative: `python -c "import onnx"`.'],
    )


# --- figure 5 ---------------------------------------------------------------------------


def verification_latency(env: Environment, runs: int) -> Row:
    """ONNX Runtime latency of the signature-verification recipe's output against a plain export."""
    title = "signature-verification: ONNX Runtime latency"
    try:
        from graphkit_plugins.signature.siamese import build_verification_checkpoint
    except ImportError as error:
        return not_run(5, title, f"the stand-in builder is missing ({error})", "≤ 1.0")
    folder = WORK / "verification"
    remove(folder)
    checkpoint = build_verification_checkpoint(folder / "convnet_best_loss.pt", seed=0)
    ours = folder / "graphkit.onnx"
    plain = folder / "plain.onnx"
    apply(env, "signature-verification", checkpoint, ours, "verification-graphkit")
    run_command(
        [env.python, str(HERE / "plain_export.py"), str(checkpoint), str(plain)],
        log=env.log("verification-plain"),
    )
    command = [env.python, str(HERE / "latency.py"), str(ours), str(plain), "--runs", str(runs)]
    result = subprocess.run(command, capture_output=True, text=True, env=command_environment())
    if result.returncode != 0:
        tail = " / ".join(result.stderr.strip().splitlines()[-3:])
        raise Failed(f"`{' '.join(command)}` exited with {result.returncode}: {tail}")
    ours_ms, plain_ms, low, high, per_run = result.stdout.split()
    ratio = float(ours_ms) / float(plain_ms)
    return Row(
        5,
        title,
        f"{float(ours_ms):.2f} ms per inference",
        f"{float(plain_ms):.2f} ms per inference",
        ratio,
        f"{float(low):.2f}-{float(high):.2f}",
        "≤ 1.0 (not slower)",
        yes(ratio <= 1.0),
        [
            "graphkit: `graphkit apply signature-verification` on the stand-in checkpoint; "
            "alternative: `torch.onnx.export` of the same checkpoint with default settings "
            f"(benchmarks/plain_export.py). One ONNX Runtime session each, one thread, the "
            f"same random inputs, batches of {per_run} inferences alternating between them."
        ],
    )


# --- figure 6 ---------------------------------------------------------------------------


def overhead(env: Environment, runs: int) -> Row:
    """graphkit's own overhead: rename_io and fix_dims against the same edits with onnx-ir alone."""
    title = "overhead: rename_io + fix_dims against onnx-ir alone"
    goal = "≤ 1.2"
    try:
        savedmodel = cleaning_savedmodel()
    except ImportError as error:
        return not_run(6, title, f"the stand-in builder is missing ({error})", goal)
    folder = WORK / "overhead"
    remove(folder)
    source = folder / "cleaning.onnx"
    # The model the built-in recipe's passes start from: its import alone, untimed.
    apply(env, RECIPES / "cleaning-import.yaml", savedmodel, source, "overhead-import")
    ours = folder / "graphkit.onnx"
    bare = folder / "bare.onnx"
    graphkit = Side(
        "graphkit",
        lambda: apply(env, RECIPES / "cleaning-passes.yaml", source, ours, "overhead-graphkit"),
        prepare=lambda: remove(ours),
    )
    alternative = Side(
        "onnx-ir",
        lambda: run_command(
            [env.python, str(HERE / "bare_onnx_ir.py"), str(source), str(bare)],
            log=env.log("overhead-onnx-ir"),
        ),
        prepare=lambda: remove(bare),
    )
    # Warm the page cache for both, untimed (in a new environment, its bytecode caches too).
    graphkit.run()
    alternative.run()
    a, b = compare(graphkit, alternative, runs)
    written = {path: sorted(p.name for p in folder.glob(f"{path.name}*")) for path in (ours, bare)}
    if [len(names) for names in written.values()] != [1, 1]:
        raise Failed(f"the two sides wrote different sets of files: {list(written.values())}")
    return measured_row(
        6,
        title,
        a,
        b,
        goal,
        lambda ratio: yes(ratio <= 1.2),
        [
            "graphkit: `graphkit apply benchmarks/recipes/cleaning-passes.yaml` (start-up and "
            "plugin discovery, the recipe's validation, loading, rename_io, fix_dims, which "
            "sets the input's shape and infers every shape again with onnx's shape inference, "
            "and an atomic save); onnx-ir: benchmarks/bare_onnx_ir.py (`ir.load`, the two "
            "renames, the input's shape and the output's batch dim set by hand, `ir.save`; "
            "no shape inference, no checks). Both on the signature-cleaning stand-in's ONNX "
            f"model ({mib(source)}, converted once, untimed, by "
            "benchmarks/recipes/cleaning-import.yaml), both writing one file with the "
            f"weights inside ({mib(ours)} and {mib(bare)}).",
            time_spent(env, "overhead-graphkit", a),
        ],
    )


def mib(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.2f} MiB"


def time_spent(env: Environment, log: str, measures: list[Measure]) -> str:
    """Where graphkit's last run went, from its own ``time:`` line and its passes' times.

    What the line does not count (starting Python, importing onnx, the
    frameworks and graphkit itself, and the exit) is the run's time less the
    phases'.
    """
    text = (WORK / "logs" / f"{env.log(log)}.log").read_text()
    found = re.search(r"^time: (.*)$", text, re.M)
    if found is None:
        return "graphkit's last run reported no times."
    phases = {name: float(value) for name, value in re.findall(r"(\w+) ([\d.]+)s", found[1])}
    total = measures[-1].seconds
    parts = [f"start-up, imports and exit {total - sum(phases.values()):.2f} s"]
    passes = pass_seconds(text)
    for name, seconds in phases.items():
        label = "the source's import" if name == "import" else name
        part = f"{label} {seconds:.2f} s"
        if name == "passes" and passes:
            part += f" ({', '.join(f'{n} {t:.2f} s' for n, t in passes.items())})"
        parts.append(part)
    return f"Where graphkit's last run ({total:.2f} s) went: {'; '.join(parts)}."


def pass_seconds(log: str) -> dict[str, float]:
    """The seconds ``graphkit apply`` reports for each pass (``[2/2] fix_dims: ... (0.65s)``)."""
    found: dict[str, float] = {}
    for name, seconds in re.findall(r"^\[\d+/\d+\] (\w+): .*\(([\d.]+)s\)$", log, re.M):
        found[name] = found.get(name, 0.0) + float(seconds)
    return found


FIGURES: dict[int, Callable[[Environment, int], Row]] = {
    1: cleaning,
    2: large_passes,
    3: large_simplify,
    4: startup,
    5: verification_latency,
    6: overhead,
}
