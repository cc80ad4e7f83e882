"""The ``onnx`` frontend: start a recipe from an ONNX file."""

from __future__ import annotations

from pathlib import Path

from graphkit import Frontend, Imported, NoParams, SourceContext, frontend, hookimpl


def _is_onnx(path: Path) -> bool:
    return path.suffix.lower() == ".onnx"


@frontend("onnx", NoParams, detect=_is_onnx)
def import_onnx(path: Path, options: NoParams, context: SourceContext) -> Imported:
    """An ONNX file; weights kept in external data stay on disk until saved."""
    from graphkit import load

    return Imported(model=load(path))


@hookimpl
def graphkit_frontends() -> list[Frontend]:
    return [import_onnx]
