"""Shape inference for passes: onnx's inference run on the graph, merged back into the model."""

from __future__ import annotations

import onnx
import onnx_ir as ir

from graphkit import PassError, _onnx_tools
from graphkit._model_io import call_on_graph


def intermediate_values(graph: ir.Graph) -> list[ir.Value]:
    """Node outputs that are not outputs of their graph."""
    outputs = set(graph.outputs)
    return [v for node in graph for v in node.outputs if v not in outputs]


def forget_intermediate_shapes(model: ir.Model) -> None:
    """Drop the shapes recorded for intermediate values, so only inferred ones remain."""
    for graph in model.graphs():
        for value in intermediate_values(graph):
            value.shape = None


def shape_snapshot(model: ir.Model) -> dict[ir.Value, tuple[object, object]]:
    """The dtype and shape of every graph input and node output, to tell whether any changed."""
    snapshot = {}
    for graph in model.graphs():
        for value in [*graph.inputs, *(v for node in graph for v in node.outputs)]:
            shape = None if value.shape is None else tuple(value.shape)
            snapshot[value] = (value.dtype, shape)
    return snapshot


def infer(model: ir.Model, *, data_prop: bool = True, strict: bool = True) -> None:
    """Infer shapes and types with onnx and record them on the model's values.

    Large weights are not serialised for the call.

    Raises:
        PassError: inference found a contradiction, such as a declared shape
            that differs from the inferred one.
    """

    def run(proto: onnx.ModelProto) -> onnx.ModelProto:
        return _onnx_tools.infer_shapes(
            proto, check_type=True, strict_mode=strict, data_prop=data_prop
        )

    try:
        inferred = call_on_graph(model, run, rebuild=True)
    except _onnx_tools.ToolCrashed as error:
        raise PassError(f"shape inference failed: {error} on this model; it is invalid") from None
    except (
        onnx.shape_inference.InferenceError,
        onnx.checker.ValidationError,
        RuntimeError,
    ) as error:
        message = " ".join(str(error).split())
        raise PassError(f"shape inference failed: {message}") from None
    assert inferred is not None
    for original, result in zip(model.graphs(), inferred.graphs(), strict=True):
        found = _values_by_name(result)
        for value in _values_by_name(original).values():
            twin = found.get(value.name)
            if twin is None:
                continue
            if twin.type is not None:
                # The whole type: a sequence or optional value is not a tensor of its dtype.
                value.type = twin.type
            if twin.shape is not None:
                value.shape = _merged(value.shape, twin.shape)


def _values_by_name(graph: ir.Graph) -> dict[str, ir.Value]:
    values = {v.name: v for v in graph.inputs}
    for node in graph:
        values.update((v.name, v) for v in node.outputs)
    return values


def _merged(declared: ir.Shape | None, inferred: ir.Shape) -> ir.Shape:
    """The inferred shape, keeping declared names for dims inference left unnamed."""
    if declared is None or len(declared) != len(inferred):
        return ir.Shape(list(inferred))
    dims = []
    for old, new in zip(declared, inferred, strict=True):
        if isinstance(new, ir.SymbolicDim) and new.value is None:
            dims.append(old)
        else:
            dims.append(new)
    return ir.Shape(dims)
