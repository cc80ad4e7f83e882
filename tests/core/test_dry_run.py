"""``graphkit apply --dry-run``: the plan, worked out without running, importing or writing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from graphkit._cli import main
from graphkit._errors import ModelError, PassError, RecipeError
from tests.large.builders import DATA_NAME, external_model, write_external
from tests.models import tf2onnx_like, write

ROOT = Path(__file__).resolve().parents[2]

RECIPE = """\
version: 1
source:
  path: model.onnx
passes:
  - rename_io:
      inputs: {input_1: input}
      outputs: {conv2d_6: output}
  - fix_dims:
      dims: {unk__127: 1}
  - set_opset:
      version: 17
  - cleanup
output: build/out.onnx
verify:
  samples: 3
  atol: 1.0e-6
"""


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes; folders as b'<dir>'."""
    return {
        str(p.relative_to(folder)): b"<dir>" if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
    }


def test_the_plan_of_an_onnx_recipe(tmp_path: Path, capsys) -> None:
    write(tf2onnx_like(size=4), tmp_path / "model.onnx")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    before = tree(tmp_path)
    assert main(["apply", str(recipe), "--dry-run"]) == 0
    assert tree(tmp_path) == before  # nothing written
    out = capsys.readouterr().out
    expected = f"""\
        plan for {recipe} (dry run: no weights read, no framework run, nothing written)
        source: {tmp_path}/model.onnx (format onnx)
          read without its weights: 5 nodes, opset 13, 336 B of weights
          input  input_1 float32[unk__127,4,4,3]
          output conv2d_6 float32[unk__128,4,4,3]
        passes: 4
          [1/4] rename_io  ({recipe}:5:5)
              inputs: {{input_1: input}}
              outputs: {{conv2d_6: output}}
            renames input input_1 -> input
            renames output conv2d_6 -> output
          [2/4] fix_dims  ({recipe}:8:5)
              dims: {{unk__127: 1}}
              shapes: {{}}  (default)
            sets unk__127 = 1, used by input, nchw, conv, relu, nhwc
            then infers every shape again
          [3/4] set_opset  ({recipe}:10:5)
              version: 17
            converts the default domain's opset to 17
          [4/4] cleanup  ({recipe}:12:5)
              identities: true  (default)
              unused: true  (default)
              sort: true  (default)
        output: {tmp_path}/build/out.onnx
          layout (as for the source; passes may change sizes): one file
        verify: against source: the source model, run by ONNX Runtime
          3 random input sets (seed 0), rtol 0.0001, atol 1e-06
        """
    assert out == textwrap.dedent(expected)


def test_external_data_is_not_read(tmp_path: Path, capsys) -> None:
    source = write_external(external_model(), tmp_path / "src")
    (tmp_path / "src" / DATA_NAME).unlink()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "version: 1\nsource: {path: src/model.onnx}\npasses: [check]\noutput: out/m.onnx\n"
    )
    assert main(["apply", str(recipe), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"of weights ({DATA_NAME} external)\n" in out
    assert "  layout (as for the source; passes may change sizes): weights in m.onnx.data" in out
    assert not (tmp_path / "out").exists()
    assert source.is_file()


def test_problems_are_all_shown_then_fail_the_run(tmp_path: Path, capsys) -> None:
    write(tf2onnx_like(size=4), tmp_path / "model.onnx")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        RECIPE.replace("{input_1: input}", "{input_2: input}").replace("unk__127", "unk__9")
    )
    assert main(["apply", str(recipe), "--dry-run"]) == PassError.exit_code
    captured = capsys.readouterr()
    assert "    ! no graph input named 'input_2' (inputs: ['input_1'])\n" in captured.out
    assert "the run would fail: 2 problems\n" in captured.out
    assert "verify: against source" in captured.out  # the plan goes on to the end
    assert captured.err == (
        f"graphkit: error: passes[0] rename_io ({recipe}:5:5): no graph input named 'input_2' "
        "(inputs: ['input_1'])\n"
        f"graphkit: error: passes[1] fix_dims ({recipe}:8:5): no symbolic dim named 'unk__9' "
        "(the model has: ['unk__127', 'unk__128'])\n"
    )


def test_a_missing_source(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    assert main(["apply", str(recipe), "--dry-run"]) == ModelError.exit_code
    captured = capsys.readouterr()
    assert "  ! missing\n" in captured.out
    assert captured.err == f"graphkit: error: {tmp_path}/model.onnx: no such file or folder\n"


def test_an_invalid_recipe_is_refused_as_apply_refuses_it(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("version: 1\npasses: [simplfy]\n")
    assert main(["apply", str(recipe), "--dry-run"]) == RecipeError.exit_code
    assert "unknown pass 'simplfy'; did you mean 'simplify'?" in capsys.readouterr().err


#: Runs the dry runs in a fresh interpreter and reports the frameworks it imported.
PROBE = """
import contextlib, io, json, sys
from graphkit._cli import main
codes, outputs = [], []
for args in json.loads(sys.argv[1]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        codes.append(main(args))
    outputs.append(out.getvalue())
heavy = sorted(m for m in ("tensorflow", "tf2onnx", "torch", "keras") if m in sys.modules)
print(json.dumps({"codes": codes, "outputs": outputs, "imported": heavy}))
"""


def test_the_built_in_recipes_and_an_onnx_one_without_importing_a_framework(
    tmp_path: Path,
) -> None:
    # Where the built-in recipes look for their sources. A dry run reads neither
    # file, so stand-ins of the right kind (a folder with saved_model.pb, a .pt) do.
    savedmodel = tmp_path / "signature-image-cleaning" / "model"
    savedmodel.mkdir(parents=True)
    (savedmodel / "saved_model.pb").write_bytes(b"")
    checkpoint = tmp_path / "signature-verification" / "convnet_best_loss.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")
    write(tf2onnx_like(size=4), tmp_path / "model.onnx")
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    before = tree(tmp_path)

    runs = [
        ["apply", "signature-cleaning", "--dry-run"],
        ["apply", "signature-verification", "--dry-run"],
        ["apply", "recipe.yaml", "--dry-run"],
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(runs)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["codes"] == [0, 0, 0]
    assert report["imported"] == []
    assert tree(tmp_path) == before

    cleaning, verification, onnx_recipe = report["outputs"]
    folder = tmp_path.resolve()  # a built-in recipe's paths are relative to the current folder
    assert f"source: {folder}/signature-image-cleaning/model (format savedmodel)\n" in cleaning
    assert "    opset: 17\n" in cleaning
    assert "    inputs_as_nchw: []  (default)\n" in cleaning
    assert "    renames input input_1 -> input\n" in cleaning
    assert "    sets input input to shape [1, 224, 224, 3]\n" in cleaning
    assert "verify: against source: the source, run by its framework (savedmodel frontend)\n" in (
        cleaning
    )
    assert "    state_dict_key: model\n" in verification
    assert "    exporter: dynamo\n" in verification
    assert "  [4/4] set_metadata" in verification
    assert "sets unk__127 = 1, used by input, nchw, conv, relu, nhwc\n" in onnx_recipe


@pytest.mark.parametrize("flag", ["-o", "--source"])
def test_overrides_apply_to_the_plan(flag: str, tmp_path: Path, capsys) -> None:
    write(tf2onnx_like(size=4), tmp_path / "model.onnx")
    write(tf2onnx_like(size=4), tmp_path / "other.onnx")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    value = str(tmp_path / ("elsewhere.onnx" if flag == "-o" else "other.onnx"))
    assert main(["apply", str(recipe), "--dry-run", flag, value]) == 0
    out = capsys.readouterr().out
    assert (f"output: {value}\n" if flag == "-o" else f"source: {value} (format onnx)\n") in out
    assert not (tmp_path / "elsewhere.onnx").exists()


def test_a_recipe_without_a_source(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("version: 1\npasses: [cleanup]\n")
    assert main(["apply", str(recipe), "--dry-run"]) == RecipeError.exit_code
    captured = capsys.readouterr()
    assert "source: none\n" in captured.out
    assert "output: none (nothing would be written; give output: or -o)\n" in captured.out
    assert captured.err == (
        f"graphkit: error: {recipe}: no source: give source.path in the recipe or --source\n"
    )
