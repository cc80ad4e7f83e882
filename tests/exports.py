"""Small models shaped like real exports on which graph simplifiers disagree.

Each builder returns a checked-by-ONNX-Runtime ``onnx.ModelProto`` with seeded
weights. The tests of ``simplify`` and benchmarks/simplify_engines.py use them.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_V = helper.make_tensor_value_info


def _weight(rng: np.random.Generator, name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def _ints(name: str, *values: int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def vad_with_if(opset: int = 15) -> onnx.ModelProto:
    """A voice-activity detector as torch.onnx writes it: the decoder inside If branches.

    The branches read ``/decoder/rnn/Squeeze_output_0``, which the main graph
    computes *after* the If node. ONNX Runtime sorts by data flow and runs it;
    onnx's checker, and so onnxsim, refuse it ("Nodes in a graph must be
    topologically sorted ... Bad node spec for node If_6").
    """
    rng = np.random.default_rng(3)
    state = "/decoder/rnn/Squeeze_output_0"
    then_branch = helper.make_graph(
        [
            helper.make_node("MatMul", [state, "/decoder/W"], ["then_mm"], name="/decoder/MatMul"),
            helper.make_node(
                "Unsqueeze", ["then_mm", "axes0"], ["then_out"], name="/decoder/Unsqueeze"
            ),
        ],
        "then",
        [],
        [_V("then_out", TensorProto.FLOAT, [1, 1, 4])],
    )
    else_branch = helper.make_graph(
        [
            helper.make_node("Mul", [state, "half"], ["else_mul"], name="/decoder/Mul"),
            helper.make_node(
                "Unsqueeze", ["else_mul", "axes0"], ["else_out"], name="/decoder/Unsqueeze_1"
            ),
        ],
        "else",
        [],
        [_V("else_out", TensorProto.FLOAT, [1, 1, 4])],
    )
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["peak"], keepdims=0, name="/ReduceMax"),
        helper.make_node("Greater", ["peak", "threshold"], ["speech"], name="/Greater"),
        helper.make_node(
            "If", ["speech"], ["y"], then_branch=then_branch, else_branch=else_branch, name="If_6"
        ),
        # Produced after the If that reads it.
        helper.make_node("Add", ["h", "x"], ["/decoder/rnn/Add_output_0"], name="/decoder/rnn/Add"),
        helper.make_node("Tanh", ["/decoder/rnn/Add_output_0"], ["t"], name="/decoder/rnn/Tanh"),
        helper.make_node("Squeeze", ["t", "axes0"], [state], name="/decoder/rnn/Squeeze"),
    ]
    graph = helper.make_graph(
        nodes,
        "vad",
        [_V("x", TensorProto.FLOAT, [1, 1, 4]), _V("h", TensorProto.FLOAT, [1, 1, 4])],
        [_V("y", TensorProto.FLOAT, [1, 1, 4])],
        [
            _weight(rng, "/decoder/W", 4, 4),
            _ints("axes0", 0),
            numpy_helper.from_array(np.array(0.5, np.float32), "half"),
            numpy_helper.from_array(np.array(0.0, np.float32), "threshold"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def paddle_detector() -> onnx.ModelProto:
    """What paddle2onnx writes for a detector head: a per-channel scale after each Conv
    and full-range Slices left over from the source framework's indexing.

    onnxslim removes the Slices, onnxsim does not.
    """
    rng = np.random.default_rng(4)
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c", "scale"], ["cm"]),
        helper.make_node("Relu", ["cm"], ["r"]),
        helper.make_node("Slice", ["r", "start", "end", "axis1"], ["sl"]),
        helper.make_node("Conv", ["sl", "head_w", "head_b"], ["h"]),
        helper.make_node("Slice", ["h", "start", "end", "axis2"], ["hs"]),
        helper.make_node("Sigmoid", ["hs"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "paddle",
        [_V("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [_V("y", TensorProto.FLOAT, [1, 1, 16, 16])],
        [
            _weight(rng, "conv_w", 8, 3, 3, 3),
            _weight(rng, "conv_b", 8),
            _weight(rng, "scale", 1, 8, 1, 1),
            _ints("start", 0),
            _ints("end", 2**62),
            _ints("axis1", 1),
            _ints("axis2", 2),
            _weight(rng, "head_w", 1, 8, 1, 1),
            _weight(rng, "head_b", 1),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=7)


def crnn_scaled_conv() -> onnx.ModelProto:
    """An old PyTorch CRNN front end: Conv, then a constant scalar scale, then Relu.

    onnxsim folds the scale into the Conv, onnxslim does not.
    """
    rng = np.random.default_rng(7)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c", "gain"], ["cm"]),
        helper.make_node("Relu", ["cm"], ["r"]),
        helper.make_node("Conv", ["r", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c2", "gain"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "crnn",
        [_V("x", TensorProto.FLOAT, [1, 1, 8, 32])],
        [_V("y", TensorProto.FLOAT, [1, 4, 8, 32])],
        [
            _weight(rng, "w", 4, 1, 3, 3),
            _weight(rng, "b", 4),
            numpy_helper.from_array(np.full((1, 1, 1, 1), 0.5, np.float32), "gain"),
            _weight(rng, "w2", 4, 4, 3, 3),
            _weight(rng, "b2", 4),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=4)


def classifier_with_unused_input() -> onnx.ModelProto:
    """A text classifier whose ``attention_mask`` input the graph never reads (tf2onnx keeps it)."""
    rng = np.random.default_rng(5)
    nodes = [
        helper.make_node("Gather", ["embedding", "input_ids"], ["e"]),
        helper.make_node("ReduceMean", ["e"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["pooled", "dense_w"], ["d"]),
        helper.make_node("Add", ["d", "dense_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "classifier",
        [
            _V("input_ids", TensorProto.INT64, [1, 6]),
            _V("attention_mask", TensorProto.INT64, [1, 6]),
        ],
        [_V("probs", TensorProto.FLOAT, [1, 3])],
        [
            _weight(rng, "embedding", 20, 8),
            _weight(rng, "dense_w", 8, 3),
            _weight(rng, "dense_b", 3),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)


def caffe2_zoo_cnn() -> onnx.ModelProto:
    """An IR 3, opset 9 CNN as caffe2's exporter wrote the old model zoo.

    Every weight is an initializer listed as a graph input too, as IR 3
    required; the Reshape's target shape is ``OC2_DUMMY_1``, caffe2's name
    for values it made up ("OC2" for onnx-caffe2), an int64 weight like any
    other.
    """
    rng = np.random.default_rng(6)
    weights = [
        _weight(rng, "conv1_w_0", 8, 3, 3, 3),
        _weight(rng, "conv1_b_0", 8),
        _weight(rng, "fc6_w_0", 10, 8 * 4 * 4),
        _weight(rng, "fc6_b_0", 10),
        _ints("OC2_DUMMY_1", 1, 8 * 4 * 4),
    ]
    nodes = [
        helper.make_node(
            "Conv", ["data_0", "conv1_w_0", "conv1_b_0"], ["conv1_1"], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["conv1_1"], ["conv1_2"]),
        helper.make_node("LRN", ["conv1_2"], ["norm1_1"], size=5, alpha=1e-4, beta=0.75),
        helper.make_node("MaxPool", ["norm1_1"], ["pool1_1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["pool1_1", "OC2_DUMMY_1"], ["OC2_DUMMY_0"]),
        helper.make_node("Gemm", ["OC2_DUMMY_0", "fc6_w_0", "fc6_b_0"], ["fc6_1"], transB=1),
        helper.make_node("Dropout", ["fc6_1"], ["fc6_2", "_fc6_mask"], ratio=0.5),
        helper.make_node("Softmax", ["fc6_2"], ["prob_1"]),
    ]
    inputs = [_V(t.name, t.data_type, list(t.dims)) for t in weights]
    graph = helper.make_graph(
        nodes,
        "caffe2_zoo",
        [*inputs, _V("data_0", TensorProto.FLOAT, [1, 3, 8, 8])],
        [_V("prob_1", TensorProto.FLOAT, [1, 10])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=3)
    onnx.checker.check_model(model)
    return model


#: Every builder, by a short name for tables and test ids.
EXPORTS = {
    "vad_with_if": vad_with_if,
    "paddle_detector": paddle_detector,
    "crnn_scaled_conv": crnn_scaled_conv,
    "classifier_with_unused_input": classifier_with_unused_input,
    "caffe2_zoo_cnn": caffe2_zoo_cnn,
}


def seeded_feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for every graph input of ``model`` that is not a weight."""
    rng = np.random.default_rng(seed)
    weights = {t.name for t in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in weights:
            continue
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if value.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            feeds[value.name] = rng.integers(0, 20, shape).astype(np.int64)
        else:
            feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds
