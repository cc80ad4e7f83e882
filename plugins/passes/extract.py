"""The ``extract`` pass: keep only the part of the graph between given tensors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from graphkit import Params, Pass, PassError, PassResult, graph_pass, hookimpl

if TYPE_CHECKING:
    import onnx_ir as ir


class ExtractParams(Params):
    inputs: list[str] = Field(
        default_factory=list,
        description=(
            "Tensors that become the graph inputs, in this order. Empty: the model's own inputs "
            "that the outputs need."
        ),
    )
    outputs: list[str] = Field(
        default_factory=list,
        description="Tensors that become the graph outputs, in this order. Empty: the model's own.",
    )


@graph_pass("extract", ExtractParams)
def extract(model: ir.Model, params: ExtractParams) -> PassResult:
    """Keep the part of the graph between given tensors; everything else is removed.

    The tensors named in ``inputs`` become typed graph inputs and those in
    ``outputs`` graph outputs, with dtypes and shapes from shape inference
    where the model does not record them. Nodes, initializers and subgraph
    inputs the outputs do not need are dropped. Refuses names that are not
    tensors of the main graph, and inputs that do not cut the graph off from
    a model input they leave out. Weights are never read: initializers
    kept in external data stay there.
    """
    import onnx_ir as ir
    from graphkit_plugins._common.shapes import infer

    from graphkit._inspect import real_inputs

    graph = model.graph
    if not params.inputs and not params.outputs:
        raise PassError("give the tensors to cut at: inputs, outputs or both")
    values = _main_graph_values(graph)
    _check_names(model, values, params)

    outputs = [values[n] for n in params.outputs] or list(graph.outputs)
    listed = [values[n] for n in params.inputs]
    needed = _needed(outputs, set(listed))
    if listed:
        unlisted = {v: out for v, out in needed.items() if v.producer() is None}
        unlisted = {v: out for v, out in unlisted.items() if not v.is_initializer()}
        unlisted = {v: out for v, out in unlisted.items() if v not in listed}
        if unlisted:
            problems = [
                f"output {out.name!r} still depends on graph input {value.name!r}"
                for value, out in unlisted.items()
            ]
            raise PassError(
                "the inputs do not cut the graph: "
                + "; ".join(problems)
                + " (list it in inputs too, or cut later)"
            )
        inputs = listed
    else:
        inputs = [v for v in real_inputs(graph) if v in needed]

    notes = []
    unused = [v.name for v in listed if v not in needed]
    if unused:
        notes.append(f"the outputs do not need {', '.join(map(repr, unused))}; kept as inputs")

    # New inputs and outputs must be typed: ask shape inference for what the model lacks.
    boundary = [*inputs, *outputs]
    if any(v.dtype is None or v.shape is None for v in boundary):
        infer(model, strict=False)
    untyped = [v.name for v in boundary if v.dtype is None]
    if untyped:
        raise PassError(
            f"cannot tell the element type of {', '.join(map(repr, untyped))}: "
            "shape inference does not reach it"
        )

    before = (
        [v.name for v in graph.inputs],
        [v.name for v in graph.outputs],
        len(graph),
        len(graph.initializers),
    )
    # onnx-ir's extract clones the kept part; initializers keep their tensors, so
    # external data is shared, never read.
    kept = ir.convenience.extract(graph, inputs=inputs, outputs=outputs)
    # It collects initializers in a set; keep the model's order, which data files follow.
    rank = {name: index for index, name in enumerate(graph.initializers)}
    ordered = sorted(kept.initializers.values(), key=lambda v: rank.get(v.name or "", len(rank)))
    kept.initializers.clear()
    for value in ordered:
        kept.register_initializer(value)
    after = ([v.name for v in kept.inputs], [v.name for v in kept.outputs], len(kept))
    if before[:3] == after and len(kept.initializers) == before[3]:
        return PassResult(model, modified=False, notes=notes)

    result = ir.Model(
        kept,
        ir_version=model.ir_version,
        producer_name=model.producer_name,
        producer_version=model.producer_version,
        domain=model.domain,
        model_version=model.model_version,
        doc_string=model.doc_string,
        functions=list(model.functions.values()),
        metadata_props=dict(model.metadata_props),
    )
    removed = before[2] - len(kept)
    dropped = before[3] - len(kept.initializers)
    notes.append(f"kept {len(kept)} nodes, removed {removed}; removed {dropped} initializers")
    return PassResult(result, modified=True, notes=notes)


def _main_graph_values(graph: ir.Graph) -> dict[str, ir.Value]:
    values: dict[str, ir.Value] = {}
    for value in graph.inputs:
        values.setdefault(value.name or "", value)
    for value in graph.initializers.values():
        values.setdefault(value.name or "", value)
    for node in graph:
        for value in node.outputs:
            if value.name:
                values.setdefault(value.name, value)
    return values


def _check_names(model: ir.Model, values: dict[str, ir.Value], params: ExtractParams) -> None:
    from graphkit_plugins._common.names import names_in_use

    from graphkit._recipe.params import did_you_mean

    problems = []
    anywhere = names_in_use(model)
    for kind, names in (("inputs", params.inputs), ("outputs", params.outputs)):
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"{kind} names {name!r} twice")
        for name in dict.fromkeys(names):
            if name in values:
                continue
            if name in anywhere:
                problems.append(
                    f"{kind}: {name!r} is inside a subgraph (an If, Loop or Scan body); "
                    "only tensors of the main graph can be cut at"
                )
            else:
                hint = did_you_mean(name, values)
                problems.append(f"{kind}: no tensor named {name!r}{hint}")
    for name in params.inputs:
        value = values.get(name)
        if value is not None and value.is_initializer():
            problems.append(f"inputs: {name!r} is a weight (an initializer), not a computed tensor")
    if problems:
        raise PassError("; ".join(problems))


def _needed(outputs: list[ir.Value], stop: set[ir.Value]) -> dict[ir.Value, ir.Value]:
    """Every value the outputs depend on, up to ``stop``, each with an output that needs it.

    Values of the main graph read by a subgraph (an If branch reading a graph
    input, say) count as inputs of the node that holds the subgraph.
    """
    import onnx_ir as ir

    needed: dict[ir.Value, ir.Value] = {}
    for output in outputs:
        stack = [output]
        while stack:
            value = stack.pop()
            if value in needed:
                continue
            needed[value] = output
            node = value.producer()
            if value in stop or node is None:
                continue
            stack.extend(v for v in node.inputs if v is not None)
            for attribute in node.attributes.values():
                if attribute.type == ir.AttributeType.GRAPH:
                    subgraphs = [attribute.as_graph()]
                elif attribute.type == ir.AttributeType.GRAPHS:
                    subgraphs = list(attribute.as_graphs())
                else:
                    continue
                for subgraph in subgraphs:
                    for inner in ir.traversal.RecursiveGraphIterator(subgraph):
                        stack.extend(
                            v for v in inner.inputs if v is not None and v.graph is node.graph
                        )
    return needed


@hookimpl
def graphkit_passes() -> list[Pass]:
    return [extract]
