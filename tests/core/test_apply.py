"""The main job end to end: a tf2onnx-like model through the recipe of the README."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

import graphkit
from graphkit._cli import main
from tests.models import random_input, run, tf2onnx_like, write

RECIPE = """\
version: 1
name: my-model
source:
  path: model.onnx
  format: onnx
passes:
  - rename_io:
      inputs: {input_1: input}
      outputs: {conv2d_6: output}
  - fix_dims:
      dims: {unk__127: 1, unk__128: 1}
  - simplify
  - set_opset:
      version: 17
output: build/model.onnx
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    write(tf2onnx_like(size=8), folder / "model.onnx")
    (folder / "recipe.yaml").write_text(RECIPE)
    return folder


def assert_converted(path: Path, source: Path) -> None:
    model = onnx.load(path)
    graph = model.graph
    assert [i.name for i in graph.input] == ["input"]
    assert [o.name for o in graph.output] == ["output"]
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    for info in [*graph.input, *graph.output, *graph.value_info]:
        dims = info.type.tensor_type.shape.dim
        assert all(d.HasField("dim_value") for d in dims), f"{info.name} is not static"
    assert [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim] == [1, 8, 8, 3]
    assert len(graph.value_info) > 0, "intermediate shapes should be recorded"
    x = random_input((1, 8, 8, 3))
    expected = run(source, {"input_1": x})["conv2d_6"]
    np.testing.assert_array_equal(run(path, {"input": x})["output"], expected)


def test_cli_applies_the_readme_recipe(project: Path, in_other_dir: Path, capsys) -> None:
    assert main(["apply", str(project / "recipe.yaml")]) == 0
    assert_converted(project / "build" / "model.onnx", project / "model.onnx")
    out = capsys.readouterr().out
    assert "input  input_1 float32[unk__127,8,8,3] -> input float32[unk__127,8,8,3]" in out
    assert "opset: 13 -> 17" in out
    assert f"wrote {project / 'build' / 'model.onnx'}" in out
    # The last line says where the run's time went, phase by phase.
    last = out.splitlines()[-1]
    assert re.fullmatch(r"time: import [\d.]+s, passes [\d.]+s, save [\d.]+s", last), last


def test_library_does_the_same(project: Path, in_other_dir: Path) -> None:
    model = graphkit.load(project / "model.onnx")
    model = graphkit.passes.rename_io(
        model, inputs={"input_1": "input"}, outputs={"conv2d_6": "output"}
    )
    model = graphkit.passes.fix_dims(model, dims={"unk__127": 1, "unk__128": 1})
    model = graphkit.passes.simplify(model)
    model = graphkit.passes.set_opset(model, version=17)
    graphkit.save(model, project / "lib" / "model.onnx")
    assert_converted(project / "lib" / "model.onnx", project / "model.onnx")


def test_library_applies_a_recipe_file(project: Path, in_other_dir: Path) -> None:
    result = graphkit.apply(project / "recipe.yaml")
    assert result.output == project / "build" / "model.onnx"
    assert [s.step.pass_.name for s in result.steps] == [
        "rename_io",
        "fix_dims",
        "simplify",
        "set_opset",
    ]
    assert list(result.seconds) == ["import", "passes", "save"]
    assert all(seconds >= 0 for seconds in result.seconds.values())
    assert_converted(result.output, project / "model.onnx")


def test_library_applies_a_dict_recipe(project: Path, in_other_dir: Path) -> None:
    recipe = {
        "version": 1,
        "source": {"path": str(project / "model.onnx")},
        "passes": [
            {"rename_io": {"inputs": {"input_1": "input"}, "outputs": {"conv2d_6": "output"}}},
            {"fix_dims": {"dims": {"unk__127": 1, "unk__128": 1}}},
            "simplify",
            {"set_opset": {"version": 17}},
        ],
    }
    result = graphkit.apply(recipe, output=project / "dict" / "model.onnx")
    assert_converted(project / "dict" / "model.onnx", project / "model.onnx")
    assert result.model.graph.outputs[0].name == "output"


def test_a_dict_recipe_without_output_only_returns_the_model(project: Path) -> None:
    recipe = {"version": 1, "source": {"path": str(project / "model.onnx")}, "passes": ["cleanup"]}
    before = sorted(p.name for p in project.rglob("*"))
    result = graphkit.apply(recipe)
    assert result.output is None
    assert sorted(p.name for p in project.rglob("*")) == before


def test_a_failing_recipe_writes_nothing(project: Path, capsys) -> None:
    (project / "recipe.yaml").write_text(RECIPE.replace("unk__128: 1", "unk__999: 1"))
    assert main(["apply", str(project / "recipe.yaml")]) == 5
    assert not (project / "build").exists()
    err = capsys.readouterr().err
    assert err.startswith("graphkit: error: passes[1] fix_dims (")
    assert "no symbolic dim named 'unk__999' (the model has: 'unk__127', 'unk__128')" in err
    assert "Traceback" not in err


def test_a_failing_recipe_leaves_an_existing_output_as_it_was(project: Path) -> None:
    output = project / "build" / "model.onnx"
    output.parent.mkdir()
    output.write_bytes(b"previous result")
    (project / "recipe.yaml").write_text(RECIPE.replace("version: 17", "version: 99"))
    assert main(["apply", str(project / "recipe.yaml")]) == 5
    assert output.read_bytes() == b"previous result"
    assert sorted(p.name for p in output.parent.iterdir()) == ["model.onnx"]


def test_source_and_output_overrides(project: Path, tmp_path: Path) -> None:
    other = write(tf2onnx_like(size=4), tmp_path / "other" / "m.onnx")
    out = tmp_path / "out.onnx"
    assert (
        main(["apply", str(project / "recipe.yaml"), "--source", str(other), "-o", str(out)]) == 0
    )
    assert [d.dim_value for d in onnx.load(out).graph.input[0].type.tensor_type.shape.dim] == [
        1,
        4,
        4,
        3,
    ]
    assert not (project / "build").exists()


def test_quiet_prints_nothing(project: Path, capsys) -> None:
    assert main(["apply", "-q", str(project / "recipe.yaml")]) == 0
    assert capsys.readouterr() == ("", "")


def test_a_recipe_without_a_source(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent("version: 1\npasses: [cleanup]\n"))
    assert main(["apply", str(recipe)]) == 3
    assert "no source: give source.path in the recipe or --source" in capsys.readouterr().err
