"""The ``fix_dims`` pass: give symbolic dimensions and input shapes fixed sizes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field, PlainValidator

from graphkit import Params, Pass, PassError, PassResult, graph_pass, hookimpl

if TYPE_CHECKING:
    import onnx_ir as ir

Size = Annotated[int, Field(ge=1)]


def _size_or_name(value: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"a size is a whole number or a dim name, not {value!r}")
    # 0 is a size: an input can be empty (as can the data a shape is read from).
    if isinstance(value, int) and value < 0:
        raise ValueError("a size cannot be negative")
    return value


SizeOrName = Annotated[int | str, PlainValidator(_size_or_name)]


class FixDimsParams(Params):
    dims: dict[str, Size] = Field(
        default_factory=dict,
        description="Symbolic dimensions to fix, as {dim name: size}; every occurrence changes.",
    )
    shapes: dict[str, list[SizeOrName]] = Field(
        default_factory=dict,
        description=(
            "Whole input shapes, as {input name: [sizes]} (0 for an empty axis); "
            "a text entry names a symbolic dim."
        ),
    )


@graph_pass("fix_dims", FixDimsParams)
def fix_dims(model: ir.Model, params: FixDimsParams) -> PassResult:
    """Fix symbolic dimensions (such as tf2onnx's unk__127) and input shapes to sizes.

    Every occurrence of a named dim changes: inputs, outputs, value_info and
    subgraphs. Then shapes are inferred again from scratch, so outputs and
    intermediate values become static wherever the sizes determine them and
    no stale value_info is left. A declared output shape the graph
    contradicts is replaced by the computed one, with a note.
    """
    import onnx_ir as ir
    from graphkit_plugins._common.names import all_values, listing
    from graphkit_plugins._common.shapes import forget_intermediate_shapes, infer, shape_snapshot

    from graphkit._inspect import real_inputs, symbolic_dims

    existing = symbolic_dims(model)
    inputs = {v.name: v for v in real_inputs(model.graph)}
    problems = []
    for name in params.dims:
        if name not in existing:
            problems.append(f"no symbolic dim named {name!r} (the model has: {listing(existing)})")
    for name, shape in params.shapes.items():
        value = inputs.get(name)
        if value is None:
            problems.append(f"no graph input named {name!r} (inputs: {listing(inputs)})")
        elif value.shape is not None and len(value.shape) != len(shape):
            rank = len(value.shape)
            problems.append(
                f"input {name!r} has rank {rank}, but the shape {shape} has {len(shape)}"
            )
    if problems:
        raise PassError("; ".join(problems))

    before = shape_snapshot(model)
    for value in all_values(model):
        if value.shape is not None and any(_named(d) in params.dims for d in value.shape):
            value.shape = ir.Shape([params.dims.get(_named(d), d) for d in value.shape])
    for name, shape in params.shapes.items():
        inputs[name].shape = ir.Shape(
            [ir.SymbolicDim(d) if isinstance(d, str) else d for d in shape]
        )

    forget_intermediate_shapes(model)
    notes = infer(model)
    return PassResult(model, modified=shape_snapshot(model) != before, notes=notes)


def _named(dim: int | ir.SymbolicDim) -> str | None:
    return None if isinstance(dim, int) else dim.value


@hookimpl
def graphkit_passes() -> list[Pass]:
    return [fix_dims]
