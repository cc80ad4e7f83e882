"""The savedmodel frontend: SavedModels from Keras 2, Keras 3 and tf.saved_model.save to ONNX.

Each SavedModel is built once per module: TensorFlow is slow to start and to trace.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from graphkit_plugins.frontends.savedmodel import SavedModelOptions, import_savedmodel

import graphkit
from graphkit import Imported, ModelError, RecipeError, SourceContext
from graphkit._cli import main
from graphkit._modelio.proto import to_proto
from tests.models import random_input, run, tf2onnx_like, write

SIZE = 32  # side of the Keras 2 stand-in; small, so TensorFlow stays quick
WEIGHTS = np.array([1.0, 2.0, 3.0, 4.0], np.float32)  # the plain module's variable


# -- SavedModels, one of each kind -----------------------------------------------------------------


@pytest.fixture(scope="module")
def keras2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The signature-cleaning stand-in: written by Keras 2, with keras_metadata.pb."""
    pytest.importorskip("tf_keras")
    from graphkit_plugins.signature.cleaning import build_cleaning_savedmodel

    return build_cleaning_savedmodel(tmp_path_factory.mktemp("keras2") / "model", size=SIZE)


@pytest.fixture(scope="module")
def keras3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Keras 3 model written by ``model.export()``: input 'image', output 'output_0'."""
    keras = pytest.importorskip("keras")
    if int(keras.__version__.split(".")[0]) < 3:
        pytest.skip("needs Keras 3")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Conv2D(2, 1, activation="sigmoid", name="mask")(x)
    folder = tmp_path_factory.mktemp("keras3") / "model"
    with contextlib.redirect_stdout(io.StringIO()):  # export() prints its endpoints
        keras.Model(inputs, outputs).export(str(folder))
    return folder


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tf.Module saved by tf.saved_model.save with two signatures over a rank-2 input 'x'.

    serving_default: output_0 = x * w. double: doubled = 2 x, plus = x + w.
    """
    tf = pytest.importorskip("tensorflow")
    spec = tf.TensorSpec([None, 4], tf.float32, name="x")

    class Scaler(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(WEIGHTS)

        @tf.function(input_signature=[spec])
        def scale(self, x: tf.Tensor) -> tf.Tensor:
            return x * self.w

        @tf.function(input_signature=[spec])
        def double(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"doubled": x * 2.0, "plus": x + self.w}

    module = Scaler()
    folder = tmp_path_factory.mktemp("plain") / "model"
    signatures = {"serving_default": module.scale, "double": module.double}
    tf.saved_model.save(module, str(folder), signatures=signatures)
    return folder


@pytest.fixture(scope="module")
def tagged(plain: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plain SavedModel with its MetaGraph tagged 'edge' instead of 'serve'."""
    from tensorflow.core.protobuf import saved_model_pb2

    folder = tmp_path_factory.mktemp("tagged") / "model"
    shutil.copytree(plain, folder)
    proto = saved_model_pb2.SavedModel.FromString((folder / "saved_model.pb").read_bytes())
    del proto.meta_graphs[0].meta_info_def.tags[:]
    proto.meta_graphs[0].meta_info_def.tags.append("edge")
    (folder / "saved_model.pb").write_bytes(proto.SerializeToString())
    return folder


def load(path: Path, **options: object) -> Imported:
    """Import ``path`` with the savedmodel frontend, as the runner does."""
    context = SourceContext(recipe_dir=path.parent, workdir=path.parent)
    return import_savedmodel.load(path, SavedModelOptions.model_validate(options), context)


def onnx_run(imported: Imported, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return run(to_proto(imported.model), feeds)


def names(values: object) -> list[str]:
    return [v.name for v in values]  # type: ignore[attr-defined]


def dims(value: object) -> list[int | str]:
    return [d if isinstance(d, int) else str(d) for d in value.shape]  # type: ignore[attr-defined]


def tensorflow_run(folder: Path, signature: str, **feeds: np.ndarray) -> dict[str, np.ndarray]:
    """Run a signature straight in TensorFlow, without graphkit's reference."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder))
    outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in feeds.items()})
    return {k: v.numpy() for k, v in outputs.items()}


def static(path: Path) -> None:
    """Assert that no input, output or value_info of the ONNX file has a symbolic dim."""
    graph = onnx.load(path).graph
    for info in [*graph.input, *graph.output, *graph.value_info]:
        shape = info.type.tensor_type.shape
        assert all(d.HasField("dim_value") for d in shape.dim), f"{info.name}: {shape}"


# -- detection and start-up ------------------------------------------------------------------------


def test_detect_needs_a_folder_holding_saved_model_pb(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    assert not import_savedmodel.detect(folder)
    (folder / "saved_model.pb").write_bytes(b"")
    assert import_savedmodel.detect(folder)
    assert not import_savedmodel.detect(folder / "saved_model.pb")
    assert not import_savedmodel.detect(tmp_path / "missing")


def test_a_recipe_without_format_picks_savedmodel(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "saved_model.pb").write_bytes(b"")
    recipe = graphkit.load_recipe({"version": 1, "source": {"path": "model"}}, base_dir=tmp_path)
    assert recipe.source is not None
    assert recipe.source.frontend.name == "savedmodel"
    assert recipe.source.options == SavedModelOptions()


NO_TENSORFLOW = """
import sys
from graphkit._cli import main

codes = []
for argv in (
    ["--help"],
    ["passes"],
    ["passes", "fix_dims"],
    ["plugins"],
    ["recipes"],
    ["validate", "signature-cleaning"],
    ["apply", sys.argv[1], "-q"],
):
    try:
        codes.append(main(argv))
    except SystemExit as exit:
        codes.append(exit.code)
print("codes:", codes)
heavy = ("tensorflow", "tf2onnx", "tf_keras", "keras")
print("heavy:", sorted(m for m in heavy if m in sys.modules))
"""


def test_commands_and_onnx_recipes_never_import_tensorflow(tmp_path: Path) -> None:
    write(tf2onnx_like(size=8), tmp_path / "model.onnx")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        textwrap.dedent(
            """\
            version: 1
            source: {path: model.onnx}
            passes:
              - rename_io: {inputs: {input_1: input}, outputs: {conv2d_6: output}}
              - fix_dims: {shapes: {input: [1, 8, 8, 3]}}
              - simplify
            output: out/model.onnx
            verify: {against: source, samples: 1}
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, str(recipe)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "codes: [0, 0, 0, 0, 0, 0, 0]" in done.stdout, done.stderr
    assert "heavy: []" in done.stdout
    assert (tmp_path / "out" / "model.onnx").is_file()


@pytest.mark.parametrize("missing", ["tensorflow", "tf2onnx"])
def test_a_missing_tensorflow_names_the_extra(
    missing: str,
    tmp_path: Path,
    in_other_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"")
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` fail
    assert main(["apply", "signature-cleaning", "--source", str(folder), "-o", "x.onnx"]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"graphkit: error: {folder}: reading a SavedModel needs TensorFlow")
    assert err.endswith(': pip install "graphkit[tf]"\n')


# -- refusals --------------------------------------------------------------------------------------


def _file(path: Path) -> Path:
    path.write_bytes(b"\x08\x07")
    return path


def _copy(plain: Path, path: Path) -> Path:
    shutil.copytree(plain, path)
    return path


def _remove(plain: Path, path: Path, part: str) -> Path:
    _copy(plain, path)
    target = path / part
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    return path


def _missing_shard(plain: Path, path: Path) -> Path:
    _copy(plain, path)
    data = path / "variables" / "variables.data-00000-of-00001"
    data.rename(data.with_name("variables.data-00001-of-00002"))
    return path


def _write_pb(plain: Path, path: Path, content: bytes) -> Path:
    _copy(plain, path)
    (path / "saved_model.pb").write_bytes(content)
    return path


def _without_pb(plain: Path, path: Path) -> Path:
    return _remove(plain, path, "saved_model.pb")


REFUSALS = {
    "no such folder": (lambda plain, p: p, {}, "{p}: no such SavedModel folder"),
    "a file": (
        lambda plain, p: _file(p),
        {},
        "{p}: not a folder; a SavedModel is a folder holding saved_model.pb and variables/",
    ),
    "no saved_model.pb": (
        _without_pb,
        {},
        "{p}: no saved_model.pb in this folder, so it is not a SavedModel",
    ),
    "damaged saved_model.pb": (
        lambda plain, p: _write_pb(plain, p, b"\xff\xff\xff\xff"),
        {},
        "{p}: saved_model.pb is damaged or not a SavedModel (Error parsing message with type "
        "'tensorflow.SavedModel': Wire format was corrupt)",
    ),
    "empty saved_model.pb": (
        lambda plain, p: _write_pb(plain, p, b""),
        {},
        "{p}: saved_model.pb holds no MetaGraph; it is damaged or empty",
    ),
    "no variables folder": (
        lambda plain, p: _remove(plain, p, "variables"),
        {},
        "{p}: the variables/ folder is missing (it holds the weights)",
    ),
    "no variables index": (
        lambda plain, p: _remove(plain, p, "variables/variables.index"),
        {},
        "{p}: variables/variables.index is missing",
    ),
    "no variables data": (
        lambda plain, p: _remove(plain, p, "variables/variables.data-00000-of-00001"),
        {},
        "{p}: variables/variables.data-* is missing (the weights themselves)",
    ),
    "a shard missing": (
        _missing_shard,
        {},
        "{p}: variables/ lacks variables.data-00000-of-00002",
    ),
    "unknown signature": (
        _copy,
        {"signature": "serve_me"},
        "{p}: no signature 'serve_me' under tag 'serve'; its signatures: 'double', "
        "'serving_default'",
    ),
    "unknown tag": (_copy, {"tag": "gpu"}, "{p}: no MetaGraph tagged 'gpu'; its tags: 'serve'"),
    "tag set that is too big": (
        _copy,
        {"tag": "serve,gpu"},
        "{p}: no MetaGraph tagged 'serve,gpu'; its tags: 'serve'",
    ),
    "nchw of an unknown input": (
        _copy,
        {"inputs_as_nchw": ["image"]},
        "{p}: inputs_as_nchw names 'image', which is not an input ('x')",
    ),
    "nchw of a rank-2 input": (
        _copy,
        {"inputs_as_nchw": ["x"]},
        "{p}: inputs_as_nchw: input 'x' has rank 2, not 4 (NHWC)",
    ),
}


@pytest.mark.tf
@pytest.mark.parametrize("case", REFUSALS, ids=str)
def test_refusals_are_one_line_naming_the_path(case: str, plain: Path, tmp_path: Path) -> None:
    make, options, message = REFUSALS[case]
    path = make(plain, tmp_path / "model")
    with pytest.raises(ModelError) as caught:
        load(path, **options)
    assert str(caught.value) == message.format(p=path)


@pytest.mark.tf
def test_an_op_tf2onnx_cannot_map_fails_the_import(tmp_path: Path) -> None:
    import tensorflow as tf

    class Gamma(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def __call__(self, x: tf.Tensor) -> tf.Tensor:
            return tf.math.igamma(x, x + 1.0)  # tf2onnx 1.17 has no mapping for Igamma

    path = tmp_path / "model"
    tf.saved_model.save(Gamma(), str(path))
    message = (
        f"{path}: tf2onnx cannot convert these TensorFlow ops of signature 'serving_default': "
        "Igamma (1)"
    )
    with pytest.raises(ModelError) as caught:
        load(path)
    assert str(caught.value) == message


@pytest.mark.tf
def test_a_refusal_through_the_cli(
    plain: Path, tmp_path: Path, in_other_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _remove(plain, tmp_path / "model", "variables")
    code = main(["apply", "signature-cleaning", "--source", "../model", "-o", "out.onnx"])
    assert code == ModelError.exit_code
    err = capsys.readouterr().err
    assert (
        err
        == "graphkit: error: ../model: the variables/ folder is missing (it holds the weights)\n"
    )
    assert path.resolve() == (in_other_dir / "../model").resolve()
    assert list(in_other_dir.iterdir()) == []


def test_options_are_checked_with_the_recipe(tmp_path: Path) -> None:
    recipe = {
        "version": 1,
        "source": {"path": "m", "format": "savedmodel", "opset": 19, "tags": "serve"},
    }
    with pytest.raises(RecipeError) as caught:
        graphkit.load_recipe(recipe, base_dir=tmp_path)
    problems = caught.value.problems
    assert any(
        p.startswith("<recipe>: source.opset: Input should be less than or equal to 18")
        for p in problems
    )
    assert any(
        "source.tags: unknown key for format 'savedmodel'; did you mean 'tag'?" in p
        for p in problems
    )


# -- the three writers -----------------------------------------------------------------------------


@pytest.mark.tf
def test_keras2_keeps_the_signature_names(keras2: Path) -> None:
    imported = load(keras2)
    graph = imported.model.graph
    assert names(graph.inputs) == ["input_1"]
    assert names(graph.outputs) == ["conv2d_6"]
    assert dims(graph.inputs[0])[1:] == [SIZE, SIZE, 3]
    assert not isinstance(graph.inputs[0].shape[0], int), "tf2onnx leaves the batch dim symbolic"
    assert imported.model.opset_imports[""] == 17
    assert "converted by tf2onnx" in imported.notes[0]
    x = random_input((2, SIZE, SIZE, 3))
    expected = tensorflow_run(keras2, "serving_default", input_1=x)["conv2d_6"]
    reference = imported.reference({"input_1": x})
    assert list(reference) == ["conv2d_6"]
    np.testing.assert_array_equal(reference["conv2d_6"], expected)
    got = onnx_run(imported, {"input_1": x})["conv2d_6"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.tf
def test_the_reference_wants_exactly_the_onnx_inputs(keras2: Path) -> None:
    reference = load(keras2).reference
    x = random_input((1, SIZE, SIZE, 3))
    with pytest.raises(ModelError, match=r"inputs missing \['input_1'\], unknown \['x'\]"):
        reference({"x": x})


@pytest.mark.tf
def test_keras3_export_through_a_user_recipe(
    keras3: Path, tmp_path: Path, in_other_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    shutil.copytree(keras3, project / "saved")
    (project / "recipe.yaml").write_text(
        textwrap.dedent(
            """\
            version: 1
            source:
              path: saved
            passes:
              - rename_io:
                  inputs: {image: input}
                  outputs: {output_0: output}
              - fix_dims:
                  shapes: {input: [1, 16, 16, 3]}
              - simplify
              - check
            output: build/model.onnx
            verify: {against: source, samples: 2, rtol: 1.0e-4, atol: 1.0e-5}
            """
        )
    )
    assert main(["apply", str(project / "recipe.yaml")]) == 0
    out = capsys.readouterr().out
    assert "saved (savedmodel)" in out
    assert "  output: max abs err" in out and "ok" in out
    result = project / "build" / "model.onnx"
    graph = onnx.load(result).graph
    assert [(i.name, i.type.tensor_type.elem_type) for i in graph.input] == [("input", 1)]
    assert [(o.name, o.type.tensor_type.elem_type) for o in graph.output] == [("output", 1)]
    assert [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim] == [1, 16, 16, 2]
    static(result)
    x = random_input((1, 16, 16, 3))
    expected = tensorflow_run(keras3, "serving_default", image=x)["output_0"]
    np.testing.assert_allclose(run(result, {"input": x})["output"], expected, rtol=1e-4, atol=1e-5)
    assert sorted(p.name for p in project.iterdir()) == ["build", "recipe.yaml", "saved"]
    assert list(in_other_dir.iterdir()) == []


@pytest.mark.tf
def test_plain_saved_model_through_the_library(plain: Path, in_other_dir: Path) -> None:
    recipe = {
        "version": 1,
        "source": {"path": str(plain)},
        "passes": [
            {"rename_io": {"inputs": {"x": "values"}, "outputs": {"output_0": "scaled"}}},
            {"fix_dims": {"shapes": {"values": [3, 4]}}},
        ],
        "verify": {"samples": 1},
    }
    result = graphkit.apply(recipe, output=in_other_dir / "scaled.onnx")
    assert names(result.model.graph.outputs) == ["scaled"]
    assert dims(result.model.graph.outputs[0]) == [3, 4]
    x = random_input((3, 4))
    np.testing.assert_allclose(run(result.output, {"values": x})["scaled"], x * WEIGHTS)


# -- each option -----------------------------------------------------------------------------------


@pytest.mark.tf
def test_signature_picks_another_signature(plain: Path) -> None:
    imported = load(plain, signature="double")
    assert names(imported.model.graph.inputs) == ["x"]
    assert sorted(names(imported.model.graph.outputs)) == ["doubled", "plus"]
    x = random_input((2, 4))
    for outputs in (onnx_run(imported, {"x": x}), imported.reference({"x": x})):
        np.testing.assert_allclose(outputs["doubled"], 2 * x, rtol=1e-6)
        np.testing.assert_allclose(outputs["plus"], x + WEIGHTS, rtol=1e-6)


@pytest.mark.tf
def test_tag_loads_a_metagraph_with_another_tag(tagged: Path) -> None:
    with pytest.raises(ModelError, match="no MetaGraph tagged 'serve'; its tags: 'edge'"):
        load(tagged)
    imported = load(tagged, tag="edge")
    x = random_input((2, 4))
    np.testing.assert_allclose(onnx_run(imported, {"x": x})["output_0"], x * WEIGHTS)
    np.testing.assert_allclose(imported.reference({"x": x})["output_0"], x * WEIGHTS)


@pytest.mark.tf
@pytest.mark.parametrize("opset", [None, 13, 18], ids=["default", "13", "18"])
def test_opset(opset: int | None, plain: Path) -> None:
    imported = load(plain) if opset is None else load(plain, opset=opset)
    assert imported.model.opset_imports[""] == (opset or 17)
    x = random_input((2, 4))
    np.testing.assert_allclose(onnx_run(imported, {"x": x})["output_0"], x * WEIGHTS)


@pytest.mark.tf
def test_inputs_as_nchw(keras2: Path) -> None:
    nhwc, nchw = load(keras2), load(keras2, inputs_as_nchw=["input_1"])
    assert dims(nchw.model.graph.inputs[0])[1:] == [3, SIZE, SIZE]
    assert dims(nchw.model.graph.outputs[0])[1:] == [SIZE, SIZE, 3]
    x = random_input((2, SIZE, SIZE, 3))
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    expected = onnx_run(nhwc, {"input_1": x})["conv2d_6"]
    np.testing.assert_allclose(onnx_run(nchw, {"input_1": x_nchw})["conv2d_6"], expected, atol=1e-6)
    # The reference takes the ONNX model's layout and transposes back for TensorFlow.
    reference = nchw.reference({"input_1": x_nchw})["conv2d_6"]
    np.testing.assert_allclose(reference, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.tf
def test_large_model_keeps_weights_in_memory_until_saved(keras2: Path) -> None:
    small, large = load(keras2), load(keras2, large_model=True)
    assert not hasattr(np, "product") or np.__version__.startswith("1."), "the alias must not leak"
    assert any(note.startswith("large_model: ") for note in large.notes)
    tensors = [v.const_value for v in large.model.graph.initializers.values()]
    assert tensors and not any(isinstance(t, ir.ExternalTensor) for t in tensors)
    x = random_input((1, SIZE, SIZE, 3))
    np.testing.assert_allclose(
        onnx_run(large, {"input_1": x})["conv2d_6"],
        onnx_run(small, {"input_1": x})["conv2d_6"],
        rtol=1e-6,
        atol=1e-7,
    )


@pytest.mark.tf
def test_large_model_weights_land_beside_the_output_only(
    keras2: Path, tmp_path: Path, in_other_dir: Path
) -> None:
    before = sorted(p.relative_to(keras2) for p in keras2.rglob("*"))
    recipe = {
        "version": 1,
        "source": {"path": str(keras2), "large_model": True},
        "passes": [{"fix_dims": {"shapes": {"input_1": [1, SIZE, SIZE, 3]}}}],
        "output": "out/model.onnx",
        "save": {"external_data": True},
        "verify": {"samples": 1},
    }
    graphkit.apply(recipe)
    out = in_other_dir / "out"
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "model.onnx.data"]
    assert sorted(p.relative_to(in_other_dir) for p in in_other_dir.rglob("*")) == [
        Path("out"),
        Path("out/model.onnx"),
        Path("out/model.onnx.data"),
    ]
    assert sorted(p.relative_to(keras2) for p in keras2.rglob("*")) == before
    x = random_input((1, SIZE, SIZE, 3))
    expected = tensorflow_run(keras2, "serving_default", input_1=x)["conv2d_6"]
    got = run(out / "model.onnx", {"input_1": x})["conv2d_6"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


# -- what reaches the terminal ---------------------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command line in a fresh process, where TensorFlow logs while it loads."""
    return subprocess.run(
        [sys.executable, "-m", "graphkit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.tf
@pytest.mark.slow
def test_the_terminal_shows_only_graphkits_lines(keras2: Path, tmp_path: Path) -> None:
    # setup: the signature-cleaning stand-in, a recipe that converts and verifies it
    shutil.copytree(keras2, tmp_path / "model")
    shutil.copytree(keras2, tmp_path / "cut")
    with (tmp_path / "cut" / "variables" / "variables.data-00000-of-00001").open("r+b") as data:
        data.truncate(100)  # TensorFlow fails while reading it
    (tmp_path / "recipe.yaml").write_text(
        "version: 1\nsource: {path: model}\n"
        f"passes: [{{fix_dims: {{shapes: {{input_1: [1, {SIZE}, {SIZE}, 3]}}}}}}]\n"
        "output: out.onnx\nverify: {samples: 1}\n"
    )
    # execute: a run that succeeds, one that fails, and one with --debug
    ok = _cli("apply", "recipe.yaml", cwd=tmp_path)
    failed = _cli("apply", "recipe.yaml", "--source", "cut", cwd=tmp_path)
    debug = _cli("apply", "recipe.yaml", "--debug", cwd=tmp_path)
    # assert
    assert (ok.returncode, ok.stderr) == (0, ""), ok.stderr
    assert "  conv2d_6: max abs err" in ok.stdout
    assert failed.returncode == ModelError.exit_code
    assert failed.stderr.startswith("graphkit: error: cut: TensorFlow cannot load the SavedModel")
    assert failed.stderr.count("\n") == 1, failed.stderr
    # TensorFlow's own start-up lines are there to hide: --debug shows them.
    assert debug.returncode == 0
    assert "absl::InitializeLog" in debug.stderr or "tensorflow" in debug.stderr.lower()
