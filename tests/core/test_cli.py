"""The command line: listing, inspecting, validating, exit codes and error output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest

from graphkit._cli import main
from graphkit._errors import (
    INTERNAL_ERROR,
    PIPE_CLOSED,
    ModelError,
    PassError,
    RecipeError,
    UsageError,
)
from tests.models import tf2onnx_like, with_if, write


def test_help_lists_commands_and_exit_codes(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("apply", "validate", "passes", "plugins", "recipes", "inspect"):
        assert f"    {command}" in out
    assert "  7    the converted model's outputs differ from the reference" in out


def test_passes_lists_every_core_pass_with_its_summary(capsys) -> None:
    assert main(["passes"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"^fix_dims +Fix symbolic dimensions \(such as tf2onnx's unk__127\)", out, re.M
    )
    names = [line.split()[0] for line in out.splitlines()]
    assert names == sorted(names)
    assert {"rename_io", "fix_dims", "simplify", "set_opset", "infer_shapes", "check"} <= set(names)


def test_passes_name_shows_parameters(capsys) -> None:
    assert main(["passes", "set_opset"]) == 0
    out = capsys.readouterr().out
    assert "  version: int = required\n" in out
    assert "The opset version of the default domain to convert to." in out


def test_an_unknown_pass_name_suggests_one(capsys) -> None:
    assert main(["passes", "simplfy"]) == UsageError.exit_code
    assert capsys.readouterr().err == (
        "graphkit: error: no pass named 'simplfy'; did you mean 'simplify'?\n"
    )


def test_inspect_shows_interface_dims_and_ops(tmp_path: Path, capsys) -> None:
    path = write(tf2onnx_like(size=8), tmp_path / "m.onnx")
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  input_1 float32[unk__127,8,8,3]\n" in out
    assert "  conv2d_6 float32[unk__128,8,8,3]\n" in out
    assert "opsets: ai.onnx 13" in out
    assert "  Transpose                2\n" in out
    assert "  unk__127: input_1, nchw, conv, relu, nhwc\n" in out
    assert "  unk__128: conv2d_6\n" in out
    assert "weights: 336 B (336 B inline, 0 B external)" in out


def test_inspect_counts_subgraph_ops(tmp_path: Path, capsys) -> None:
    assert main(["inspect", str(write(with_if(), tmp_path / "if.onnx"))]) == 0
    out = capsys.readouterr().out
    assert "  Add                      1\n" in out
    assert "  Mul                      1\n" in out


def test_inspect_a_missing_file(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.onnx"
    assert main(["inspect", str(missing)]) == ModelError.exit_code
    assert capsys.readouterr().err == f"graphkit: error: {missing}: no such file\n"


def test_validate_reports_a_valid_recipe(tmp_path: Path, capsys) -> None:
    write(tf2onnx_like(), tmp_path / "m.onnx")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: {path: m.onnx}\npasses: [cleanup, check]\noutput: o.onnx\n"
    )
    assert main(["validate", str(recipe)]) == 0
    source, output = tmp_path / "m.onnx", tmp_path / "o.onnx"
    expected = f"{recipe}: valid: 2 passes, source {source} (onnx), output {output}\n"
    assert capsys.readouterr().out == expected


def test_an_unknown_recipe_name(capsys) -> None:
    assert main(["apply", "no-such-recipe"]) == RecipeError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("graphkit: error: no-such-recipe: no such recipe file, and no built-in")


BROKEN_PASS = """
import graphkit

@graphkit.graph_pass("explode")
def explode(model, params):
    '''Fail with an unexpected exception.'''
    return 1 / 0

@graphkit.hookimpl
def graphkit_passes():
    return [explode]
"""


@pytest.fixture
def exploding(tmp_path: Path) -> Path:
    (tmp_path / "explode.py").write_text(BROKEN_PASS)
    write(tf2onnx_like(), tmp_path / "m.onnx")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        textwrap.dedent(
            """\
            version: 1
            plugins: [explode.py]
            source: {path: m.onnx}
            passes:
              - cleanup
              - explode
            output: out.onnx
            """
        )
    )
    return recipe


def test_a_crashing_pass_is_one_line_naming_the_step(exploding: Path, capsys) -> None:
    assert main(["apply", str(exploding)]) == PassError.exit_code
    err = capsys.readouterr().err
    assert err == (
        f"graphkit: error: passes[1] explode ({exploding}:6:5) failed: "
        "ZeroDivisionError: division by zero\n"
    )
    assert not (exploding.parent / "out.onnx").exists()


def test_debug_shows_the_traceback(exploding: Path, capsys) -> None:
    assert main(["--debug", "apply", str(exploding)]) == PassError.exit_code
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "ZeroDivisionError" in err
    assert main(["apply", str(exploding), "--debug"]) == PassError.exit_code
    assert "Traceback" in capsys.readouterr().err


def test_an_internal_error_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import graphkit._cli

    def broken(args):
        raise KeyError("surprise")

    monkeypatch.setattr(graphkit._cli, "_passes", broken)
    assert main(["passes"]) == INTERNAL_ERROR
    err = capsys.readouterr().err
    assert err.startswith("graphkit: internal error: KeyError: 'surprise' (rerun with --debug")
    assert err.count("\n") == 1


def test_start_up_imports_no_heavy_modules(tmp_path: Path) -> None:
    """Listing passes must not pay for onnx, onnx_ir, the simplifiers or any framework."""
    code = (
        "import sys\nfrom graphkit._cli import main\nmain(['passes'])\n"
        "heavy = ['onnx', 'onnx_ir', 'onnxsim', 'onnxslim', 'onnxruntime', 'tensorflow', 'torch',"
        " 'tf2onnx']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert result.stdout.splitlines()[-1] == "[]"


def test_the_console_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "graphkit"
    result = subprocess.run([str(script), "passes"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rename_io" in result.stdout


AT_EXIT_PLUGIN = """
import atexit
from pathlib import Path

atexit.register(lambda: Path("goodbye.txt").write_text("exit handlers ran"))
"""


@pytest.mark.parametrize(
    ("extra", "code"), [([], 0), (["no_such_pass"], UsageError.exit_code)], ids=["success", "error"]
)
def test_the_command_ends_quickly_but_completely(
    extra: list[str], code: int, tmp_path: Path
) -> None:
    """``python -m graphkit`` skips the interpreter's teardown, not the exit handlers or output."""
    (tmp_path / "goodbye_plugin.py").write_text(AT_EXIT_PLUGIN)
    command = [sys.executable, "-m", "graphkit", "passes", "--plugin", "goodbye_plugin.py", *extra]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert (tmp_path / "goodbye.txt").read_text() == "exit handlers ran"
    if code == 0:
        assert result.stdout.splitlines()[-1].startswith("simplify  "), "the listing is whole"
    else:
        assert result.stderr.startswith("graphkit: error: no pass named 'no_such_pass'")


def test_a_closed_pipe_is_not_an_internal_error(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """As in `graphkit passes | head`: the reader went away."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with capsys.disabled(), os.fdopen(write_end, "w", buffering=1) as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        assert main(["passes"]) == PIPE_CLOSED


def test_onnx_runtimes_warnings_stay_off_the_terminal(tmp_path: Path) -> None:
    # setup: a declared output shape that contradicts the graph, which ONNX Runtime warns
    # about in every session: the verification's two (the imported model and the result)
    contradicting = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[3] y) { y = Relu(x) }"""
    )
    onnx.save(contradicting, tmp_path / "model.onnx")
    (tmp_path / "recipe.yaml").write_text(
        "version: 1\nsource: {path: model.onnx}\npasses: [cleanup]\n"
        "output: out.onnx\nverify: {against: imported}\n"
    )

    def apply(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "graphkit", "apply", "recipe.yaml", *extra]
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)

    # execute
    quiet, debug = apply(), apply("--debug")
    # assert: nothing but graphkit's output; --debug shows what was hidden
    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert f"\nwrote {tmp_path / 'out.onnx'}\ntime: import " in quiet.stdout
    assert debug.returncode == 0
    assert debug.stderr.count("[W:onnxruntime:") == 2
