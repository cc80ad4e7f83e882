"""The torch frontend's options: what a recipe's ``source`` block says about a checkpoint."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from graphkit import Params

#: The opset the dynamo exporter writes natively: its ONNX functions (torchlib) are
#: written for 18, so a lower opset goes through a version converter that may fail,
#: while 18 already has Mish and the other ops conv nets use as single ops and runs on
#: ONNX Runtime 1.14 and later.
DEFAULT_OPSET = 18

DType = Literal[
    "float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"
]


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
