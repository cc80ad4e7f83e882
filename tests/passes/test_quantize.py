"""quantize: onnxruntime.quantization behind graphkit's parameters and refusals."""

from __future__ import annotations

import os
import tempfile
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphkit
from graphkit import PassError
from graphkit._modelio.proto import to_proto
from tests.models import as_ir, matmul, run, write

quantize = graphkit.passes.quantize


def two_layers(size: int = 64) -> onnx.ModelProto:
    """``y = relu(x @ w1 + b) @ w2``: input ``x`` [1, size], seeded weights."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((size, size)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal(size).astype(np.float32), "b"),
        numpy_helper.from_array(rng.standard_normal((size, size)).astype(np.float32), "w2"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["hb"]),
            helper.make_node("Relu", ["hb"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "two_layers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, size])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _ops(model: graphkit.PassResult) -> Counter[str]:
    return Counter(n.op_type for n in to_proto(model.model).graph.node)


def _calibration(tmp_path: Path, sets: int = 4, **arrays: np.ndarray) -> str:
    path = tmp_path / "calibration.npz"
    if not arrays:
        rng = np.random.default_rng(1)
        arrays = {"x": rng.random((sets, 1, 64), dtype=np.float32)}
    np.savez(path, **arrays)
    return str(path)


def _run(proto: onnx.ModelProto, **params: object) -> graphkit.PassResult:
    return quantize.run(as_ir(proto), quantize.validate(params))


def _x(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((1, 64), dtype=np.float32)


def test_dynamic_quantizes_weights_and_keeps_the_interface(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    temporary = ("graphkit-quantize-*", "ort.quant.*", "pre.quant.*")
    leftovers = {p for pattern in temporary for p in Path(tempfile.gettempdir()).glob(pattern)}
    source = two_layers()
    result = _run(source)
    assert result.modified
    ops = _ops(result)
    assert ops["MatMulInteger"] == 2 and ops["DynamicQuantizeLinear"] >= 1
    proto = to_proto(result.model)
    assert [i.name for i in proto.graph.input] == ["x"]
    assert [o.name for o in proto.graph.output] == ["y"]
    assert {t.name: t.data_type for t in proto.graph.initializer}[
        "w1_quantized"
    ] == TensorProto.INT8
    x = _x()
    assert _cosine(run(proto, {"x": x})["y"], run(source, {"x": x})["y"]) > 0.99
    assert any(n.startswith("weights 0.03 MiB -> 0.01 MiB") for n in result.notes)
    assert os.listdir(tmp_path) == [], "nothing written to the current folder"
    after = {p for pattern in temporary for p in Path(tempfile.gettempdir()).glob(pattern)}
    assert after == leftovers, "no temporary folder left behind"


def test_weight_type_uint8_and_per_channel_reach_onnxruntime() -> None:
    result = _run(two_layers(), weight_type="uint8", per_channel=True)
    proto = to_proto(result.model)
    types = {t.name: t for t in proto.graph.initializer}
    assert types["w1_quantized"].data_type == TensorProto.UINT8
    assert list(types["w1_scale"].dims) == [64], "one scale per output channel"


def test_op_types_the_model_lacks_quantize_nothing_and_fail() -> None:
    with pytest.raises(PassError, match=r"quantized nothing \(op_types: Conv\)"):
        _run(matmul(size=8), op_types=["Conv"])


def test_without_preprocessing() -> None:
    result = _run(two_layers(), op_types=["MatMul"], preprocess=False)
    assert _ops(result)["MatMulInteger"] == 2
    assert not any(n.startswith("onnxruntime's pre-processing ran") for n in result.notes)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("qdq", "QuantizeLinear"), ("qoperator", "QLinearMatMul")],
    ids=["qdq", "qoperator"],
)
@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_static_with_calibration(tmp_path, fmt: str, expected: str, method: str) -> None:
    source = two_layers()
    result = _run(
        source, mode="static", calibration=_calibration(tmp_path), format=fmt, method=method
    )
    assert _ops(result)[expected] >= 1
    assert f"calibrated on 4 input sets ({method})" in result.notes
    x = _x(5)
    proto = to_proto(result.model)
    assert _cosine(run(proto, {"x": x})["y"], run(source, {"x": x})["y"]) > 0.95


def test_the_calibration_path_is_relative_to_the_recipe(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "project"
    write(two_layers(), folder / "model.onnx")
    _calibration(folder)
    recipe = folder / "recipe.yaml"
    recipe.write_text(
        textwrap.dedent(
            """\
            version: 1
            source: {path: model.onnx}
            passes:
              - quantize: {mode: static, calibration: calibration.npz}
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    result = graphkit.apply(recipe)
    assert any("calibrated on 4 input sets" in n for n in result.steps[0].notes)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"image": np.zeros((2, 1, 64), np.float32)}, r"calibration keys \['image'\] do not match"),
        ({"x": np.zeros((2, 1, 32), np.float32)}, r"is float32\[2, 1, 32\]; the input takes"),
        ({"x": np.zeros((2, 1, 64), np.float64)}, r"is float64\[2, 1, 64\]"),
        ({"x": np.zeros((0, 1, 64), np.float32)}, "at least one"),
    ],
    ids=["keys", "shape", "dtype", "no-sets"],
)
def test_calibration_that_does_not_fit_is_one_line(tmp_path, arrays: dict, message: str) -> None:
    path = _calibration(tmp_path, **arrays)
    with pytest.raises(PassError, match=message) as error:
        _run(two_layers(), mode="static", calibration=path)
    assert "\n" not in str(error.value)
    assert str(error.value).startswith(path)


def test_a_pickled_or_missing_calibration_file_is_refused(tmp_path) -> None:
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(PassError, match=r"not a readable \.npz"):
        _run(two_layers(), mode="static", calibration=str(pickled))
    with pytest.raises(PassError, match="calibration: no such file"):
        _run(two_layers(), mode="static", calibration=str(tmp_path / "missing.npz"))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"op_types": ["MatMul", "Matmul"]}, "op_types: not ONNX operators: 'Matmul'"),
        ({"mode": "static"}, "mode: static needs calibration"),
        ({"method": "entropy"}, "method: only for mode: static"),
        ({"format": "qdq", "calibration": "c.npz"}, "calibration, format: only for mode: static"),
        ({"weight_type": "int4"}, "weight_type"),
        ({"activation_type": "uint8"}, "activation_type: only for mode: static"),
    ],
    ids=[
        "unknown-op",
        "static-without-data",
        "method-dynamic",
        "format-dynamic",
        "weight-type",
        "activation-dynamic",
    ],
)
def test_bad_parameters_are_refused(params: dict, message: str) -> None:
    with pytest.raises(PassError, match=message):
        quantize.validate(params)


def test_a_model_with_external_data(tmp_path) -> None:
    source = two_layers()
    path = tmp_path / "model.onnx"
    copy = onnx.ModelProto.FromString(source.SerializeToString())
    onnx.save(copy, path, save_as_external_data=True, location="model.data", size_threshold=0)
    result = quantize.run(graphkit.load(path), quantize.validate({}))
    out = tmp_path / "out.onnx"
    graphkit.save(result.model, out)
    x = _x()
    assert _cosine(run(out, {"x": x})["y"], run(source, {"x": x})["y"]) > 0.99


def test_activation_type_reaches_onnxruntime(tmp_path) -> None:
    result = _run(
        two_layers(), mode="static", calibration=_calibration(tmp_path), activation_type="uint8"
    )
    proto = to_proto(result.model)
    zero_points = [t for t in proto.graph.initializer if t.name.endswith("_zero_point")]
    activation = [t for t in zero_points if not t.name.startswith(("w1", "w2", "b"))]
    assert activation and all(t.data_type == TensorProto.UINT8 for t in activation)
    weights = [t for t in zero_points if t.name.startswith(("w1", "w2"))]
    assert weights and all(t.data_type == TensorProto.INT8 for t in weights)


def test_an_interface_changed_by_onnxruntime_is_refused(monkeypatch) -> None:
    from onnxruntime import quantization

    def renaming(source: str, output: str, **options: object) -> None:
        model = onnx.load(source)
        model.graph.node[-1].output[0] = "renamed"
        model.graph.output[0].name = "renamed"
        onnx.save(model, output)

    monkeypatch.setattr(quantization, "quantize_dynamic", renaming)
    with pytest.raises(
        PassError, match=r"\(x float32\) -> \(y float32\) became .*\(renamed float32\)"
    ):
        _run(two_layers(), preprocess=False)


def if_with_matmuls() -> onnx.ModelProto:
    """An If whose two branches each multiply ``x`` [1, 16] by a weight of their own."""
    rng = np.random.default_rng(3)

    def branch(name: str) -> onnx.GraphProto:
        weight = rng.standard_normal((16, 16)).astype(np.float32)
        return helper.make_graph(
            [helper.make_node("MatMul", ["x", f"{name}_w"], [f"{name}_out"])],
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1, 16])],
            [numpy_helper.from_array(weight, f"{name}_w")],
        )

    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
            helper.make_node("Greater", ["s", "zero"], ["c"]),
            helper.make_node(
                "If", ["c"], ["y"], then_branch=branch("then"), else_branch=branch("else")
            ),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        [numpy_helper.from_array(np.array(0, np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["then", "else"])
def test_dynamic_quantizes_inside_if_branches(sign: float) -> None:
    """onnxruntime leaves subgraphs alone unless asked (EnableSubgraph)."""
    source = if_with_matmuls()
    proto = to_proto(_run(source).model)
    if_node = next(n for n in proto.graph.node if n.op_type == "If")
    for attribute in if_node.attribute:
        assert "MatMulInteger" in [n.op_type for n in attribute.g.node]
    x = sign * np.random.default_rng(4).random((1, 16), dtype=np.float32)
    assert _cosine(run(proto, {"x": x})["y"], run(source, {"x": x})["y"]) > 0.99


def test_static_says_it_cannot_enter_if_branches(tmp_path) -> None:
    path = _calibration(tmp_path, x=np.random.default_rng(5).random((2, 1, 16), dtype=np.float32))
    with pytest.raises(PassError, match=r"2 candidates in If/Loop bodies: .* does not enter"):
        _run(if_with_matmuls(), mode="static", calibration=path)


def test_a_recipe_with_an_unknown_op_type_names_its_place(tmp_path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("version: 1\npasses:\n  - quantize:\n      op_types: [MatMul, Matmull]\n")
    with pytest.raises(graphkit.RecipeError) as error:
        graphkit.load_recipe(recipe)
    assert str(error.value) == (
        f"{recipe}:4:17: passes[0].quantize.op_types: not ONNX operators: 'Matmull'"
    )
