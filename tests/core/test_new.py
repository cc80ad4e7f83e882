"""``graphkit new``: starter recipes that validate, apply unchanged and match the schema."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import jsonschema
import onnx
import pytest
import yaml

from graphkit._authoring.schema import SCHEMA_FILE, schema_text
from graphkit._authoring.starter import _relative_options, parse_input, write_starter
from graphkit._cli import main
from graphkit._errors import UsageError
from graphkit._plugins import default_plugins
from tests.large.builders import external_model, write_external
from tests.models import from_text, ir3_weights_as_inputs, matmul, tf2onnx_like, with_if, write

ROOT = Path(__file__).resolve().parents[2]

ODD_NAMES = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[batch, 2] "input:0", float[batch, 2] yes) => (float[batch, 2] "out put")
    {
        "out put" = Add("input:0", yes)
    }"""

MODELS: dict[str, Callable[[Path], Path]] = {
    "tf2onnx_like": lambda folder: write(tf2onnx_like(size=4), folder / "model.onnx"),
    "matmul": lambda folder: write(matmul(8), folder / "model.onnx"),
    "with_if": lambda folder: write(with_if(), folder / "model.onnx"),
    "ir3_weights_as_inputs": lambda folder: write(ir3_weights_as_inputs(), folder / "model.onnx"),
    "odd_names": lambda folder: write(from_text(ODD_NAMES), folder / "model.onnx"),
    "external_data": lambda folder: write_external(external_model(), folder),
}


def interface(path: Path) -> tuple[list[str], list[str]]:
    model = onnx.load(path, load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    return inputs, [o.name for o in model.graph.output]


def round_trip(recipe: Path) -> dict:
    """The recipe is valid for the schema written beside it, which is `graphkit schema`'s."""
    schema_file = recipe.parent / SCHEMA_FILE
    first_line = recipe.read_text().splitlines()[0]
    assert first_line == f"# yaml-language-server: $schema={SCHEMA_FILE}"
    schema = json.loads(schema_file.read_text())
    assert schema_file.read_text() == schema_text(default_plugins())
    data = yaml.safe_load(recipe.read_text())
    jsonschema.Draft7Validator(schema).validate(json.loads(json.dumps(data)))
    return data


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_starter_recipe_validates_applies_unchanged_and_fits_the_schema(
    name: str, tmp_path: Path, capsys
) -> None:
    source = MODELS[name](tmp_path / "src")
    recipe = tmp_path / "work" / "recipe.yaml"
    recipe.parent.mkdir()
    assert main(["new", str(source), "-o", str(recipe)]) == 0
    assert f"wrote {recipe}" in capsys.readouterr().out.splitlines()
    data = round_trip(recipe)

    # Every real input and output, mapped to itself.
    inputs, outputs = interface(source)
    renames = data["passes"][0]["rename_io"]
    assert renames == {"inputs": {n: n for n in inputs}, "outputs": {n: n for n in outputs}}
    passes = [p if isinstance(p, str) else next(iter(p)) for p in data["passes"]]
    assert passes == ["rename_io", "simplify", "cleanup", "check"]
    assert data["source"]["path"] == f"../src/{source.name}"
    assert data["verify"] == {"against": "source", "samples": 2, "rtol": 1e-4, "atol": 1e-5}

    assert main(["validate", str(recipe)]) == 0
    assert main(["apply", str(recipe), "-q"]) == 0
    written = tmp_path / "work" / data["output"]
    assert interface(written) == (inputs, outputs)


def test_the_fix_dims_block_lists_every_dim_and_its_uses(tmp_path: Path) -> None:
    source = write(tf2onnx_like(size=4), tmp_path / "model.onnx")
    recipe = tmp_path / "recipe.yaml"
    starter = write_starter(source, recipe)
    assert (starter.inputs, starter.outputs, starter.dims) == (1, 1, 2)
    assert starter.schema == tmp_path / SCHEMA_FILE
    text = recipe.read_text()
    assert "  # - fix_dims:\n  #     dims:\n" in text
    assert "  #       unk__127: 1    # used by input_1, nchw, conv, relu, nhwc\n" in text
    assert "  #       unk__128: 1    # used by conv2d_6\n" in text
    assert "  #     # or: shapes: {input_1: [1, 4, 4, 3]}\n" in text


def test_edited_as_its_comments_say_it_renames_and_fixes(tmp_path: Path) -> None:
    source = write(tf2onnx_like(size=4), tmp_path / "model.onnx")
    recipe = tmp_path / "recipe.yaml"
    assert main(["new", str(source), "-o", str(recipe)]) == 0
    text = recipe.read_text()
    text = text.replace("input_1: input_1", "input_1: input")
    text = text.replace("conv2d_6: conv2d_6", "conv2d_6: output")
    # Uncomment the fix_dims block (but not its alternative `shapes:` line).
    text = re.sub(r"(?m)^  # (- fix_dims:|    dims:|      unk__)", r"  \1", text)
    recipe.write_text(text)
    round_trip(recipe)
    assert main(["apply", str(recipe), "-q"]) == 0
    result = onnx.load(tmp_path / "build" / "model.onnx")
    assert interface(tmp_path / "build" / "model.onnx") == (["input"], ["output"])
    dims = [d.dim_value for d in result.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 4, 4, 3]


def test_a_model_without_symbolic_dims_says_so(tmp_path: Path) -> None:
    source = write(matmul(8), tmp_path / "model.onnx")
    assert main(["new", str(source), "-o", str(tmp_path / "r.yaml")]) == 0
    text = (tmp_path / "r.yaml").read_text()
    assert "fix_dims:" not in text
    assert "  # No symbolic dims: every shape is already fixed, so no fix_dims.\n" in text


def test_the_default_recipe_name_comes_from_the_model(tmp_path: Path, monkeypatch) -> None:
    source = write(matmul(8), tmp_path / "src" / "net.onnx")
    monkeypatch.chdir(tmp_path)
    assert main(["new", str(source)]) == 0
    assert (tmp_path / "net.recipe.yaml").is_file()
    assert yaml.safe_load((tmp_path / "net.recipe.yaml").read_text())["output"] == "build/net.onnx"


def test_an_existing_recipe_is_kept_without_force(tmp_path: Path, capsys) -> None:
    source = write(matmul(8), tmp_path / "model.onnx")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("# mine\n")
    assert main(["new", str(source), "-o", str(recipe)]) == UsageError.exit_code
    assert capsys.readouterr().err == (
        f"graphkit: error: {recipe}: already exists; use --force to replace it\n"
    )
    assert recipe.read_text() == "# mine\n"
    assert not (tmp_path / SCHEMA_FILE).exists()
    assert main(["new", str(source), "-o", str(recipe), "--force"]) == 0
    assert recipe.read_text().startswith("# yaml-language-server:")


def test_a_schema_file_of_the_users_is_kept_without_force(tmp_path: Path, capsys) -> None:
    source = write(matmul(8), tmp_path / "model.onnx")
    (tmp_path / SCHEMA_FILE).write_text("{}\n")
    assert main(["new", str(source), "-o", str(tmp_path / "r.yaml")]) == 0
    assert "differs from `graphkit schema`; --force replaces it" in capsys.readouterr().out
    assert (tmp_path / SCHEMA_FILE).read_text() == "{}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "onxx"], "unknown format 'onxx'; did you mean 'onnx'? (known: "),
        (["--format", "torch"], "format 'torch': inputs: required: the model's inputs cannot be"),
        (["--format", "torch", "--input", "x"], "--input 'x': expected NAME=SHAPE[:DTYPE]"),
    ],
    ids=["misspelt-format", "torch-without-inputs", "bad-input"],
)
def test_usage_errors(args: list[str], message: str, tmp_path: Path, capsys) -> None:
    source = write(matmul(8), tmp_path / "model.onnx")
    recipe = tmp_path / "r.yaml"
    assert main(["new", str(source), "-o", str(recipe), *args]) == UsageError.exit_code
    assert message in capsys.readouterr().err
    assert not recipe.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("img=1,3,224,224:float32", ("img", {"shape": [1, 3, 224, 224], "dtype": "float32"})),
        ("img=150x220:uint8", ("img", {"shape": [150, 220], "dtype": "uint8"})),
        ("x=4", ("x", {"shape": [4]})),
        ("scalar=", ("scalar", {"shape": []})),
    ],
)
def test_input_specs(text: str, expected: tuple) -> None:
    assert parse_input(text) == expected


def test_a_module_file_is_written_relative_to_the_recipe(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "recipes").mkdir()
    monkeypatch.chdir(tmp_path)
    options = _relative_options({"module": "models/net.py:Net"}, tmp_path / "recipes")
    assert options == {"module": "../models/net.py:Net"}
    assert _relative_options({"module": "pkg.net:Net"}, tmp_path) == {"module": "pkg.net:Net"}


def test_a_file_of_no_known_format(tmp_path: Path, capsys) -> None:
    odd = tmp_path / "model.xyz"
    odd.write_text("?")
    assert main(["new", str(odd), "-o", str(tmp_path / "r.yaml")]) == UsageError.exit_code
    assert capsys.readouterr().err.startswith(
        f"graphkit: error: {odd}: cannot tell its format; give --format ("
    )


def test_plugin_files_are_listed_and_in_the_schema(tmp_path: Path) -> None:
    plugin = tmp_path / "plugins" / "stamp.py"
    plugin.parent.mkdir()
    plugin.write_text((ROOT / "tests/data/example_plugin/graphkit_example_plugin.py").read_text())
    source = write(matmul(8), tmp_path / "model.onnx")
    recipe = tmp_path / "work" / "r.yaml"
    recipe.parent.mkdir()
    assert main(["new", str(source), "-o", str(recipe), "--plugin", str(plugin)]) == 0
    assert yaml.safe_load(recipe.read_text())["plugins"] == ["../plugins/stamp.py"]
    schema = json.loads((recipe.parent / SCHEMA_FILE).read_text())
    assert "stamp" in schema["properties"]["passes"]["items"]["anyOf"][1]["properties"]
    assert main(["validate", str(recipe)]) == 0  # finds its plugin without --plugin


@pytest.mark.tf
@pytest.mark.slow
def test_the_signature_cleaning_savedmodel(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("tf_keras")
    from graphkit_plugins.signature.cleaning import build_cleaning_savedmodel

    build_cleaning_savedmodel(tmp_path / "cleaning" / "model", seed=0)
    monkeypatch.chdir(tmp_path)
    assert main(["new", "cleaning/model", "-o", "cleaning.yaml"]) == 0
    data = round_trip(tmp_path / "cleaning.yaml")
    assert data["source"] == {"path": "cleaning/model", "format": "savedmodel"}
    assert data["passes"][0]["rename_io"] == {
        "inputs": {"input_1": "input_1"},
        "outputs": {"conv2d_6": "conv2d_6"},
    }
    assert main(["apply", "cleaning.yaml", "-q"]) == 0
    assert interface(tmp_path / "build" / "model.onnx") == (["input_1"], ["conv2d_6"])


@pytest.mark.torch
@pytest.mark.slow
def test_the_signature_verification_checkpoint(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("torch")
    from graphkit_plugins.signature.siamese import build_verification_checkpoint

    build_verification_checkpoint(tmp_path / "verification" / "convnet_best_loss.pt", seed=0)
    monkeypatch.chdir(tmp_path)
    args = [
        "new",
        "verification/convnet_best_loss.pt",
        "--module",
        "graphkit_plugins.signature.siamese:SiameseModel",
        "--input",
        "input0=150,220:uint8",
        "--input",
        "input1=150x220:uint8",
        "-o",
        "verification.yaml",
    ]
    assert main(args) == 0
    data = round_trip(tmp_path / "verification.yaml")
    assert data["source"] == {
        "path": "verification/convnet_best_loss.pt",
        "format": "torch",
        "module": "graphkit_plugins.signature.siamese:SiameseModel",
        "state_dict_key": "model",  # found in the checkpoint
        "inputs": {
            "input0": {"shape": [150, 220], "dtype": "uint8"},
            "input1": {"shape": [150, 220], "dtype": "uint8"},
        },
    }
    assert main(["apply", "verification.yaml", "-q"]) == 0
    assert interface(tmp_path / "build" / "convnet_best_loss.onnx") == (
        ["input0", "input1"],
        ["output0", "output1", "output2"],
    )


def test_a_tidying_pass_that_fails_on_the_model_is_commented_out_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # setup: a simplify that fails on every model
    import dataclasses

    import graphkit._authoring.starter as starter
    from graphkit import PassError

    def failing(model, params):
        raise PassError("every engine failed: no engine could read the model")

    real = starter.load_plugins

    def plugins_with_failing_simplify(files):
        plugins = real(files)
        plugins.passes["simplify"] = dataclasses.replace(
            plugins.passes["simplify"], function=failing
        )
        return plugins

    monkeypatch.setattr(starter, "load_plugins", plugins_with_failing_simplify)
    source = MODELS["matmul"](tmp_path / "src")
    recipe = tmp_path / "recipe.yaml"
    # execute
    assert main(["new", str(source), "-o", str(recipe)]) == 0
    # assert: the recipe keeps simplify, commented out with the reason, and the rest live
    text = recipe.read_text()
    assert (
        "  # - simplify    # fails on this model: every engine failed: no engine could read "
        "the model\n"
    ) in text
    assert "  - cleanup\n" in text and "  - check\n" in text
    assert "simplify fails on this model, so it is commented out" in capsys.readouterr().out
