"""The ``simplify`` pass: onnxsim's or onnxslim's folding and optimisations, interface kept."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import TYPE_CHECKING, Literal, Union

from pydantic import Field

from graphkit import Params, Pass, PassError, PassResult, graph_pass, hookimpl

if TYPE_CHECKING:
    from collections.abc import Callable

    import onnx
    import onnx_ir as ir

#: Up to this many bytes of tensors, ``auto`` runs every engine and keeps the
#: result with the fewest nodes; past it, each engine costs seconds to minutes,
#: so the first that succeeds is kept.
TRY_EVERY_ENGINE_BYTES = 256 * 2**20
#: Up to this many bytes of tensors, each result's outputs are compared with the
#: model's by default (``check_n``): onnxsim computes wrong numbers on some models.
COMPARE_BYTES = 16 * 2**20


class SimplifyParams(Params):
    engine: Literal["auto", "onnxsim", "onnxslim"] = Field(
        "auto",
        description=(
            "Which simplifier does the work. auto: on models up to 256 MiB of tensors, both, "
            "keeping the result with fewer nodes (onnxsim on a tie); on larger ones onnxsim, "
            "then onnxslim if onnxsim fails. The notes say which engine was used and why not "
            "the other."
        ),
    )
    check_n: int | None = Field(
        None,
        ge=0,
        description=(
            "Run the model before and each engine's result in ONNX Runtime on this many seeded "
            "random inputs, and do not use a result whose outputs differ. Unset: 1 for models "
            "up to 16 MiB of tensors, 0 above; never with weights held back."
        ),
    )
    optimize: bool = Field(True, description="Run the engine's fusions and eliminations.")
    fuse_bn: bool = Field(True, description="Fold BatchNormalization into the preceding Conv.")
    skipped_optimizers: list[str] = Field(
        default_factory=list, description="Names of onnx-optimizer passes not to run."
    )
    constant_folding: bool = Field(
        True,
        description=(
            "Fold subgraphs that depend only on constants (onnxslim's eliminations still "
            "fold some; set engine: onnxsim to fold nothing)."
        ),
    )
    shape_inference: bool = Field(
        True,
        description="Run shape inference between rounds (turn off if it crashes on the model).",
    )
    include_subgraph: bool = Field(
        False,
        description=(
            "Simplify If/Loop/Scan bodies too, not just the main graph (onnxsim; onnxslim "
            "always does)."
        ),
    )
    tensor_size_threshold: str = Field(
        "1.5GB", description="Do not fold constants larger than this (e.g. '100MB')."
    )
    fold_weight_inputs: bool = Field(
        True,
        description=(
            "Old models list weights as graph inputs too (IR 3 required it; later exporters "
            "kept doing it). By default they become constants and leave the inputs, as the "
            "notes say; false keeps them inputs that callers may override, and then no "
            "engine folds anything computed from them."
        ),
    )
    hold_back_weights: bool | None = Field(
        None,
        description=(
            "Hand the engine the graph with its weights (those over 1 KiB, and all kept as "
            "external data) held back as inputs: it then needs little memory, but cannot "
            "fold expressions of those weights or fuse them (BatchNorm into Conv). Unset: "
            "only for models past protobuf's 2 GiB limit, which no engine can take whole."
        ),
    )


def _start_onnxsim(params: SimplifyParams) -> None:
    """Start onnxsim's helper process, whose import takes about a second, ahead of the pass."""
    from graphkit import _onnx_tools

    if params.engine != "onnxslim":
        _onnx_tools.prestart("onnxsim")


@graph_pass("simplify", SimplifyParams, warm_up=_start_onnxsim)
def simplify(model: ir.Model, params: SimplifyParams) -> PassResult:
    """Simplify the graph with onnxsim or onnxslim, keeping its inputs and outputs exactly.

    Both engines have dropped or renamed inputs and outputs: here the input
    and output names, order, count and dtypes after simplifying must equal
    those before (less the weights listed as inputs, when they are folded),
    or that engine's result is not used. Nor is a result onnx's checker
    refuses, one with a Conv bias that is not 1-D (onnxsim's, see
    plugins/_common/simplify_engines.py), or, on models up to
    ``COMPARE_BYTES``, one whose outputs differ from the model's on a random
    input (onnxsim 0.7.3 miscomputes some Reshape chains). onnxsim runs in a helper
    process: its C++ code aborts on some valid models. With ``engine: auto``, simplify
    fails only if every engine fails, and the notes name the engine used and
    why another was not. Up to ``TRY_EVERY_ENGINE_BYTES`` of tensors every
    engine runs and the result with the fewest top-level nodes is kept.

    The graph is sorted before any engine sees it: exporters write If and Loop
    bodies that read values produced after the If node, which ONNX Runtime
    accepts and onnx's checker, hence onnxsim, refuses ("Nodes in a graph
    must be topologically sorted").

    A model past protobuf's 2 GiB limit cannot be handed to an engine whole,
    so its weights are held back (see ``hold_back_weights``): the engine
    simplifies the graph around them and the weights stay where they are, on
    disk or in memory. On the 2.5 GiB model of the benchmarks (benchmarks/RESULTS.md,
    figure 3), loading it, simplifying it with onnxsim and saving it took 1.6 s
    and at most 121 MiB of memory; onnxsim's own command line on the same file
    (with --save-as-external-data; it loads every weight) took 71 s and 12.6 GiB.
    """
    from graphkit_plugins._common.output_check import OutputCheck, same_computation
    from graphkit_plugins._common.simplify_engines import ENGINES

    from graphkit._inspect import Signature
    from graphkit._modelio.proto import to_proto, weights_held_back
    from graphkit._modelio.tensors import PROTOBUF_LIMIT, tensor_bytes

    weight_inputs = [v.name for v in model.graph.inputs if v.is_initializer()]
    fold = params.fold_weight_inputs
    expected = _interface(model, drop=set(weight_inputs) if fold else set())
    before = Signature.of(model)
    size = tensor_bytes(model)
    hold = params.hold_back_weights
    if hold is None:
        hold = size > PROTOBUF_LIMIT
    elif not hold and size > PROTOBUF_LIMIT:
        raise PassError(
            f"the model's tensors take {size / 2**30:.2f} GiB, past protobuf's 2 GiB limit, "
            "so no engine can take it whole; allow hold_back_weights"
        )
    try:
        model.graph.sort()
    except ValueError as error:
        raise PassError(f"the graph cannot be sorted: {error}") from None

    checks = params.check_n if params.check_n is not None else int(size <= COMPARE_BYTES)
    engines = ENGINES if params.engine == "auto" else (params.engine,)
    every = params.engine == "auto" and size <= TRY_EVERY_ENGINE_BYTES
    # The model as a proto, to compare results with: past TRY_EVERY_ENGINE_BYTES, and
    # with no output check, one more copy of the weights is not worth it.
    original = to_proto(model) if not hold and (checks or size <= TRY_EVERY_ENGINE_BYTES) else None
    valid = _given_valid(model, original)
    if every and not hold and len(engines) > 1:
        outcomes = _run_together(model, engines, params, valid)
    else:
        outcomes = _run_in_turn(model, engines, params, hold, valid, every=every)
    results: dict[str, ir.Model] = {}
    failures: dict[str, str] = {}
    for name, outcome in outcomes.items():
        if isinstance(outcome, str):
            failures[name] = outcome
            continue
        got = _interface(outcome, drop=set())
        if got != expected:
            failures[name] = f"changed the model's interface: {_difference(expected, got)}"
        else:
            results[name] = outcome
    # The fewest nodes win, onnxsim on a tie. Only the winner's outputs are compared
    # with the model's; a result holding the same graph computes the same and is not run.
    counts = {name: len(result.graph) for name, result in results.items()}
    ranked = sorted(results, key=lambda name: (counts[name], engines.index(name)))
    check = OutputCheck(original, checks) if original is not None and checks else None
    chosen = unchanged = None
    for name in ranked:
        proto = to_proto(results[name]) if original is not None else None
        if proto is not None and same_computation(original, proto):
            chosen, unchanged = name, True
            break
        problem = check.problem(proto) if check is not None else None
        if problem:
            failures[name] = f"changed what the model computes: {problem}"
            continue
        chosen, unchanged = name, False
        break
    if chosen is None:
        raise PassError("; ".join(f"{n} {reason}" for n, reason in failures.items()))
    result = model if unchanged else results[chosen]
    if unchanged:
        notes = [f"{chosen} left the graph as it was"]
    else:
        notes = [f"{chosen} simplified the graph: {len(model.graph)} -> {counts[chosen]} nodes"]
    left = {n: c for n, c in counts.items() if n != chosen and n not in failures}
    notes += [f"{n} not used: it left {c} nodes" for n, c in left.items()]
    notes += [f"{n} not used: it {reason}" for n, reason in failures.items()]
    notes += [
        f"{n} not tried: past {TRY_EVERY_ENGINE_BYTES // 2**20} MiB of tensors auto keeps "
        f"the first engine that succeeds (engine: {n} runs it)"
        for n in engines
        if n not in outcomes
    ]
    if hold:
        held = weights_held_back(model)
        if held:
            held_bytes = sum(t.nbytes for t in held.values())
            notes.append(
                f"{len(held)} weights ({held_bytes / 2**30:.2f} GiB) held back from {chosen}, "
                "so expressions of them were not folded"
            )
    if fold and weight_inputs:
        notes.append(
            f"{len(weight_inputs)} weights listed as inputs became constants "
            "(fold_weight_inputs: false keeps them inputs)"
        )
    listed = [v.name for v in model.graph.inputs]
    modified = Signature.of(result) != before or [v.name for v in result.graph.inputs] != listed
    return PassResult(result, modified=modified, notes=notes)


def _given_valid(model: ir.Model, proto: onnx.ModelProto | None) -> Callable[[], bool]:
    """Whether onnx's checker accepts ``model`` (or ``proto``, the same model), asked once.

    An engine's result must pass the checker when the model given did, so
    the model is checked only when a result fails, and at most once.
    """
    from graphkit_plugins._common.simplify_engines import checker_problem

    from graphkit._modelio.proto import call_on_graph

    lock = threading.Lock()
    found: list[bool] = []

    def valid() -> bool:
        with lock:
            if not found:
                problems: list[str | None] = []
                if proto is not None:
                    problems.append(checker_problem(proto))
                else:  # past 2 GiB: the checker sees the graph with the weights held back
                    check = lambda p: problems.append(checker_problem(p))  # noqa: E731
                    call_on_graph(model, check, rebuild=False)
                found.append(problems[0] is None)
            return found[0]

    return valid


#: An engine's result, or one line on why there is none.
Outcome = Union["ir.Model", str]


def _run_together(
    model: ir.Model, engines: tuple[str, ...], params: SimplifyParams, valid: Callable[[], bool]
) -> dict[str, Outcome]:
    """Every engine's outcome: onnxsim works in its helper process while the others run here.

    Every engine gets its proto from this thread: serialising swaps tensors
    in the model for a moment, which two threads must not do at once.
    """
    from graphkit._modelio.proto import to_proto

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        futures = {
            name: pool.submit(_outcome, model, name, params, False, valid, to_proto(model))
            for name in engines
            if name == "onnxsim"
        }
        outcomes = {
            name: _outcome(model, name, params, False, valid)
            for name in engines
            if name not in futures
        }
        outcomes.update((name, future.result()) for name, future in futures.items())
    return {name: outcomes[name] for name in engines}


def _run_in_turn(
    model: ir.Model,
    engines: tuple[str, ...],
    params: SimplifyParams,
    hold: bool,
    valid: Callable[[], bool],
    *,
    every: bool,
) -> dict[str, Outcome]:
    """The engines' outcomes in turn; unless ``every``, up to the first that gives a result."""
    outcomes: dict[str, Outcome] = {}
    for name in engines:
        outcomes[name] = _outcome(model, name, params, hold, valid)
        if not every and not isinstance(outcomes[name], str):
            break
    return outcomes


def _outcome(
    model: ir.Model,
    engine: str,
    params: SimplifyParams,
    hold: bool,
    valid: Callable[[], bool],
    proto: onnx.ModelProto | None = None,
) -> Outcome:
    """The model simplified by ``engine``, as a new model, or why the engine gave none.

    ``proto`` is the model serialised, if the caller has done so already.
    """
    from graphkit_plugins._common.simplify_engines import EngineFailed, run_engine

    from graphkit._modelio.proto import call_on_graph, from_proto, to_proto

    def call(proto: onnx.ModelProto) -> onnx.ModelProto:
        return _with_weight_inputs(
            proto, params.fold_weight_inputs, lambda p: run_engine(engine, p, params, valid)
        )

    try:
        if not hold:
            return from_proto(call(proto if proto is not None else to_proto(model)))
        result = call_on_graph(model, call, rebuild=True)
    except EngineFailed as error:
        return str(error)
    assert result is not None
    if params.fold_weight_inputs:
        # Held-back weights reached the engine as plain inputs; drop them now.
        _drop_weight_inputs(result)
    return result


def _with_weight_inputs(
    proto: onnx.ModelProto,
    fold: bool,
    engine: Callable[[onnx.ModelProto], onnx.ModelProto],
) -> onnx.ModelProto:
    """Run ``engine`` on ``proto`` with its weights listed as inputs folded or kept.

    Folded, they leave the inputs before the engine runs, so every engine
    sees plain constants. Kept, the engine sees plain inputs without values,
    so it can neither drop them (onnxslim does) nor fold what a caller may
    override (onnxsim does, even when told the initializers are mutable);
    the values are put back afterwards.
    """
    graph = proto.graph
    listed = {i.name for i in graph.input}
    if fold:
        constants = {t.name for t in graph.initializer}
        kept = [i for i in graph.input if i.name not in constants]
        if len(kept) != len(graph.input):
            del graph.input[:]
            graph.input.extend(kept)
            # IR 3 requires every initializer to be an input too.
            proto.ir_version = max(proto.ir_version, 4)
        return engine(proto)
    values = [t for t in graph.initializer if t.name in listed]
    if values:
        rest = [t for t in graph.initializer if t.name not in listed]
        del graph.initializer[:]
        graph.initializer.extend(rest)
    result = engine(proto)
    inputs = {i.name for i in result.graph.input}
    result.graph.initializer.extend(t for t in values if t.name in inputs)
    return result


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
