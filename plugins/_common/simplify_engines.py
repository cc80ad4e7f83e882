"""The graph simplifiers ``simplify`` can hand a model to, behind one ModelProto -> ModelProto call.

An engine may edit the model it is given (onnxslim does). Its result must
pass onnx's checker whenever the model it was given did: onnxslim has written
models whose nodes read values it deleted.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import onnx
    from graphkit_plugins.passes.simplify import SimplifyParams

EngineName = Literal["onnxsim", "onnxslim"]

#: Every engine, in the order ``auto`` prefers them when their results tie:
#: onnxsim first, as graphkit's engine before there was a choice.
ENGINES: tuple[EngineName, ...] = ("onnxsim", "onnxslim")


class EngineFailed(Exception):
    """An engine raised, or wrote a model onnx's checker refuses.

    The message is one line that reads after the engine's name: "failed: ...".
    """


def run_engine(
    name: EngineName,
    proto: onnx.ModelProto,
    params: SimplifyParams,
    given_valid: Callable[[], bool] | None = None,
) -> onnx.ModelProto:
    """Simplify ``proto`` with the engine ``name``; the engine may change ``proto``.

    ``given_valid`` tells whether onnx's checker accepts the model given, and
    is asked only when it refuses the result; by default ``proto`` is checked
    before the engine runs.

    Raises:
        EngineFailed: naming what went wrong, in one line.
    """
    if given_valid is None:
        was_valid = checker_problem(proto) is None
        given_valid = lambda: was_valid  # noqa: E731
    try:
        result = _RUNNERS[name](proto, params)
    except EngineFailed:
        raise
    except Exception as error:
        raise EngineFailed(f"failed: {type(error).__name__}: {_one_line(error)}") from error
    problem = checker_problem(result)
    if problem and given_valid():
        raise EngineFailed(f"wrote a model onnx's checker refuses: {problem}")
    problem = _bad_bias(result.graph)
    if problem:
        raise EngineFailed(f"wrote {problem}")
    return result


def _bad_bias(graph: onnx.GraphProto) -> str | None:
    """A Conv whose bias is not one-dimensional, which ONNX Runtime refuses when it runs.

    onnxsim writes one when it folds a scale of shape [1, 1, 1, 1] into a Conv,
    and onnx's checker does not look at the bias's shape.
    """
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    for node in graph.node:
        is_conv = node.op_type in ("Conv", "ConvTranspose") and node.domain in ("", "ai.onnx")
        if is_conv and len(node.input) > 2 and len(shapes.get(node.input[2], [0])) != 1:
            name = node.name or node.output[0]
            return f"a Conv ({name}) whose bias has shape {shapes[node.input[2]]}, not 1-D"
    return None


def _onnxsim(proto: onnx.ModelProto, params: SimplifyParams) -> onnx.ModelProto:
    from graphkit import _onnx_tools

    try:
        return _onnx_tools.onnxsim_simplify(
            proto,
            # graphkit compares outputs itself, for every engine alike.
            check_n=0,
            perform_optimization=params.optimize,
            skip_fuse_bn=not params.fuse_bn,
            skipped_optimizers=list(params.skipped_optimizers) or None,
            skip_constant_folding=not params.constant_folding,
            skip_shape_inference=not params.shape_inference,
            include_subgraph=params.include_subgraph,
            tensor_size_threshold=params.tensor_size_threshold,
            # Weights that stay inputs reach the engine without their initializers
            # (see the pass), so there is nothing for onnxsim to fold or drop.
            mutable_initializer=True,
        )
    except _onnx_tools.ToolCrashed as error:
        raise EngineFailed(f"crashed ({error.how})") from None


def _onnxslim(proto: onnx.ModelProto, params: SimplifyParams) -> onnx.ModelProto:
    import onnxslim

    skipped = []
    if not params.constant_folding:
        skipped.append("constant_folding")
    if not params.optimize:
        skipped += [
            "graph_fusion",
            "dead_node_elimination",
            "subexpression_elimination",
            "weight_tying",
        ]
    patterns = [] if params.fuse_bn else ["FusionConvBN", "FusionConvTransposeBN"]
    # onnxslim prints its own summary; the pass's notes say what happened. (Only
    # here: onnxsim runs meanwhile, in a thread, and prints in its own process.)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        result = onnxslim.slim(
            proto,
            skip_optimizations=skipped or None,
            skip_fusion_patterns=patterns or None,
            no_shape_infer=not params.shape_inference,
            size_threshold=_bytes(params.tensor_size_threshold),
        )
    if result is None:
        raise EngineFailed("returned no model")
    return result


_RUNNERS: dict[str, Callable[[onnx.ModelProto, SimplifyParams], onnx.ModelProto]] = {
    "onnxsim": _onnxsim,
    "onnxslim": _onnxslim,
}

_UNITS = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}


def _bytes(size: str) -> int:
    """``'1.5GB'`` in bytes, read the way onnxsim reads its tensor_size_threshold."""
    text = size.strip().upper()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * _UNITS[unit])
    return int(float(text))


def checker_problem(proto: onnx.ModelProto) -> str | None:
    """What onnx's checker finds wrong with ``proto``, in one line, or None."""
    import onnx

    from graphkit import _onnx_tools

    try:
        # In the helper process: onnx's checker crashes on some invalid models.
        _onnx_tools.check_model(proto)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as error:
        return _one_line(error)
    except _onnx_tools.ToolCrashed as error:
        return _one_line(error)
    return None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
