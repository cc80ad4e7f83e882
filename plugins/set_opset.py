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


class SetOpsetParams(Params):
    version: int = Field(ge=1, description="The opset version of the default domain to convert to.")


@graph_pass("set_opset", SetOpsetParams)
def set_opset(model: ir.Model, params: SetOpsetParams) -> PassResult:
    """Upgrade or downgrade the default-domain opset with onnx's version converter.

    Ops in other domains are left alone. The IR version is raised if the new
    opset needs a newer one. Weights are not serialised for the converter.
    """
    import onnx
    import onnx.version_converter

    from graphkit._model_io import call_on_graph

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

    def convert(proto: onnx.ModelProto) -> onnx.ModelProto:
        return onnx.version_converter.convert_version(proto, target)

    try:
        converted = call_on_graph(model, convert, rebuild=True)
    except (RuntimeError, onnx.checker.ValidationError, IndexError) as error:
        raise PassError(_explain(str(error), current, target)) from None
    assert converted is not None
    needed = onnx.helper.find_min_ir_version_for(
        [onnx.helper.make_opsetid(d, v) for d, v in converted.opset_imports.items()]
    )
    notes = []
    if converted.ir_version < needed:
        notes.append(
            f"IR version raised from {converted.ir_version} to {needed} for opset {target}"
        )
        converted.ir_version = needed
    return PassResult(converted, modified=True, notes=notes)


def _explain(message: str, current: int, target: int) -> str:
    found = _NO_ADAPTER.search(message)
    if found:
        direction, version, op = found.groups()
        return (
            f"cannot convert opset {current} to {target}: onnx's version converter has no "
            f"adapter for {op} {direction.lower()} opset {version}"
        )
    detail = " ".join(message.split())
    return f"cannot convert opset {current} to {target}: {detail}"


@hookimpl
def graphkit_passes() -> list[Pass]:
    return [set_opset]
