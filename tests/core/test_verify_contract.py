"""verify across passes that change the model's contract: the reference is fed through adapters."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphkit
from graphkit._cli import main
from graphkit._errors import ParityError
from graphkit._verify import Verifier, VerifyOptions
from tests.models import as_ir, run, tf2onnx_like, write

#: A third-party pass that doubles the first input inside the graph, declaring it or not.
DOUBLE_PLUGIN = '''
import graphkit
import numpy as np
from pydantic import Field


class DoubleParams(graphkit.Params):
    declare: bool = Field(True, description="Declare the change to verify.")


@graphkit.graph_pass("double_input", DoubleParams)
def double_input(model, params):
    """Take the first input at half scale: the graph doubles it."""
    import onnx_ir as ir

    graph = model.graph
    old = graph.inputs[0]
    two = ir.node("Constant", [], {"value": ir.tensor(np.array(2.0, np.float32))})
    new = ir.Value(name=old.name, type=ir.TensorType(old.dtype), shape=old.shape)
    mul = ir.node("Mul", [new, two.outputs[0]])
    old.replace_all_uses_with(mul.outputs[0])
    old.name, mul.outputs[0].name = "unused", "doubled"
    graph.inputs[0] = new
    graph.insert_before(next(iter(graph)), [two, mul])
    adapter = graphkit.IOAdapter(inputs={0: lambda x: x * np.float32(2)})
    return graphkit.PassResult(model, modified=True, adapter=adapter if params.declare else None)


class ScaleParams(graphkit.Params):
    factor: float = Field(description="What to multiply the first output by.")


@graphkit.graph_pass("scale_output", ScaleParams)
def scale_output(model, params):
    """Multiply the first graph output by a constant: breaks parity on purpose."""
    import onnx_ir as ir

    graph = model.graph
    old = graph.outputs[0]
    factor = ir.node("Constant", [], {"value": ir.tensor(np.array(params.factor, np.float32))})
    mul = ir.node("Mul", [old, factor.outputs[0]])
    graph.append(factor)
    graph.append(mul)
    new = mul.outputs[0]
    name, old.name = old.name, old.name + "_unscaled"
    new.name, new.dtype, new.shape = name, old.dtype, old.shape
    graph.outputs[0] = new
    return graphkit.PassResult(model, modified=True)


@graphkit.hookimpl
def graphkit_passes():
    return [double_input, scale_output]
'''

CONTRACT = """\
- rename_io: {inputs: {input_1: image}}
- set_inputs:
    inputs:
      image: {dtype: uint8, layout: NCHW, scale: 0.00392156862745098,
              mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], shape: [1, 3, 8, 8]}
    outputs:
      conv2d_6: {layout: NCHW}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tf2onnx_like(size=8), tmp_path / "model.onnx")
    (tmp_path / "plugin.py").write_text(DOUBLE_PLUGIN)
    return tmp_path


def recipe(project: Path, passes: str, verify: str = "samples: 2\n") -> Path:
    path = project / "recipe.yaml"
    path.write_text(
        "version: 1\nplugins: [plugin.py]\nsource: {path: model.onnx}\n"
        f"passes:\n{textwrap.indent(textwrap.dedent(passes), '  ')}"
        f"output: out/model.onnx\nverify:\n{textwrap.indent(textwrap.dedent(verify), '  ')}"
    )
    return path


@pytest.mark.parametrize("per_pass", [False, True])
def test_a_uint8_nchw_contract_verifies_against_the_float_nhwc_source(
    project: Path, per_pass: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recipe(project, CONTRACT, f"per_pass: {str(per_pass).lower()}\n")
    assert main(["apply", str(path)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "  the reference's inputs and outputs follow the contract of passes[1] set_inputs\n" in (
        out
    )
    assert "  conv2d_6: max abs err 0, max rel err 0  ok\n" in out


def test_per_pass_blame_still_lands_after_a_contract_change(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recipe(project, CONTRACT + "- scale_output: {factor: 1.5}\n", "per_pass: true\n")
    assert main(["apply", str(path)]) == ParityError.exit_code
    err = capsys.readouterr().err
    assert err.startswith(f"graphkit: error: parity broken by passes[2] scale_output ({path}:")


def test_a_third_party_pass_declares_its_adapter(project: Path) -> None:
    result = graphkit.apply(recipe(project, "- double_input\n", "per_pass: true\n"))
    assert result.parity is not None and result.parity.ok


def test_an_undeclared_contract_change_fails_verify(project: Path) -> None:
    """Without the adapter the reference gets the raw inputs: the check must see that."""
    path = recipe(project, "- double_input: {declare: false}\n")
    with pytest.raises(ParityError, match="output 'conv2d_6' differs"):
        graphkit.apply(path)


def test_adapters_compose_last_pass_first(project: Path) -> None:
    """The graph computes 2 * (float(x) - 1); in the wrong order the source would see 2x - 1."""
    passes = "- double_input\n- set_inputs: {inputs: {input_1: {dtype: uint8, mean: 1}}}\n"
    result = graphkit.apply(recipe(project, passes, "per_pass: true\n"))
    assert result.parity is not None and result.parity.ok


def test_real_inputs_are_given_as_the_final_model_takes_them(project: Path) -> None:
    x = np.random.default_rng(5).integers(0, 256, (1, 3, 8, 8), dtype=np.uint8)
    np.savez(project / "real.npz", input_1=x)
    assert graphkit.apply(recipe(project, CONTRACT, "inputs: real.npz\nsamples: 0\n")).output


def test_the_reference_gets_the_source_form_of_the_samples() -> None:
    """Samples span uint8's range for the final model; the source sees them scaled and NHWC."""
    set_inputs = graphkit.passes.set_inputs
    contract = {"dtype": "uint8", "layout": "NCHW", "scale": 1 / 255, "shape": [1, 3, 8, 8]}
    result = set_inputs.run(
        as_ir(tf2onnx_like(size=8)), set_inputs.validate({"inputs": {"input_1": contract}})
    )
    assert result.adapter is not None
    seen: list[dict[str, np.ndarray]] = []

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        seen.append(dict(feeds))
        return run(tf2onnx_like(size=8), feeds)

    verifier = Verifier(
        VerifyOptions(samples=2),
        (["input_1"], ["conv2d_6"]),
        result.model,
        reference,
        None,
        [result.adapter],
    )
    samples = [feeds["input_1"] for feeds in verifier.input_sets]
    assert [(s.dtype, s.shape) for s in samples] == [(np.uint8, (1, 3, 8, 8))] * 2
    assert min(s.min() for s in samples) == 0 and max(s.max() for s in samples) == 255
    for given, sample in zip(seen, samples, strict=True):
        expected = (sample.astype(np.float32) * np.float32(1 / 255)).transpose(0, 2, 3, 1)
        assert given["input_1"].dtype == np.float32
        np.testing.assert_array_equal(given["input_1"], expected)
