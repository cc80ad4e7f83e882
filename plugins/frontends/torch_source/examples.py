"""The inputs the exporters trace with, and one run of forward on them that names the outputs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from graphkit_plugins.frontends.torch_source.errors import _first_line
from graphkit_plugins.frontends.torch_source.options import TorchOptions

from graphkit import ModelError


def _example_inputs(torch: Any, options: TorchOptions, *, tracing: bool) -> tuple[Any, ...]:
    """A distinct zero tensor per input: the exporter may merge inputs passed as one object."""
    examples = []
    for name, spec in options.inputs.items():
        shape = list(spec.shape)
        if tracing:
            # torch.export fixes an axis traced at size 0 or 1; 2 keeps a dynamic one dynamic.
            for axis in options.dynamic.get(name, {}):
                shape[axis] = max(shape[axis], 2)
        examples.append(torch.zeros(shape, dtype=getattr(torch, spec.dtype)))
    return tuple(examples)


def _flatten(torch: Any, value: Any) -> Iterator[Any]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _flatten(torch, item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _flatten(torch, item)
    elif value is not None:
        raise TypeError(f"forward returned a {type(value).__name__}")


def _output_names(
    torch: Any, path: Path, module: Any, examples: tuple[Any, ...], options: TorchOptions
) -> list[str]:
    """Run forward once on the examples, so a wrong input spec or output count fails clearly."""
    try:
        with torch.inference_mode():
            results = list(_flatten(torch, module(*examples)))
    except Exception as error:
        shapes = ", ".join(f"{n} {s.dtype}{s.shape}" for n, s in options.inputs.items())
        raise ModelError(
            f"{path}: forward fails on inputs {shapes}: "
            f"{type(error).__name__}: {_first_line(error)}"
        ) from error
    if options.outputs is None:
        return [f"output{i}" for i in range(len(results))]
    if len(results) != len(options.outputs):
        raise ModelError(
            f"{path}: forward returns {len(results)} tensors, but outputs names "
            f"{len(options.outputs)}: {options.outputs}"
        )
    return list(options.outputs)
