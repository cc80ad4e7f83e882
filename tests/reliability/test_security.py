"""Hostile models and recipes: no foreign code runs, no file outside its folder is read or written.

People run graphkit on files they downloaded. A recipe may run only the
plugin and module files it names; a model may point only at data inside its
own folder; nothing may exhaust the stack or memory on the way to saying no.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphkit
from graphkit import ModelError, RecipeError
from graphkit._modelio.load import MAX_GRAPH_DEPTH, _check_tensor_locations
from graphkit._recipe.safe_yaml import MAX_BYTES, MAX_DEPTH, load_yaml
from tests.models import as_ir, random_input, run, tf2onnx_like, write
from tests.reliability.conftest import Cli, run_console, snapshot
from tests.reliability.hostile import external_tensor, identity_model, nested_if

# -- recipes: safe YAML ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        "!!python/object/apply:builtins.open [{marker}, w]",
        "!!python/object/new:builtins.open [{marker}, w]",
        "!!python/name:os.system",
        "!!python/object:builtins.object {{}}",
        "!<tag:yaml.org,2002:python/object/apply:builtins.open> [{marker}, w]",
    ],
    ids=["apply", "new", "name", "object", "verbatim-tag"],
)
def test_python_tags_are_refused_and_never_run(payload: str, tmp_path: Path, cli: Cli) -> None:
    marker = tmp_path / "ran"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"version: 1\nname: {payload.format(marker=marker)}\npasses: []\n")

    outcome = cli("validate", recipe)

    outcome.assert_clean_failure(RecipeError.exit_code, f"{recipe}:2:7: unsupported YAML tag")
    assert not marker.exists()


def test_an_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(RecipeError, match="more than 100000 values"):
        load_yaml("\n".join(lines), "bomb.yaml")


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a]\n",
        "a: &a {b: *a}\n",
        # each anchor nests the one before: 20 000 levels deep in 600 KiB
        "".join(f"a{i}: &a{i} [*a{i - 1}]\n" if i else "a0: &a0 [x]\n" for i in range(20_000)),
    ],
    ids=["list-holds-itself", "mapping-holds-itself", "anchor-chain"],
)
def test_anchors_nesting_without_end_are_refused_in_bounded_memory(
    text: str, tmp_path: Path
) -> None:
    """Each nested value carried its whole path: memory grew with the square of the depth.

    Run in a child process capped at 1 GiB, so a regression fails instead of
    exhausting the machine.
    """
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)

    outcome = run_console("validate", recipe, cwd=tmp_path, limit_memory=2**30)

    outcome.assert_clean_failure(RecipeError.exit_code, f"nested deeper than {MAX_DEPTH} levels")


def test_a_recipe_over_one_mib_is_refused(tmp_path: Path, cli: Cli) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\n" + "# padding\n" * (MAX_BYTES // 10 + 1))
    cli("validate", recipe).assert_clean_failure(RecipeError.exit_code, f"{recipe}: larger than")


def test_duplicate_keys_are_refused(tmp_path: Path, cli: Cli) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\npasses: [cleanup]\npasses: [check]\n")
    outcome = cli("validate", recipe)
    outcome.assert_clean_failure(RecipeError.exit_code, f"{recipe}:3:1: duplicate key 'passes'")


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, "version: 1\npasses: " + "{a: " * 2000 + "1" + "}" * 2000],
    ids=["flow-sequences", "flow-mappings"],
)
def test_deep_nesting_is_refused_without_a_recursion_traceback(
    text: str, tmp_path: Path, cli: Cli
) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    outcome = cli("validate", recipe)
    outcome.assert_clean_failure(RecipeError.exit_code, str(recipe))
    assert "RecursionError" not in outcome.err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: 1\nname: a\x00b\n",
            "r.yaml:2:8: YAML syntax error: unacceptable character #x0000",
        ),
        (
            'version: 1\nname: "\\ud800"\n',
            "r.yaml:2:7: invalid value: '\\ud800' holds a lone surrogate",
        ),
    ],
    ids=["nul", "lone-surrogate"],
)
def test_characters_no_model_can_hold_are_refused(
    text: str, message: str, tmp_path: Path, cli: Cli
) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    cli("validate", recipe).assert_clean_failure(RecipeError.exit_code, message)


# -- recipes: nothing is imported because a recipe names it ---------------------------------------

PROBE = "graphkit_import_probe"


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable module that leaves a marker file when imported; returns the marker's path."""
    folder = tmp_path / "site"
    folder.mkdir()
    marker = tmp_path / "imported"
    (folder / f"{PROBE}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\ndef run(*a): pass\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, PROBE, raising=False)
    return marker


@pytest.mark.parametrize(
    "body",
    [
        f"source: {{path: m.onnx, format: {PROBE}}}\npasses: [cleanup]",
        f"source: {{path: m.onnx, format: '{PROBE}:run'}}\npasses: [cleanup]",
        f"source: {{path: m.onnx}}\npasses: [{PROBE}]",
        f"source: {{path: m.onnx}}\npasses: ['{PROBE}.run']",
        f"source: {{path: m.onnx}}\npasses: [{{'{PROBE}:run': {{}}}}]",
        f"plugins: [{PROBE}]\nsource: {{path: m.onnx}}\npasses: [cleanup]",
        f"source: {{path: m.onnx}}\npasses: [cleanup]\n{PROBE}: 1",
    ],
    ids=["format", "format-entry", "pass", "pass-dotted", "pass-entry", "plugin-by-module", "key"],
)
def test_a_name_in_a_recipe_never_imports_a_module(
    body: str, probe: Path, tmp_path: Path, cli: Cli
) -> None:
    write(tf2onnx_like(), tmp_path / "m.onnx")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"version: 1\n{body}\noutput: out.onnx\n")

    outcome = cli("apply", recipe)

    outcome.assert_clean_failure(RecipeError.exit_code, str(recipe))
    assert not probe.exists()
    assert PROBE not in sys.modules
    assert not (tmp_path / "out.onnx").exists()


def test_a_recipe_argument_that_names_a_module_imports_nothing(probe: Path, cli: Cli) -> None:
    cli("apply", PROBE).assert_clean_failure(RecipeError.exit_code, f"{PROBE}: no such recipe file")
    assert not probe.exists()


def test_tools_run_in_a_helper_process_do_not_import_from_the_working_folder(
    tmp_path: Path,
) -> None:
    """A downloaded folder holding ``onnx.py`` must not stand in for onnx in the helper process."""
    marker = tmp_path / "imported"
    (tmp_path / "onnx.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    write(tf2onnx_like(), tmp_path / "m.onnx")
    (tmp_path / "r.yaml").write_text(
        "version: 1\nsource: {path: m.onnx}\noutput: out.onnx\n"
        "passes: [{set_opset: {version: 17}}, infer_shapes, check]\n"
    )

    outcome = run_console("apply", "-q", "r.yaml", cwd=tmp_path)

    assert outcome.code == 0, outcome.err
    assert not marker.exists()


# -- models: external data stays inside the model's folder ----------------------------------------


def _in_subgraph(tensor: onnx.TensorProto) -> onnx.ModelProto:
    branch = helper.make_graph(
        [helper.make_node("Identity", [tensor.name], ["b"])],
        "branch",
        [],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])],
        [tensor],
    )
    node = helper.make_node("If", ["c"], ["unused"], then_branch=branch, else_branch=branch)
    model = identity_model(nodes=[node])
    model.graph.input.append(helper.make_tensor_value_info("c", TensorProto.BOOL, []))
    return model


def _in_function_body(tensor: onnx.TensorProto) -> onnx.ModelProto:
    function = onnx.FunctionProto(
        name="F",
        domain="local",
        input=["a"],
        output=["b"],
        node=[helper.make_node("Constant", [], ["b"], value=tensor)],
    )
    return identity_model(functions=[function])


def _in_function_default(tensor: onnx.TensorProto) -> onnx.ModelProto:
    function = onnx.FunctionProto(
        name="F",
        domain="local",
        input=["a"],
        output=["b"],
        node=[helper.make_node("Identity", ["a"], ["b"])],
        attribute_proto=[helper.make_attribute("weights", tensor)],
    )
    return identity_model(functions=[function])


PLACES: dict[str, Callable[[onnx.TensorProto], onnx.ModelProto]] = {
    "initializer": lambda t: identity_model(initializers=[t]),
    "constant": lambda t: identity_model(nodes=[helper.make_node("Constant", [], ["c"], value=t)]),
    "subgraph": _in_subgraph,
    "function-body": _in_function_body,
    "function-default": _in_function_default,
}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A secret beside the model's folder, ``tmp_path/model``, and a link to it from inside."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x00" * 4)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "link.bin").symlink_to(secret)
    return folder


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize(
    ("location", "problem"),
    [
        ("../secret.bin", "outside the model's folder"),
        ("{secret}", "outside the model's folder"),
        ("link.bin", "which links outside the model's folder"),
        ("..\\secret.bin", "outside the model's folder"),
        ("C:secret.bin", "outside the model's folder"),
    ],
    ids=["dotdot", "absolute", "symlink", "windows-dotdot", "windows-drive"],
)
def test_external_data_outside_the_folder_is_refused(
    place: str, location: str, problem: str, outside: Path, cli: Cli
) -> None:
    location = location.format(secret=outside.parent / "secret.bin")
    path = outside / "model.onnx"
    onnx.save(PLACES[place](external_tensor("w", ("location", location))), path)

    outcome = cli("inspect", path)

    outcome.assert_clean_failure(
        ModelError.exit_code, f"{path}: tensor 'w' keeps its data in {location!r}", problem
    )


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ([("location", "a\x00b")], "the location holds a NUL character"),
        ([("location", ".")], "which is not a regular file"),
        ([("location", "fifo")], "which is not a regular file"),
        ([("location", "data.bin"), ("location", "../secret.bin")], "names a key twice"),
        ([("location", "data.bin"), ("offset", "-4")], "offset '-4' is not a non-negative"),
        ([("offset", "0")], "external data without a location"),
    ],
    ids=["nul", "the-folder", "fifo", "two-locations", "negative-offset", "no-location"],
)
def test_odd_external_data_entries_are_refused(
    entries: list[tuple[str, str]], problem: str, outside: Path, cli: Cli
) -> None:
    os.mkfifo(outside / "fifo")  # reading it would never end
    (outside / "data.bin").write_bytes(b"\x00" * 4)
    path = outside / "model.onnx"
    onnx.save(identity_model(initializers=[external_tensor("w", *entries)]), path)

    cli("inspect", path).assert_clean_failure(ModelError.exit_code, f"{path}: tensor 'w'", problem)


def test_data_inside_the_folder_is_read_from_any_working_folder(
    outside: Path, in_other_dir: Path, cli: Cli
) -> None:
    """The control: a location inside the folder, even through a link that stays inside."""
    (outside / "weights").mkdir()
    (outside / "weights" / "w.bin").write_bytes(np.float32(4.0).tobytes())
    (outside / "inner.bin").symlink_to(outside / "weights" / "w.bin")
    proto = identity_model(initializers=[external_tensor("w", ("location", "inner.bin"))])
    proto.graph.node.insert(0, helper.make_node("Add", ["x", "w"], ["x_plus_w"]))
    proto.graph.output.append(helper.make_tensor_value_info("x_plus_w", TensorProto.FLOAT, [1]))
    onnx.save(proto, outside / "model.onnx")
    (outside / "r.yaml").write_text(
        "version: 1\nsource: {path: model.onnx}\noutput: ../out/model.onnx\npasses: [check]\n"
    )

    outcome = cli("apply", "-q", outside / "r.yaml")

    assert outcome.code == 0, outcome.err
    result = run(outside.parent / "out" / "model.onnx", {"x": np.ones(1, np.float32)})
    assert result["x_plus_w"].tolist() == [5.0]


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        (
            lambda: identity_model(
                nodes=[
                    helper.make_node(
                        "Constant",
                        [],
                        ["s"],
                        sparse_value=helper.make_sparse_tensor(
                            external_tensor("v", ("location", "../secret.bin")),
                            numpy_helper.from_array(np.array([0], np.int64), "i"),
                            [4],
                        ),
                    )
                ]
            ),
            "attribute 'sparse_value' holds a sparse tensor; sparse tensors are not supported",
        ),
        (
            lambda: _with_sparse_initializer(),
            "sparse initializers ('v') are not supported; graphkit would lose them",
        ),
        (
            lambda: _with_training_info(),
            "models with training information are not supported",
        ),
    ],
    ids=["sparse-attribute", "sparse-initializer", "training-info"],
)
def test_what_graphkit_would_lose_or_not_check_is_refused(
    model: Callable[[], onnx.ModelProto], problem: str, outside: Path, cli: Cli
) -> None:
    """onnx_ir drops sparse initializers and training graphs: saving would lose them silently."""
    path = outside / "model.onnx"
    onnx.save(model(), path)
    cli("inspect", path).assert_clean_failure(ModelError.exit_code, f"{path}: {problem}")


def _with_sparse_initializer() -> onnx.ModelProto:
    model = identity_model()
    model.graph.sparse_initializer.append(
        helper.make_sparse_tensor(
            external_tensor("v", ("location", "../secret.bin")),
            numpy_helper.from_array(np.array([0], np.int64), "i"),
            [4],
        )
    )
    return model


def _with_training_info() -> onnx.ModelProto:
    model = identity_model()
    model.training_info.add().initialization.CopyFrom(
        helper.make_graph([], "init", [], [], [external_tensor("v", ("location", "../secret.bin"))])
    )
    return model


def test_onnx_is_required_at_a_version_without_known_external_data_flaws() -> None:
    """onnx up to 1.20.1 follows symbolic links out of a model's folder (CVE-2026-27489) and lets a
    model's external-data keys overwrite loader state (CVE-2026-34445); 1.21.0 fixed both.

    graphkit checks locations itself; the floor protects whatever else in the process
    reads models with onnx's own loaders.
    """
    import importlib.metadata

    from packaging.requirements import Requirement
    from packaging.version import Version

    [onnx_requirement] = [
        Requirement(r)
        for r in importlib.metadata.requires("graphkit") or []
        if r.startswith("onnx>")
    ]
    assert not onnx_requirement.specifier.contains("1.20.1")
    assert onnx_requirement.specifier.contains("1.21.0")
    assert Version(onnx.__version__) >= Version("1.21")


# -- saving: nothing is written outside the output's folder, nor through a link -------------------


@pytest.mark.parametrize("name", ["../escape.data", "/tmp/escape.data", "sub/escape.data", ".."])
def test_a_data_file_name_outside_the_output_folder_is_refused(
    name: str, tmp_path: Path, cli: Cli
) -> None:
    write(tf2onnx_like(), tmp_path / "m.onnx")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: {path: m.onnx}\noutput: out/model.onnx\n"
        f"save: {{external_data: '{name}'}}\npasses: [cleanup]\n"
    )
    before = snapshot(tmp_path.parent)

    outcome = cli("apply", recipe)

    outcome.assert_clean_failure(RecipeError.exit_code, f"{recipe}:4:", "save.external_data")
    assert snapshot(tmp_path.parent) == before


def test_links_in_the_output_folder_are_replaced_never_written_through(
    tmp_path: Path, cli: Cli
) -> None:
    """The model and data file names are links to files elsewhere; those stay as they were."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "model").write_bytes(b"not yours")
    (elsewhere / "data").write_bytes(b"not yours either")
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").symlink_to(elsewhere / "model")
    (out / "w.data").symlink_to(elsewhere / "data")
    write(tf2onnx_like(), tmp_path / "m.onnx")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: {path: m.onnx}\noutput: out/model.onnx\n"
        "save: {external_data: w.data, threshold_bytes: 0}\npasses: [cleanup]\n"
    )
    before = snapshot(elsewhere)

    outcome = cli("apply", "-q", recipe)

    assert outcome.code == 0, outcome.err
    assert snapshot(elsewhere) == before
    assert not (out / "model.onnx").is_symlink() and not (out / "w.data").is_symlink()
    feeds = {"input_1": random_input((1, 8, 8, 3))}
    expected = run(tf2onnx_like(), feeds)["conv2d_6"]
    np.testing.assert_allclose(run(out / "model.onnx", feeds)["conv2d_6"], expected, rtol=1e-6)


# -- nesting: capped, and walked without deep recursion -------------------------------------------


def test_a_model_nested_past_the_cap_is_refused(tmp_path: Path, cli: Cli) -> None:
    """Past about 32 levels protobuf itself refuses to parse; either way, one clean line."""
    path = tmp_path / "deep.onnx"
    path.write_bytes(nested_if(MAX_GRAPH_DEPTH + 1).SerializeToString())
    cli("inspect", path).assert_clean_failure(ModelError.exit_code, f"{path}: ", "nested")


@pytest.mark.parametrize("inside", ["graph", "function"])
def test_graphkit_counts_the_depth_itself(inside: str) -> None:
    """protobuf's cap depends on its build; graphkit's own walk refuses the same depth."""
    deep = nested_if(MAX_GRAPH_DEPTH + 1)
    if inside == "function":
        # Built in place: protobuf refuses to copy a message this deep into another.
        model = identity_model()
        function = model.functions.add(name="F", domain="local", output=["out1"])
        function.input.extend(["x", "cond"])
        function.node.extend(deep.graph.node)
        deep = model
    with pytest.raises(ModelError, match=f"nested deeper than {MAX_GRAPH_DEPTH} levels"):
        _check_tensor_locations(deep, Path("deep.onnx"))


@contextlib.contextmanager
def stack_budget(frames: int) -> Iterator[None]:
    """Allow only ``frames`` more Python frames than are in use now."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + frames)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


#: At the cap of 32 levels, a walk may spend about 12 frames a level.
BUDGET = 400


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("rename_io", {"inputs": {"x": "data"}, "outputs": {"out1": "result"}}),
        ("fix_dims", {"dims": {"N": 3}}),
        ("cleanup", {}),
        ("set_opset", {"version": 17}),
        ("infer_shapes", {}),
        ("check", {}),
    ],
)
def test_passes_work_at_the_cap_within_a_small_stack(
    name: str, params: dict, tmp_path: Path
) -> None:
    source = write(nested_if(MAX_GRAPH_DEPTH), tmp_path / "deep.onnx")
    feeds = {"x": np.array([1.0, -1.0, 3.0], np.float32), "cond": np.array(True)}
    [expected] = run(source, feeds).values()

    with stack_budget(BUDGET):
        model = graphkit.load(source)
        model = getattr(graphkit.passes, name)(model, **params)
        graphkit.save(model, tmp_path / "out.onnx")

    renamed = {"data" if k == "x" else k: v for k, v in feeds.items()}
    [got] = run(tmp_path / "out.onnx", renamed if name == "rename_io" else feeds).values()
    np.testing.assert_array_equal(got, expected)


def test_integrity_check_at_the_cap_within_a_small_stack(tmp_path: Path) -> None:
    from graphkit._modelio.load import integrity_problem

    model = as_ir(nested_if(MAX_GRAPH_DEPTH))
    with stack_budget(BUDGET):
        assert integrity_problem(model) is None


# -- checkpoints: unpickling runs no code unless trusted ------------------------------------------


class _Payload:
    """Unpickling this creates a file: proof that code in a checkpoint ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


TINY_NET = textwrap.dedent(
    """\
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(x)
    """
)


@pytest.mark.torch
@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "inside-state-dict"])
def test_a_pickle_payload_in_a_checkpoint_never_runs(
    wrapped: bool, tmp_path: Path, cli: Cli
) -> None:
    torch = pytest.importorskip("torch")
    marker = tmp_path / "ran"
    payload = _Payload(marker)
    state = {"fc.weight": torch.zeros(2, 2), "fc.bias": payload} if wrapped else payload
    torch.save(state, tmp_path / "evil.pt")
    assert not marker.exists()
    (tmp_path / "net.py").write_text(TINY_NET)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: {path: evil.pt, module: 'net.py:Net', "
        "inputs: {x: {shape: [1, 2]}}}\noutput: out.onnx\npasses: []\n"
    )

    outcome = cli("apply", recipe)

    outcome.assert_clean_failure(
        ModelError.exit_code, f"{tmp_path / 'evil.pt'}: holds ", "set trust: true"
    )
    assert not marker.exists()
    assert not (tmp_path / "out.onnx").exists()
