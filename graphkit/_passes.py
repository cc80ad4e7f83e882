"""The pass contract: a named function of a model and its validated parameters."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pydantic

from graphkit._errors import PassError, PluginError
from graphkit._recipe.params import (
    NoParams,
    Params,
    format_loc,
    undescribed_fields,
    validation_problems,
)

if TYPE_CHECKING:
    import numpy as np
    import onnx_ir as ir

P = TypeVar("P", bound=Params)

_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


ArrayMap = Callable[["np.ndarray"], "np.ndarray"]


@dataclasses.dataclass(frozen=True)
class IOAdapter:
    """How a pass changed what the model takes and gives, so ``verify:`` can follow.

    A pass that changes the model's contract (an input's dtype, layout or
    scale, say) declares one. The verifier makes inputs for the final model
    and feeds the reference, and every earlier checkpoint, through the
    ``inputs`` maps of the passes in between, last pass first; the
    reference's outputs go forward through the ``outputs`` maps.

    Attributes:
        inputs: By position among the graph's inputs (weights listed as
            inputs not counted): turns an array the returned model takes
            into what the given model took there.
        outputs: By position among the graph's outputs: turns what the given
            model gave there into what the returned model gives.
    """

    inputs: Mapping[int, ArrayMap] = dataclasses.field(default_factory=dict)
    outputs: Mapping[int, ArrayMap] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class PassResult:
    """What a pass gives back.

    Attributes:
        model: The resulting model; it may be the model the pass was given,
            changed in place, or a new one.
        modified: Whether the pass changed anything. Say so honestly: the
            runner reports it and skips work for unchanged models.
        notes: Things the user should know, one line each (for example
            "saved weight inputs as constants"). The runner prints them.
        adapter: How the model's inputs and outputs now relate to the ones
            it was given, for a pass that changes them; see :class:`IOAdapter`.
    """

    model: ir.Model
    modified: bool
    notes: list[str] = dataclasses.field(default_factory=list)
    adapter: IOAdapter | None = None


@dataclasses.dataclass(frozen=True)
class Pass(Generic[P]):
    """A registered graph pass.

    Build one with the :func:`graph_pass` decorator and return it from a
    plugin's ``graphkit_passes`` hook.

    Calling a pass runs it the way a library user expects:
    ``model = rename_io(model, inputs={"input_1": "input"})``.
    """

    name: str
    params: type[P]
    function: Callable[[ir.Model, P], PassResult]
    #: Called with the step's parameters before the source is imported, so slow
    #: set-up (a helper process, a large import) overlaps with the import
    #: rather than adding to the run. It must not need the model.
    warm_up: Callable[[P], None] | None = None

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.function) or ""

    @property
    def summary(self) -> str:
        """The first line of the pass's docstring."""
        return self.doc.splitlines()[0] if self.doc else ""

    def validate(self, params: Mapping[str, Any] | None) -> P:
        """Validate ``params`` against the pass's schema.

        Raises:
            PassError: naming every invalid parameter.
        """
        try:
            return self.params.model_validate(dict(params or {}))
        except pydantic.ValidationError as error:
            problems = validation_problems(
                error, unknown="unknown parameter", known=self.params.model_fields
            )
            details = "; ".join(f"{format_loc(loc)}: {msg}" for loc, msg in problems)
            raise PassError(f"{self.name}: invalid parameters: {details}") from None

    def run(self, model: ir.Model, params: P) -> PassResult:
        """Run the pass on ``model`` with already validated ``params``."""
        result = self.function(model, params)
        if not isinstance(result, PassResult):
            raise PluginError(
                f"pass {self.name!r} returned {type(result).__name__}, not graphkit.PassResult"
            )
        return result

    def __call__(self, model: ir.Model, /, **params: Any) -> ir.Model:
        """Validate ``params``, run the pass and return the resulting model."""
        return self.run(model, self.validate(params)).model


def graph_pass(
    name: str,
    params: type[Params] = NoParams,
    *,
    warm_up: Callable[[Any], None] | None = None,
) -> Callable[[Callable[[ir.Model, Any], PassResult]], Pass[Any]]:
    """Declare a function as a graph pass.

    The function takes the model and its validated parameters and returns a
    :class:`PassResult`. Its docstring's first line is the summary
    ``graphkit passes`` shows. ``warm_up``, if given, is called with the
    parameters before a recipe imports its source (see :attr:`Pass.warm_up`).

    Example::

        class Params(graphkit.Params):
            producer: str = Field("me", description="Producer name to record.")

        @graphkit.graph_pass("stamp", Params)
        def stamp(model, params):
            \"\"\"Record who produced the model.\"\"\"
            model.producer_name = params.producer
            return graphkit.PassResult(model, modified=True)
    """

    def decorate(function: Callable[[ir.Model, Any], PassResult]) -> Pass[Any]:
        problems = pass_definition_problems(name, params, function)
        if problems:
            raise PluginError(f"pass {name!r} ({_where(function)}): {'; '.join(problems)}")
        return Pass(name=name, params=params, function=function, warm_up=warm_up)

    return decorate


def pass_definition_problems(name: str, params: Any, function: Callable[..., Any]) -> list[str]:
    """Everything wrong with a pass definition, as short phrases."""
    problems = []
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append("its name must be snake_case, like 'fix_dims'")
    if not (isinstance(params, type) and issubclass(params, Params)):
        problems.append("its parameters must be a subclass of graphkit.Params")
    else:
        undescribed = undescribed_fields(params)
        if undescribed:
            problems.append(f"parameters without a description: {', '.join(undescribed)}")
    if not inspect.getdoc(function):
        problems.append("it needs a docstring whose first line is its summary")
    return problems


def _where(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", "?")
    return f"{module}.{getattr(function, '__qualname__', '?')}"
