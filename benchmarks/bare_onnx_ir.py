"""Figure 6's alternative: the signature-cleaning recipe's graph edits with onnx-ir alone.

    python bare_onnx_ir.py cleaning.onnx out.onnx

Renames the input ``input_1`` to ``input`` and the output ``conv2d_6`` to
``output``, gives the input the shape [1, 224, 224, 3] and the output batch
size 1 (the output shape fix_dims infers from that input), and saves with the
weights inside the file, as graphkit does for a model this small. No checks,
no shape inference of intermediate values, no report.
"""

from __future__ import annotations

import sys

import onnx_ir as ir

RENAMES = {"input_1": "input", "conv2d_6": "output"}
INPUT_SHAPE = [1, 224, 224, 3]


def main(source: str, output: str) -> None:
    model = ir.load(source)
    graph = model.graph
    # A value is one object wherever it is used, so renaming it renames every use.
    for value in [*graph.inputs, *graph.outputs]:
        value.name = RENAMES.get(value.name or "", value.name)
    [image] = [v for v in graph.inputs if v.name == "input"]
    [cleaned] = [v for v in graph.outputs if v.name == "output"]
    image.shape = ir.Shape(INPUT_SHAPE)
    if cleaned.shape is not None:
        cleaned.shape = ir.Shape([1, *cleaned.shape[1:]])
    ir.save(model, output)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
