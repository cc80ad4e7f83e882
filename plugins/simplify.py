"""The ``simplify`` pass: onnxsim's constant folding and graph optimisations, interface kept."""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING

from pydantic import Field

from graphkit import Params, Pass, PassError, PassResult, graph_pass, hookimpl

if TYPE_CHECKING:
    import onnx_ir as ir


class SimplifyParams(Params):
    check_n: int = Field(
        0, ge=0, description="Let onnxsim compare outputs on this many random inputs afterwards."
    )
    optimize: bool = Field(True, description="Run onnx-optimizer's fusions and eliminations.")
    fuse_bn: bool = Field(True, description="Fold BatchNormalization into the preceding Conv.")
    skipped_optimizers: list[str] = Field(
        default_factory=list, description="Names of onnx-optimizer passes not to run."
    )
    constant_folding: bool = Field(
        True, description="Fold subgraphs that depend only on constants."
    )
    shape_inference: bool = Field(
        True,
        description="Run shape inference between rounds (turn off if it crashes on the model).",
    )
    include_subgraph: bool = Field(
        False, description="Simplify If/Loop/Scan bodies too, not just the main graph."
    )
    tensor_size_threshold: str = Field(
        "1.5GB", description="Do not fold constants larger than this (e.g. '100MB')."
    )
    fold_weight_inputs: bool = Field(
        False,
        description=(
            "Old models list weights as graph inputs too. By default they stay inputs; "
            "true lets onnxsim fold them into constants and drop them from the inputs."
        ),
    )


@graph_pass("simplify", SimplifyParams)
def simplify(model: ir.Model, params: SimplifyParams) -> PassResult:
    """Simplify the graph with onnxsim, keeping its inputs and outputs exactly.

    onnxsim has dropped and renamed outputs before; here the input and output
    names, order, count and types after simplifying must equal those before,
    or the pass fails instead of changing the interface.
    """
    import onnxsim

    from graphkit._inspect import Signature
    from graphkit._model_io import from_proto, to_proto

    weight_inputs = [v.name for v in model.graph.inputs if v.is_initializer()]
    expected = _interface(model, drop=set(weight_inputs) if params.fold_weight_inputs else set())
    before = Signature.of(model)
    proto = to_proto(model)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            simplified, ok = onnxsim.simplify(
                proto,
                check_n=params.check_n,
                perform_optimization=params.optimize,
                skip_fuse_bn=not params.fuse_bn,
                skipped_optimizers=params.skipped_optimizers or None,
                skip_constant_folding=not params.constant_folding,
                skip_shape_inference=not params.shape_inference,
                include_subgraph=params.include_subgraph,
                tensor_size_threshold=params.tensor_size_threshold,
                mutable_initializer=not params.fold_weight_inputs,
            )
    except Exception as error:
        raise PassError(
            f"onnxsim failed: {type(error).__name__}: {' '.join(str(error).split())}"
        ) from error
    if not ok:
        raise PassError("onnxsim's own check found outputs that differ from the original model")
    result = from_proto(simplified)
    got = _interface(result, drop=set())
    if got != expected:
        raise PassError(f"onnxsim changed the model's interface: {_difference(expected, got)}")
    notes = []
    if params.fold_weight_inputs and weight_inputs:
        notes.append(f"{len(weight_inputs)} weights listed as inputs became constants")
    modified = Signature.of(result) != before
    return PassResult(result, modified=modified, notes=notes)


Interface = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]


def _interface(model: ir.Model, drop: set[str]) -> Interface:
    from graphkit._inspect import dtype_name

    def entry(value: ir.Value) -> tuple[str, str]:
        return (value.name or "", dtype_name(value.dtype))

    return (
        tuple(entry(v) for v in model.graph.inputs if v.name not in drop),
        tuple(entry(v) for v in model.graph.outputs),
    )


def _difference(expected: Interface, got: Interface) -> str:
    parts = []
    for kind, old, new in (("inputs", expected[0], got[0]), ("outputs", expected[1], got[1])):
        if old != new:
            parts.append(f"{kind} {_names(old)} became {_names(new)}")
    return "; ".join(parts)


def _names(entries: tuple[tuple[str, str], ...]) -> str:
    return "[" + ", ".join(f"{name} {dtype}" for name, dtype in entries) + "]"


@hookimpl
def graphkit_passes() -> list[Pass]:
    return [simplify]
