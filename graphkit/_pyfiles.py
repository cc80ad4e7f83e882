"""Importing a Python file the user named: a plugin file, or a frontend's model file."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


class FileImportError(Exception):
    """A named Python file cannot be imported.

    Attributes:
        missing: The file does not exist.
        raised: What the file raised while running, if it ran.
    """

    def __init__(
        self, message: str, *, missing: bool = False, raised: Exception | None = None
    ) -> None:
        self.missing = missing
        self.raised = raised
        super().__init__(message)


def import_python_file(path: Path, prefix: str, *, with_its_folder: bool = False) -> ModuleType:
    """Import ``path`` as a module named after ``prefix``, the file and a hash of its path.

    Args:
        path: The file.
        prefix: Start of the module's name, telling who imported it.
        with_its_folder: Make the file's folder importable while it runs, so it
            may import its neighbours.

    Raises:
        FileImportError: the file is missing, is not Python, or raised.
    """
    if not path.is_file():
        raise FileImportError("no such file", missing=True)
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    name = f"{prefix}_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FileImportError("not a Python file")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses, pickle and torch.export look modules up by name.
    sys.modules[name] = module
    folder = str(path.parent)
    if with_its_folder:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise FileImportError("failed to import", raised=error) from error
    finally:
        if with_its_folder:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
    return module
