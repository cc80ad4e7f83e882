"""Tiny ONNX models built in code, for the tests.

Each builder returns an ``onnx.ModelProto`` with seeded weights; ``write``
saves one to a file, ``run`` executes a model with ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def tf2onnx_like(size: int = 8, opset: int = 13) -> onnx.ModelProto:
    """What tf2onnx makes of a Keras image model.

    An NHWC input ``input_1`` [unk__127,size,size,3] behind a Transpose to
    NCHW, a Conv and Relu, a Transpose back, a Sigmoid output ``conv2d_6``
    [unk__128,size,size,3], and value_info that carries the symbolic dims.
    """
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((3, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["input_1"], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["nchw", "W", "B"], ["conv"], pads=[1, 1, 1, 1], name="conv2d"),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("Transpose", ["relu"], ["nhwc"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Sigmoid", ["nhwc"], ["conv2d_6"], name="sigmoid"),
    ]
    graph = helper.make_graph(
        nodes,
        "tf2onnx",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__127", size, size, 3])],
        [helper.make_tensor_value_info("conv2d_6", TensorProto.FLOAT, ["unk__128", size, size, 3])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
        value_info=[
            helper.make_tensor_value_info("nchw", TensorProto.FLOAT, ["unk__127", 3, size, size]),
            helper.make_tensor_value_info("conv", TensorProto.FLOAT, ["unk__127", 3, size, size]),
            helper.make_tensor_value_info("relu", TensorProto.FLOAT, ["unk__127", 3, size, size]),
            helper.make_tensor_value_info("nhwc", TensorProto.FLOAT, ["unk__127", size, size, 3]),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=7, producer_name="tf2onnx"
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def matmul(size: int = 64, opset: int = 17, ir_version: int | None = None) -> onnx.ModelProto:
    """``y = x @ w``: input ``x`` [1, size], a seeded float32 weight ``w`` [size, size]."""
    weight = np.random.default_rng(0).random((size, size), dtype=np.float32)
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])],
            "matmul",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, size])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, size])],
            [numpy_helper.from_array(weight, "w")],
        ),
        opset_imports=[helper.make_opsetid("", opset)],
    )
    if ir_version is not None:
        model.ir_version = ir_version
    return model


def from_text(text: str) -> onnx.ModelProto:
    """Parse ONNX text format, checking the result."""
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model, full_check=True)
    return model


def with_if(opset: int = 13) -> onnx.ModelProto:
    """A model whose If branches read the graph input ``x`` and the initializer ``k``.

    ``k`` is used only inside the subgraphs.
    """
    k = numpy_helper.from_array(np.full((2,), 3.0, np.float32), "k")
    then_branch = helper.make_graph(
        [helper.make_node("Add", ["x", "k"], ["then_out"])],
        "then",
        [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, ["N", 2])],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["else_out"])],
        "else",
        [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, ["N", 2])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
            helper.make_node("Greater", ["total", "zero"], ["cond"]),
            helper.make_node(
                "If", ["cond"], ["y"], then_branch=then_branch, else_branch=else_branch
            ),
        ],
        "with_if",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [k, numpy_helper.from_array(np.array(0.0, np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def ir3_weights_as_inputs() -> onnx.ModelProto:
    """An IR version 3 model whose weights ``W`` and ``B`` are also listed as graph inputs."""
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((4, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["data", "W", "B"], ["gemm"], transB=1),
            helper.make_node("Relu", ["gemm"], ["prob"]),
        ],
        "ir3",
        [
            helper.make_tensor_value_info("data", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 3]),
            helper.make_tensor_value_info("B", TensorProto.FLOAT, [4]),
        ],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)], ir_version=3)
    onnx.checker.check_model(model)
    return model


def write(model: onnx.ModelProto, path: Path) -> Path:
    """Save ``model`` to ``path`` (creating folders) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def run(
    model: onnx.ModelProto | str | Path, feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run a model with ONNX Runtime on the CPU; outputs by name."""
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds)), strict=True))


def random_input(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def as_ir(proto: onnx.ModelProto):
    """``proto`` in graphkit's in-memory form; a copy, since that form shares tensors with it."""
    from graphkit._modelio.proto import from_proto

    return from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
