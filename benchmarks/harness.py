"""Measuring a figure: two commands run alternately, their median times and peak memory.

Absolute times drift on shared machines, so every figure runs the two commands
alternately in one session (A B, B A, A B, ...) and quotes the ratio of their
median times. Peak memory is each command's maximum resident set size, as GNU
time (/usr/bin/time) reports it. The results page is written here too.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "work"
RESULTS = HERE / "RESULTS.md"
#: GNU time, for the peak memory of a command (Debian's package 'time').
TIME = "/usr/bin/time"
#: Set on some machines for old OpenBLAS builds; they slow a current numpy, so the
#: benchmark's commands (both sides alike) run without them.
OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: Set on some machines so that Python writes no .pyc files. An installed package
#: has its .pyc files from the install, but graphkit's editable install would then
#: compile its sources on every run, which no user's install does.
UNSET_VARIABLES = (*OPENBLAS_VARIABLES, "PYTHONDONTWRITEBYTECODE")


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


def command_environment() -> dict[str, str]:
    """The variables the measured commands run with."""
    return {k: v for k, v in os.environ.items() if k not in UNSET_VARIABLES}


def run_command(
    command: Sequence[str], *, cwd: Path | None = None, log: str, allowed: Sequence[int] = (0,)
) -> Measure:
    """Run ``command`` and measure it; its output goes to ``work/logs/<log>.log``.

    Raises:
        Failed: it exited with a status not in ``allowed``.
    """
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    memory_file = logs / f"{log}.maxrss"
    # GNU time forks the command from its own small process. Spawned straight from
    # here, a child's peak would count this (large) process's memory from before exec.
    wrapped = [TIME, "-f", "%M", "-o", str(memory_file), *command]
    with open(logs / f"{log}.log", "wb") as output:
        started = time.perf_counter()
        status = subprocess.run(
            wrapped, cwd=cwd, env=command_environment(), stdout=output, stderr=subprocess.STDOUT
        )
        seconds = time.perf_counter() - started
    if status.returncode not in allowed:
        raise Failed(f"`{' '.join(command)}` exited with {status.returncode}: {log_tail(log)}")
    # %M is the largest resident set, in KiB, of the command and the children it waited for.
    return Measure(seconds, int(memory_file.read_text().split()[-1]) * 1024)


def log_tail(log: str, lines: int = 5) -> str:
    """The last lines of ``work/logs/<log>.log``, on one line."""
    text = (WORK / "logs" / f"{log}.log").read_text(errors="replace")
    return " / ".join(text.strip().splitlines()[-lines:])


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


def not_run(number: int, title: str, reason: str, goal: str) -> Row:
    return Row(number, title, "not run", "not run", None, "", goal, "not measured", [reason])


def measured_row(
    number: int,
    title: str,
    a: list[Measure],
    b: list[Measure],
    goal: str,
    met: Callable[[float], str] | None,
    notes: list[str],
) -> Row:
    """The row of a figure whose two sides ran: ``met`` judges the median ratio (None: no goal)."""
    ratio = median_seconds(a) / median_seconds(b)
    return Row(
        number,
        title,
        describe(a),
        describe(b),
        ratio,
        spread(a, b),
        goal,
        "—" if met is None else met(ratio),
        notes,
    )


def yes(value: bool) -> str:
    return "yes" if value else "**no**"


# --- the results page -------------------------------------------------------------------


@dataclasses.dataclass
class Results:
    """The rows the figures gave in one environment, under that environment's title."""

    title: str
    rows: list[Row]


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


def tables(results: list[Results]) -> list[str]:
    """One table, or with several environments one table under each one's heading."""
    if len(results) == 1:
        return [table(results[0].rows)]
    lines: list[str] = []
    for result in results:
        # Third-level headings: a second-level one starts the other scripts' sections.
        lines.extend([f"### {result.title}", "", table(result.rows), ""])
    return lines[:-1]


def notes(results: list[Results]) -> list[str]:
    """Every row's notes, by figure; a note that not every environment gave names its own."""
    found: dict[tuple[int, str], list[str]] = {}
    for result in results:
        for row in result.rows:
            for note in row.notes:
                found.setdefault((row.number, note), []).append(result.title)
    lines = []
    for (number, note), titles in sorted(found.items(), key=lambda item: item[0][0]):
        where = "" if len(titles) == len(results) else f" ({', '.join(titles)})"
        lines.append(f"- {number}{where}: {note}")
    return lines


def report(results: list[Results], runs: int, machine: list[str], about: str = "") -> str:
    """The page: the table (or tables), the notes, and the machine and its packages."""
    return "\n".join(
        [
            "# Benchmark results",
            "",
            "Written by `python benchmarks/run.py`. Each ratio is graphkit's median time over "
            f"the alternative's, the two run alternately {runs} times each in one session "
            "(fewer where a note says so); below 1 graphkit is faster. Peak memory is the "
            "largest resident set of the command's processes. Both sides run without "
            f"{', '.join(UNSET_VARIABLES)} (see benchmarks/harness.py)."
            + (f" {about}" if about else ""),
            "",
            *tables(results),
            "",
            "Notes:",
            "",
            *notes(results),
            "",
            "Machine:",
            "",
            *machine,
            "",
        ]
    )


def other_sections(path: Path) -> str:
    """What follows this script's figures in ``path``: the sections other scripts write.

    Those start at the first second-level heading or section marker; this
    script's own report has neither.
    """
    if not path.exists():
        return ""
    found = re.search(r"^(## |<!-- )", path.read_text(), re.M)
    return path.read_text()[found.start() :] if found else ""
