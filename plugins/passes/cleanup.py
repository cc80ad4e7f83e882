"""The ``cleanup`` pass: dead nodes, unused initializers, Identity chains, topological order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from graphkit import Params, Pass, PassResult, graph_pass, hookimpl

if TYPE_CHECKING:
    import onnx_ir as ir


class CleanupParams(Params):
    identities: bool = Field(
        True, description="Remove Identity nodes, keeping the names of graph inputs and outputs."
    )
    unused: bool = Field(
        True,
        description="Remove nodes nothing uses, unused initializers, functions and opset imports.",
    )
    sort: bool = Field(True, description="Put nodes in topological order.")


@graph_pass("cleanup", CleanupParams)
def cleanup(model: ir.Model, params: CleanupParams) -> PassResult:
    """Remove dead nodes, unused initializers and Identity chains; sort nodes topologically.

    The interface never changes: graph inputs (weights listed as inputs
    included) and outputs keep their names and order. Initializers used only
    inside subgraphs are kept.
    """
    from onnx_ir.passes import common as ir_passes

    modified = params.identities and _remove_identities(model)
    steps: list[ir.passes.PassBase] = []
    if params.unused:
        steps += [
            ir_passes.RemoveUnusedNodesPass(),
            ir_passes.RemoveUnusedFunctionsPass(),
            ir_passes.RemoveUnusedOpsetsPass(),
        ]
    if params.sort:
        steps.append(ir_passes.TopologicalSortPass())
    for step in steps:
        result = step(model)
        model, modified = result.model, modified or result.modified
    return PassResult(model, modified=modified)


def _remove_identities(model: ir.Model) -> bool:
    """Remove Identity nodes, leaving every graph's and function's inputs and outputs as they were.

    onnx_ir's IdentityEliminationPass merges ``b = Identity(a)`` into ``a``
    when ``b`` is a graph output; if ``a`` is an output too, the graph loses
    one (outputs ``[a, b]`` became ``[b, b]``), and if ``a`` comes from an
    enclosing graph it fails. Such nodes stay here.
    """
    import onnx_ir as ir

    modified = False
    for root in [model.graph, *model.functions.values()]:
        for node in list(ir.traversal.RecursiveGraphIterator(root)):
            if node.op_type != "Identity" or node.domain not in ("", "ai.onnx"):
                continue
            if len(node.inputs) != 1 or len(node.outputs) != 1 or node.inputs[0] is None:
                continue
            source, result = node.inputs[0], node.outputs[0]
            interface = result.is_graph_output()
            if interface:
                producer = source.producer()
                if source.is_graph_output() or producer is None or producer.graph is not node.graph:
                    continue  # source is an input, weight, output or outer value: its name is taken
            if source.type is None:
                source.type = result.type
            if source.shape is None:
                source.shape = result.shape
            ir.convenience.replace_all_uses_with(result, source, replace_graph_outputs=True)
            if interface:
                source.name = result.name
            node.graph.remove(node, safe=True)
            modified = True
    return modified


@hookimpl
def graphkit_passes() -> list[Pass]:
    return [cleanup]
