"""The manual route graphkit replaces: rename the interface and fix the batch dims with plain onnx.

Run after ``python -m tf2onnx.convert --saved-model ./model --output model.onnx``:

    python manual_cleaning.py model.onnx
"""

from __future__ import annotations

import sys

import onnx


def main(path: str) -> None:
    model = onnx.load(path)
    renames = {"input_1": "input", "conv2d_6": "output"}
    graph = model.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        value.name = renames.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    batch_dims = set()
    for value in [*graph.input, *graph.output]:
        first = value.type.tensor_type.shape.dim[0]
        if first.dim_param:
            batch_dims.add(first.dim_param)
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in batch_dims:
                dim.dim_value = 1
    onnx.checker.check_model(model)
    onnx.save(model, path)


if __name__ == "__main__":
    main(sys.argv[1])
