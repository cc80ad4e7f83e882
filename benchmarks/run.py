"""graphkit's benchmark suite: each figure a ratio of graphkit to an alternative, side by side.

Absolute times drift on shared machines, so every figure runs the two commands
alternately in one session (A B, B A, A B, ...) and quotes the ratio of their
median times. Peak memory is each command's maximum resident set size, as GNU
time (/usr/bin/time) reports it.

    python benchmarks/run.py              # every figure; writes benchmarks/RESULTS.md
    python benchmarks/run.py --only 2     # one figure (repeatable); writes benchmarks/work/
    python benchmarks/run.py --runs 3     # fewer alternations
    python benchmarks/run.py --keep       # keep the generated 2.5 GiB model

Generated files live in benchmarks/work/ (git-ignored); the 2.5 GiB model is
removed at the end unless --keep. Other scripts (precision.py, simplify_engines.py,
opset_table.py) write their own sections of RESULTS.md, after this script's
figures; a rewrite here keeps them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "work"
RESULTS = HERE / "RESULTS.md"
PYTHON = sys.executable
GRAPHKIT = str(Path(sys.executable).with_name("graphkit"))
#: GNU time, for the peak memory of a command (Debian's package 'time').
TIME = "/usr/bin/time"
#: Runs of the figures that take minutes and many GiB a run (onnxsim on 2.5 GiB).
HEAVY_RUNS = 3
#: Set on some machines for old OpenBLAS builds; they slow a current numpy, so the
#: benchmark's commands (both sides alike) run without them.
OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

sys.path.insert(0, str(HERE))
import large_model  # noqa: E402


@dataclasses.dataclass
class Measure:
    """One run of one side: wall-clock seconds and the peak RSS of its processes."""

    seconds: float
    peak_bytes: int


@dataclasses.dataclass
class Side:
    """One side of a comparison: a description and a way to run it once."""

    label: str
    run: Callable[[], Measure]
    prepare: Callable[[], None] = lambda: None


@dataclasses.dataclass
class Row:
    """One line of the results table."""

    number: int
    title: str
    graphkit: str
    alternative: str
    ratio: float | None
    spread: str
    goal: str
    met: str
    notes: list[str] = dataclasses.field(default_factory=list)


class Failed(Exception):
    """A command failed; the figure cannot be measured."""


def run_command(
    command: Sequence[str], *, cwd: Path | None = None, log: str, allowed: Sequence[int] = (0,)
) -> Measure:
    """Run ``command`` and measure it; its output goes to ``work/logs/<log>.log``.

    Raises:
        Failed: it exited with a status not in ``allowed``.
    """
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARIABLES}
    memory_file = logs / f"{log}.maxrss"
    # GNU time forks the command from its own small process. Spawned straight from
    # here, a child's peak would count this (large) process's memory from before exec.
    wrapped = [TIME, "-f", "%M", "-o", str(memory_file), *command]
    with open(logs / f"{log}.log", "wb") as output:
        started = time.perf_counter()
        status = subprocess.run(wrapped, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - started
    if status.returncode not in allowed:
        tail = (logs / f"{log}.log").read_text(errors="replace").strip().splitlines()[-5:]
        raise Failed(f"`{' '.join(command)}` exited with {status.returncode}: " + " / ".join(tail))
    # %M is the largest resident set, in KiB, of the command and the children it waited for.
    return Measure(seconds, int(memory_file.read_text().split()[-1]) * 1024)


def chain(*steps: Callable[[], Measure]) -> Callable[[], Measure]:
    """Run ``steps`` one after the other as one side: times add up, peaks take the maximum."""

    def run() -> Measure:
        measures = [step() for step in steps]
        return Measure(sum(m.seconds for m in measures), max(m.peak_bytes for m in measures))

    return run


def compare(a: Side, b: Side, runs: int) -> tuple[list[Measure], list[Measure]]:
    """Run ``a`` and ``b`` alternately, ``runs`` times each, swapping which goes first."""
    first: list[Measure] = []
    second: list[Measure] = []
    for index in range(runs):
        order = [(a, first), (b, second)]
        for side, into in order if index % 2 == 0 else reversed(order):
            side.prepare()
            into.append(side.run())
        print(
            f"    run {index + 1}/{runs}: {a.label} {first[-1].seconds:.2f}s, "
            f"{b.label} {second[-1].seconds:.2f}s",
            flush=True,
        )
    return first, second


def median_seconds(measures: list[Measure]) -> float:
    return statistics.median(m.seconds for m in measures)


def peak(measures: list[Measure]) -> int:
    return max(m.peak_bytes for m in measures)


def spread(a: list[Measure], b: list[Measure]) -> str:
    """The range of the per-run ratios, to show how noisy the median ratio is."""
    ratios = [x.seconds / y.seconds for x, y in zip(a, b, strict=True)]
    return f"{min(ratios):.2f}-{max(ratios):.2f}"


def size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit in ("B", "KiB", "MiB") else f"{count:.2f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def describe(measures: list[Measure]) -> str:
    return f"{median_seconds(measures):.2f} s, peak {size(peak(measures))}"


def sync() -> None:
    """Flush dirty pages, so one run's writes are not paid for by the next run."""
    os.sync()


def remove(*paths: Path) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


# --- figure 1 ---------------------------------------------------------------------------


def cleaning(runs: int) -> Row:
    """The signature-cleaning recipe against tf2onnx's command line and a renaming script."""
    title = "signature-cleaning: SavedModel to the SDK's ONNX"
    try:
        from graphkit_plugins.signature.cleaning import build_cleaning_savedmodel
    except ImportError as error:
        return not_run(1, title, f"the stand-in builder is missing ({error})", "≤ 1.0")
    folder = WORK / "cleaning"
    remove(folder)
    savedmodel = build_cleaning_savedmodel(folder / "model", seed=0, size=224)
    ours = folder / "graphkit.onnx"
    manual = folder / "manual.onnx"

    graphkit = Side(
        "graphkit",
        lambda: run_command(
            [GRAPHKIT, "apply", "signature-cleaning", "--source", str(savedmodel), "-o", str(ours)],
            log="cleaning-graphkit",
        ),
        prepare=lambda: remove(ours),
    )
    alternative = Side(
        "manual",
        chain(
            lambda: run_command(
                [
                    *(PYTHON, "-m", "tf2onnx.convert"),
                    *("--saved-model", str(savedmodel), "--output", str(manual)),
                ],
                log="cleaning-tf2onnx",
            ),
            lambda: run_command(
                [PYTHON, str(HERE / "manual_cleaning.py"), str(manual)], log="cleaning-script"
            ),
        ),
        prepare=lambda: remove(manual),
    )
    a, b = compare(graphkit, alternative, runs)
    ratio = median_seconds(a) / median_seconds(b)
    return Row(
        1,
        title,
        describe(a),
        describe(b),
        ratio,
        spread(a, b),
        "≤ 1.0",
        yes(ratio <= 1.0),
        [
            "graphkit: `graphkit apply signature-cleaning` (conversion, passes including "
            "simplify and check, and a parity check against TensorFlow); manual: "
            "`python -m tf2onnx.convert` then benchmarks/manual_cleaning.py (renames and "
            "batch dims with plain onnx, no simplification, no parity check)."
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


def large_passes(runs: int) -> Row:
    """rename_io, fix_dims and set_opset on the 2.5 GiB model against copying its folder."""
    title = "rename_io + fix_dims + set_opset on a 2.5 GiB external-data model"
    source = large_source()
    out = WORK / "large-out"
    copy = WORK / "large-copy"
    graphkit = Side(
        "graphkit",
        lambda: run_command(
            [
                *(GRAPHKIT, "apply", str(HERE / "recipes" / "large-passes.yaml")),
                *("--source", str(source), "-o", str(out / "model.onnx")),
            ],
            log="large-passes",
        ),
        prepare=lambda: (remove(out), sync()),
    )
    alternative = Side(
        "cp -r",
        lambda: run_command(["cp", "-r", str(source.parent), str(copy)], log="large-cp"),
        prepare=lambda: (remove(copy), sync()),
    )
    try:
        a, b = compare(graphkit, alternative, runs)
    finally:
        remove(out, copy)
    ratio = median_seconds(a) / median_seconds(b)
    memory_ok = peak(a) <= 2**30
    checked = run_command(
        [GRAPHKIT, "apply", str(HERE / "recipes" / "large-check.yaml"), "--source", str(source)],
        log="large-check",
    )
    return Row(
        2,
        title,
        describe(a),
        describe(b),
        ratio,
        spread(a, b),
        "≤ 1.3, peak ≤ 1 GiB",
        f"{yes(ratio <= 1.3)} (time), {yes(memory_ok)} (memory)",
        [
            "graphkit: `graphkit apply benchmarks/recipes/large-passes.yaml` into another "
            "folder (load, three passes, save with the weights copied to the new folder); "
            "alternative: `cp -r` of the model's folder. The page cache is flushed (sync) "
            "before each run, untimed.",
            "infer_shapes and check (benchmarks/recipes/large-check.yaml) on the same model, "
            f"past protobuf's 2 GiB limit: passed in {checked.seconds:.2f} s, "
            f"peak {size(checked.peak_bytes)}.",
        ],
    )


def large_simplify(runs: int) -> Row:
    """simplify on the 2.5 GiB model against onnxsim's command line on the same file."""
    title = "simplify on the 2.5 GiB model"
    runs = min(runs, HEAVY_RUNS)
    source = large_source()
    out = WORK / "simplify-graphkit"
    onnxsim_out = WORK / "simplify-onnxsim"
    graphkit = Side(
        "graphkit",
        lambda: run_command(
            [
                *(GRAPHKIT, "apply", str(HERE / "recipes" / "large-simplify.yaml")),
                *("--source", str(source), "-o", str(out / "model.onnx")),
            ],
            log="simplify-graphkit",
        ),
        prepare=lambda: (remove(out), sync()),
    )

    def onnxsim() -> Measure:
        onnxsim_out.mkdir(parents=True, exist_ok=True)
        measure = run_command(
            [
                *(PYTHON, "-m", "onnxsim", str(source), str(onnxsim_out / "model.onnx")),
                "--save-as-external-data",
            ],
            cwd=onnxsim_out,
            log="simplify-onnxsim",
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
    ratio = median_seconds(a) / median_seconds(b)
    return Row(
        3,
        title,
        describe(a),
        describe(b),
        ratio,
        spread(a, b),
        "none set; report time and memory",
        "—",
        [
            f"peak memory ratio {peak(a) / peak(b):.3f}; {runs} runs each (minutes and many "
            "GiB a run for onnxsim).",
            "graphkit: `graphkit apply benchmarks/recipes/large-simplify.yaml`; past 2 GiB the "
            "pass hands onnxsim the graph with the weights held back, so it does not fold "
            "expressions of weights (this model has none). onnxsim: `python -m onnxsim in.onnx "
            "out.onnx --save-as-external-data` (without that flag it fails writing a model "
            "past 2 GiB), which loads every weight; onnxsim 0.7.3 then exits with status 1 "
            "while printing its summary (it serialises the whole model once more), after "
            "the model is written, and is timed up to that exit. Both fold the same "
            "Constant/Sqrt and drop the Identity here.",
        ],
    )


# --- figure 4 ---------------------------------------------------------------------------


def startup(runs: int) -> Row:
    """`graphkit passes` against `python -c "import onnx"`."""
    title = "start-up: `graphkit passes`"
    graphkit = Side("graphkit", lambda: run_command([GRAPHKIT, "passes"], log="startup-graphkit"))
    alternative = Side(
        "import onnx", lambda: run_command([PYTHON, "-c", "import onnx"], log="startup-onnx")
    )
    # Warm the page cache for both, untimed.
    graphkit.run()
    alternative.run()
    a, b = compare(graphkit, alternative, runs)
    ratio = median_seconds(a) / median_seconds(b)
    return Row(
        4,
        title,
        describe(a),
        describe(b),
        ratio,
        spread(a, b),
        "≤ 2.0",
        yes(ratio <= 2.0),
        ['alternative: `python -c "import onnx"`.'],
    )


# --- figure 5 ---------------------------------------------------------------------------


def verification_latency(runs: int) -> Row:
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
    run_command(
        [GRAPHKIT, "apply", "signature-verification", "--source", str(checkpoint), "-o", str(ours)],
        log="verification-graphkit",
    )
    run_command(
        [PYTHON, str(HERE / "plain_export.py"), str(checkpoint), str(plain)],
        log="verification-plain",
    )
    result = subprocess.run(
        [PYTHON, str(HERE / "latency.py"), str(ours), str(plain), "--runs", str(runs)],
        check=True,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k not in OPENBLAS_VARIABLES},
    )
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


# --- the table --------------------------------------------------------------------------


def not_run(number: int, title: str, reason: str, goal: str) -> Row:
    return Row(number, title, "not run", "not run", None, "", goal, "not measured", [reason])


def yes(value: bool) -> str:
    return "yes" if value else "**no**"


FIGURES: dict[int, Callable[[int], Row]] = {
    1: cleaning,
    2: large_passes,
    3: large_simplify,
    4: startup,
    5: verification_latency,
}


def table(rows: list[Row]) -> str:
    lines = [
        "| # | figure | graphkit | alternative | ratio (median) | per-run range | goal | met? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(
            f"| {row.number} | {row.title} | {row.graphkit} | {row.alternative} | {ratio} "
            f"| {row.spread} | {row.goal} | {row.met} |"
        )
    return "\n".join(lines)


def machine() -> list[str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        memory = int(info.readline().split()[1]) * 1024
    packages = ["onnx", "onnx-ir", "onnxruntime", "onnxsim", "tf2onnx", "tensorflow", "torch"]
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"graphkit commit {commit or 'unknown'}",
        f"- CPU: {cpu}, {os.cpu_count()} cores; RAM: {size(memory)}",
        f"- {platform.platform()}, Python {platform.python_version()}",
        f"- {', '.join(versions)}",
    ]


def report(rows: list[Row], runs: int) -> str:
    notes = [f"- {row.number}: {note}" for row in rows for note in row.notes]
    return "\n".join(
        [
            "# Benchmark results",
            "",
            "Written by `python benchmarks/run.py`. Each ratio is graphkit's median time over "
            f"the alternative's, the two run alternately {runs} times each in one session "
            "(fewer where a note says so); below 1 graphkit is faster. Peak memory is the "
            "largest resident set of the command's processes.",
            "",
            table(rows),
            "",
            "Notes:",
            "",
            *notes,
            "",
            "Machine:",
            "",
            *machine(),
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=textwrap.dedent(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only", type=int, action="append", choices=sorted(FIGURES), help="run only figure N"
    )
    parser.add_argument("--runs", type=int, default=5, help="alternations per figure (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the generated 2.5 GiB model")
    args = parser.parse_args(argv)
    chosen = sorted(set(args.only or FIGURES))
    WORK.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for number in chosen:
            print(f"figure {number}: {FIGURES[number].__doc__}", flush=True)
            try:
                rows.append(FIGURES[number](args.runs))
            except Failed as error:
                rows.append(not_run(number, FIGURES[number].__doc__ or "", str(error), "—"))
                print(f"  failed: {error}", flush=True)
    finally:
        if not args.keep:
            remove(WORK / "large")
    text = report(rows, args.runs)
    print()
    print(text)
    target = RESULTS if args.only is None else WORK / "RESULTS-partial.md"
    kept = other_sections(RESULTS) if target == RESULTS else ""
    target.write_text(text + ("\n" + kept if kept else ""))
    print(f"written to {target}")
    return 0


def other_sections(path: Path) -> str:
    """What follows this script's figures in ``path``: the sections other scripts write.

    Those start at the first second-level heading or section marker; this
    script's own report has neither.
    """
    if not path.exists():
        return ""
    found = re.search(r"^(## |<!-- )", path.read_text(), re.M)
    return path.read_text()[found.start() :] if found else ""


if __name__ == "__main__":
    sys.exit(main())
