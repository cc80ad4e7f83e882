"""Exporting the loaded module with torch.onnx.

The dynamo exporter (the default) or the legacy TorchScript one, their progress
output held back, their long errors cut to one line, and the exported model's
inputs and outputs checked against the recipe's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphkit_plugins.frontends.torch_source.errors import INSTALL_HINT, _first_line
from graphkit_plugins.frontends.torch_source.options import TorchOptions

from graphkit import ModelError, SourceContext

if TYPE_CHECKING:
    import onnx_ir as ir


@contextlib.contextmanager
def _quiet_torch() -> Iterator[None]:
    """Hold back the exporters' progress lines, graph dumps, deprecation warnings and logs.

    What matters of a failure reaches the user as the error's first line.
    """
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _export_dynamo(
    torch: Any,
    path: Path,
    module: Any,
    examples: tuple[Any, ...],
    names: list[str],
    outputs: list[str],
    options: TorchOptions,
) -> ir.Model:
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter's ONNX functions)
    except ImportError:
        raise ModelError(
            f"{path}: the dynamo exporter needs onnxscript: {INSTALL_HINT} "
            "(or set exporter: torchscript)"
        ) from None
    dynamic = tuple(options.dynamic.get(name) for name in names) if options.dynamic else None
    try:
        program = torch.onnx.export(
            module,
            examples,
            dynamo=True,
            input_names=names,
            output_names=outputs,
            opset_version=options.opset,
            dynamic_shapes=dynamic,
            verbose=False,
            optimize=True,
        )
    except Exception as error:
        raise ModelError(
            f"{path}: the dynamo exporter failed: {_export_error(error)} "
            "(exporter: torchscript may work where torch.export cannot capture the model)"
        ) from error
    # The program's onnx_ir model holds the module's own tensors: no copy of the weights.
    return program.model


def _export_torchscript(
    torch: Any,
    path: Path,
    module: Any,
    examples: tuple[Any, ...],
    names: list[str],
    outputs: list[str],
    options: TorchOptions,
    context: SourceContext,
) -> ir.Model:
    import onnx

    from graphkit._modelio.proto import from_proto

    target = context.workdir / "torchscript-export.onnx"
    try:
        torch.onnx.export(
            module,
            examples,
            str(target),
            dynamo=False,
            input_names=names,
            output_names=outputs,
            opset_version=options.opset,
            dynamic_axes=dict(options.dynamic) or None,
        )
    except Exception as error:
        raise ModelError(
            f"{path}: the torchscript exporter failed: {_export_error(error)}"
        ) from error
    # Read in whole: the work folder is gone before the recipe's output is written.
    return from_proto(onnx.load(str(target), load_external_data=True))


def _check_interface(path: Path, model: ir.Model, inputs: list[str], outputs: list[str]) -> None:
    from graphkit._inspect import real_inputs

    got_inputs = [v.name for v in real_inputs(model.graph)]
    got_outputs = [v.name for v in model.graph.outputs]
    if got_inputs != inputs or got_outputs != outputs:
        raise ModelError(
            f"{path}: the exported model has inputs {got_inputs} and outputs {got_outputs}, "
            f"not {inputs} and {outputs} (an input forward does not use is dropped by "
            "the torchscript exporter)"
        )


def _export_error(error: BaseException) -> str:
    # torch's export errors span pages; the exception type and first line name the problem.
    cause = error
    while cause.__cause__ is not None and "torch.onnx" in type(cause).__module__:
        cause = cause.__cause__
    return f"{type(cause).__name__}: {_first_line(cause)}"
