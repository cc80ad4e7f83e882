"""The recipe JSON Schema: valid for every recipe graphkit accepts, refusing what it refuses."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from graphkit._cli import main
from graphkit._errors import RecipeError
from graphkit._plugins import default_plugins, load_plugins
from graphkit._recipe import load_recipe
from graphkit._schema import recipe_schema

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
EXAMPLE_PLUGIN = ROOT / "tests" / "data" / "example_plugin" / "graphkit_example_plugin.py"


def validator(plugins=None) -> jsonschema.Draft7Validator:
    schema = recipe_schema(plugins or default_plugins())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def as_editors_see_it(data: Any) -> Any:
    """YAML as JSON: an editor's language server sees every mapping key as text."""
    return json.loads(json.dumps(data))


def repository_recipes() -> list[Path]:
    found = [*ROOT.glob("recipes/*.yaml"), *ROOT.glob("benchmarks/recipes/*.yaml")]
    return sorted(found)


def readme_recipes() -> list[tuple[str, dict[str, Any]]]:
    """Every YAML block of the README; a fragment (a verify: block, say) gets a version."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    recipes = []
    for number, block in enumerate(blocks):
        data = yaml.safe_load(block)
        assert isinstance(data, dict), f"README yaml block {number} is not a mapping"
        if "version" not in data:
            data = {"version": 1, **data}
        recipes.append((f"readme-{number}", data))
    return recipes


def test_the_schema_is_a_valid_json_schema_and_printed_by_the_cli(capsys) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    jsonschema.Draft7Validator.check_schema(printed)
    assert printed == recipe_schema(default_plugins())


@pytest.mark.parametrize("path", repository_recipes(), ids=lambda p: p.name)
def test_every_recipe_in_the_repository_is_valid(path: Path) -> None:
    load_recipe(path)  # graphkit accepts it ...
    data = yaml.safe_load(path.read_text())
    validator().validate(as_editors_see_it(data))  # ... and so does the schema


def test_the_repository_has_recipes() -> None:
    names = {p.name for p in repository_recipes()}
    assert {"signature-cleaning.yaml", "signature-verification.yaml"} <= names


@pytest.mark.parametrize(("name", "data"), readme_recipes(), ids=lambda x: str(x)[:12])
def test_every_recipe_in_the_readme_is_valid(name: str, data: dict[str, Any]) -> None:
    validator().validate(as_editors_see_it(data))


def test_the_readme_has_recipes() -> None:
    recipes = readme_recipes()
    assert len(recipes) >= 3
    assert any("passes" in data for _, data in recipes)


def test_each_pass_and_format_is_described_with_its_parameters() -> None:
    schema = recipe_schema(default_plugins())
    passes = schema["properties"]["passes"]["items"]["anyOf"]
    named = passes[1]["properties"]
    assert set(named) == set(default_plugins().passes)
    assert named["fix_dims"]["description"].startswith("Fix symbolic dimensions")
    defs = schema["$defs"]
    simplify = defs[named["simplify"]["anyOf"][0]["$ref"].rsplit("/", 1)[-1]]
    assert simplify["properties"]["check_n"]["default"] == 0
    assert simplify["properties"]["check_n"]["type"] == "integer"
    assert simplify["properties"]["check_n"]["description"]
    fix_dims = defs[named["fix_dims"]["anyOf"][0]["$ref"].rsplit("/", 1)[-1]]
    assert fix_dims["properties"]["dims"]["default"] == {}  # a factory's default is shown
    # A pass that needs a parameter cannot be written as a bare name.
    assert "set_opset" not in passes[0]["enum"]
    assert "simplify" in passes[0]["enum"]
    formats = {
        b["properties"]["format"]["const"]: b for b in schema["properties"]["source"]["anyOf"][:-1]
    }
    assert set(formats) == {"onnx", "savedmodel", "torch"}
    assert formats["savedmodel"]["properties"]["opset"]["default"] == 17
    assert formats["torch"]["required"] == ["inputs"]


def test_a_plugin_pass_is_in_the_schema() -> None:
    plugins = load_plugins([EXAMPLE_PLUGIN])
    recipe = {"version": 1, "passes": [{"stamp": {"key": "k", "value": "v"}}, "stamp"]}
    validator(plugins).validate(recipe)
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(recipe)  # without the plugin, 'stamp' is unknown
    with pytest.raises(jsonschema.ValidationError):
        validator(plugins).validate({"version": 1, "passes": [{"stamp": {"key": 1}}]})


BASE: dict[str, Any] = {
    "version": 1,
    "source": {"path": "model.onnx", "format": "onnx"},
    "passes": [
        {"rename_io": {"inputs": {"input_1": "input"}}},
        {"fix_dims": {"dims": {"unk__127": 1}, "shapes": {"input": [1, "n", 3]}}},
        "simplify",
        {"set_opset": {"version": 17}},
        {"cleanup": None},
    ],
    "output": "build/model.onnx",
    "save": {"external_data": "weights.bin", "threshold_bytes": 0},
    "verify": {"against": "source", "samples": 2, "rtol": 1.0e-4, "atol": 0, "per_pass": True},
}

#: Changes to BASE that graphkit validate refuses: unknown keys and wrong types.
REFUSED: dict[str, tuple[tuple[Any, ...], Any]] = {
    "unknown top-level key": (("pases",), ["simplify"]),
    "unknown source key": (("source", "opset"), 13),
    "unknown pass": (("passes", 2), "simplfy"),
    "unknown parameter": (("passes", 0, "rename_io", "input"), {"a": "b"}),
    "unknown save key": (("save", "external"), True),
    "unknown verify key": (("verify", "tolerance"), 0.1),
    "version as text": (("version",), "1"),
    "version 2": (("version",), 2),
    "version true": (("version",), True),
    "opset as text": (("passes", 3, "set_opset", "version"), "17"),
    "size as a float": (("passes", 1, "fix_dims", "dims", "unk__127"), 1.5),
    "size below one": (("passes", 1, "fix_dims", "dims", "unk__127"), 0),
    "renames as a list": (("passes", 0, "rename_io", "inputs"), ["input_1"]),
    "parameters as a number": (("passes", 3), {"set_opset": 17}),
    "a pass as a list": (("passes", 2), ["simplify"]),
    "two passes in one item": (("passes", 2), {"simplify": None, "cleanup": None}),
    "required parameter missing": (("passes", 3), "set_opset"),
    "rtol as text": (("verify", "rtol"), "1e-4"),
    "negative atol": (("verify", "atol"), -1),
    "against something else": (("verify", "against"), "tensorflow"),
    "empty output": (("output",), ""),
    "path as a number": (("source", "path"), 3),
    "plugins as text": (("plugins",), "my_passes.py"),
    "threshold as bool": (("save", "threshold_bytes"), True),
    "format unknown": (("source", "format"), "onxx"),
    "torch without inputs": (("source",), {"path": "m.pt", "format": "torch"}),
    "torch dtype unknown": (
        ("source",),
        {"path": "m.pt", "format": "torch", "inputs": {"x": {"shape": [1], "dtype": "f32"}}},
    ),
}


def changed(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


def test_the_base_recipe_is_valid_for_both(tmp_path: Path) -> None:
    load_recipe(BASE, base_dir=tmp_path)
    validator().validate(BASE)


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_schema_refuses_what_validate_refuses(case: str, tmp_path: Path) -> None:
    data = changed(*REFUSED[case])
    with pytest.raises(RecipeError):
        load_recipe(data, base_dir=tmp_path)
    errors = list(validator().iter_errors(as_editors_see_it(data)))
    assert errors, f"the schema accepts {case}"


#: Golden cases that are not about the recipe's structure: YAML syntax and
#: safety (the schema sees parsed data) and files that must exist.
NOT_STRUCTURAL = {"yaml_syntax", "python_tag", "duplicate_key", "missing_plugin"}


@pytest.mark.parametrize(
    "case", sorted(p.stem for p in GOLDEN.glob("*.yaml") if p.stem not in NOT_STRUCTURAL)
)
def test_the_schema_refuses_each_golden_invalid_recipe(case: str) -> None:
    data = yaml.safe_load((GOLDEN / f"{case}.yaml").read_text())
    assert not validator().is_valid(as_editors_see_it(data))
