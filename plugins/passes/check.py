"""The ``check`` pass: onnx's full checker, plus external data that is really there."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from graphkit import Params, Pass, PassError, PassResult, graph_pass, hookimpl

if TYPE_CHECKING:
    import onnx_ir as ir


class CheckParams(Params):
    full: bool = Field(True, description="Also run strict shape inference (onnx's full_check).")
    runtime: bool = Field(
        False,
        description=(
            "Also create an ONNX Runtime session (CPU) for the model, proving it loads; "
            "this writes the model to a temporary folder, weights included."
        ),
    )


@graph_pass("check", CheckParams)
def check(model: ir.Model, params: CheckParams) -> PassResult:
    """Check the model with onnx's checker; fails the recipe if it is invalid.

    Weights are not serialised for the checker, so it works on models past
    2 GiB; instead every external data file is checked to exist and to be
    long enough for the tensors that point into it. With ``runtime``, ONNX
    Runtime must also accept the model: onnx's checker passes models that
    ONNX Runtime refuses (unknown custom ops, recorded shapes an op cannot
    take). Changes nothing.
    """
    import onnx

    from graphkit import _onnx_tools
    from graphkit._modelio.load import integrity_problem
    from graphkit._modelio.proto import call_on_graph

    problem = integrity_problem(model) or _external_data_problem(model)
    if problem:
        raise PassError(problem)

    def run(proto: onnx.ModelProto) -> None:
        _onnx_tools.check_model(proto, full_check=params.full)

    try:
        call_on_graph(model, run, rebuild=False)
    except _onnx_tools.ToolCrashed as error:
        raise PassError(f"the model is invalid: {error} on it") from None
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise PassError(f"the model is invalid: {' '.join(str(error).split())}") from None
    if params.runtime:
        problem = _runtime_problem(model)
        if problem:
            raise PassError(f"ONNX Runtime cannot load the model: {problem}")
    return PassResult(model, modified=False)


# ONNX Runtime's messages start with its status code and name the file it was given,
# here a temporary copy: neither means anything to the user.
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : (Load model from .*? failed:)?")


def _runtime_problem(model: ir.Model) -> str | None:
    """Why ONNX Runtime refuses to create a session for ``model``, or None if it accepts it."""
    import onnxruntime as ort

    from graphkit._modelio.save import save

    options = ort.SessionOptions()
    options.log_severity_level = 4  # its errors come back as the exception; keep the log quiet
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    with tempfile.TemporaryDirectory(prefix="graphkit-check-") as folder:
        path = Path(folder) / "model.onnx"
        save(model, path)
        try:
            ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:
            message = _ORT_PREFIX.sub("", " ".join(str(error).split()))
            return message.replace(str(path), "the model").strip() or type(error).__name__
    return None


def _external_data_problem(model: ir.Model) -> str | None:
    import onnx_ir as ir

    sizes: dict[str, int] = {}
    for graph in model.graphs():
        for value in graph.initializers.values():
            tensor = value.const_value
            if not isinstance(tensor, ir.ExternalTensor):
                continue
            path = tensor.path
            if path not in sizes:
                try:
                    sizes[path] = os.path.getsize(path)
                except OSError:
                    return f"tensor {value.name!r}: external data file {path} is missing"
            end = (tensor.offset or 0) + (
                tensor.length if tensor.length is not None else tensor.nbytes
            )
            if end > sizes[path]:
                return (
                    f"tensor {value.name!r}: needs bytes up to {end} of {path}, "
                    f"which has only {sizes[path]}"
                )
    return None


@hookimpl
def graphkit_passes() -> list[Pass]:
    return [check]
