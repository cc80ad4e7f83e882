"""The ``torch`` frontend: start a recipe from a PyTorch checkpoint or TorchScript archive.

torch is imported only when a recipe actually reads a checkpoint, so the CLI
and recipes on plain ONNX start without it.
"""

from __future__ import annotations

from pathlib import Path

from graphkit_plugins.frontends.torch_source.load import (
    TorchOptions,
    _check_interface,
    _example_inputs,
    _export_dynamo,
    _export_torchscript,
    _import_torch,
    _is_checkpoint,
    _load_module,
    _output_names,
    _quiet_torch,
    _reference,
    find_state_dict_key,
)

from graphkit import Frontend, Imported, ModelError, SourceContext, frontend, hookimpl

__all__ = ["TorchOptions", "find_state_dict_key", "graphkit_frontends", "import_torch"]


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
