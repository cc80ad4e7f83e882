"""The verify block: the maths, the inputs, per-pass blame, and what is written on failure."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphkit
from graphkit._cli import main
from graphkit._errors import ParityError, RecipeError
from graphkit._verify import VerifyOptions, _errors, _random
from tests.models import tf2onnx_like, write

SCALE_PLUGIN = '''
import graphkit
import numpy as np
from pydantic import Field


class ScaleParams(graphkit.Params):
    factor: float = Field(description="What to multiply the first output by.")


@graphkit.graph_pass("scale_output", ScaleParams)
def scale_output(model, params):
    """Multiply the first graph output by a constant: breaks parity on purpose."""
    import onnx_ir as ir

    graph = model.graph
    old = graph.outputs[0]
    factor = ir.Value(name="factor", const_value=ir.tensor(np.array(params.factor, np.float32)))
    graph.register_initializer(factor)
    mul = ir.node("Mul", [old, factor])
    graph.append(mul)
    new = mul.outputs[0]
    name, old.name = old.name, old.name + "_unscaled"
    new.name, new.dtype, new.shape = name, old.dtype, old.shape
    graph.outputs[0] = new
    return graphkit.PassResult(model, modified=True)


@graphkit.hookimpl
def graphkit_passes():
    return [scale_output]
'''


def options(**values) -> VerifyOptions:
    return VerifyOptions.model_validate(values)


class TestErrors:
    def test_equal_arrays(self) -> None:
        a = np.array([1.0, -2.0, 3.0], np.float32)
        assert _errors(a, a.copy(), options()) == (0.0, 0.0, True)

    def test_absolute_and_relative_error(self) -> None:
        want = np.array([1.0, 100.0, 0.0])
        got = np.array([1.5, 100.0, 0.25])
        abs_err, rel_err, close = _errors(want, got, options())
        assert abs_err == 0.5
        # 0.5 / 1.0 relative on the first element; the zero reference gives inf.
        assert rel_err == np.inf
        assert close is False

    def test_tolerances_follow_allclose(self) -> None:
        want = np.array([1000.0, 1.0])
        got = want + np.array([0.09, 1e-6])
        assert _errors(want, got, options(rtol=1e-4, atol=1e-5))[2] is True  # 0.09 <= 1e-5 + 0.1
        assert _errors(want, got, options(rtol=1e-5, atol=1e-5))[2] is False

    def test_nan_in_the_same_place_is_equal(self) -> None:
        a = np.array([np.nan, 1.0])
        assert _errors(a, a.copy(), options())[2] is True
        assert _errors(a, np.array([0.0, 1.0]), options())[2] is False

    def test_integers(self) -> None:
        want = np.array([0, 255], np.uint8)
        assert _errors(want, np.array([0, 254], np.uint8), options(atol=0.5))[:2] == (1.0, 1 / 255)


def test_random_inputs_honour_dtypes() -> None:
    rng = np.random.default_rng(0)
    u8 = _random(rng, np.dtype(np.uint8), (4000,))
    assert u8.dtype == np.uint8 and u8.min() == 0 and u8.max() == 255
    f = _random(rng, np.dtype(np.float32), (1000,))
    assert f.dtype == np.float32 and f.min() >= 0.0 and f.max() < 1.0
    i = _random(rng, np.dtype(np.int64), (1000,))
    assert i.dtype == np.int64 and set(np.unique(i)) == set(range(10))
    b = _random(rng, np.dtype(bool), (100,))
    assert b.dtype == bool and b.any() and not b.all()


def test_samples_zero_needs_real_inputs() -> None:
    with pytest.raises(ValueError, match="with samples: 0, give real inputs"):
        options(samples=0)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tf2onnx_like(size=8), tmp_path / "model.onnx")
    (tmp_path / "scale.py").write_text(SCALE_PLUGIN)
    return tmp_path


def recipe(project: Path, passes: str, verify: str) -> Path:
    path = project / "recipe.yaml"
    path.write_text(
        "version: 1\nplugins: [scale.py]\nsource: {path: model.onnx}\n"
        f"passes:\n{textwrap.indent(textwrap.dedent(passes), '  ')}"
        f"output: out/model.onnx\nverify:\n{textwrap.indent(textwrap.dedent(verify), '  ')}"
    )
    return path


GOOD = """\
- rename_io: {inputs: {input_1: input}, outputs: {conv2d_6: output}}
- fix_dims: {dims: {unk__127: 1, unk__128: 1}}
"""
BREAKING = """\
- rename_io: {outputs: {conv2d_6: output}}
- scale_output: {factor: 1.5}
- fix_dims: {dims: {unk__127: 1}}
"""


def test_a_faithful_recipe_passes_and_prints_the_summary(project: Path, capsys) -> None:
    path = recipe(project, GOOD, "samples: 3\nper_pass: true\n")
    assert main(["apply", str(path)]) == 0
    out = capsys.readouterr().out
    assert "verify against source: 3 input sets, rtol 0.0001, atol 1e-05\n" in out
    assert "  output: max abs err 0, max rel err 0  ok\n" in out
    assert (project / "out" / "model.onnx").exists()


def test_a_renamed_output_is_still_compared(project: Path, capsys) -> None:
    path = recipe(project, BREAKING, "per_pass: false\n")
    assert main(["apply", str(path)]) == ParityError.exit_code
    captured = capsys.readouterr()
    assert (
        "  output: max abs err 0.5, max rel err 0.5  FAIL (rtol 0.0001, atol 1e-05)\n"
        in captured.out
    )
    assert captured.err == (
        "graphkit: error: parity check failed: output 'output' differs: "
        "max abs err 0.5, max rel err 0.5 (rtol 0.0001, atol 1e-05)\n"
    )
    assert not (project / "out").exists()


def test_per_pass_names_the_guilty_pass(project: Path, capsys) -> None:
    path = recipe(project, BREAKING, "per_pass: true\n")
    assert main(["apply", str(path)]) == ParityError.exit_code
    assert capsys.readouterr().err == (
        f"graphkit: error: parity broken by passes[1] scale_output ({path}:6:5): "
        "output 'output' differs: max abs err 0.5, max rel err 0.5 (rtol 0.0001, atol 1e-05)\n"
    )


def test_keep_failed_writes_the_output_and_still_fails(project: Path, capsys) -> None:
    path = recipe(project, BREAKING, "per_pass: true\n")
    assert main(["apply", "--keep-failed", str(path)]) == ParityError.exit_code
    assert (project / "out" / "model.onnx").exists()
    assert "; the output was kept at" in capsys.readouterr().err


def test_a_failing_verify_leaves_an_existing_output(project: Path) -> None:
    (project / "out").mkdir()
    (project / "out" / "model.onnx").write_bytes(b"old")
    path = recipe(project, BREAKING, "samples: 1\n")
    with pytest.raises(ParityError):
        graphkit.apply(path)
    assert (project / "out" / "model.onnx").read_bytes() == b"old"


def test_against_imported(project: Path) -> None:
    path = recipe(project, GOOD, "against: imported\n")
    assert graphkit.apply(path).output.exists()
    path = recipe(project, BREAKING, "against: imported\n")
    with pytest.raises(ParityError, match="output 'output' differs"):
        graphkit.apply(path)


def test_real_inputs_keyed_by_source_names(project: Path) -> None:
    x = np.random.default_rng(5).random((1, 8, 8, 3), dtype=np.float32)
    np.savez(project / "real.npz", input_1=x)
    path = recipe(project, GOOD, "inputs: real.npz\nsamples: 0\n")
    assert graphkit.apply(path).output.exists()
    np.savez(project / "real.npz", input=x)
    with pytest.raises(ParityError, match=r"real inputs are keyed \['input'\].*\['input_1'\]"):
        graphkit.apply(path)


def test_pickled_real_inputs_are_refused(project: Path) -> None:
    np.save(project / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(project / "real.npz", input_1=np.array([{"a": 1}], dtype=object))
    path = recipe(project, GOOD, "inputs: real.npz\n")
    with pytest.raises(graphkit.ModelError, match=r"not a readable \.npz of arrays"):
        graphkit.apply(path)


def test_missing_real_inputs(project: Path) -> None:
    path = recipe(project, GOOD, "inputs: nowhere.npz\n")
    with pytest.raises(RecipeError, match=r"nowhere\.npz: verify\.inputs: no such file"):
        graphkit.apply(path)


FAKE_FRONTEND = '''
from pathlib import Path

import graphkit
from pydantic import Field


class Options(graphkit.Params):
    skew: float = Field(0.0, description="Added to the reference output, to fake a bad conversion.")


def detect(path: Path) -> bool:
    return path.suffix == ".fake"


@graphkit.frontend("fake", Options, detect=detect)
def import_fake(path, options, context):
    """An ONNX file posing as a framework's model; ONNX Runtime plays the framework."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path))

    def reference(feeds):
        [out] = session.run(None, dict(feeds))
        return {"conv2d_6": out + options.skew}

    return graphkit.Imported(graphkit.load(path), reference, notes=["imported a fake model"])


@graphkit.hookimpl
def graphkit_frontends():
    return [import_fake]
'''


def test_against_a_frontend_reference(project: Path, capsys) -> None:
    (project / "model.onnx").rename(project / "model.fake")
    (project / "fake.py").write_text(FAKE_FRONTEND)
    path = project / "recipe.yaml"
    body = (
        "version: 1\nplugins: [fake.py]\nsource: {path: model.fake, skew: SKEW}\n"
        "passes: [{rename_io: {outputs: {conv2d_6: output}}}]\noutput: out.onnx\n"
        "verify: {per_pass: true}\n"
    )
    path.write_text(body.replace("SKEW", "0.0"))
    assert main(["apply", str(path)]) == 0
    assert "  note: imported a fake model\n" in capsys.readouterr().out
    path.write_text(body.replace("SKEW", "0.125"))
    assert main(["apply", str(path)]) == ParityError.exit_code
    assert capsys.readouterr().err.startswith(
        "graphkit: error: parity broken by the import (fake frontend): "
        "output 'conv2d_6' differs: max abs err 0.125"
    )


UNRUNNABLE_PLUGIN = '''
import graphkit
import numpy as np


@graphkit.graph_pass("unknown_op")
def unknown_op(model, params):
    """Turn the Relu into an op no runtime knows: the model no longer loads."""
    relu = next(node for node in model.graph if node.op_type == "Relu")
    relu.domain, relu.op_type = "graphkit.test", "NoSuchOp"
    model.opset_imports["graphkit.test"] = 1
    return graphkit.PassResult(model, modified=True)


@graphkit.graph_pass("bad_reshape")
def bad_reshape(model, params):
    """Reshape the Relu's output to 5 columns and back: 192 elements never divide by 5."""
    import onnx_ir as ir

    graph = model.graph
    relu = next(node for node in graph if node.op_type == "Relu")
    columns = ir.Value(name="five_columns", const_value=ir.tensor(np.array([-1, 5], np.int64)))
    back = ir.Value(name="nchw_shape", const_value=ir.tensor(np.array([-1, 3, 8, 8], np.int64)))
    graph.register_initializer(columns)
    graph.register_initializer(back)
    uses = list(relu.outputs[0].uses())
    # A Relu between the two Reshapes, so ONNX Runtime cannot fold them into one.
    flat = ir.node("Reshape", [relu.outputs[0], columns])
    again = ir.node("Relu", [flat.outputs[0]])
    restored = ir.node("Reshape", [again.outputs[0], back])
    graph.insert_after(relu, [flat, again, restored])
    for use in uses:
        use.node.replace_input_with(use.idx, restored.outputs[0])
    return graphkit.PassResult(model, modified=True)


@graphkit.hookimpl
def graphkit_passes():
    return [unknown_op, bad_reshape]
'''


@pytest.mark.parametrize(
    ("guilty", "line", "problem"),
    [
        ("unknown_op", 6, "ONNX Runtime cannot load the model: "),
        ("bad_reshape", 6, "ONNX Runtime failed to run the model: "),
    ],
)
def test_per_pass_names_the_pass_after_which_the_model_does_not_run(
    project: Path, capfd, guilty: str, line: int, problem: str
) -> None:
    # setup: a pass that changes no numbers, the guilty pass, then another change
    (project / "scale.py").write_text(UNRUNNABLE_PLUGIN)
    passes = f"""\
    - rename_io: {{outputs: {{conv2d_6: output}}}}
    - {guilty}
    - set_metadata: {{doc_string: after}}
    """
    path = recipe(project, passes, "per_pass: true\n")
    # execute
    code = main(["apply", str(path)])
    # assert: one line, naming the pass the way a pass that changes the numbers is named
    err = capfd.readouterr().err  # ONNX Runtime logs to the file descriptor
    assert code == ParityError.exit_code
    assert err.startswith(
        f"graphkit: error: parity broken by passes[1] {guilty} ({path}:{line}:5): {problem}"
    )
    assert err.count("\n") == 1
    assert not (project / "out").exists()


def test_without_per_pass_a_model_that_does_not_run_is_still_one_line(
    project: Path, capsys
) -> None:
    (project / "scale.py").write_text(UNRUNNABLE_PLUGIN)
    path = recipe(project, "- unknown_op\n", "per_pass: false\n")
    assert main(["apply", str(path)]) == ParityError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("graphkit: error: ONNX Runtime cannot load the model: ")
    assert err.count("\n") == 1
