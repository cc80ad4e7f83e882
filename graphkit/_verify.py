"""Parity checks: the converted model must give the source framework's numbers.

The recipe's ``verify:`` block picks the reference (the source framework, or
the ONNX model straight from the frontend), the inputs (random ones honouring
each input's dtype, plus optional real ones) and the tolerances. Outputs are
matched by position, so a renamed output is still compared with its source.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pydantic

from graphkit._errors import ModelError, ParityError, RecipeError
from graphkit._frontends import ReferenceRunner
from graphkit._recipe.params import Params

if TYPE_CHECKING:
    import numpy as np
    import onnx_ir as ir

    from graphkit._passes import IOAdapter

#: Symbolic dims still left in the final model's inputs get this size.
DEFAULT_DIM = 1


class OutputTolerance(Params):
    """What is acceptable for one output: ``verify.outputs.NAME``."""

    rtol: float | None = pydantic.Field(
        None, ge=0, description="Relative tolerance for this output; unset: verify.rtol."
    )
    atol: float | None = pydantic.Field(
        None, ge=0, description="Absolute tolerance for this output; unset: verify.atol."
    )
    metric: Literal["cosine", "top_k"] | None = pydantic.Field(
        None, description="A summary metric for this output; unset: verify.metric."
    )
    min: float | None = pydantic.Field(
        None, description="The metric's lowest acceptable value; unset: verify.min."
    )
    k: int | None = pydantic.Field(None, ge=1, description="top_k's k; unset: verify.k.")


class VerifyOptions(Params):
    """The recipe's ``verify:`` block."""

    against: Literal["source", "imported"] = pydantic.Field(
        "source",
        description=(
            "The reference: 'source' runs the source framework (TensorFlow, torch; for an "
            "ONNX source, the source model itself); 'imported' runs the ONNX model straight "
            "from the frontend, before any pass."
        ),
    )
    samples: int = pydantic.Field(
        2,
        ge=0,
        description=(
            "Random input sets: uint8 in 0..255, floats in [0, 1), other integers in 0..9, "
            "random booleans."
        ),
    )
    inputs: str | None = pydantic.Field(
        None,
        description=(
            "An .npz file of real inputs (one set), keyed by the source model's input names; "
            "relative to the recipe."
        ),
    )
    rtol: float = pydantic.Field(1e-4, ge=0, description="Relative tolerance.")
    atol: float = pydantic.Field(1e-5, ge=0, description="Absolute tolerance.")
    per_pass: bool = pydantic.Field(
        False,
        description="Check after every pass and name the first pass that breaks parity.",
    )
    seed: int = pydantic.Field(0, description="Seed of the random inputs.")
    metric: Literal["cosine", "top_k"] | None = pydantic.Field(
        None,
        description=(
            "A summary metric every output must also reach: 'cosine' (the cosine similarity "
            "of result and reference, the lowest over the input sets) or 'top_k' (for "
            "classifiers: the share of rows whose k highest classes, along the last axis, "
            "are the reference's). Printed in the report."
        ),
    )
    min: float | None = pydantic.Field(
        None, description="The metric's lowest acceptable value, e.g. 0.99; needs 'metric'."
    )
    k: int = pydantic.Field(1, ge=1, description="top_k's k: 1 compares the argmax.")
    outputs: dict[str, OutputTolerance] = pydantic.Field(
        default_factory=dict,
        description=(
            "Per-output overrides of rtol, atol, metric, min and k, keyed by the final "
            "model's output names."
        ),
    )

    @pydantic.model_validator(mode="after")
    def _some_inputs(self) -> VerifyOptions:
        if self.samples == 0 and self.inputs is None:
            raise ValueError("with samples: 0, give real inputs in 'inputs'")
        for where, block in [("", self), *((f"outputs.{n}: ", o) for n, o in self.outputs.items())]:
            if block.metric is not None and block.min is None and self.min is None:
                raise ValueError(f"{where}metric {block.metric} needs a 'min'")
            if block.min is not None and block.metric is None and self.metric is None:
                raise ValueError(f"{where}min needs a 'metric' (cosine or top_k)")
        return self

    def tolerance(self, output: str) -> Tolerance:
        """The tolerance that applies to ``output`` (the final model's name for it)."""
        own = self.outputs.get(output) or OutputTolerance()
        metric = own.metric or self.metric
        return Tolerance(
            rtol=self.rtol if own.rtol is None else own.rtol,
            atol=self.atol if own.atol is None else own.atol,
            metric=metric,
            min=(own.min if own.min is not None else self.min) if metric else None,
            k=own.k or self.k,
        )


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """What one output must meet: element-wise ``rtol``/``atol``, and a metric if set."""

    rtol: float
    atol: float
    metric: str | None = None
    min: float | None = None
    k: int = 1

    def describe(self) -> str:
        text = f"rtol {self.rtol:g}, atol {self.atol:g}"
        if self.metric:
            text += f", {self.metric_name} >= {self.min:g}"
        return text

    @property
    def metric_name(self) -> str:
        return f"top-{self.k} agreement" if self.metric == "top_k" else str(self.metric)


@dataclasses.dataclass(frozen=True)
class OutputParity:
    """How one output compares with its reference, over every input set."""

    name: str
    reference_name: str
    max_abs: float
    max_rel: float
    ok: bool
    problem: str | None = None  # a shape or dtype mismatch
    tolerance: Tolerance | None = None  # set when it differs from verify's rtol and atol alone
    metric: float | None = None  # the summary metric's value, when one is asked for

    def describe(self, rtol: float, atol: float) -> str:
        if self.problem:
            return f"{self.name}: {self.problem}"
        tolerance = self.tolerance or Tolerance(rtol, atol)
        verdict = "ok" if self.ok else f"FAIL ({tolerance.describe()})"
        errors = f"max abs err {self.max_abs:.3g}, max rel err {self.max_rel:.3g}"
        if tolerance.metric and self.metric is not None:
            errors += f", {tolerance.metric_name} {self.metric:.6g}"
        return f"{self.name}: {errors}  {verdict}"

    def failure(self, rtol: float, atol: float) -> str:
        """Why this output failed, in one phrase."""
        if self.problem:
            return f"output {self.name!r}: {self.problem}"
        tolerance = self.tolerance or Tolerance(rtol, atol)
        metric = ""
        if tolerance.metric and self.metric is not None:
            metric = f", {tolerance.metric_name} {self.metric:.6g}"
        return (
            f"output {self.name!r} differs: max abs err {self.max_abs:.3g}, "
            f"max rel err {self.max_rel:.3g}{metric} ({tolerance.describe()})"
        )


@dataclasses.dataclass(frozen=True)
class ParityReport:
    """The comparison of one model with the reference."""

    stage: str
    outputs: list[OutputParity]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    @property
    def first_failure(self) -> OutputParity | None:
        return next((o for o in self.outputs if not o.ok), None)


class Verifier:
    """Compares models with a fixed reference on fixed inputs.

    Built once the final model is known, since the inputs take their shapes
    from it (dims fixed by the recipe apply to the source too). Passes that
    changed the model's contract give ``adapters``, in the order they ran:
    the inputs reach the reference through them (see :class:`IOAdapter`).
    """

    def __init__(
        self,
        options: VerifyOptions,
        source_io: tuple[list[str], list[str]],
        final: ir.Model,
        reference: ReferenceRunner,
        real_inputs: Mapping[str, np.ndarray] | None,
        adapters: Sequence[IOAdapter] = (),
    ) -> None:
        from graphkit._inspect import real_inputs as inputs_of

        self.options = options
        self.source_inputs, self.source_outputs = source_io
        final_inputs = inputs_of(final.graph)
        if len(final_inputs) != len(self.source_inputs):
            raise ParityError(
                f"cannot match inputs: the source has {len(self.source_inputs)}, "
                f"the result {len(final_inputs)}"
            )
        if len(final.graph.outputs) != len(self.source_outputs):
            raise ParityError(
                f"cannot match outputs: the source has {len(self.source_outputs)}, "
                f"the result {len(final.graph.outputs)}"
            )
        self.adapters = list(adapters)
        self.input_sets = _input_sets(options, final_inputs, self.source_inputs, real_inputs)
        # What the source gives; ``expected`` is that as the final model should give it.
        self.reference_outputs = [_as_arrays(reference(feeds)) for feeds in self._inputs_at(0)]
        for outputs in self.reference_outputs:
            missing = [n for n in self.source_outputs if n not in outputs]
            if missing:
                raise ParityError(
                    f"the reference gave no output named {', '.join(map(repr, missing))}"
                )
        self.expected = self._expected_at(len(self.adapters))

    def describe(self) -> str:
        o = self.options
        count = len(self.input_sets)
        text = (
            f"verify against {o.against}: {count} input set{'s' if count != 1 else ''}, "
            f"rtol {o.rtol:g}, atol {o.atol:g}"
        )
        if o.metric:
            text += f", {Tolerance(o.rtol, o.atol, o.metric, o.min, o.k).metric_name} >= {o.min:g}"
        if o.outputs:
            text += f" ({len(o.outputs)} with their own)"
        return text

    def compare(self, stage: str, model: OrtModel, applied: int | None = None) -> ParityReport:
        """Run ``model`` on every input set and compare each output with the reference.

        ``applied`` is how many of the adapters came before ``model`` (a
        checkpoint); all of them by default (the final model).
        """
        if applied is not None and applied < len(self.adapters):
            return self._at(applied).compare(stage, model)
        import numpy as np

        results = model.run_sets(self.input_sets)
        unknown = sorted(set(self.options.outputs) - set(model.output_names))
        if unknown:
            raise ParityError(
                f"verify.outputs: no output named {', '.join(map(repr, unknown))} "
                f"(outputs: {', '.join(map(repr, model.output_names))})"
            )
        outputs = []
        pairs = zip(model.output_names, self.source_outputs, strict=True)
        for index, (name, source_name) in enumerate(pairs):
            tolerance = self.options.tolerance(name)
            max_abs = max_rel = 0.0
            ok, problem = True, None
            wants, gots = [], []
            for expected, got_all in zip(self.expected, results, strict=True):
                want, got = expected[source_name], got_all[index]
                if want.shape != got.shape:
                    ok, problem = (
                        False,
                        f"shape {list(got.shape)}, but the reference has {list(want.shape)}",
                    )
                    break
                abs_err, rel_err, close = _errors(np.asarray(want), np.asarray(got), tolerance)
                max_abs, max_rel = max(max_abs, abs_err), max(max_rel, rel_err)
                ok = ok and close
                wants.append(np.asarray(want))
                gots.append(np.asarray(got))
            metric = None
            if problem is None and tolerance.metric:
                metric = _metric(tolerance, wants, gots)
                ok = ok and tolerance.min is not None and metric >= tolerance.min
            plain = tolerance == Tolerance(self.options.rtol, self.options.atol)
            outputs.append(
                OutputParity(
                    name,
                    source_name,
                    max_abs,
                    max_rel,
                    ok,
                    problem,
                    tolerance=None if plain else tolerance,
                    metric=metric,
                )
            )
        return ParityReport(stage=stage, outputs=outputs)

    def _at(self, applied: int) -> Verifier:
        """This verifier for a checkpoint taken after the first ``applied`` adapters."""
        stage = copy.copy(self)
        stage.input_sets = self._inputs_at(applied)
        stage.expected = self._expected_at(applied)
        stage.adapters = self.adapters[:applied]
        return stage

    def _inputs_at(self, applied: int) -> list[dict[str, np.ndarray]]:
        """The input sets as the model after ``applied`` adapters takes them."""
        sets = []
        for feeds in self.input_sets:
            arrays = list(feeds.values())
            for adapter in reversed(self.adapters[applied:]):
                for index, convert in adapter.inputs.items():
                    arrays[index] = convert(arrays[index])
            sets.append(dict(zip(feeds, arrays, strict=True)))
        return sets

    def _expected_at(self, applied: int) -> list[dict[str, np.ndarray]]:
        """The reference's outputs as the model after ``applied`` adapters gives them."""
        sets = []
        for outputs in self.reference_outputs:
            outputs = dict(outputs)
            for adapter in self.adapters[:applied]:
                for index, convert in adapter.outputs.items():
                    name = self.source_outputs[index]
                    outputs[name] = convert(outputs[name])
            sets.append(outputs)
        return sets


def _metric(tolerance: Tolerance, wants: list[np.ndarray], gots: list[np.ndarray]) -> float:
    """The summary metric over every input set; see :class:`VerifyOptions`."""
    import numpy as np

    if tolerance.metric == "cosine":
        values = []
        for want, got in zip(wants, gots, strict=True):
            a, b = want.astype(np.float64).ravel(), got.astype(np.float64).ravel()
            norms = float(np.linalg.norm(a) * np.linalg.norm(b))
            # Two all-zero outputs agree; one all-zero output has no direction to agree with.
            same = bool(np.array_equal(a, b))
            values.append(1.0 if same else (float(a @ b) / norms if norms else 0.0))
        return min(values) if values else 1.0
    agree = total = 0
    for want, got in zip(wants, gots, strict=True):
        if want.ndim == 0 or want.shape[-1] < tolerance.k:
            raise ParityError(
                f"top_k with k {tolerance.k} needs outputs with at least {tolerance.k} classes "
                f"on the last axis; this one is shaped {list(want.shape)}"
            )
        rows_want = want.reshape(-1, want.shape[-1])
        rows_got = got.reshape(-1, got.shape[-1])
        top_want = np.sort(np.argsort(-rows_want, axis=-1, kind="stable")[:, : tolerance.k])
        top_got = np.sort(np.argsort(-rows_got, axis=-1, kind="stable")[:, : tolerance.k])
        agree += int(np.all(top_want == top_got, axis=-1).sum())
        total += rows_want.shape[0]
    return agree / total if total else 1.0


def _errors(want: np.ndarray, got: np.ndarray, options: Tolerance) -> tuple[float, float, bool]:
    """Max absolute and relative error, and whether every element is within tolerance.

    As in ``numpy.allclose(got, want, rtol, atol, equal_nan=True)``: an element
    passes when ``|got - want| <= atol + rtol * |want|``; NaN in both places
    is equal, NaN in one is infinitely wrong.
    """
    import numpy as np

    if want.size == 0:
        return 0.0, 0.0, True
    want64, got64 = want.astype(np.float64), got.astype(np.float64)
    nan_want, nan_got = np.isnan(want64), np.isnan(got64)
    with np.errstate(invalid="ignore"):
        diff = np.abs(want64 - got64)
    diff = np.where(nan_want & nan_got, 0.0, np.where(nan_want | nan_got, np.inf, diff))
    scale = np.where(nan_want, 0.0, np.abs(want64))
    close = bool(np.all(diff <= options.atol + options.rtol * scale))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, diff / scale, np.where(diff > 0, np.inf, 0.0))
    return float(diff.max()), float(rel.max()), close


def _as_arrays(outputs: Mapping[str, object]) -> dict[str, np.ndarray]:
    import numpy as np

    return {name: np.asarray(value) for name, value in outputs.items()}


def _input_sets(
    options: VerifyOptions,
    final_inputs: Sequence[ir.Value],
    source_names: Sequence[str],
    real: Mapping[str, np.ndarray] | None,
) -> list[dict[str, np.ndarray]]:
    import numpy as np

    specs = []
    for value, source_name in zip(final_inputs, source_names, strict=True):
        if value.dtype is None:
            raise ParityError(f"input {value.name!r} has no known dtype; cannot make inputs for it")
        shape = (
            []
            if value.shape is None
            else [d if isinstance(d, int) else DEFAULT_DIM for d in value.shape]
        )
        if value.shape is None:
            raise ParityError(
                f"input {value.name!r} has no known shape; fix it with fix_dims first"
            )
        specs.append((source_name, value.dtype.numpy(), tuple(shape)))

    sets = []
    if real is not None:
        expected = {name for name, _, _ in specs}
        if set(real) != expected:
            raise ParityError(
                f"real inputs are keyed {sorted(real)}, "
                f"but the source model's inputs are {sorted(expected)}"
            )
        sets.append({name: np.asarray(real[name]) for name, _, _ in specs})
    rng = np.random.default_rng(options.seed)
    for _ in range(options.samples):
        sets.append({name: _random(rng, dtype, shape) for name, dtype, shape in specs})
    return sets


def _random(rng: np.random.Generator, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    import numpy as np

    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    if dtype.kind == "f":
        return rng.random(size=shape).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 10, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    raise ParityError(f"cannot make random inputs of dtype {dtype}")


def load_real_inputs(path: Path) -> dict[str, np.ndarray]:
    """Read an .npz of real inputs; pickled objects are refused."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise RecipeError(f"{path}: verify.inputs: no such file") from None
    except (ValueError, OSError) as error:
        raise ModelError(
            f"{path}: verify.inputs: not a readable .npz of arrays ({error})"
        ) from None


class OrtModel:
    """An ONNX file loaded into ONNX Runtime, fed by position or by name."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        from graphkit._framework_logs import ort_session_options

        try:
            self.session = ort.InferenceSession(
                str(path), ort_session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            detail = " ".join(str(error).split())
            raise ParityError(f"ONNX Runtime cannot load the model: {detail}") from error
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run once; ``feeds`` are matched to the model's inputs by position."""
        by_position = dict(zip(self.input_names, feeds.values(), strict=True))
        try:
            return self.session.run(None, by_position)
        except Exception as error:
            detail = " ".join(str(error).split())
            raise ParityError(f"ONNX Runtime failed to run the model: {detail}") from error

    def run_sets(self, input_sets: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
        return [self.run(feeds) for feeds in input_sets]

    def as_reference(self) -> ReferenceRunner:
        """This model as a reference: outputs keyed by its output names."""
        return lambda feeds: dict(zip(self.output_names, self.run(feeds), strict=True))
