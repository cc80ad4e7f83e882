"""A generated model past protobuf's 2 GiB limit, its weights in one external data file.

A chain of ``MatMul -> Add -> Relu`` layers on an input ``x`` [batch, width]
with a symbolic batch dim; ``width`` 8192 makes each weight 256 MiB, so ten
layers come to 2.5 GiB. A small constant expression (``Sqrt`` of a Constant)
and an Identity give ``simplify`` something to fold. Weights are written one at
a time, so building the model needs only one layer's worth of memory.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper


def build(folder: Path, *, layers: int = 10, width: int = 8192, seed: int = 0) -> Path:
    """Write ``model.onnx`` and ``model.onnx.data`` into ``folder``; return the model's path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    data_name = f"{path.name}.data"
    rng = np.random.default_rng(seed)
    initializers: list[TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    offset = 0
    weight = np.empty((width, width), np.float32)
    with open(folder / data_name, "wb") as data:

        def external(name: str, array: np.ndarray) -> None:
            nonlocal offset
            array.tofile(data)
            tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=array.shape)
            tensor.data_location = TensorProto.EXTERNAL
            where = {"location": data_name, "offset": offset, "length": array.nbytes}
            for key, value in where.items():
                entry = tensor.external_data.add()
                entry.key, entry.value = key, str(value)
            initializers.append(tensor)
            offset += array.nbytes

        current = "x"
        for index in range(layers):
            rng.standard_normal(dtype=np.float32, out=weight)
            weight *= np.float32(math.sqrt(2.0 / width))  # keeps activations in range
            external(f"w{index}", weight)
            external(f"b{index}", rng.standard_normal(width, dtype=np.float32) * np.float32(0.01))
            nodes += [
                helper.make_node("MatMul", [current, f"w{index}"], [f"mm{index}"]),
                helper.make_node("Add", [f"mm{index}", f"b{index}"], [f"add{index}"]),
                helper.make_node("Relu", [f"add{index}"], [f"relu{index}"]),
            ]
            current = f"relu{index}"
    nodes += [
        helper.make_node(
            "Constant", [], ["four"], value=helper.make_tensor("four", TensorProto.FLOAT, [], [4.0])
        ),
        helper.make_node("Sqrt", ["four"], ["two"]),
        helper.make_node("Div", [current, "two"], ["scaled"]),
        helper.make_node("Identity", ["scaled"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "large_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    onnx.save(model, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--width", type=int, default=8192)
    args = parser.parse_args()
    print(build(args.folder, layers=args.layers, width=args.width))


if __name__ == "__main__":
    main()
