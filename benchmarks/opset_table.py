"""set_opset against onnx's version converter alone, on onnx's backend test cases.

Runs the conformance harness's ``set_opset`` configurations (down to 11, 13,
15 and 17, up to 21) and its ``onnx converter`` baselines on the same cases,
and writes one Markdown table: for each target, how many cases each converts
correctly, refuses, or gets wrong. A refusal "names the node" when its message
says which node and op it is about (``Pad node 'pad_3': ...``).

Usage::

    python benchmarks/opset_table.py            # print the table
    python benchmarks/opset_table.py --write    # also put it in benchmarks/RESULTS.md and README.md

``--write`` replaces what lies between the two marker lines in each file.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.conformance import (  # noqa: E402  (the repository root is on sys.path now)
    CONFIGS,
    CONVERTER_CONFIGS,
    DOWN,
    UP,
    Result,
    collect_cases,
    run_all,
)

BEGIN = "<!-- set_opset table: written by benchmarks/opset_table.py -->"
END = "<!-- end of set_opset table -->"

# "Pad node 'pad_3': ..." or "Split node (unnamed, output 'y'): ...": the op, then which node.
_NAMES_NODE = re.compile(r"\b[A-Z][A-Za-z0-9]* node (?:'[^']*'|\([^)]*\))")


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "-"


def rows(results: Iterable[Result]) -> dict[str, collections.Counter[str]]:
    """Outcome counts per configuration; ``named`` counts refusals that name the node."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for result in results:
        if result.outcome is None:
            continue
        row = counts[result.config]
        row[result.outcome.status] += 1
        row["cases"] += 1
        if result.outcome.status == "refused" and _NAMES_NODE.search(result.outcome.detail):
            row["named"] += 1
    return counts


def markdown(counts: dict[str, collections.Counter[str]]) -> str:
    lines = [
        "| conversion | cases | set_opset: converted and correct | refused "
        "(naming the node) | wrong | crash | onnx's converter alone: correct | refused | wrong |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for version in (*sorted(DOWN, reverse=True), *UP):
        ours = counts.get(f"set_opset {version}", collections.Counter())
        theirs = counts.get(f"onnx converter {version}", collections.Counter())
        direction = "down" if version in DOWN else "up"
        cases = ours["cases"]
        lines.append(
            f"| {direction} to {version} | {cases} "
            f"| {ours['ok']} ({percent(ours['ok'], cases)}) "
            f"| {ours['refused']} ({ours['named']}) | {ours['wrong']} | {ours['crash']} "
            f"| {theirs['ok']} ({percent(theirs['ok'], theirs['cases'])}) "
            f"| {theirs['refused']} | {theirs['wrong'] + theirs['crash']} |"
        )
    return "\n".join(lines)


def stamp() -> str:
    import onnx
    import onnxruntime

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{date}, graphkit commit {commit or 'unknown'}, onnx {onnx.__version__}, "
        f"onnxruntime {onnxruntime.__version__}"
    )


def replace_between_markers(path: Path, block: str) -> None:
    text = path.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{path}: no '{BEGIN}' ... '{END}' lines to write the table between")
    path.write_text(text[: start + len(BEGIN)] + "\n" + block + "\n" + text[end:], encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--write", action="store_true", help="put the table in benchmarks/RESULTS.md and README.md"
    )
    args = parser.parse_args(argv)
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    started = time.perf_counter()
    collected = collect_cases()
    configs = [
        c for c in [*CONFIGS, *CONVERTER_CONFIGS] if c.pass_name in ("set_opset", "onnx_converter")
    ]
    results = run_all(collected.cases, configs, progress=lambda line: print(line, flush=True))
    block = (
        markdown(rows(results))
        + f"\n\nMeasured {stamp()}, in {time.perf_counter() - started:.0f} s."
    )
    print(block)
    if args.write:
        for path in (ROOT / "benchmarks" / "RESULTS.md", ROOT / "README.md"):
            replace_between_markers(path, block)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
