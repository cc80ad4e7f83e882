"""The ``infer_shapes`` pass: record inferred shapes and types on every value."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from graphkit import Params, Pass, PassResult, graph_pass, hookimpl

if TYPE_CHECKING:
    import onnx_ir as ir


class InferShapesParams(Params):
    data_prop: bool = Field(
        True,
        description="Propagate constant shape values (Shape -> Gather -> Reshape and the like).",
    )
    strict: bool = Field(
        True, description="Fail on any inference error instead of skipping the node."
    )
    discard_existing: bool = Field(
        False,
        description=(
            "Forget the shapes recorded for intermediate values first, so no stale one survives."
        ),
    )


@graph_pass("infer_shapes", InferShapesParams)
def infer_shapes(model: ir.Model, params: InferShapesParams) -> PassResult:
    """Infer the shapes and types of all values with onnx's shape inference.

    Weights are not serialised for inference, so this also works on models
    larger than 2 GiB. A declared output shape the graph contradicts is
    replaced by the computed one, with a note.
    """
    from graphkit_plugins._common.shapes import forget_intermediate_shapes, infer, shape_snapshot

    before = shape_snapshot(model)
    if params.discard_existing:
        forget_intermediate_shapes(model)
    notes = infer(model, data_prop=params.data_prop, strict=params.strict)
    return PassResult(model, modified=shape_snapshot(model) != before, notes=notes)


@hookimpl
def graphkit_passes() -> list[Pass]:
    return [infer_shapes]
