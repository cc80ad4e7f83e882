"""The ``torch`` frontend: start a recipe from a PyTorch checkpoint or TorchScript archive.

torch is imported only when a recipe actually reads a checkpoint, so the CLI
and recipes on plain ONNX start without it. The steps live beside this module:
``options`` (the source block's options), ``load`` (the checkpoint into an
``nn.Module``, read with weights_only=True), ``examples`` (the inputs traced
with), ``export`` (the dynamo and TorchScript exporters) and ``reference`` (the
torch module ``verify:`` compares with).
"""

from __future__ import annotations

from pathlib import Path

from graphkit_plugins.frontends.torch_source.errors import INSTALL_HINT
from graphkit_plugins.frontends.torch_source.examples import _example_inputs, _output_names
from graphkit_plugins.frontends.torch_source.export import (
    _check_interface,
    _export_dynamo,
    _export_torchscript,
    _quiet_torch,
)
from graphkit_plugins.frontends.torch_source.load import (
    CHECKPOINT_SUFFIXES,
    _import_torch,
    _is_checkpoint,
    _load_module,
    find_state_dict_key,
)
from graphkit_plugins.frontends.torch_source.options import (
    DEFAULT_OPSET,
    DType,
    InputSpec,
    TorchOptions,
)
from graphkit_plugins.frontends.torch_source.reference import _reference

from graphkit import Frontend, Imported, ModelError, SourceContext, frontend, hookimpl

# The frontend's public names, importable from the package itself.
__all__ = [
    "CHECKPOINT_SUFFIXES",
    "DEFAULT_OPSET",
    "INSTALL_HINT",
    "DType",
    "InputSpec",
    "TorchOptions",
    "find_state_dict_key",
    "graphkit_frontends",
    "import_torch",
]


@frontend("torch", TorchOptions, detect=_is_checkpoint)
def import_torch(path: Path, options: TorchOptions, context: SourceContext) -> Imported:
    """A PyTorch checkpoint (state dict plus model class) or TorchScript archive, exported to ONNX.

    The model runs in eval mode. The torch module stays as the reference the
    recipe's ``verify:`` block compares the ONNX model with.
    """
    torch = _import_torch(path)
    notes: list[str] = []
    module = _load_module(torch, path, options, context, notes)
    module.eval()
    exporter = options.exporter
    if isinstance(module, torch.jit.ScriptModule):
        if "exporter" in options.model_fields_set and exporter == "dynamo":
            raise ModelError(
                f"{path}: the dynamo exporter cannot export a TorchScript archive; use "
                "exporter: torchscript, or give `module` to load its weights into a Python class"
            )
        exporter = "torchscript"

    names = list(options.inputs)
    examples = _example_inputs(torch, options, tracing=exporter == "dynamo")
    outputs = _output_names(torch, path, module, examples, options)
    with _quiet_torch():
        if exporter == "dynamo":
            model = _export_dynamo(torch, path, module, examples, names, outputs, options)
        else:
            model = _export_torchscript(
                torch, path, module, examples, names, outputs, options, context
            )
    _check_interface(path, model, names, outputs)
    notes.append(f"exported with the {exporter} exporter at opset {options.opset}")
    return Imported(model=model, reference=_reference(torch, module, model, options), notes=notes)


@hookimpl
def graphkit_frontends() -> list[Frontend]:
    return [import_torch]
