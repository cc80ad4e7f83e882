"""Readable summaries of a model: its interface, ops, symbolic dims and size."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import onnx_ir as ir


def value_signature(value: ir.Value) -> str:
    """``name float32[unk__127,224,224,3]``."""
    dtype = dtype_name(value.dtype)
    shape = "[?]" if value.shape is None else "[" + ",".join(_dim(d) for d in value.shape) + "]"
    return f"{value.name} {dtype}{shape}"


def dtype_name(dtype: ir.DataType | None) -> str:
    """numpy's name for an ONNX dtype (``float32``, ``uint8``), which users know best."""
    if dtype is None:
        return "?"
    if dtype == ir.DataType.STRING:
        return "string"
    try:
        return str(dtype.numpy())
    except (TypeError, ValueError):
        return dtype.name.lower()


def _dim(dim: int | ir.SymbolicDim) -> str:
    if isinstance(dim, int):
        return str(dim)
    return dim.value if dim.value is not None else "?"


@dataclasses.dataclass(frozen=True)
class Signature:
    """The parts of a model a recipe's report compares before and after a pass."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    ops: collections.Counter[str]
    opset: int | None

    @classmethod
    def of(cls, model: ir.Model) -> Signature:
        return cls(
            inputs=tuple(value_signature(v) for v in real_inputs(model.graph)),
            outputs=tuple(value_signature(v) for v in model.graph.outputs),
            ops=op_histogram(model),
            opset=model.opset_imports.get(""),
        )

    @property
    def node_count(self) -> int:
        return sum(self.ops.values())


def real_inputs(graph: ir.Graph) -> list[ir.Value]:
    """Graph inputs that are not initializers (old models list weights as inputs too)."""
    return [v for v in graph.inputs if not v.is_initializer()]


def op_histogram(model: ir.Model) -> collections.Counter[str]:
    """How many nodes of each op type the model has, subgraphs included."""
    counts: collections.Counter[str] = collections.Counter()
    for graph in model.graphs():
        for node in graph:
            counts[
                f"{node.domain}::{node.op_type}"
                if node.domain not in ("", "ai.onnx")
                else node.op_type
            ] += 1
    return counts


def symbolic_dims(model: ir.Model) -> dict[str, list[str]]:
    """Every named symbolic dimension and the values whose shapes use it."""
    uses: dict[str, list[str]] = collections.defaultdict(list)
    for graph in model.graphs():
        for value in _all_values(graph):
            if value.shape is None:
                continue
            for dim in value.shape:
                named = isinstance(dim, ir.SymbolicDim) and dim.value is not None
                if named and value.name not in uses[dim.value]:
                    uses[dim.value].append(value.name or "?")
    return dict(uses)


def _all_values(graph: ir.Graph) -> list[ir.Value]:
    values = list(graph.inputs)
    values.extend(v for v in graph.initializers.values() if v not in values)
    for node in graph:
        values.extend(node.outputs)
    return values


def describe(model: ir.Model, path: Path | None = None) -> str:
    """A multi-line report for ``graphkit inspect``."""
    lines = []
    if path is not None:
        lines.append(f"model: {path}")
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    if producer:
        lines.append(f"producer: {producer}")
    lines.append(f"IR version: {model.ir_version}")
    opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(model.opset_imports.items()))
    lines.append(f"opsets: {opsets or 'none'}")
    lines.append("inputs:")
    lines.extend(f"  {value_signature(v)}" for v in real_inputs(model.graph))
    weight_inputs = [v for v in model.graph.inputs if v.is_initializer()]
    if weight_inputs:
        lines.append(f"  (+{len(weight_inputs)} initializers also listed as inputs)")
    lines.append("outputs:")
    lines.extend(f"  {value_signature(v)}" for v in model.graph.outputs)
    ops = op_histogram(model)
    lines.append(f"nodes: {sum(ops.values())}")
    lines.extend(
        f"  {op:<24} {count}" for op, count in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    dims = symbolic_dims(model)
    if dims:
        lines.append("symbolic dims:")
        for name, used_by in sorted(dims.items()):
            shown = ", ".join(used_by[:6]) + (
                f", +{len(used_by) - 6} more" if len(used_by) > 6 else ""
            )
            lines.append(f"  {name}: {shown}")
    else:
        lines.append("symbolic dims: none")
    inline, external, files = _weights(model)
    lines.append(
        f"weights: {_size(inline + external)} ({_size(inline)} inline, {_size(external)} external)"
    )
    if files:
        lines.append(f"external data: {', '.join(sorted(files))}")
    if path is not None:
        lines.append(f"file size: {_size(path.stat().st_size)}")
    return "\n".join(lines)


def _weights(model: ir.Model) -> tuple[int, int, set[str]]:
    inline = external = 0
    files: set[str] = set()
    for graph in model.graphs():
        for value in graph.initializers.values():
            tensor = value.const_value
            if tensor is None:
                continue
            if isinstance(tensor, ir.ExternalTensor):
                external += tensor.nbytes
                files.add(str(tensor.location))
            else:
                inline += tensor.nbytes
    return inline, external, files


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")
