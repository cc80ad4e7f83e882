"""The frontend contract: an importer that turns a framework's model file into ONNX."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from graphkit._errors import PluginError
from graphkit._recipe.params import NoParams, Params, undescribed_fields

if TYPE_CHECKING:
    import numpy as np
    import onnx_ir as ir

P = TypeVar("P", bound=Params)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

ReferenceRunner = Callable[[Mapping[str, "np.ndarray"]], dict[str, "np.ndarray"]]


@dataclasses.dataclass
class SourceContext:
    """Where an import happens.

    Attributes:
        recipe_dir: The folder of the recipe; relative paths in frontend
            options (a module file, say) are resolved against it.
        workdir: A private temporary folder the frontend may write to; it
            is removed after the run.
    """

    recipe_dir: Path
    workdir: Path


@dataclasses.dataclass
class Imported:
    """What a frontend gives back.

    Attributes:
        model: The imported ONNX model.
        reference: Runs the source framework on inputs keyed by the imported
            model's input names and returns outputs keyed by its output
            names; ``None`` when the source is ONNX itself.
        notes: One-line remarks for the user.
    """

    model: ir.Model
    reference: ReferenceRunner | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Frontend(Generic[P]):
    """A registered importer, one recipe ``source.format``.

    Build one with the :func:`frontend` decorator and return it from a
    plugin's ``graphkit_frontends`` hook.
    """

    name: str
    params: type[P]
    function: Callable[[Path, P, SourceContext], Imported]
    detect: Callable[[Path], bool]

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.function) or ""
        return doc.splitlines()[0] if doc else ""

    def load(self, path: Path, params: P, context: SourceContext) -> Imported:
        result = self.function(path, params, context)
        if not isinstance(result, Imported):
            raise PluginError(
                f"frontend {self.name!r} returned {type(result).__name__}, not graphkit.Imported"
            )
        return result


def frontend(
    name: str, params: type[Params] = NoParams, *, detect: Callable[[Path], bool]
) -> Callable[[Callable[[Path, Any, SourceContext], Imported]], Frontend[Any]]:
    """Declare a function as the importer for ``source.format: NAME``.

    Args:
        name: The format name recipes use.
        params: Options the recipe may give in its ``source`` block besides
            ``path`` and ``format``.
        detect: Tells whether a path looks like this format, so recipes may
            leave ``format`` out. It must be cheap and must not import the
            framework.
    """

    def decorate(function: Callable[[Path, Any, SourceContext], Imported]) -> Frontend[Any]:
        problems = []
        if not _NAME.match(name):
            problems.append("its name must be lower-case, like 'savedmodel'")
        if not (isinstance(params, type) and issubclass(params, Params)):
            problems.append("its options must be a subclass of graphkit.Params")
        elif undescribed_fields(params):
            problems.append(
                f"options without a description: {', '.join(undescribed_fields(params))}"
            )
        if {"path", "format"} & set(getattr(params, "model_fields", {})):
            problems.append("'path' and 'format' are reserved source keys")
        if not inspect.getdoc(function):
            problems.append("it needs a docstring whose first line is its summary")
        if problems:
            raise PluginError(f"frontend {name!r}: {'; '.join(problems)}")
        return Frontend(name=name, params=params, function=function, detect=detect)

    return decorate
