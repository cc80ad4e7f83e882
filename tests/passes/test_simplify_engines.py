"""simplify's engines on models shaped like real exports: failures, fallbacks, the better result."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import onnx
import pytest

import graphkit
from graphkit import PassError, _onnx_tools
from graphkit._modelio.proto import to_proto
from tests import exports
from tests.exports import seeded_feeds
from tests.models import as_ir, run

simplify = graphkit.passes.simplify
ENGINES = ["onnxsim", "onnxslim", "auto"]


def _assert_parity(source: onnx.ModelProto, result: graphkit.PassResult) -> None:
    proto = to_proto(result.model)
    for seed in range(3):
        feeds = seeded_feeds(source, seed)
        expected = run(source, feeds)
        got = run(
            proto, {k: v for k, v in feeds.items() if k in {i.name for i in proto.graph.input}}
        )
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def _simplify(model: onnx.ModelProto, **params: object) -> graphkit.PassResult:
    return simplify.run(as_ir(model), simplify.validate(params))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("build", exports.EXPORTS.values(), ids=list(exports.EXPORTS))
def test_every_engine_keeps_onnx_runtime_parity(build, engine: str) -> None:
    source = build()
    try:
        result = _simplify(source, engine=engine)
    except PassError as error:
        # Only a single engine may fail, on a fault the tests below name.
        assert engine != "auto", error
        return
    _assert_parity(source, result)


def test_unsorted_if_branches_no_longer_stop_onnxsim() -> None:
    """The branches read a value produced after the If: onnxsim refuses the model as given."""
    import onnxsim

    source = exports.vad_with_if()
    with (
        pytest.raises(RuntimeError, match="must be topologically sorted"),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        onnxsim.simplify(source, mutable_initializer=True)
    for engine in ENGINES:
        result = _simplify(source, engine=engine)
        assert [v.name for v in result.model.graph.inputs] == ["x", "h"]
        _assert_parity(source, result)


def test_auto_keeps_the_result_with_fewer_nodes() -> None:
    source = exports.paddle_detector()
    result = _simplify(source)
    assert result.notes == [
        "onnxslim simplified the graph: 7 -> 4 nodes",
        "onnxsim not used: it left 6 nodes",
    ]
    assert [n.op_type for n in result.model.graph] == ["Conv", "Relu", "Conv", "Sigmoid"]
    _assert_parity(source, result)


def _bias_as_four_d(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxsim 0.7.3's fault: the first Conv's bias [C] written as [1, 1, 1, C].

    0.8 no longer writes it, so the test gives graphkit such a result whichever
    release is installed.
    """
    weights = {t.name: t for t in model.graph.initializer}
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and len(n.input) > 2)
    bias = weights[conv.input[2]]
    if len(bias.dims) == 1:
        bias.dims[:] = [1, 1, 1, bias.dims[0]]
    conv.name = conv.name or "Conv_0"
    return model


def test_a_conv_bias_onnx_runtime_refuses_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxsim 0.7.3 folds the [1, 1, 1, 1] scale into the Conv, bias and all: the bias
    becomes [1, 1, 1, 4], which onnx's checker accepts and ONNX Runtime refuses."""
    real = _onnx_tools.onnxsim_simplify
    monkeypatch.setattr(
        _onnx_tools, "onnxsim_simplify", lambda model, **o: _bias_as_four_d(real(model, **o))
    )
    source = exports.crnn_scaled_conv()
    with pytest.raises(PassError) as caught:
        _simplify(source, engine="onnxsim")
    assert re.fullmatch(
        r"onnxsim wrote a Conv \(\w+\) whose bias has shape \[1, 1, 1, 4\], not 1-D",
        str(caught.value),
    )
    result = _simplify(source)
    assert result.notes[0] == "onnxslim left the graph as it was"
    assert result.notes[1].startswith("onnxsim not used: it wrote a Conv (")
    _assert_parity(source, result)


def test_an_engine_that_changes_the_interface_is_not_used() -> None:
    """onnxslim drops graph inputs the graph does not read."""
    source = exports.classifier_with_unused_input()
    with pytest.raises(PassError) as caught:
        _simplify(source, engine="onnxslim")
    message = (
        "changed the model's interface: inputs [input_ids int64, attention_mask int64] "
        "became [input_ids int64]"
    )
    assert str(caught.value) == f"onnxslim {message}"
    result = _simplify(source)
    assert result.notes == [
        "onnxsim simplified the graph: 5 -> 4 nodes",
        f"onnxslim not used: it {message}",
    ]
    assert [v.name for v in result.model.graph.inputs] == ["input_ids", "attention_mask"]
    _assert_parity(source, result)


def test_a_result_onnx_refuses_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxslim has deleted nodes whose outputs only If branches read."""
    import onnxslim

    def dangling(model: onnx.ModelProto, **options: object) -> onnx.ModelProto:
        del model.graph.node[0]
        return model

    monkeypatch.setattr(onnxslim, "slim", dangling)
    source = exports.paddle_detector()
    result = _simplify(source)
    assert result.notes[0] == "onnxsim simplified the graph: 7 -> 6 nodes"
    assert result.notes[1].startswith(
        "onnxslim not used: it wrote a model onnx's checker refuses: "
        "Nodes in a graph must be topologically sorted"
    )
    _assert_parity(source, result)


def test_simplify_fails_only_when_every_engine_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxslim

    def broken(model: onnx.ModelProto, **options: object) -> object:
        raise RuntimeError("unsupported\n  op")

    monkeypatch.setattr(_onnx_tools, "onnxsim_simplify", broken)
    result = _simplify(exports.paddle_detector())
    assert result.notes[-1] == "onnxsim not used: it failed: RuntimeError: unsupported op"
    monkeypatch.setattr(onnxslim, "slim", broken)
    with pytest.raises(PassError) as caught:
        _simplify(exports.paddle_detector())
    assert str(caught.value) == (
        "onnxsim failed: RuntimeError: unsupported op; "
        "onnxslim failed: RuntimeError: unsupported op"
    )


def test_caffe2_zoo_model_after_set_opset_17_simplifies_bare() -> None:
    """IR 3 lists every weight as an input, caffe2's made-up OC2_DUMMY_1 among them."""
    source = exports.caffe2_zoo_cnn()
    model = graphkit.passes.set_opset(as_ir(source), version=17)
    result = simplify.run(model, simplify.validate({}))
    assert [v.name for v in result.model.graph.inputs] == ["data_0"]
    assert result.model.ir_version >= 4
    assert result.notes[-1] == (
        "5 weights listed as inputs became constants (fold_weight_inputs: false keeps them inputs)"
    )
    _assert_parity(source, result)


@pytest.mark.parametrize("engine", ENGINES)
def test_caffe2_zoo_model_keeps_its_weight_inputs_when_asked(engine: str) -> None:
    source = exports.caffe2_zoo_cnn()
    model = graphkit.passes.set_opset(as_ir(source), version=17)
    params = simplify.validate({"engine": engine, "fold_weight_inputs": False})
    result = simplify.run(model, params)
    names = [v.name for v in result.model.graph.inputs]
    assert names == [i.name for i in source.graph.input]
    _assert_parity(source, result)


def test_folding_weight_inputs_alone_counts_as_a_change() -> None:
    result = _simplify(exports.caffe2_zoo_cnn(), engine="onnxsim")
    assert result.notes[0] == "onnxsim simplified the graph: 8 -> 8 nodes"
    assert result.modified
