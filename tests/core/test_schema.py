"""The recipe JSON Schema: valid for every recipe graphkit accepts, refusing what it refuses."""

from __future__ import annotations

import copy
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit._authoring.schema import recipe_schema
from graphkit._cli import main
from graphkit._errors import GraphkitError, RecipeError
from graphkit._plugins import default_plugins, load_plugins
from graphkit._recipe.recipe import load_recipe
from tests.reliability.test_fuzz import recipes as fuzzed_recipes

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
    assert simplify["properties"]["engine"]["default"] == "auto"
    assert simplify["properties"]["engine"]["enum"] == ["auto", "onnxsim", "onnxslim"]
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


tensor_names = st.sampled_from(["input_1", "conv2d_6", "x", "y:0", "a b", "yes", "1"])
sizes = st.integers(-1, 4)
valid_steps = st.one_of(
    st.sampled_from(["simplify", "cleanup", "check", "infer_shapes", "extract", "set_opset"]),
    st.fixed_dictionaries(
        {"cleanup": st.none() | st.fixed_dictionaries({}, optional={"sort": st.booleans()})}
    ),
    st.fixed_dictionaries(
        {
            "rename_io": st.fixed_dictionaries(
                {},
                optional={
                    "inputs": st.dictionaries(tensor_names, tensor_names, max_size=2),
                    "outputs": st.dictionaries(tensor_names, tensor_names, max_size=2),
                },
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "fix_dims": st.fixed_dictionaries(
                {},
                optional={
                    "dims": st.dictionaries(tensor_names, sizes, max_size=2),
                    "shapes": st.dictionaries(
                        tensor_names, st.lists(sizes | tensor_names, max_size=3), max_size=1
                    ),
                },
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "set_opset": st.fixed_dictionaries(
                {"version": st.integers(0, 25) | st.sampled_from(["17", 17.0])}
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "extract": st.fixed_dictionaries(
                {},
                optional={
                    "inputs": st.lists(tensor_names, max_size=2),
                    "outputs": st.lists(tensor_names, max_size=2),
                },
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "simplify": st.fixed_dictionaries(
                {},
                optional={
                    "check_n": sizes,
                    "tensor_size_threshold": st.sampled_from(["1.5GB", "10MB", 5]),
                    "skipped_optimizers": st.lists(tensor_names, max_size=2),
                },
            )
        }
    ),
)
valid_sources = st.one_of(
    st.just({"path": "m.onnx"}),
    st.fixed_dictionaries({"path": st.just("m.onnx"), "format": st.just("onnx")}),
    st.fixed_dictionaries(
        {
            "path": st.just("w.pt"),
            "format": st.just("torch"),
            "inputs": st.dictionaries(
                tensor_names,
                st.fixed_dictionaries(
                    {"shape": st.lists(sizes, max_size=3)},
                    optional={"dtype": st.sampled_from(["uint8", "float32", "f32"])},
                ),
                max_size=2,
            ),
        },
        optional={
            "opset": st.integers(5, 20),
            "exporter": st.sampled_from(["dynamo", "torchscript", "jit"]),
            "module": st.sampled_from(["m.py:Net", "pkg.mod:Net", "Net"]),
            "dynamic": st.dictionaries(
                tensor_names, st.dictionaries(sizes, tensor_names, max_size=1), max_size=1
            ),
        },
    ),
    st.fixed_dictionaries(
        {"path": st.just("saved"), "format": st.just("savedmodel")},
        optional={
            "opset": st.integers(8, 19),
            "tag": st.sampled_from(["serve", ""]),
            "inputs_as_nchw": st.lists(tensor_names, max_size=1),
            "large_model": st.booleans(),
        },
    ),
)
structured_recipes = st.fixed_dictionaries(
    {"version": st.sampled_from([1] * 8 + ["1", True]), "source": valid_sources},
    optional={
        "name": st.sampled_from(["n", "n", None, 3]),
        "passes": st.lists(valid_steps, max_size=4),
        "output": st.sampled_from(["out.onnx", "", None]),
        "save": st.fixed_dictionaries(
            {},
            optional={
                "external_data": st.sampled_from([None, True, False, "w.bin", "a/b", 1]),
                "threshold_bytes": sizes,
                "max_shard_bytes": sizes | st.none(),
            },
        ),
        "verify": st.fixed_dictionaries(
            {},
            optional={
                "against": st.sampled_from(["source", "imported", "tf"]),
                "samples": sizes,
                "rtol": st.floats(-1, 1) | sizes,
                "per_pass": st.booleans(),
                "seed": sizes,
            },
        ),
    },
)


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(recipe=st.one_of(structured_recipes, structured_recipes, fuzzed_recipes))
def test_the_schema_accepts_every_recipe_graphkit_accepts(recipe: dict) -> None:
    """Random recipes, mostly near valid ones: none graphkit accepts is marked wrong in an editor.

    Each one the schema refuses graphkit refuses too (the converse does not hold:
    graphkit also checks what a schema cannot, such as files and dim names).
    """
    folder = Path(tempfile.mkdtemp(prefix="graphkit-schema-"))
    try:
        (folder / "m.onnx").write_bytes(b"")  # validation only looks at the name
        try:
            load_recipe(recipe, base_dir=folder)
        except GraphkitError:
            return
        errors = [e.message for e in validator().iter_errors(as_editors_see_it(recipe))]
        assert not errors, errors
    finally:
        shutil.rmtree(folder)
