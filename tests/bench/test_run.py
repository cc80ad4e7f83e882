"""The benchmark suite's pure parts: its results page and its environments.

No timings are asserted; the suite itself is ``python benchmarks/run.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks.environments import Environment, file_hash, off_pins, pins, reusable
from benchmarks.figures import pass_seconds
from benchmarks.harness import Results, Row, not_run, other_sections, report, tables


def row(number: int, ratio: float | None, notes: list[str]) -> Row:
    return Row(
        number, f"figure {number}", "1.00 s", "2.00 s", ratio, "0.40-0.60", "≤ 1.0", "yes", notes
    )


PINNED = Results("constraints.txt environment", [row(4, 0.5, ["shared", "took 1 s"])])
PLAIN = Results("plain pip environment", [row(4, 0.75, ["shared", "took 2 s"])])


def test_one_environment_gives_one_table_without_a_heading() -> None:
    page = report([PINNED], 5, ["- machine"])
    assert "###" not in page
    assert page.count("| # | figure |") == 1
    assert "| 4 | figure 4 | 1.00 s | 2.00 s | 0.50 | 0.40-0.60 | ≤ 1.0 | yes |" in page
    assert "- 4: shared\n- 4: took 1 s\n" in page


def test_two_environments_give_a_table_under_each_heading() -> None:
    page = report([PINNED, PLAIN], 5, ["- machine"], "About the environments.")
    first = page.index("### constraints.txt environment")
    second = page.index("### plain pip environment")
    assert first < page.index("| 0.50 |") < second < page.index("| 0.75 |")
    assert "About the environments." in page


def test_a_note_both_environments_give_is_listed_once_and_others_name_theirs() -> None:
    page = report([PINNED, PLAIN], 5, [])
    notes = page[page.index("Notes:") : page.index("Machine:")].strip().splitlines()[2:]
    assert notes == [
        "- 4: shared",
        "- 4 (constraints.txt environment): took 1 s",
        "- 4 (plain pip environment): took 2 s",
    ]


def test_a_figure_not_run_in_one_environment_says_so_there_only() -> None:
    failed = Results("plain pip environment", [not_run(4, "figure 4", "pip failed", "≤ 1.0")])
    lines = tables([PINNED, failed])
    plain = lines[lines.index("### plain pip environment") :]
    assert "not run" not in "\n".join(lines[: lines.index("### plain pip environment")])
    assert "| 4 | figure 4 | not run | not run | — |  | ≤ 1.0 | not measured |" in "\n".join(plain)


def test_a_rewrite_keeps_the_other_scripts_sections(tmp_path: Path) -> None:
    # The headings of a two-environment page must not pass for another script's section.
    page = report([PINNED, PLAIN], 5, ["- machine"])
    others = "<!-- precision -->\n## float16\n\ntable\n"
    results = tmp_path / "RESULTS.md"
    results.write_text(page + "\n" + others)
    assert other_sections(results) == others


def test_an_environment_is_reused_only_when_built_from_the_same_pyproject(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "graphkit"\n')
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").touch()
    (env / "bin" / "graphkit").touch()
    digest = file_hash(pyproject)
    assert not reusable(env, digest)  # no stamp: the build did not finish
    (env / "graphkit-pyproject.sha256").write_text(digest + "\n")
    assert reusable(env, digest)
    pyproject.write_text('[project]\nname = "graphkit"\ndependencies = ["onnx>=1.21"]\n')
    assert not reusable(env, file_hash(pyproject))
    (env / "bin" / "graphkit").unlink()
    assert not reusable(env, digest)


def test_an_environment_runs_the_graphkit_beside_its_python() -> None:
    env = Environment.of("/envs/plain/bin/python", "plain", "plain pip environment")
    assert env.graphkit == "/envs/plain/bin/graphkit"
    assert env.log("startup-graphkit") == "plain-startup-graphkit"


def test_versions_off_constraints_pins_are_named(tmp_path: Path) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("# pins\ntorch==2.13.0\nonnxsim==0.7.3  # no torch import\npytest==9\n")
    pinned = pins(constraints)
    assert pinned == {"torch": "2.13.0", "onnxsim": "0.7.3", "pytest": "9"}
    installed = {"torch": "2.13.0+cpu", "onnxsim": "0.8.1", "pytest": None, "onnx": "1.23.2"}
    assert off_pins(installed, pinned) == ["onnxsim 0.8.1"]


def test_the_pass_times_graphkit_reports_are_read_from_its_log() -> None:
    log = (
        "import model.onnx (onnx)\n"
        "[1/2] rename_io: 25 -> 25 nodes (0.00s)\n"
        "  input  input_1 float32[unk__127,224,224,3] -> input float32[unk__127,224,224,3]\n"
        "[2/2] fix_dims: 25 -> 25 nodes (0.65s)\n"
        "wrote out.onnx\n"
    )
    assert pass_seconds(log) == {"rename_io": 0.0, "fix_dims": 0.65}


def test_time_spent_splits_the_last_run_by_graphkit_s_own_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import figures
    from benchmarks.harness import Measure

    monkeypatch.setattr(figures, "WORK", tmp_path)
    env = Environment.of(Path(sys.executable), "here", "here")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / f"{env.log('run')}.log").write_text(
        "[1/2] rename_io: 5 -> 5 nodes (0.01s)\n"
        "[2/2] fix_dims: 5 -> 5 nodes (0.20s)\n"
        "wrote out.onnx\n"
        "time: import 0.30s, passes 0.21s, save 0.05s\n"
    )
    text = figures.time_spent(env, "run", [Measure(9.0, 0), Measure(1.0, 0)])
    assert text == (
        "Where graphkit's last run (1.00 s) went: start-up, imports and exit 0.44 s; "
        "the source's import 0.30 s; passes 0.21 s (rename_io 0.01 s, fix_dims 0.20 s); "
        "save 0.05 s."
    )


def test_a_measured_row_judges_the_median_ratio() -> None:
    from benchmarks.harness import Measure, measured_row

    a = [Measure(2.0, 2**20), Measure(3.0, 2**20), Measure(9.0, 2**21)]
    b = [Measure(2.0, 0), Measure(2.0, 0), Measure(2.0, 0)]
    judged = measured_row(7, "t", a, b, "≤ 1.4", lambda ratio: str(ratio <= 1.4), ["n"])
    assert (judged.ratio, judged.met, judged.spread) == (1.5, "False", "1.00-4.50")
    assert judged.graphkit == "3.00 s, peak 2 MiB"
    assert measured_row(7, "t", a, b, "none", None, []).met == "—"
