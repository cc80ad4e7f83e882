"""The ``simplify`` pass: onnxsim's constant folding and graph optimisations, interface kept."""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING

from pydantic import Field

from graphkit import Params, Pass, PassError, PassResult, graph_pass, hookimpl

if TYPE_CHECKING:
    import onnx
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
    hold_back_weights: bool | None = Field(
        None,
        description=(
            "Hand onnxsim the graph with its weights (those over 1 KiB, and all kept as "
            "external data) held back as inputs: it then needs little memory, but cannot "
            "fold expressions of those weights or fuse them (BatchNorm into Conv). Unset: "
            "only for models past protobuf's 2 GiB limit, which onnxsim cannot take whole."
        ),
    )


@graph_pass("simplify", SimplifyParams)
def simplify(model: ir.Model, params: SimplifyParams) -> PassResult:
    """Simplify the graph with onnxsim, keeping its inputs and outputs exactly.

    onnxsim has dropped and renamed outputs before; here the input and output
    names, order, count and types after simplifying must equal those before,
    or the pass fails instead of changing the interface.

    A model past protobuf's 2 GiB limit cannot be handed to onnxsim whole, so
    its weights are held back (see ``hold_back_weights``): onnxsim simplifies
    the graph around them and the weights stay where they are, on disk or in
    memory. On the 2.5 GiB model of the benchmarks (benchmarks/RESULTS.md,
    figure 3), loading it, simplifying it and saving it took 2.2 s and at
    most 138 MiB of memory; onnxsim's own command line on the same file
    (with --save-as-external-data; it loads every weight) took 77 s and
    12.6 GiB.
    """
    from graphkit._inspect import Signature
    from graphkit._model_io import (
        PROTOBUF_LIMIT,
        call_on_graph,
        from_proto,
        tensor_bytes,
        to_proto,
        weights_held_back,
    )

    weight_inputs = [v.name for v in model.graph.inputs if v.is_initializer()]
    expected = _interface(model, drop=set(weight_inputs) if params.fold_weight_inputs else set())
    before = Signature.of(model)
    size = tensor_bytes(model)
    hold = params.hold_back_weights
    if hold is None:
        hold = size > PROTOBUF_LIMIT
    elif not hold and size > PROTOBUF_LIMIT:
        raise PassError(
            f"the model's tensors take {size / 2**30:.2f} GiB, past protobuf's 2 GiB limit, "
            "so onnxsim cannot take it whole; allow hold_back_weights"
        )
    notes = []
    if hold:
        held = weights_held_back(model)
        result = call_on_graph(model, lambda proto: _onnxsim(proto, params), rebuild=True)
        assert result is not None
        if held:
            held_bytes = sum(t.nbytes for t in held.values())
            notes.append(
                f"{len(held)} weights ({held_bytes / 2**30:.2f} GiB) held back from onnxsim, "
                "so expressions of them were not folded"
            )
        if params.fold_weight_inputs:
            # onnxsim saw held-back weights as plain inputs and kept them; drop them as it would.
            _drop_weight_inputs(result)
    else:
        result = from_proto(_onnxsim(to_proto(model), params))
    got = _interface(result, drop=set())
    if got != expected:
        raise PassError(f"onnxsim changed the model's interface: {_difference(expected, got)}")
    if params.fold_weight_inputs and weight_inputs:
        notes.append(f"{len(weight_inputs)} weights listed as inputs became constants")
    modified = Signature.of(result) != before
    return PassResult(result, modified=modified, notes=notes)


def _onnxsim(proto: onnx.ModelProto, params: SimplifyParams) -> onnx.ModelProto:
    import onnxsim

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            simplified, ok = onnxsim.simplify(
                proto,
                check_n=params.check_n,
                perform_optimization=params.optimize,
                skip_fuse_bn=not params.fuse_bn,
                # A copy: onnxsim appends to the list it is given.
                skipped_optimizers=list(params.skipped_optimizers) or None,
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
    return simplified


def _drop_weight_inputs(model: ir.Model) -> None:
    kept = [v for v in model.graph.inputs if not v.is_initializer()]
    if len(kept) != len(model.graph.inputs):
        model.graph.inputs.clear()
        model.graph.inputs.extend(kept)
        # IR 3 requires every initializer to be an input too; onnxsim raises it likewise.
        model.ir_version = max(model.ir_version, 4)


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
