"""graphkit's benchmark suite: each figure a ratio of graphkit to an alternative, side by side.

Absolute times drift on shared machines, so every figure runs the two commands
alternately in one session (A B, B A, A B, ...) and quotes the ratio of their
median times. Peak memory is each command's maximum resident set size, as GNU
time (/usr/bin/time) reports it.

    python benchmarks/run.py              # every figure; writes benchmarks/RESULTS.md
    python benchmarks/run.py --only 2     # one figure (repeatable); writes benchmarks/work/
    python benchmarks/run.py --runs 3     # fewer alternations
    python benchmarks/run.py --keep       # keep the generated 2.5 GiB model
    python benchmarks/run.py --env        # also in a plain `pip install ".[all]"` environment

The figures run in the environment running this script. With --env they run
again in a plain pip environment, without constraints.txt's pins, built in
benchmarks/work/plain-env (see environments.py), and the results show a table
for each. Generated files live in benchmarks/work/ (git-ignored); the 2.5 GiB
model is removed at the end unless --keep. Other scripts (precision.py,
simplify_engines.py, opset_table.py) write their own sections of RESULTS.md,
after this script's figures; a rewrite here keeps them.

The measuring is in harness.py, the environments in environments.py, the
figures in figures.py.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

# Run as a script, this folder is on the path, not the repository it belongs to.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.environments import (
    Environment,
    machine,
    plain_environment,
    running_environment,
)
from benchmarks.figures import FIGURES
from benchmarks.harness import (
    RESULTS,
    WORK,
    Failed,
    Results,
    Row,
    not_run,
    other_sections,
    remove,
    report,
)

PLAIN_ABOUT = (
    'The plain pip environment is what `pip install ".[all]"` installs without '
    "constraints.txt (torch 2.13.0, a CPU build, installed first), in benchmarks/work/plain-env; "
    "the figures ran in one environment, then in the other."
)


def run_figures(env: Environment, chosen: list[int], runs: int) -> Results:
    """Every chosen figure in ``env``; one that fails is a 'not run' row with the reason."""
    rows = []
    for number in chosen:
        print(f"figure {number} ({env.title}): {FIGURES[number].__doc__}", flush=True)
        try:
            rows.append(FIGURES[number](env, runs))
        except Failed as error:
            rows.append(not_run(number, FIGURES[number].__doc__ or "", str(error), "—"))
            print(f"  failed: {error}", flush=True)
    return Results(env.title, rows)


def not_built(chosen: list[int], reason: str) -> Results:
    """The plain pip environment's rows when it could not be built."""
    rows: list[Row] = [
        not_run(n, FIGURES[n].__doc__ or "", f"the environment was not built: {reason}", "—")
        for n in chosen
    ]
    return Results("plain pip environment", rows)


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
    parser.add_argument(
        "--env",
        action="store_true",
        help="run the figures again in a plain pip environment (built in benchmarks/work/)",
    )
    args = parser.parse_args(argv)
    chosen = sorted(set(args.only or FIGURES))
    WORK.mkdir(parents=True, exist_ok=True)
    environments = [running_environment()]
    results = []
    try:
        results.append(run_figures(environments[0], chosen, args.runs))
        if args.env:
            try:
                environments.append(plain_environment())
            except Failed as error:
                print(f"  failed: {error}", flush=True)
                results.append(not_built(chosen, str(error)))
            else:
                results.append(run_figures(environments[-1], chosen, args.runs))
    finally:
        if not args.keep:
            remove(WORK / "large")
    packages = machine(environments, titled=args.env)
    text = report(results, args.runs, packages, PLAIN_ABOUT if args.env else "")
    print()
    print(text)
    target = RESULTS if args.only is None else WORK / "RESULTS-partial.md"
    kept = other_sections(RESULTS) if target == RESULTS else ""
    target.write_text(text + ("\n" + kept if kept else ""))
    print(f"written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
