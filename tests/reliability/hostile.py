"""Awkward and hostile models, built in code, for the reliability tests.

Each builder returns an ``onnx.ModelProto``. Models that are invalid on
purpose skip the checker; the rest are checked like those of tests/models.py.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def with_loop(opset: int = 13) -> onnx.ModelProto:
    """``y = x + k * trip``: a Loop whose body reads the graph input's shape and the weight ``k``.

    ``k`` is an initializer of the main graph used only inside the body.
    """
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["acc", "k"], ["acc_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc", TensorProto.FLOAT, ["N", 2]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, ["N", 2]),
        ],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trip", "", "x"], ["y"], body=body)],
        "with_loop",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [
            numpy_helper.from_array(np.array([0.5, -2.0], np.float32), "k"),
            numpy_helper.from_array(np.array(3, np.int64), "trip"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def with_scan(opset: int = 13) -> onnx.ModelProto:
    """A running sum over the rows of ``x`` (``total``) and each row times ``k`` (``scaled``).

    ``k`` is an initializer of the main graph used only inside the Scan body.
    """
    body = helper.make_graph(
        [
            helper.make_node("Add", ["sum_in", "row"], ["sum_out"]),
            helper.make_node("Mul", ["row", "k"], ["row_out"]),
        ],
        "scan_body",
        [
            helper.make_tensor_value_info("sum_in", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("row", TensorProto.FLOAT, [2]),
        ],
        [
            helper.make_tensor_value_info("sum_out", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("row_out", TensorProto.FLOAT, [2]),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node(
                "Scan", ["start", "x"], ["total", "scaled"], body=body, num_scan_inputs=1
            )
        ],
        "with_scan",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 2])],
        [
            helper.make_tensor_value_info("total", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["T", 2]),
        ],
        [
            numpy_helper.from_array(np.array([1.5, 4.0], np.float32), "k"),
            numpy_helper.from_array(np.zeros(2, np.float32), "start"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def nested_if(depth: int, opset: int = 13) -> onnx.ModelProto:
    """``depth`` graphs nested through If nodes (the main graph is level 1); ``y = x + k``.

    The innermost then-branch reads the graph input ``x`` and the initializer
    ``k`` of the main graph, so names cross every level. Every else-branch
    returns ``x`` unchanged. Not checked: the checker itself recurses.
    """

    def leaf(name: str, node: onnx.NodeProto) -> onnx.GraphProto:
        output = helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, ["N"])
        return helper.make_graph([node], name, [], [output])

    inner = leaf(f"then{depth}", helper.make_node("Add", ["x", "k"], [f"out{depth}"]))
    for level in range(depth - 1, 0, -1):
        otherwise = leaf(f"else{level}", helper.make_node("Identity", ["x"], [f"kept{level}"]))
        node = helper.make_node(
            "If", ["cond"], [f"out{level}"], then_branch=inner, else_branch=otherwise
        )
        inner = leaf(f"then{level}", node)
    graph = helper.make_graph(
        list(inner.node),
        "nested",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("out1", TensorProto.FLOAT, ["N"])],
        [numpy_helper.from_array(np.array([2.0], np.float32), "k")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def converter_crasher() -> onnx.ModelProto:
    """An Unsqueeze with an int ``axes``, not ints: onnx 1.23's converter segfaults at 11->18."""
    return onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 11]>
        g (float[2, 3] x) => (float[1, 2, 3] y) { y = Unsqueeze <axes: int = 0> (x) }"""
    )


def inference_crasher() -> onnx.ModelProto:
    """A RegexFullMatch whose input name is empty: onnx 1.23's shape inference segfaults on it."""
    return onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 20]>
        g (string[2] x) => (bool[2] y) { y = RegexFullMatch <pattern: string = "a"> ("") }"""
    )


def external_tensor(name: str, *entries: tuple[str, str]) -> onnx.TensorProto:
    """A one-float tensor whose data is external, described by the ``(key, value)`` entries."""
    tensor = helper.make_tensor(name, TensorProto.FLOAT, [1], [0.0])
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in entries:
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def identity_model(
    initializers: list[onnx.TensorProto] | None = None,
    nodes: list[onnx.NodeProto] | None = None,
    functions: list[onnx.FunctionProto] | None = None,
) -> onnx.ModelProto:
    """``y = Identity(x)``, plus whatever initializers, nodes and functions are given (unused)."""
    graph = helper.make_graph(
        [*(nodes or []), helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        initializers or [],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("local", 1)],
        functions=functions or [],
        ir_version=8,
    )
