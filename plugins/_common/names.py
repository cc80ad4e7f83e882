"""Helpers for passes that deal in value names across a model and its subgraphs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import onnx_ir as ir


def all_values(model: ir.Model) -> Iterator[ir.Value]:
    """Every value of every graph: inputs, initializers and node outputs."""
    for graph in model.graphs():
        yield from graph.inputs
        yield from graph.initializers.values()
        for node in graph:
            yield from node.outputs


def names_in_use(model: ir.Model) -> dict[str, ir.Value]:
    """Map each tensor name used anywhere in the model to one value bearing it."""
    used: dict[str, ir.Value] = {}
    for value in all_values(model):
        if value.name:
            used.setdefault(value.name, value)
    return used


def listing(names: Iterable[str | None], limit: int = 20) -> str:
    """``'a', 'b', 'c'`` (at most ``limit`` names, then a count)."""
    names = [n or "" for n in names]
    shown = ", ".join(repr(n) for n in names[:limit])
    if len(names) > limit:
        shown += f", and {len(names) - limit} more"
    return shown or "none"
