"""Plugins: built-ins, plugin files, installed entry points, and what goes wrong with them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import graphkit
from graphkit._cli import main
from graphkit._errors import PluginError
from graphkit._plugins import BUILTIN_PLUGINS, DISABLE_AUTOLOAD_ENV, default_plugins, load_plugins
from tests.models import tf2onnx_like, write

CORE_PASSES = {
    "check",
    "cleanup",
    "fix_dims",
    "infer_shapes",
    "rename_io",
    "set_metadata",
    "set_opset",
    "simplify",
}
EXAMPLE_PLUGIN = Path(__file__).parents[1] / "data" / "example_plugin"


def plugin_file(folder: Path, body: str, name: str = "my_passes.py") -> Path:
    path = folder / name
    path.write_text("import graphkit\nfrom pydantic import Field\n\n" + textwrap.dedent(body))
    return path


NOOP_PASS = """
    @graphkit.graph_pass("{name}")
    def noop(model, params):
        '''Do nothing, honestly.'''
        return graphkit.PassResult(model, modified=False)

    @graphkit.hookimpl
    def graphkit_passes():
        return [noop]
"""


def test_built_in_plugins_register_through_the_public_hooks() -> None:
    plugins = load_plugins(autoload=False)
    assert set(plugins.passes) >= CORE_PASSES
    infos = {info.name: info for info in plugins.describe()}
    assert set(BUILTIN_PLUGINS) <= set(infos)
    for name in BUILTIN_PLUGINS:
        assert infos[name].kind == "builtin"
    assert infos["graphkit_plugins.passes.fix_dims"].passes == ("fix_dims",)
    assert "onnx" in infos["graphkit_plugins.frontends.onnx_source"].frontends
    # Each pass is found through the graphkit_passes hook, like a third-party one.
    hooked = {p.name for found in plugins.manager.hook.graphkit_passes() for p in found}
    assert hooked == set(plugins.passes)


def test_every_pass_is_documented() -> None:
    for pass_ in load_plugins(autoload=False).passes.values():
        assert pass_.summary, pass_.name
        assert all(field.description for field in pass_.params.model_fields.values()), pass_.name


def test_a_plugin_file_adds_a_pass(tmp_path: Path) -> None:
    path = plugin_file(tmp_path, NOOP_PASS.format(name="noop"))
    plugins = load_plugins([path], autoload=False)
    assert "noop" in plugins.passes
    assert plugins.owner[("pass", "noop")] == str(path.resolve())
    assert [i.kind for i in plugins.describe() if i.name == str(path.resolve())] == ["file"]


def test_two_passes_with_one_name_is_an_error_naming_both_plugins(tmp_path: Path) -> None:
    path = plugin_file(tmp_path, NOOP_PASS.format(name="rename_io"))
    with pytest.raises(PluginError) as caught:
        load_plugins([path], autoload=False)
    assert str(caught.value) == (
        f"pass 'rename_io' is registered by two plugins: 'graphkit_plugins.passes.rename_io' "
        f"and '{path.resolve()}'"
    )


def test_a_misspelt_hook_is_an_error(tmp_path: Path) -> None:
    path = plugin_file(
        tmp_path,
        """
        @graphkit.hookimpl
        def graphkit_pass():
            return []
        """,
    )
    with pytest.raises(PluginError, match="unknown hook 'graphkit_pass'"):
        load_plugins([path], autoload=False)


def test_a_plugin_that_fails_to_import_names_its_file(tmp_path: Path, capsys) -> None:
    path = plugin_file(tmp_path, "raise RuntimeError('boom')\n")
    assert main(["passes", "--plugin", str(path)]) == PluginError.exit_code
    err = capsys.readouterr().err
    assert (
        err == f"graphkit: error: {path.resolve()}: plugin failed to import: RuntimeError: boom\n"
    )


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        ('@graphkit.graph_pass("Bad-Name")\ndef f(m, p):\n    """Doc."""\n', "snake_case"),
        ('@graphkit.graph_pass("nodoc")\ndef f(m, p):\n    pass\n', "needs a docstring"),
        (
            "class P(graphkit.Params):\n    x: int = 1\n\n"
            '@graphkit.graph_pass("undescribed", P)\ndef f(m, p):\n    """Doc."""\n',
            "parameters without a description: x",
        ),
        (
            '@graphkit.graph_pass("notparams", dict)\ndef f(m, p):\n    """Doc."""\n',
            "graphkit.Params",
        ),
    ],
    ids=["name", "docstring", "description", "params-type"],
)
def test_pass_definitions_are_checked(tmp_path: Path, definition: str, problem: str) -> None:
    path = plugin_file(tmp_path, definition)
    with pytest.raises(PluginError, match=problem):
        load_plugins([path], autoload=False)


def test_a_pass_returning_the_wrong_type_is_reported(tmp_path: Path) -> None:
    path = plugin_file(
        tmp_path,
        """
        @graphkit.graph_pass("sloppy")
        def sloppy(model, params):
            '''Return the model itself instead of a PassResult.'''
            return model

        @graphkit.hookimpl
        def graphkit_passes():
            return [sloppy]
        """,
    )
    sloppy = load_plugins([path], autoload=False).passes["sloppy"]
    model = graphkit.load(write(tf2onnx_like(), tmp_path / "m.onnx"))
    with pytest.raises(PluginError, match=r"returned Model, not graphkit\.PassResult"):
        sloppy(model)


def test_recipe_plugins_are_relative_to_the_recipe(tmp_path: Path, in_other_dir: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    plugin_file(project, NOOP_PASS.format(name="noop"))
    write(tf2onnx_like(), project / "model.onnx")
    (project / "recipe.yaml").write_text(
        "version: 1\nplugins: [my_passes.py]\nsource: {path: model.onnx}\npasses: [noop]\n"
    )
    result = graphkit.apply(project / "recipe.yaml")
    assert [s.step.pass_.name for s in result.steps] == ["noop"]
    assert result.steps[0].modified is False


def test_cli_plugin_option_shows_the_pass(tmp_path: Path, capsys) -> None:
    path = plugin_file(
        tmp_path,
        """
        class Params(graphkit.Params):
            factor: float = Field(2.0, description="How much to scale by.")
            names: list[str] = Field(default_factory=list, description="Outputs to scale.")

        @graphkit.graph_pass("scale", Params)
        def scale(model, params):
            '''Scale some outputs.

            A longer explanation.
            '''
            return graphkit.PassResult(model, modified=False)

        @graphkit.hookimpl
        def graphkit_passes():
            return [scale]
        """,
    )
    assert main(["passes", "--plugin", str(path)]) == 0
    assert re.search(r"^scale +Scale some outputs\.$", capsys.readouterr().out, re.M)
    assert main(["passes", "scale", "--plugin", str(path)]) == 0
    assert capsys.readouterr().out == textwrap.dedent(
        """\
        scale
          Scale some outputs.

          A longer explanation.

        parameters:
          factor: float = 2.0
              How much to scale by.
          names: list[str] = []
              Outputs to scale.
        """
    )


def test_plugins_may_ship_recipes(tmp_path: Path, capsys) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "tidy.yaml").write_text(
        "version: 1\ndescription: Tidy a model up.\npasses: [cleanup]\n"
    )
    path = plugin_file(
        tmp_path,
        f"""
        from pathlib import Path

        @graphkit.hookimpl
        def graphkit_recipe_dirs():
            return [Path({str(recipes)!r})]
        """,
    )
    assert main(["recipes", "--plugin", str(path)]) == 0
    listed = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert listed["tidy"] == "Tidy a model up."
    assert main(["validate", "tidy", "--plugin", str(path)]) == 0
    assert "tidy.yaml: valid: 1 passes" in capsys.readouterr().out


@pytest.fixture(scope="module")
def installed_example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin built and installed (into a folder) by pip, entry points and all."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--no-build-isolation", "--target", str(target), str(EXAMPLE_PLUGIN),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    assert (target / "graphkit_example_plugin.py").exists()
    return target


def test_an_installed_entry_point_plugin_is_found(
    installed_example_plugin: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(installed_example_plugin))
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV)
    default_plugins.cache_clear()
    try:
        plugins = load_plugins()
        assert plugins.owner[("pass", "stamp")] == "example"
        [info] = [i for i in plugins.describe() if i.name == "example"]
        assert info.kind == "entry point"
        assert info.location == "graphkit-example-plugin 0.1.0 (graphkit_example_plugin)"
        # Third-party passes are callable from the library like built-in ones.
        model = graphkit.load(write(tf2onnx_like(), tmp_path / "m.onnx"))
        model = graphkit.passes.stamp(model, value="yes")
        assert model.metadata_props["stamped_by"] == "yes"
        # ... and can be switched off.
        assert "stamp" not in load_plugins(autoload=False).passes
    finally:
        default_plugins.cache_clear()


def test_the_cli_lists_an_installed_plugin(installed_example_plugin: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != DISABLE_AUTOLOAD_ENV}
    env["PYTHONPATH"] = str(installed_example_plugin)
    result = subprocess.run(
        [sys.executable, "-m", "graphkit", "plugins"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "example  [entry point]  graphkit-example-plugin 0.1.0" in result.stdout
    assert "    passes: stamp" in result.stdout
    env[DISABLE_AUTOLOAD_ENV] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "graphkit", "plugins"], env=env, capture_output=True, text=True
    )
    assert "example" not in result.stdout
