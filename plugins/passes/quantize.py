"""The ``quantize`` pass: int8 weights (and activations) with onnxruntime.quantization.

onnxruntime's tools work on files; graphkit gives them a temporary folder,
reads the result back into memory and removes the folder, so nothing stays
behind.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from graphkit import Params, Pass, PassError, PassResult, RecipePath, graph_pass, hookimpl

if TYPE_CHECKING:
    import numpy as np
    import onnx_ir as ir


class QuantizeParams(Params):
    mode: Literal["dynamic", "static"] = Field(
        "dynamic",
        description=(
            "dynamic: int8 weights, activations quantized at run time (no calibration; "
            "the usual choice for MatMul/Gemm-heavy models). static: weights and "
            "activations int8, with activation ranges measured on 'calibration'."
        ),
    )
    calibration: RecipePath | None = Field(
        None,
        description=(
            "mode: static only: an .npz of calibration inputs, one array per input name, "
            "the sets stacked on a new first axis ([sets, *input shape]); relative to the "
            "recipe. Pickled arrays are refused."
        ),
    )
    method: Literal["minmax", "entropy", "percentile"] | None = Field(
        None,
        description="mode: static only: how activation ranges are chosen (default minmax).",
    )
    format: Literal["qdq", "qoperator"] | None = Field(
        None,
        description=(
            "mode: static only: qdq (QuantizeLinear/DequantizeLinear pairs around float ops; "
            "the default) or qoperator (QLinearConv, QLinearMatMul, ...)."
        ),
    )
    per_channel: bool = Field(False, description="One scale per output channel of each weight.")
    op_types: list[str] | None = Field(
        None,
        description="ONNX op types to quantize (e.g. [MatMul, Gemm]); unset: all onnxruntime can.",
    )
    weight_type: Literal["int8", "uint8"] = Field("int8", description="The weights' integer type.")
    activation_type: Literal["int8", "uint8"] | None = Field(
        None,
        description=(
            "mode: static only: the activations' integer type (default int8; uint8 with int8 "
            "weights is the fast U8S8 path on x86 CPUs without VNNI)."
        ),
    )
    preprocess: bool = Field(
        True,
        description=(
            "Run onnxruntime's pre-processing (symbolic shape inference, graph optimisation, "
            "onnx shape inference) first, as its documentation recommends."
        ),
    )

    @field_validator("op_types")
    @classmethod
    def _known_ops(cls, value: list[str] | None) -> list[str] | None:
        import onnx

        unknown = [op for op in value or [] if not onnx.defs.has(op)]
        if unknown:
            raise ValueError(f"not ONNX operators: {', '.join(map(repr, unknown))}")
        return value

    @model_validator(mode="after")
    def _static_options(self) -> QuantizeParams:
        if self.mode == "static" and self.calibration is None:
            raise ValueError("mode: static needs calibration: an .npz of input sets")
        if self.mode == "dynamic":
            given = [
                k
                for k in ("calibration", "method", "format", "activation_type")
                if getattr(self, k)
            ]
            if given:
                raise ValueError(f"{', '.join(given)}: only for mode: static")
        return self


@graph_pass("quantize", QuantizeParams)
def quantize(model: ir.Model, params: QuantizeParams) -> PassResult:
    """Quantize to int8 with onnxruntime.quantization (dynamic, or static with calibration).

    The model is written to a temporary folder, pre-processed by
    onnxruntime's quant_pre_process (unless ``preprocess: false``),
    quantized there and read back into memory; the folder is removed. The
    inputs and outputs must keep their names, order and types, or the pass
    fails. The result holds every weight in memory, and models past
    protobuf's 2 GiB are handed to onnxruntime with external data. Dynamic
    quantization enters If/Loop bodies (onnxruntime's EnableSubgraph, off by
    default there); static quantization cannot, and the notes say how many
    ops it left in float32 there.
    """
    import onnx
    from onnxruntime import quantization as q

    from graphkit._inspect import real_inputs
    from graphkit._modelio.proto import from_proto
    from graphkit._modelio.save import save
    from graphkit._modelio.tensors import PROTOBUF_LIMIT, tensor_bytes

    calibration = None
    if params.mode == "static":
        assert params.calibration is not None
        calibration = _calibration_sets(Path(params.calibration), real_inputs(model.graph))
    expected = _interface(model)
    large = tensor_bytes(model) > PROTOBUF_LIMIT
    weight_type = q.QuantType.QInt8 if params.weight_type == "int8" else q.QuantType.QUInt8
    notes = []
    with tempfile.TemporaryDirectory(prefix="graphkit-quantize-") as tmp:
        folder = Path(tmp)
        source = folder / "model.onnx"
        save(model, source)
        if params.preprocess:
            prepared = folder / "prepared.onnx"
            _call(
                "quant_pre_process",
                lambda: q.quant_pre_process(
                    str(source),
                    str(prepared),
                    save_as_external_data=large,
                    all_tensors_to_one_file=True,
                ),
                notes,
            )
            source = prepared
            notes.append("onnxruntime's pre-processing ran (shape inference, optimisation)")
        output = folder / "quantized.onnx"
        if params.mode == "dynamic":
            _call(
                "quantize_dynamic",
                lambda: q.quantize_dynamic(
                    str(source),
                    str(output),
                    op_types_to_quantize=params.op_types,
                    per_channel=params.per_channel,
                    weight_type=weight_type,
                    use_external_data_format=large,
                    # Off by default in onnxruntime: If/Loop bodies would stay float.
                    extra_options={"EnableSubgraph": True},
                ),
                notes,
            )
        else:
            assert calibration is not None
            method = {
                "minmax": q.CalibrationMethod.MinMax,
                "entropy": q.CalibrationMethod.Entropy,
                "percentile": q.CalibrationMethod.Percentile,
            }[params.method or "minmax"]
            quant_format = (
                q.QuantFormat.QOperator if params.format == "qoperator" else q.QuantFormat.QDQ
            )
            _call(
                "quantize_static",
                lambda: q.quantize_static(
                    str(source),
                    str(output),
                    _reader(calibration),  # type: ignore[arg-type]
                    quant_format=quant_format,
                    op_types_to_quantize=params.op_types,
                    per_channel=params.per_channel,
                    weight_type=weight_type,
                    activation_type=(
                        q.QuantType.QUInt8
                        if params.activation_type == "uint8"
                        else q.QuantType.QInt8
                    ),
                    calibrate_method=method,
                    use_external_data_format=large,
                ),
                notes,
            )
            count = len(calibration)
            notes.append(
                f"calibrated on {count} input set{'s' if count != 1 else ''} "
                f"({params.method or 'minmax'})"
            )
        # Everything is read into memory before the folder goes.
        result = from_proto(onnx.load(str(output)))
    got = _interface(result)
    if got != expected:
        raise PassError(
            "onnxruntime's quantization changed the model's interface: "
            f"{_describe(expected)} became {_describe(got)}"
        )
    in_bodies = _ops_in_subgraphs(result, params.op_types) if params.mode == "static" else 0
    if _integer_ops(result) <= _integer_ops(model):
        reasons = [f"op_types: {', '.join(params.op_types)}"] if params.op_types else []
        if in_bodies:
            reasons.append(f"{in_bodies} candidates in If/Loop bodies: {_NO_BODIES}")
        raise PassError(
            "onnxruntime quantized nothing" + (f" ({'; '.join(reasons)})" if reasons else "")
        )
    if in_bodies:
        notes.append(f"{in_bodies} ops in If/Loop bodies stay float32: {_NO_BODIES}")
    before, after = tensor_bytes(model), tensor_bytes(result)
    notes.append(f"weights {before / 2**20:.2f} MiB -> {after / 2**20:.2f} MiB")
    return PassResult(result, modified=True, notes=notes)


_NO_BODIES = "onnxruntime's static quantization does not enter subgraphs; dynamic does"


def _ops_in_subgraphs(model: ir.Model, op_types: list[str] | None) -> int:
    """Quantizable nodes (Conv, MatMul, Gemm, or ``op_types``) inside If/Loop/Scan bodies."""
    wanted = set(op_types or ("Conv", "MatMul", "Gemm"))
    return sum(1 for g in model.graphs() if g is not model.graph for n in g if n.op_type in wanted)


def _integer_ops(model: ir.Model) -> int:
    return sum(1 for g in model.graphs() for n in g if n.op_type in _INTEGER_OPS)


#: Ops whose presence shows that onnxruntime quantized something.
_INTEGER_OPS = {
    "ConvInteger",
    "MatMulInteger",
    "DynamicQuantizeLinear",
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "QGemm",
}


def _call(tool: str, function: Callable[[], object], notes: list[str]) -> None:
    """Run one of onnxruntime's tools; its log warnings become notes, its failures one line."""
    import logging

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            line = " ".join(record.getMessage().split())
            if line not in self.lines:
                self.lines.append(line)

    root = logging.getLogger()
    # onnxruntime's tools log through the root logger; keep that off the terminal.
    handlers, level, propagate = root.handlers[:], root.level, root.propagate
    collect = Collect()
    root.handlers[:] = [collect]
    root.setLevel(logging.WARNING)
    try:
        function()
    except Exception as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise PassError(f"onnxruntime's {tool} failed: {detail}") from error
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        root.propagate = propagate
    for line in collect.lines[:3]:
        notes.append(f"{tool}: {line[:160]}")
    if len(collect.lines) > 3:
        notes.append(f"{tool}: and {len(collect.lines) - 3} more warnings")


def _calibration_sets(path: Path, inputs: list[ir.Value]) -> list[dict[str, np.ndarray]]:
    """The input sets in ``path``, checked against the model's inputs."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise PassError(f"{path}: calibration: no such file") from None
    except (ValueError, OSError) as error:
        raise PassError(f"{path}: calibration: not a readable .npz of arrays ({error})") from None
    names = [v.name or "" for v in inputs]
    if set(arrays) != set(names):
        raise PassError(
            f"{path}: calibration keys {sorted(arrays)} do not match the model's inputs "
            f"{sorted(names)}"
        )
    counts = set()
    for value in inputs:
        array = arrays[value.name or ""]
        shape = [] if value.shape is None else list(value.shape)
        want = value.dtype.numpy() if value.dtype is not None else array.dtype
        fits = array.ndim == len(shape) + 1 and all(
            not isinstance(d, int) or d == got
            for d, got in zip(shape, array.shape[1:], strict=True)
        )
        if array.dtype != want or not fits:
            dims = ", ".join(str(d) if isinstance(d, int) else "?" for d in shape)
            raise PassError(
                f"{path}: calibration[{value.name!r}] is {array.dtype}{list(array.shape)}; "
                f"the input takes {np.dtype(want)}[sets, {dims}]"
            )
        counts.add(array.shape[0])
    if len(counts) != 1 or 0 in counts:
        raise PassError(
            f"{path}: calibration arrays must hold the same number of sets, at least one "
            f"(found {sorted(counts)})"
        )
    [count] = counts
    return [{name: arrays[name][index] for name in names} for index in range(count)]


def _reader(sets: list[dict[str, np.ndarray]]) -> object:
    """onnxruntime's CalibrationDataReader over a list of input sets."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.position = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.position >= len(sets):
                return None
            self.position += 1
            return sets[self.position - 1]

        def rewind(self) -> None:
            self.position = 0

    return Reader()


def _interface(model: ir.Model) -> tuple[tuple[tuple[str, str], ...], ...]:
    from graphkit._inspect import dtype_name, real_inputs

    return tuple(
        tuple((v.name or "", dtype_name(v.dtype)) for v in values)
        for values in (real_inputs(model.graph), model.graph.outputs)
    )


def _describe(interface: tuple[tuple[tuple[str, str], ...], ...]) -> str:
    inputs, outputs = (", ".join(f"{n} {t}" for n, t in side) for side in interface)
    return f"({inputs}) -> ({outputs})"


@hookimpl
def graphkit_passes() -> list[Pass]:
    return [quantize]
