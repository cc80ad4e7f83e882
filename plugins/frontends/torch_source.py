"""The ``torch`` frontend: start a recipe from a PyTorch checkpoint or TorchScript archive.

torch is imported only when a recipe actually reads a checkpoint, so the CLI
and recipes on plain ONNX start without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import io
import logging
import re
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from graphkit import (
    Frontend,
    Imported,
    ModelError,
    Params,
    SourceContext,
    frontend,
    hookimpl,
)

if TYPE_CHECKING:
    import numpy as np
    import onnx_ir as ir
    import torch

#: Suffixes always taken for checkpoints; ``.bin`` only when its contents are torch's.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
#: The opset the dynamo exporter writes natively: its ONNX functions (torchlib) are
#: written for 18, so a lower opset goes through a version converter that may fail,
#: while 18 already has Mish and the other ops conv nets use as single ops and runs on
#: ONNX Runtime 1.14 and later.
DEFAULT_OPSET = 18
INSTALL_HINT = 'pip install "graphkit[torch]"'

DType = Literal[
    "float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"
]

# The exact start of a legacy (pre-zip) torch.save file: the pickled magic number.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_ZIP_MAGIC = b"PK\x03\x04"
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


class InputSpec(Params):
    """One input of the model's forward."""

    shape: list[Annotated[int, Field(ge=0)]] = Field(
        description="The input's shape; for axes named in `dynamic`, the size to trace with."
    )
    dtype: DType = Field("float32", description="The input's element type.")


class TorchOptions(Params):
    module: str | None = Field(
        None,
        description=(
            "The model class the checkpoint's weights load into, as 'file.py:ClassName' "
            "(relative to the recipe's folder) or 'package.module:ClassName'. A callable "
            "returning an nn.Module works too. Not needed for TorchScript archives or, with "
            "`trust`, pickled whole models."
        ),
    )
    module_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments the model class is built with."
    )
    state_dict_key: str | None = Field(
        None,
        description=(
            "Where the weights are inside the checkpoint, dotted for nesting: 'model' for "
            "torch.save({'model': state_dict}), 'checkpoint.ema' for deeper ones. Unset: the "
            "checkpoint is the state dict itself."
        ),
    )
    trust: bool = Field(
        False,
        description=(
            "Checkpoints are read with torch.load(weights_only=True), which refuses pickled "
            "Python objects (a whole nn.Module, say) because unpickling them can run any code. "
            "true reads such a file with weights_only=False: only for files you trust."
        ),
    )
    inputs: dict[str, InputSpec] = Field(
        description=(
            "The ONNX inputs, in the order of forward's positional arguments, as "
            "{name: {shape: [...], dtype: ...}}."
        ),
    )
    outputs: list[str] | None = Field(
        None,
        description=(
            "Names of the ONNX outputs, one per tensor forward returns (tuples, lists and "
            "dicts are flattened in order). Unset: output0, output1, ..."
        ),
    )
    dynamic: dict[str, dict[Annotated[int, Field(ge=0)], str]] = Field(
        default_factory=dict,
        description=(
            "Axes left symbolic in the ONNX model, as {input name: {axis index: dim name}}; "
            "the same dim name on two inputs means the same size."
        ),
    )
    opset: int = Field(
        DEFAULT_OPSET,
        ge=7,
        description=(
            "The ONNX opset to export. 18 is what the dynamo exporter writes natively (lower "
            "ones go through a converter); it has Mish as one op and runs on ONNX Runtime 1.14+."
        ),
    )
    exporter: Literal["dynamo", "torchscript"] = Field(
        "dynamo",
        description=(
            "dynamo: torch.export-based, torch's default and maintained exporter (needs "
            "onnxscript); it hands over the model without serialising the weights and keeps "
            "ops such as Mish whole, where torchscript decomposes them. torchscript: the "
            "legacy tracer, for models torch.export cannot capture; TorchScript archives "
            "given without `module` always use it."
        ),
    )

    @field_validator("module")
    @classmethod
    def _module_form(cls, value: str | None) -> str | None:
        if value is not None:
            where, _, name = value.rpartition(":")
            if not where or not name:
                raise ValueError("must be 'file.py:ClassName' or 'package.module:ClassName'")
        return value

    @field_validator("inputs")
    @classmethod
    def _some_inputs(cls, value: dict[str, InputSpec]) -> dict[str, InputSpec]:
        if not value:
            raise ValueError("give at least one input")
        return value

    # The checks below read `inputs`, which pydantic validates first (fields go in order).

    @field_validator("outputs")
    @classmethod
    def _output_names(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return value
        problems = []
        if not value or not all(value):
            problems.append("names cannot be empty")
        repeated = sorted({n for n in value if value.count(n) > 1})
        clashing = sorted(set(value) & set(info.data.get("inputs") or {}))
        if repeated:
            problems.append(f"repeated names {repeated}")
        if clashing:
            problems.append(f"names also used by inputs {clashing}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("dynamic")
    @classmethod
    def _dynamic_axes(
        cls, value: dict[str, dict[int, str]], info: ValidationInfo
    ) -> dict[str, dict[int, str]]:
        inputs = info.data.get("inputs")
        if inputs is None:  # already reported
            return value
        problems = []
        for name, axes in value.items():
            spec = inputs.get(name)
            if spec is None:
                problems.append(f"{name!r} is not one of the inputs")
                continue
            problems.extend(
                f"input {name!r} has {len(spec.shape)} axes, so no axis {axis}"
                for axis in axes
                if axis >= len(spec.shape)
            )
        if problems:
            raise ValueError("; ".join(problems))
        return value


def _is_checkpoint(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES:
        return True
    if suffix != ".bin":
        return False
    # .bin is also used by formats graphkit does not read; look inside, cheaply.
    try:
        with path.open("rb") as file:
            head = file.read(len(_LEGACY_MAGIC))
    except OSError:
        return False
    if head.startswith(_LEGACY_MAGIC):
        return True
    return head.startswith(_ZIP_MAGIC) and _zip_kind(path) is not None


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


def _import_torch(path: Path) -> Any:
    try:
        import torch
    except ImportError:
        raise ModelError(
            f"{path}: reading PyTorch checkpoints needs torch: {INSTALL_HINT}"
        ) from None
    return torch


# Loading -----------------------------------------------------------------------------------------


def _load_module(
    torch: Any, path: Path, options: TorchOptions, context: SourceContext, notes: list[str]
) -> torch.nn.Module:
    """The model the checkpoint describes, its weights loaded."""
    if not path.exists():
        raise ModelError(f"{path}: no such checkpoint")
    if path.is_dir():
        raise ModelError(f"{path}: is a folder, not a checkpoint file")
    with path.open("rb") as file:
        head = file.read(len(_LEGACY_MAGIC))
    if not head:
        raise ModelError(f"{path}: file is empty")
    if head.startswith(_ZIP_MAGIC) and _zip_kind(path) == "torchscript":
        loaded: Any = _jit_load(torch, path)
        notes.append("read a TorchScript archive")
    elif head.startswith(_ZIP_MAGIC) or head.startswith(b"\x80"):
        loaded = _torch_load(torch, path, trust=options.trust, notes=notes)
    else:
        raise ModelError(
            f"{path}: not a PyTorch checkpoint (neither a torch.save file nor TorchScript)"
        )

    found = _select(path, loaded, options.state_dict_key)
    if options.module is None:
        if isinstance(found, torch.nn.Module):
            return found
        raise ModelError(
            f"{path}: holds weights but no model; name the model class with "
            "module: 'file.py:ClassName' or 'package.module:ClassName'"
        )
    model = _build(torch, options, context)
    state = found.state_dict() if isinstance(found, torch.nn.Module) else found
    _check_state_dict(torch, path, state, options.state_dict_key)
    _load_weights(torch, path, model, state, options.module)
    notes.append(
        f"loaded {len(state)} tensors"
        + (f" from {options.state_dict_key!r}" if options.state_dict_key else "")
        + f" into {options.module}"
    )
    return model


def _zip_kind(path: Path) -> str | None:
    """'torchscript', 'checkpoint' (a zip torch.save wrote), or None for other zips."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    if any(name.endswith("/constants.pkl") for name in names):
        return "torchscript"
    if any(name.endswith("/data.pkl") for name in names):
        return "checkpoint"
    return None


def _jit_load(torch: Any, path: Path) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        raise ModelError(
            f"{path}: cannot read the TorchScript archive: {_first_line(error)}"
        ) from error


def _torch_load(torch: Any, path: Path, *, trust: bool, notes: list[str]) -> Any:
    import pickle

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols it reads anyway
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refusal = error
    except Exception as error:
        raise ModelError(
            f"{path}: not a PyTorch checkpoint, or a damaged one ({_first_line(error)})"
        ) from error

    found = _UNSAFE_GLOBAL.search(str(refusal))
    what = f"Python objects such as {found.group(1)}" if found else "pickled Python objects"
    if not trust:
        raise ModelError(
            f"{path}: holds {what}, not just tensors; torch.load(weights_only=True) refuses them "
            "because unpickling can run any code. If you trust this file, set trust: true in "
            "the recipe's source block"
        ) from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise ModelError(
            f"{path}: cannot read the checkpoint even with trust: true: {_first_line(error)}"
        ) from error
    notes.append(f"read with trust: true (weights_only=False): the file holds {what}")
    return loaded


def _select(path: Path, loaded: Any, key: str | None) -> Any:
    """Follow the dotted ``state_dict_key`` into the checkpoint."""
    from graphkit_plugins._common.names import listing

    found = loaded
    walked: list[str] = []
    for part in key.split(".") if key else ():
        if not isinstance(found, Mapping):
            where = ".".join(walked)
            raise ModelError(
                f"{path}: state_dict_key {key!r}: {where!r} is a {type(found).__name__}, not a "
                "mapping of keys"
            )
        if part not in found:
            where = f"at {'.'.join(walked)!r} " if walked else "at the top level "
            raise ModelError(
                f"{path}: no key {key!r} in the checkpoint: {where}the keys are "
                f"{listing(map(str, found))}"
            )
        found = found[part]
        walked.append(part)
    return found


def _check_state_dict(torch: Any, path: Path, state: Any, key: str | None) -> None:
    from graphkit_plugins._common.names import listing

    where = f"{key!r} in the checkpoint" if key else "the checkpoint"
    if not isinstance(state, Mapping):
        raise ModelError(f"{path}: {where} is a {type(state).__name__}, not a state dict")
    not_tensors = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        hint = ""
        if not key:
            holders = [str(k) for k, v in state.items() if _looks_like_state_dict(torch, v)]
            if holders:
                hint = f"; the weights look to be under {listing(holders)}: set state_dict_key"
        raise ModelError(
            f"{path}: {where} is not a state dict: {listing(not_tensors, 10)} hold no tensors "
            f"(its keys: {listing(map(str, state), 10)}){hint}"
        )


def find_state_dict_key(path: Path) -> str | None:
    """Where a checkpoint keeps its weights, as a ``state_dict_key``, if there is one place.

    ``None`` when the checkpoint is a state dict itself, or when no single
    nested mapping of tensors (up to three levels down) stands out; reading the
    checkpoint then explains. Read with ``weights_only=True``, like an import.
    """
    torch = _import_torch(path)
    loaded = _torch_load(torch, path, trust=False, notes=[])
    if _looks_like_state_dict(torch, loaded):
        return None
    found: list[str] = []
    level: list[tuple[str, Any]] = [("", loaded)]
    for _ in range(3):
        deeper = []
        for key, value in level:
            if not isinstance(value, Mapping):
                continue
            for name, item in value.items():
                dotted = f"{key}.{name}" if key else str(name)
                if _looks_like_state_dict(torch, item):
                    found.append(dotted)
                else:
                    deeper.append((dotted, item))
        if found:
            break
        level = deeper
    return found[0] if len(found) == 1 else None


def _looks_like_state_dict(torch: Any, value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(v, torch.Tensor) for v in value.values())
    )


def _build(torch: Any, options: TorchOptions, context: SourceContext) -> Any:
    assert options.module is not None
    where, _, name = options.module.rpartition(":")
    if where.endswith(".py") or "/" in where or "\\" in where:
        container = _import_file(context.recipe_dir / where, options.module)
    else:
        try:
            container = importlib.import_module(where)
        except ImportError as error:
            raise ModelError(
                f"module {options.module!r}: cannot import {where!r}: {error}"
            ) from error
        except Exception as error:
            raise ModelError(
                f"module {options.module!r}: {where!r} failed to import: "
                f"{type(error).__name__}: {_first_line(error)}"
            ) from error
    target: Any = container
    for part in name.split("."):
        if not hasattr(target, part):
            known = sorted(
                n
                for n, v in vars(container).items()
                if isinstance(v, type) and not n.startswith("_")
            )
            from graphkit_plugins._common.names import listing

            raise ModelError(
                f"module {options.module!r}: no {name!r} in {where} (it has {listing(known)})"
            )
        target = getattr(target, part)
    if not callable(target):
        raise ModelError(f"module {options.module!r}: {name!r} is not a class")
    try:
        model = target(**options.module_kwargs)
    except Exception as error:
        raise ModelError(
            f"module {options.module!r}: {name}(**module_kwargs) failed: "
            f"{type(error).__name__}: {_first_line(error)}"
        ) from error
    if not isinstance(model, torch.nn.Module):
        raise ModelError(
            f"module {options.module!r}: {name} made a {type(model).__name__}, "
            "not a torch.nn.Module"
        )
    return model


def _import_file(file: Path, spec_text: str) -> Any:
    """Import a model file; its folder is importable meanwhile, so it may import its neighbours."""
    from graphkit._pyfiles import FileImportError, import_python_file

    resolved = file.resolve() if file.is_file() else file
    try:
        return import_python_file(resolved, "graphkit_torch_module", with_its_folder=True)
    except FileImportError as problem:
        raised = problem.raised
        if raised is None:
            raise ModelError(f"module {spec_text!r}: {resolved}: {problem}") from None
        raise ModelError(
            f"module {spec_text!r}: {resolved} failed to import: {type(raised).__name__}: "
            f"{_first_line(raised)}"
        ) from raised


def _load_weights(torch: Any, path: Path, model: Any, state: Mapping[str, Any], spec: str) -> None:
    """Strict loading, with every mismatch named in the error rather than torch's long text."""
    from graphkit_plugins._common.names import listing

    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [str(k) for k in state if k not in expected]
    resized = [
        f"{k} {list(state[k].shape)} (the model has {list(v.shape)})"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {listing(missing, 10)}")
    if unexpected:
        problems.append(f"unexpected keys: {listing(unexpected, 10)}")
    if resized:
        problems.append(f"other shapes: {listing(resized, 5)}".replace("'", ""))
    if missing and unexpected and all(k.startswith("module.") for k in unexpected):
        problems.append("(saved from DataParallel? its keys start with 'module.')")
    if problems:
        raise ModelError(f"{path}: the weights do not fit {spec}: {'; '.join(problems)}")
    try:
        model.load_state_dict(state, strict=True)
    except Exception as error:
        raise ModelError(
            f"{path}: the weights do not load into {spec}: {_first_line(error)}"
        ) from error


# Exporting ---------------------------------------------------------------------------------------


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


def _first_line(error: BaseException, limit: int = 300) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    line = next((part.strip() for part in text.splitlines() if part.strip()), type(error).__name__)
    return line if len(line) <= limit else line[: limit - 3] + "..."


# The reference ----------------------------------------------------------------------------------


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
