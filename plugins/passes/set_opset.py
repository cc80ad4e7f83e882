"""The ``set_opset`` pass: convert the default ONNX domain to another opset version."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field

from graphkit import Params, Pass, PassError, PassResult, graph_pass, hookimpl

if TYPE_CHECKING:
    import onnx
    import onnx_ir as ir

_NO_ADAPTER = re.compile(r"No Adapter (To|From) Version \$(\d+) for (\w+)")
_NO_PREVIOUS = re.compile(r"No Previous Version of (\w+) exists")
_TYPE_NOT_ALLOWED = re.compile(
    r"DataType \((\d+)\) of Input or Output of operator '(\w+)' "
    r"is unallowed for Opset Version (\d+)"
)
# onnx's C++ assertions read "file.h:48: function: Assertion `expression` failed: message".
_ASSERTION = re.compile(r"^\S+:\d+: \w+: Assertion `.*?` failed: ", re.DOTALL)

# Before opset 13 these ops normalise over every axis from ``axis`` on (the
# input flattened to 2-D); from 13 on, over ``axis`` alone. onnx's converter
# adapts Softmax and LogSoftmax upwards but not downwards, and Hardmax in
# neither direction, so crossing 13 would silently change what the node
# computes unless ``axis`` is the last axis, where both meanings agree.
_AXIS_MEANING_CHANGED_IN_13 = {
    "Softmax": "down",
    "LogSoftmax": "down",
    "Hardmax": "both",
}


class SetOpsetParams(Params):
    version: int = Field(ge=1, description="The opset version of the default domain to convert to.")


@graph_pass("set_opset", SetOpsetParams)
def set_opset(model: ir.Model, params: SetOpsetParams) -> PassResult:
    """Upgrade or downgrade the default-domain opset with onnx's version converter.

    Ops in other domains are left alone. The IR version is raised if the new
    opset needs a newer one. Weights are not serialised for the converter.
    """
    import onnx

    from graphkit import _onnx_tools
    from graphkit._proto import call_on_graph

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

    hazards = _meaning_hazards(model, current, target)
    if hazards:
        raise PassError(
            f"converting opset {current} to {target} would change what {hazards[0]} computes: "
            "before opset 13 it normalises over all axes from 'axis' on, from 13 over 'axis' "
            "alone, and onnx's converter does not adapt it; only a last-axis node converts safely"
            + (f" ({len(hazards) - 1} more such nodes)" if len(hazards) > 1 else "")
        )

    def convert(proto: onnx.ModelProto) -> onnx.ModelProto:
        return _onnx_tools.convert_version(proto, target)

    try:
        converted = call_on_graph(model, convert, rebuild=True)
    except _onnx_tools.ToolCrashed as error:
        raise PassError(
            f"cannot convert opset {current} to {target}: {error} on this model; it is invalid"
        ) from None
    except (RuntimeError, onnx.checker.ValidationError, IndexError) as error:
        raise PassError(_explain(str(error), current, target)) from None
    assert converted is not None
    needed = onnx.helper.find_min_ir_version_for(
        [onnx.helper.make_opsetid(d, v) for d, v in converted.opset_imports.items()],
        ignore_unknown=True,
    )
    notes = []
    if converted.ir_version < needed:
        notes.append(
            f"IR version raised from {converted.ir_version} to {needed} for opset {target}"
        )
        converted.ir_version = needed
    return PassResult(converted, modified=True, notes=notes)


def _meaning_hazards(model: ir.Model, current: int, target: int) -> list[str]:
    """Nodes whose meaning the converter would change between ``current`` and ``target``."""
    if min(current, target) >= 13 or max(current, target) < 13:
        return []
    direction = "down" if target < current else "up"
    hazards = []
    for graph in model.graphs():
        for node in graph:
            risky = _AXIS_MEANING_CHANGED_IN_13.get(node.op_type)
            if node.domain not in ("", "ai.onnx") or risky not in (direction, "both"):
                continue
            attribute = node.attributes.get("axis")
            axis = attribute.as_int() if attribute is not None else (1 if current < 13 else -1)
            shape = node.inputs[0].shape if node.inputs and node.inputs[0] is not None else None
            if axis == -1 or (shape is not None and axis == len(shape) - 1):
                continue
            hazards.append(f"{node.op_type} node {node.name or '(unnamed)'!r} (axis {axis})")
    return hazards


def _explain(message: str, current: int, target: int) -> str:
    found = _NO_ADAPTER.search(message)
    if found:
        direction, version, op = found.groups()
        return (
            f"cannot convert opset {current} to {target}: onnx's version converter has no "
            f"adapter for {op} {direction.lower()} opset {version}"
        )
    found = _NO_PREVIOUS.search(message)
    if found:
        return (
            f"cannot convert opset {current} to {target}: {found.group(1)} has no earlier "
            "version to convert to"
        )
    found = _TYPE_NOT_ALLOWED.search(message)
    if found:
        dtype, op, version = found.groups()
        return (
            f"cannot convert opset {current} to {target}: {op} does not accept "
            f"{_dtype_name(int(dtype))} at opset {version}"
        )
    detail = " ".join(_ASSERTION.sub("", message).split())
    return f"cannot convert opset {current} to {target}: {detail}"


def _dtype_name(number: int) -> str:
    import onnx_ir as ir

    try:
        return ir.DataType(number).name.lower()
    except ValueError:
        return f"data type {number}"


@hookimpl
def graphkit_passes() -> list[Pass]:
    return [set_opset]
