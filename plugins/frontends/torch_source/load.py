"""Reading a checkpoint into an ``nn.Module``.

torch.load(weights_only=True) unless the recipe trusts the file, TorchScript
archives, the model class named by ``module``, strict weight loading; and what
detection and the starter ask of a file: whether it is a checkpoint, and where
its weights are.
"""

from __future__ import annotations

import importlib
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphkit_plugins.frontends.torch_source.errors import INSTALL_HINT, _first_line
from graphkit_plugins.frontends.torch_source.options import TorchOptions

from graphkit import ModelError, SourceContext

if TYPE_CHECKING:
    import torch


#: Suffixes always taken for checkpoints; ``.bin`` only when its contents are torch's.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")

# The exact start of a legacy (pre-zip) torch.save file: the pickled magic number.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_ZIP_MAGIC = b"PK\x03\x04"
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


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


def _import_torch(path: Path) -> Any:
    try:
        import torch
    except ImportError:
        raise ModelError(
            f"{path}: reading PyTorch checkpoints needs torch: {INSTALL_HINT}"
        ) from None
    return torch


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
