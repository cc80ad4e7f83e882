"""Figure 6's two sides write equally valid models: the same interface, the same numbers.

The figure itself is ``python benchmarks/run.py --only 6``; no timings here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from benchmarks import bare_onnx_ir
from graphkit import apply
from tests.models import random_input, run, tf2onnx_like, write

RECIPE = Path(__file__).resolve().parents[2] / "benchmarks" / "recipes" / "cleaning-passes.yaml"


def test_figure_6s_two_sides_write_the_same_interface_and_the_same_numbers(
    tmp_path: Path,
) -> None:
    source = write(tf2onnx_like(size=224), tmp_path / "cleaning.onnx")
    ours, bare = tmp_path / "graphkit.onnx", tmp_path / "bare.onnx"
    apply(RECIPE, source=source, output=ours)
    bare_onnx_ir.main(str(source), str(bare))

    def interface(path: Path) -> list[tuple[str, list[int | str]]]:
        graph = onnx.load(path).graph
        return [
            (v.name, [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim])
            for v in [*graph.input, *graph.output]
        ]

    assert interface(ours) == interface(bare)
    assert interface(bare) == [("input", [1, 224, 224, 3]), ("output", [1, 224, 224, 3])]
    # Both keep the weights inside the one file.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bare.onnx",
        "cleaning.onnx",
        "graphkit.onnx",
    ]
    onnx.checker.check_model(onnx.load(bare), full_check=True)
    image = random_input((1, 224, 224, 3))
    np.testing.assert_array_equal(
        run(ours, {"input": image})["output"], run(bare, {"input": image})["output"]
    )
