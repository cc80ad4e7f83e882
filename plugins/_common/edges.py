"""Conversions at a graph's edge (Cast, scaling, Transpose), as ONNX nodes and as NumPy.

One description serves both, so what a pass inserts into the graph and what
the verifier does to the reference's inputs cannot drift apart: each step is
the same IEEE arithmetic in the same dtype, in the same order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import onnx_ir as ir

from graphkit._inspect import dtype_name

#: Channels-first and channels-last layouts, by rank: batch, channels and 1 to 3 spatial axes.
LAYOUTS: dict[str, str] = {
    "NCW": "NWC",
    "NWC": "NCW",
    "NCHW": "NHWC",
    "NHWC": "NCHW",
    "NCDHW": "NDHWC",
    "NDHWC": "NCDHW",
}


def layouts_of_rank(rank: int) -> list[str]:
    """The layouts a tensor of ``rank`` can have, or none."""
    return [layout for layout in LAYOUTS if len(layout) == rank]


def permutation(source: str, target: str) -> tuple[int, ...]:
    """Transpose's ``perm`` that turns a tensor in ``source`` layout into ``target`` layout."""
    return tuple(source.index(axis) for axis in target)


@dataclasses.dataclass(frozen=True)
class Step:
    """One conversion: ``Cast`` (to ``dtype``), ``Mul``/``Sub``/``Div`` (by ``constant``) or
    ``Transpose`` (by ``perm``). ``suffix`` names the value it makes."""

    op: str
    suffix: str
    dtype: ir.DataType | None = None
    constant: np.ndarray | None = None
    perm: tuple[int, ...] | None = None

    def numpy(self, array: np.ndarray) -> np.ndarray:
        """The step on an array, as ONNX Runtime computes it."""
        if self.op == "Cast":
            assert self.dtype is not None
            return np.asarray(array).astype(self.dtype.numpy())
        if self.op == "Transpose":
            return np.ascontiguousarray(np.transpose(array, self.perm))
        operation = {"Mul": np.multiply, "Sub": np.subtract, "Div": np.divide}[self.op]
        assert self.constant is not None
        # Both operands share the constant's dtype, so the result stays in it (float16 too).
        return operation(np.asarray(array, self.constant.dtype), self.constant)

    def node(self, value: ir.Value) -> list[ir.Node]:
        """The step as nodes reading ``value``; the last node's output is the result."""
        if self.op == "Cast":
            return [ir.node("Cast", [value], {"to": self.dtype})]
        if self.op == "Transpose":
            return [ir.node("Transpose", [value], {"perm": list(self.perm or ())})]
        assert self.constant is not None
        constant = ir.node("Constant", [], {"value": ir.tensor(self.constant)})
        return [constant, ir.node(self.op, [value, constant.outputs[0]])]


def apply(steps: Sequence[Step], array: np.ndarray) -> np.ndarray:
    """Every step on ``array``, in order."""
    for step in steps:
        array = step.numpy(array)
    return array


def describe(steps: Sequence[Step]) -> str:
    """``Cast to float32, Mul, Transpose [0, 3, 1, 2]``."""
    parts = []
    for step in steps:
        if step.op == "Cast":
            parts.append(f"Cast to {dtype_name(step.dtype)}")
        elif step.op == "Transpose":
            parts.append(f"Transpose {list(step.perm or ())}")
        else:
            assert step.constant is not None
            values = np.round(step.constant.reshape(-1).astype(np.float64), 6).tolist()
            parts.append(f"{step.op} {values[0] if len(values) == 1 else values}")
    return ", ".join(parts)


def build(
    start: ir.Value, steps: Sequence[Step], base: str, taken: set[str]
) -> tuple[list[ir.Node], ir.Value]:
    """The nodes of ``steps`` reading ``start``, and the value the last one makes.

    Values (and the nodes making them) are named ``<base>_<suffix>``, made
    unique against ``taken``, which grows. Every new value gets its dtype;
    shapes are left to the caller. The caller places the nodes in a graph.
    """
    nodes: list[ir.Node] = []
    value, dtype = start, start.dtype
    for step in steps:
        made = step.node(value)
        for node in made:
            output = node.outputs[0]
            if node is made[-1]:
                output.name = unique(f"{base}_{step.suffix}", taken)
                if step.op == "Cast":
                    dtype = step.dtype
                output.dtype = dtype
            else:  # a Constant holding the step's operand
                assert step.constant is not None
                output.name = unique(f"{base}_{step.suffix}_constant", taken)
                output.dtype = ir.DataType.from_numpy(step.constant.dtype)
                output.shape = ir.Shape(step.constant.shape)
            node.name = output.name
        nodes.extend(made)
        value = made[-1].outputs[0]
    return nodes, value


def unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... if taken; the result is added to ``taken``."""
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name}_{number}"
    taken.add(candidate)
    return candidate
