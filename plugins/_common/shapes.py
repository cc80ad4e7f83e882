"""Shape inference for passes: onnx's inference run on the graph, merged back into the model."""

from __future__ import annotations

import collections

import onnx
import onnx_ir as ir

from graphkit import PassError, _onnx_tools
from graphkit._modelio.proto import call_on_graph


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


def infer(model: ir.Model, *, data_prop: bool = True, strict: bool = True) -> list[str]:
    """Infer shapes and types with onnx and record them on the model's values.

    Large weights are not serialised for the call. A graph output whose
    declared shape contradicts what the graph computes (another rank, or
    another fixed size) gets the computed shape; old exporters declared
    outputs such as ``[1, seqlen]`` for a ``[32, 1, 8210]`` result.

    Returns:
        Notes for the user: each declared output shape that was replaced.

    Raises:
        PassError: inference found a contradiction inside the graph, such as
            an intermediate value recorded with a shape it cannot have.
    """
    # Declared output shapes are set aside, so inference computes them rather than
    # failing on (strict) or keeping (lenient) a declaration the graph contradicts.
    declared = {
        v: v.shape for v in model.graph.outputs if v.shape is not None and v.producer() is not None
    }
    renamed = _give_subgraph_values_unique_names(model)
    for value in declared:
        value.shape = None
    try:
        inferred = _inferred(model, data_prop=data_prop, strict=strict)
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
    except BaseException:
        for value, shape in declared.items():
            value.shape = shape
        raise
    finally:
        for value, name in renamed.items():
            value.name = name
    notes = []
    for value, shape in declared.items():
        computed = value.shape
        if computed is not None and _contradicts(shape, computed):
            notes.append(
                f"output {value.name!r} was declared {_shown(shape)}, but the graph computes "
                f"{_shown(computed)}: the computed shape is recorded"
            )
        else:
            value.shape = shape if computed is None else _refined(shape, computed)
    return notes


def _contradicts(declared: ir.Shape, computed: ir.Shape) -> bool:
    if len(declared) != len(computed):
        return True
    return any(
        isinstance(old, int) and isinstance(new, int) and old != new
        for old, new in zip(declared, computed, strict=True)
    )


def _refined(declared: ir.Shape, computed: ir.Shape) -> ir.Shape:
    """The declared shape with the sizes inference proves; declared names stay otherwise."""
    return ir.Shape(
        [new if isinstance(new, int) else old for old, new in zip(declared, computed, strict=True)]
    )


def _shown(shape: ir.Shape) -> str:
    dims = [str(d) if isinstance(d, int) else (d.value or "?") for d in shape]
    return f"[{', '.join(dims)}]"


def _inferred(model: ir.Model, *, data_prop: bool, strict: bool) -> ir.Model:
    """The model as onnx's shape inference returns it (weights held back for the call)."""

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
    return inferred


def _give_subgraph_values_unique_names(model: ir.Model) -> dict[ir.Value, str]:
    """Rename values computed in subgraphs whose names another value also bears.

    onnx's data propagation keeps the values it computes (shapes, mostly) in
    one table keyed by name for the whole model. Exporters name values after
    the module that computes them, so both branches of an If often compute a
    ``/rnn/Shape_output_0``: the second branch then reads the first branch's
    value, a Reshape there gets the other branch's shape, and the shapes
    recorded downstream are wrong (ONNX Runtime may then refuse the model), or
    strict inference fails with "Data for input 0 already exists". With every
    name unique for the call, each branch is inferred on its own.

    Returns:
        The renamed values and their names, to be given back afterwards.
    """
    from graphkit_plugins._common.names import names_in_use

    counts: collections.Counter[str] = collections.Counter()
    for graph in model.graphs():
        for value in [*graph.inputs, *graph.initializers.values()]:
            counts[value.name or ""] += 1
        for node in graph:
            counts.update(v.name or "" for v in node.outputs)
    used = set(names_in_use(model))
    renamed: dict[ir.Value, str] = {}
    for graph in model.graphs():
        if graph is model.graph:
            continue
        for node in graph:
            for value in node.outputs:
                name = value.name
                if not name or counts[name] < 2:
                    continue
                number = len(renamed)
                while f"{name}__graphkit_{number}" in used:
                    number += 1
                renamed[value] = name
                value.name = f"{name}__graphkit_{number}"
                used.add(value.name)
    return renamed


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
