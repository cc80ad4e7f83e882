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

    steps: list[ir.passes.PassBase] = []
    if params.identities:
        steps.append(ir_passes.IdentityEliminationPass())
    if params.unused:
        steps += [
            ir_passes.RemoveUnusedNodesPass(),
            ir_passes.RemoveUnusedFunctionsPass(),
            ir_passes.RemoveUnusedOpsetsPass(),
        ]
    if params.sort:
        steps.append(ir_passes.TopologicalSortPass())
    modified = False
    for step in steps:
        result = step(model)
        model, modified = result.model, modified or result.modified
    return PassResult(model, modified=modified)


@hookimpl
def graphkit_passes() -> list[Pass]:
    return [cleanup]
