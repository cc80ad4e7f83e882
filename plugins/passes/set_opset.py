"""The ``set_opset`` pass: convert the default ONNX domain to another opset version."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from pydantic import Field

from graphkit import Params, Pass, PassError, PassResult, graph_pass, hookimpl

if TYPE_CHECKING:
    import onnx
    import onnx_ir as ir
    from graphkit_plugins._opset.adapters import Adapter

# Before opset 13 these ops normalise over every axis from ``axis`` on (the
# input flattened to 2-D); from 13 on, over ``axis`` alone. onnx's converter
# adapts Softmax and LogSoftmax upwards but not downwards, and Hardmax in
# neither direction, so crossing 13 would silently change what the node
# computes unless ``axis`` is the last axis, where both meanings agree.
# Going down, graphkit's adapters move the axis last; going up, Hardmax is
# refused.
_AXIS_MEANING_CHANGED_IN_13 = {
    "Softmax": "down",
    "LogSoftmax": "down",
    "Hardmax": "both",
}


class SetOpsetParams(Params):
    version: int = Field(ge=1, description="The opset version of the default domain to convert to.")


@graph_pass("set_opset", SetOpsetParams)
def set_opset(model: ir.Model, params: SetOpsetParams) -> PassResult:
    """Upgrade or downgrade the default-domain opset; expand or adapt what onnx's converter cannot.

    A node whose op the target lacks is replaced by the function body its ONNX
    schema defines; graphkit's own adapters convert the ops onnx's version
    converter has no adapter for; onnx's converter converts the rest. Every
    default-domain node is then checked against the target's schema, so a model
    that would not load is refused, naming the node. Ops in other domains are
    left alone. The IR version is raised if the new opset needs a newer one.
    """
    import onnx

    target = params.version
    newest = onnx.defs.onnx_opset_version()
    if target > newest:
        raise PassError(
            f"opset {target} is unknown: the newest the installed onnx {onnx.__version__} "
            f"knows is {newest}"
        )
    current = model.opset_imports.get("")
    if current == target:
        return PassResult(model, modified=False)
    if current is None or not any(n.domain in ("", "ai.onnx") for g in model.graphs() for n in g):
        model.opset_imports[""] = target
        return PassResult(
            model, modified=True, notes=["no default-domain ops; only the import changed"]
        )

    report = _Report()
    known = {v.name for g in model.graphs() for n in g for v in n.outputs if v.type is not None}
    try:
        converted = _convert(model, target, report)
        _forget_types(converted, known)
        _validate(converted, model)
    except PassError as error:
        if str(error).startswith("converting opset"):
            raise
        raise PassError(f"cannot convert opset {current} to {target}: {error}") from None
    needed = onnx.helper.find_min_ir_version_for(
        [onnx.helper.make_opsetid(d, v) for d, v in converted.opset_imports.items()],
        ignore_unknown=True,
    )
    notes = report.notes()
    if converted.ir_version < needed:
        notes.append(
            f"IR version raised from {converted.ir_version} to {needed} for opset {target}"
        )
        converted.ir_version = needed
    return PassResult(converted, modified=True, notes=notes)


class _Report:
    """What graphkit did besides onnx's converter, for the pass's notes."""

    def __init__(self) -> None:
        self.expanded: Counter[str] = Counter()
        self.adapted: Counter[str] = Counter()

    def notes(self) -> list[str]:
        notes = []
        if self.expanded:
            notes.append(f"expanded into their function bodies: {_counts(self.expanded)}")
        if self.adapted:
            notes.append(f"converted by graphkit's adapters: {_counts(self.adapted)}")
        return notes


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{op} x{count}" for op, count in sorted(counter.items()))


def _convert(model: ir.Model, target: int, report: _Report, *, body: bool = False) -> ir.Model:
    """``model`` converted to ``target``: expand, hold, run onnx's converter, put back.

    A function ``body`` of graphkit's own making also has its computations of
    constants folded, so the converters find the constants they need.
    """
    import onnx
    import onnx_ir as ir
    from graphkit_plugins._opset.expand import exists_at, expand, has_body
    from graphkit_plugins._opset.explain import ConverterRefused, default_nodes

    current = model.opset_imports[""]
    hazards = _meaning_hazards(model, current, target)
    if hazards:
        raise PassError(
            f"converting opset {current} to {target} would change what {hazards[0]} computes: "
            "before opset 13 it normalises over all axes from 'axis' on, from 13 over 'axis' "
            "alone, and onnx's converter does not adapt it; only a last-axis node converts safely"
            + (f" ({len(hazards) - 1} more such nodes)" if len(hazards) > 1 else "")
        )
    refusal = _unconvertible(model, current, target)
    if refusal:
        raise PassError(refusal)
    _record_types(model)
    if body:
        from graphkit_plugins._opset.fold import fold

        fold(model.graph, current)

    from graphkit_plugins._opset import subgraphs

    plan: dict[ir.Node, str] = {}
    held: set[ir.Node] = set()  # nodes in subgraphs graphkit converts as models of their own
    for node in default_nodes(model):
        if node in held:
            continue
        since = onnx.defs.get_schema(node.op_type, current, "").since_version
        if subgraphs.applies(node.op_type, since, target):
            plan[node] = _SUBGRAPHS
            for attribute in node.attributes.values():
                if attribute.type == ir.AttributeType.GRAPH:
                    held.update(ir.traversal.RecursiveGraphIterator(attribute.as_graph()))
        elif _adapter_for(node.op_type, since, target) is not None:
            plan[node] = _ADAPT
        elif not exists_at(node.op_type, target) and has_body(node.op_type, current):
            plan[node] = _EXPAND
    refused_ops: set[str] = set()
    while True:
        try:
            converted = _run_converter(model, plan, current, target)
            break
        except ConverterRefused as refusal:
            op = refusal.op
            if op is None or op in refused_ops or not has_body(op, current):
                raise PassError(refusal.message(model)) from None
            refused_ops.add(op)
            for node in default_nodes(model):
                if node.op_type == op:
                    plan.setdefault(node, _EXPAND)

    def expand_node(node: ir.Node) -> None:
        body_to_target = lambda inner, t: _convert(inner, t, report, body=True)  # noqa: E731
        expand(node, current, target, body_to_target, converted.graph)
        report.expanded[node.op_type] += 1

    for node in list(ir.traversal.RecursiveGraphIterator(converted.graph)):
        if node.domain == _ADAPT:
            node.domain = ""
            since = onnx.defs.get_schema(node.op_type, current, "").since_version
            adapter = _adapter_for(node.op_type, since, target)
            assert adapter is not None
            before = _state(node)
            try:
                adapter.rewrite(node, target)
            except PassError as refusal:
                # The target's form of the op cannot express this node; its body may.
                if not has_body(node.op_type, current) or _state(node) != before:
                    raise
                try:
                    expand_node(node)
                except PassError:
                    raise refusal from None
                continue
            report.adapted[node.op_type] += 1
        elif node.domain == _EXPAND:
            node.domain = ""
            expand_node(node)
        elif node.domain == _SUBGRAPHS:
            node.domain = ""
            subgraphs.rewrite(node, model, target, lambda m, t: _convert(m, t, report))
            report.adapted[node.op_type] += 1
    for domain in (_ADAPT, _EXPAND, _SUBGRAPHS):
        converted.opset_imports.pop(domain, None)
    return converted


def _state(node: ir.Node) -> tuple[object, ...]:
    """What an adapter that refuses must have left as it was."""
    attributes = tuple((name, repr(value)) for name, value in node.attributes.items())
    return (node.graph, node.op_type, tuple(node.inputs), tuple(node.outputs), attributes)


def _forget_types(model: ir.Model, known: set[str | None]) -> None:
    """Drop the types graphkit inferred for its own use, so the result declares what it did.

    A declared shape is a promise runtimes check: a function body that feeds a
    [1] tensor where a scalar belongs runs while the shape is unknown, and not
    once the shape is written down.
    """
    outputs = set(model.graph.outputs)
    for graph in model.graphs():
        for node in graph:
            for value in node.outputs:
                if value not in outputs and value.name not in known:
                    value.type = None
                    value.shape = None


def _unconvertible(model: ir.Model, current: int, target: int) -> str | None:
    """A node no conversion between ``current`` and ``target`` can keep the meaning of."""
    from graphkit_plugins._opset.explain import default_nodes

    if min(current, target) >= 9 or max(current, target) < 9:
        return None
    for node in default_nodes(model):
        if node.op_type == "Scan":
            # Scan-8 runs its body once per item of a batch axis 0 that Scan-9 does not
            # have; onnx's converter drops the batch axis, so the result expects inputs
            # of another rank.
            return (
                f"Scan node {node.name or '(unnamed)'!r}: Scan-8 iterates over a batch axis "
                "that Scan-9 does not have, so neither form can express the other"
            )
    return None


def _record_types(model: ir.Model) -> None:
    """Give values without a type the type onnx infers, for function bodies and adapters.

    Context-dependent function bodies are built from their inputs' types, and
    adapters read dtypes and ranks. Types onnx cannot infer stay unknown.
    """
    import onnx

    from graphkit import _onnx_tools
    from graphkit._modelio.proto import call_on_graph

    def infer(proto: onnx.ModelProto) -> onnx.ModelProto:
        return _onnx_tools.infer_shapes(proto, strict_mode=False, data_prop=True)

    try:
        inferred = call_on_graph(model, infer, rebuild=True)
    except (_onnx_tools.ToolCrashed, onnx.shape_inference.InferenceError, RuntimeError):
        return
    assert inferred is not None
    for original, result in zip(model.graphs(), inferred.graphs(), strict=True):
        found = {v.name: v for node in result for v in node.outputs}
        for node in original:
            for value in node.outputs:
                twin = found.get(value.name)
                if twin is None or value.type is not None:
                    continue
                value.type = twin.type
                if value.shape is None:
                    value.shape = twin.shape


#: Private domains that hide nodes from onnx's converter while it runs.
_ADAPT = "graphkit.set_opset.adapt"
_EXPAND = "graphkit.set_opset.expand"
_SUBGRAPHS = "graphkit.set_opset.subgraphs"


def _adapter_for(op_type: str, since: int, target: int) -> Adapter | None:
    from graphkit_plugins._opset.adapters import adapter_for

    return adapter_for(op_type, since, target)


def _run_converter(
    model: ir.Model, plan: dict[ir.Node, str], current: int, target: int
) -> ir.Model:
    """onnx's converter on ``model`` with the planned nodes hidden in private domains."""
    import onnx
    from graphkit_plugins._opset.explain import ConverterRefused

    from graphkit import _onnx_tools
    from graphkit._modelio.proto import call_on_graph

    def convert(proto: onnx.ModelProto) -> onnx.ModelProto:
        return _onnx_tools.convert_version(proto, target)

    for domain in set(plan.values()):
        model.opset_imports[domain] = 1
    for node, domain in plan.items():
        node.domain = domain
    try:
        converted = call_on_graph(model, convert, rebuild=True)
    except _onnx_tools.ToolCrashed as error:
        raise PassError(f"{error} on this model; it is invalid") from None
    except (RuntimeError, onnx.checker.ValidationError, IndexError) as error:
        raise ConverterRefused(str(error), current, target) from None
    finally:
        for node in plan:
            node.domain = ""
        for domain in set(plan.values()):
            model.opset_imports.pop(domain, None)
    assert converted is not None
    return converted


def _validate(converted: ir.Model, source: ir.Model) -> None:
    """Refuse a result that is not valid at ``target``, naming the first bad node."""
    import onnx
    from graphkit_plugins._opset.validate import explain_checker, schema_problems

    from graphkit import _onnx_tools
    from graphkit._modelio.proto import call_on_graph

    problems = schema_problems(converted, converted.opset_imports[""])
    if not problems:
        try:
            call_on_graph(
                converted, lambda p: _onnx_tools.check_model(p, full_check=True), rebuild=False
            )
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
            if _passes_full_check(source):
                problems = [explain_checker(str(error))]
    if problems:
        more = f" ({len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise PassError(f"the result would not be valid: {problems[0]}{more}")


def _passes_full_check(model: ir.Model) -> bool:
    """Whether onnx's full check accepts ``model``: if not, its faults are not the conversion's."""
    import onnx

    from graphkit import _onnx_tools
    from graphkit._modelio.proto import call_on_graph

    try:
        call_on_graph(model, lambda p: _onnx_tools.check_model(p, full_check=True), rebuild=False)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError):
        return False
    return True


def _meaning_hazards(model: ir.Model, current: int, target: int) -> list[str]:
    """Nodes whose meaning the converter would change between ``current`` and ``target``."""
    if min(current, target) >= 13 or max(current, target) < 13:
        return []
    import onnx

    direction = "down" if target < current else "up"
    hazards = []
    for graph in model.graphs():
        for node in graph:
            risky = _AXIS_MEANING_CHANGED_IN_13.get(node.op_type)
            if node.domain not in ("", "ai.onnx") or risky not in (direction, "both"):
                continue
            since = onnx.defs.get_schema(node.op_type, current, "").since_version
            if _adapter_for(node.op_type, since, target) is not None:
                continue
            attribute = node.attributes.get("axis")
            axis = attribute.as_int() if attribute is not None else (1 if current < 13 else -1)
            shape = node.inputs[0].shape if node.inputs and node.inputs[0] is not None else None
            if axis == -1 or (shape is not None and axis == len(shape) - 1):
                continue
            hazards.append(f"{node.op_type} node {node.name or '(unnamed)'!r} (axis {axis})")
    return hazards


@hookimpl
def graphkit_passes() -> list[Pass]:
    return [set_opset]
