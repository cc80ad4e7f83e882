"""The torch module as the reference a recipe's ``verify:`` compares the ONNX model with."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from graphkit_plugins.frontends.torch_source.examples import _flatten
from graphkit_plugins.frontends.torch_source.options import TorchOptions

from graphkit import ModelError

if TYPE_CHECKING:
    import numpy as np
    import onnx_ir as ir


@dataclasses.dataclass
class _Reference:
    """Runs the torch module on numpy inputs keyed by the ONNX model's input names."""

    torch: Any
    module: Any
    inputs: list[tuple[str, str]]  # (ONNX name, torch dtype name), in forward's order
    outputs: list[str]

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import numpy as np

        missing = [name for name, _ in self.inputs if name not in feeds]
        if missing:
            raise ModelError(f"the torch reference needs inputs {missing}; it got {sorted(feeds)}")
        torch = self.torch
        args = []
        for name, dtype in self.inputs:
            array = np.array(feeds[name], copy=True)
            if array.dtype.kind not in "biuf":  # bfloat16 and friends: numpy has no torch twin
                array = array.astype(np.float32)
            args.append(torch.from_numpy(array).to(getattr(torch, dtype)))
        with torch.inference_mode():
            results = list(_flatten(torch, self.module(*args)))
        return {
            name: _to_numpy(torch, tensor)
            for name, tensor in zip(self.outputs, results, strict=True)
        }


def _to_numpy(torch: Any, tensor: Any) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.numpy()


def _reference(torch: Any, module: Any, model: ir.Model, options: TorchOptions) -> _Reference:
    from graphkit._inspect import real_inputs

    dtypes = [spec.dtype for spec in options.inputs.values()]
    names = [v.name or "" for v in real_inputs(model.graph)]
    return _Reference(
        torch=torch,
        module=module,
        inputs=list(zip(names, dtypes, strict=True)),
        outputs=[v.name or "" for v in model.graph.outputs],
    )
