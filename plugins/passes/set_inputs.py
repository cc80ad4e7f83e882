"""The ``set_inputs`` pass: dtype, layout, normalisation and shape built into the graph."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from graphkit_plugins._common.dims import SizeOrName
from pydantic import Field, field_validator

from graphkit import IOAdapter, Params, Pass, PassError, PassResult, graph_pass, hookimpl

if TYPE_CHECKING:
    import numpy as np
    import onnx_ir as ir
    from graphkit_plugins._common.edges import Step

# bfloat16 is left out: ONNX Runtime's Python API cannot be fed such arrays, so verify could not.
DType = Literal[
    "float32",
    "float16",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
]
Layout = Literal["NCW", "NWC", "NCHW", "NHWC", "NCDHW", "NDHWC"]
Values = float | list[float]

_LAYOUT = (
    "The layout the application uses: NHWC or NCHW (rank 4), NWC or NCW (rank 3), NDHWC or "
    "NCDHW (rank 5). The model's own layout is the other of the pair; a Transpose converts."
)


class InputContract(Params):
    dtype: DType | None = Field(
        None, description="The dtype the application gives, such as uint8; a Cast follows."
    )
    layout: Layout | None = Field(None, description=_LAYOUT)
    scale: Values | None = Field(
        None, description="Multiply by this first: one number, or one per channel."
    )
    mean: Values | None = Field(
        None, description="Then subtract this: one number, or one per channel."
    )
    std: Values | None = Field(
        None, description="Then divide by this: one number, or one per channel."
    )
    channel_axis: int | None = Field(
        None,
        description=(
            "The axis of the channels per-channel values follow, counted in the layout the "
            "application gives; taken from 'layout' when that is set."
        ),
    )
    shape: list[SizeOrName] | None = Field(
        None,
        description=(
            "The shape the application gives, in its layout: sizes, or names of symbolic dims "
            "(as fix_dims)."
        ),
    )

    @field_validator("scale", "mean", "std")
    @classmethod
    def _some_values(cls, value: Values | None) -> Values | None:
        if isinstance(value, list) and not value:
            raise ValueError("give one number, or one per channel")
        return value

    @field_validator("std")
    @classmethod
    def _no_zero(cls, value: Values | None) -> Values | None:
        if value is not None and 0 in (value if isinstance(value, list) else [value]):
            raise ValueError("a standard deviation of 0 would divide by zero")
        return value


class OutputContract(Params):
    dtype: DType | None = Field(
        None, description="The dtype the application receives; a Cast is added at the end."
    )
    layout: Layout | None = Field(None, description=_LAYOUT)


class SetInputsParams(Params):
    inputs: dict[str, InputContract] = Field(
        default_factory=dict,
        description=(
            "Graph inputs, as {name: {dtype, layout, scale, mean, std, channel_axis, shape}}: "
            "the dtype the application gives (uint8, say); its layout (NHWC, NCHW, NWC, NCW, "
            "NDHWC or NCDHW; the model's is the other of the pair); scale, mean and std, each "
            "one number or one per channel; channel_axis, where those apply when no layout is "
            "given; shape, as the application gives it. Applied in the order Cast, x * scale, "
            "- mean, / std, Transpose."
        ),
    )
    outputs: dict[str, OutputContract] = Field(
        default_factory=dict,
        description="Graph outputs, as {name: {dtype, layout}}: a Transpose, then a Cast.",
    )


@dataclasses.dataclass
class _Plan:
    """What to insert at one edge of the graph."""

    value: ir.Value
    steps: list[Step]
    dtype: ir.DataType | None  # what the application gives or receives
    shape: ir.Shape | None
    inner_shape: ir.Shape | None  # the original value's shape afterwards
    shape_fixed: bool = False
    origin: str = ""  # for an output: what the value the graph makes is renamed after


@graph_pass("set_inputs", SetInputsParams)
def set_inputs(model: ir.Model, params: SetInputsParams) -> PassResult:
    """Build the input contract into the graph: dtype, layout, scale/mean/std and shape.

    For each input, the nodes go right after it, in this order: Cast to the
    model's dtype, multiply by ``scale``, subtract ``mean``, divide by
    ``std`` (per channel along the channel axis of the application's
    layout), Transpose to the model's layout. The input keeps its name; the
    value the rest of the graph reads is renamed after what it holds
    (``input_nchw``), wherever it is read, If and Loop bodies included.
    Outputs take a Transpose and a Cast at the end in the same way. With
    ``shape``, shapes are inferred again as fix_dims does. Weights are never
    read. ``verify:`` feeds the reference through the same arithmetic.
    """
    import onnx_ir as ir
    from graphkit_plugins._common.edges import build, describe, unique
    from graphkit_plugins._common.names import listing, names_in_use
    from graphkit_plugins._common.shapes import forget_intermediate_shapes, infer, shape_snapshot

    from graphkit._inspect import real_inputs

    graph = model.graph
    inputs = {v.name: v for v in real_inputs(graph)}
    outputs = {v.name: v for v in graph.outputs}
    problems: list[str] = []
    input_plans = {}
    for name, contract in params.inputs.items():
        if name not in inputs:
            problems.append(f"no graph input named {name!r} (inputs: {listing(inputs)})")
            continue
        plan = _input_plan(inputs[name], contract, problems)
        if plan is not None:
            input_plans[name] = plan
    output_plans = {}
    for name, contract in params.outputs.items():
        if name not in outputs:
            problems.append(f"no graph output named {name!r} (outputs: {listing(outputs)})")
            continue
        plan = _output_plan(graph, outputs[name], contract, problems)
        if plan is not None:
            output_plans[name] = plan
    if problems:
        raise PassError("; ".join(problems))

    before = shape_snapshot(model)
    taken = set(names_in_use(model))
    input_index = {v: i for i, v in enumerate(real_inputs(graph))}
    top: list[ir.Node] = []
    to_source: dict[int, Callable[[np.ndarray], np.ndarray]] = {}
    from_source: dict[int, Callable[[np.ndarray], np.ndarray]] = {}
    notes = []
    for name, plan in input_plans.items():
        original = plan.value
        if not plan.steps:
            original.shape = plan.shape
            continue
        given = ir.Value(name=name, type=ir.TensorType(plan.dtype), shape=plan.shape)
        nodes, inner = build(given, plan.steps, name, taken)
        for node in nodes[:-1]:
            if node.op_type != "Constant":
                node.outputs[0].shape = plan.shape
        inner.shape = plan.inner_shape
        original.replace_all_uses_with(inner)
        graph.inputs[graph.inputs.index(original)] = given
        top.extend(nodes)
        to_source[input_index[original]] = functools.partial(_through, plan.steps)
        notes.append(f"input {name!r}: {describe(plan.steps)}; the graph reads {inner.name!r}")
    if top:
        first = next(iter(graph), None)
        if first is None:
            graph.extend(top)
        else:
            graph.insert_before(first, top)

    for name, plan in output_plans.items():
        produced = plan.value
        position = graph.outputs.index(produced)
        produced.name = unique(f"{name}_{plan.origin}", taken)
        nodes, given = build(produced, plan.steps, name, taken)
        for node in nodes:
            if node.op_type != "Constant":
                node.outputs[0].shape = plan.shape
        taken.discard(given.name)
        given.name = name
        graph.extend(nodes)
        graph.outputs[position] = given
        from_source[position] = functools.partial(_through, plan.steps)
        notes.append(f"output {name!r}: {describe(plan.steps)}; the graph makes {produced.name!r}")

    if any(plan.shape_fixed for plan in input_plans.values()):
        forget_intermediate_shapes(model)
        infer(model)
    modified = bool(notes) or shape_snapshot(model) != before
    adapter = IOAdapter(inputs=to_source, outputs=from_source) if notes else None
    return PassResult(model, modified=modified, notes=notes, adapter=adapter)


def _through(steps: list[Step], array: np.ndarray) -> np.ndarray:
    from graphkit_plugins._common.edges import apply

    return apply(steps, array)


def _input_plan(value: ir.Value, contract: InputContract, problems: list[str]) -> _Plan | None:
    """The nodes for one input, or ``None`` after adding what is wrong to ``problems``."""
    import numpy as np
    import onnx_ir as ir
    from graphkit_plugins._common.edges import LAYOUTS, Step, permutation

    from graphkit._inspect import dtype_name

    found: list[str] = []
    name = value.name
    rank = None if value.shape is None else len(value.shape)
    model_dtype = value.dtype
    if value.is_graph_output():
        found.append(f"input {name!r} is also a graph output; give it an Identity first")
    normalising = [k for k in ("scale", "mean", "std") if getattr(contract, k) is not None]
    if (contract.dtype or normalising) and model_dtype is None:
        found.append(f"input {name!r} has no known dtype")
    elif normalising and not model_dtype.is_floating_point():
        found.append(
            f"input {name!r} is {dtype_name(model_dtype)}: {', '.join(normalising)} "
            "need a floating-point input"
        )
    if contract.layout is not None:
        found.extend(_layout_problems("input", name, contract.layout, rank))
    if contract.shape is not None and rank is not None and len(contract.shape) != rank:
        found.append(
            f"input {name!r} has rank {rank}, but the shape {contract.shape} has "
            f"{len(contract.shape)}"
        )
    if contract.layout is not None and contract.channel_axis is not None:
        found.append(f"input {name!r}: give layout or channel_axis, not both")
    if found:
        problems.extend(found)
        return None

    if contract.shape is not None:
        shape = ir.Shape([ir.SymbolicDim(d) if isinstance(d, str) else d for d in contract.shape])
    elif value.shape is not None and contract.layout is not None:
        model_layout = LAYOUTS[contract.layout]
        shape = ir.Shape([value.shape[model_layout.index(a)] for a in contract.layout])
    else:
        shape = value.shape
    axis = _channel_axis(name, contract, shape, found)
    steps: list[Step] = []
    new_dtype = model_dtype
    if contract.dtype is not None and contract.dtype != dtype_name(model_dtype):
        new_dtype = ir.DataType.from_numpy(np.dtype(contract.dtype))
        steps.append(Step("Cast", dtype_name(model_dtype), dtype=model_dtype))
    for key, op, suffix in (
        ("scale", "Mul", "scaled"),
        ("mean", "Sub", "centred"),
        ("std", "Div", "normalised"),
    ):
        values = getattr(contract, key)
        if values is None:
            continue
        assert model_dtype is not None
        constant = np.asarray(values, dtype=model_dtype.numpy())
        if isinstance(values, list):
            constant = _per_channel(name, key, constant, axis, shape, found)
        steps.append(Step(op, suffix, constant=constant))
    inner_shape = shape
    if contract.layout is not None:
        model_layout = LAYOUTS[contract.layout]
        perm = permutation(contract.layout, model_layout)
        steps.append(Step("Transpose", model_layout.lower(), perm=perm))
        assert shape is not None
        inner_shape = ir.Shape([shape[i] for i in perm])
    if found:
        problems.extend(found)
        return None
    return _Plan(
        value=value,
        steps=steps,
        dtype=new_dtype,
        shape=shape,
        inner_shape=inner_shape,
        shape_fixed=contract.shape is not None,
    )


def _output_plan(
    graph: ir.Graph, value: ir.Value, contract: OutputContract, problems: list[str]
) -> _Plan | None:
    """The nodes for one output, or ``None`` after adding what is wrong to ``problems``."""
    import numpy as np
    import onnx_ir as ir
    from graphkit_plugins._common.edges import LAYOUTS, Step, permutation

    from graphkit._inspect import dtype_name

    found: list[str] = []
    name = value.name
    rank = None if value.shape is None else len(value.shape)
    if value.is_graph_input() or value.is_initializer():
        found.append(f"output {name!r} is also a graph input or weight; give it an Identity first")
    if graph.outputs.count(value) > 1:
        found.append(f"output {name!r} is listed more than once")
    if contract.layout is not None:
        found.extend(_layout_problems("output", name, contract.layout, rank))
    if found:
        problems.extend(found)
        return None
    steps: list[Step] = []
    shape = value.shape
    origin = dtype_name(value.dtype) if value.dtype is not None else "made"
    if contract.layout is not None:
        model_layout = LAYOUTS[contract.layout]
        perm = permutation(model_layout, contract.layout)
        steps.append(Step("Transpose", contract.layout.lower(), perm=perm))
        assert shape is not None
        shape = ir.Shape([shape[i] for i in perm])
        origin = model_layout.lower()
    dtype = value.dtype
    if contract.dtype is not None and contract.dtype != dtype_name(value.dtype):
        dtype = ir.DataType.from_numpy(np.dtype(contract.dtype))
        steps.append(Step("Cast", contract.dtype, dtype=dtype))
    if not steps:
        return None
    return _Plan(
        value=value, steps=steps, dtype=dtype, shape=shape, inner_shape=value.shape, origin=origin
    )


def _layout_problems(kind: str, name: str, layout: str, rank: int | None) -> list[str]:
    from graphkit_plugins._common.edges import layouts_of_rank

    if rank is None:
        return [f"{kind} {name!r} has no known rank; a layout needs one"]
    if len(layout) == rank:
        return []
    fits = layouts_of_rank(rank)
    options = (
        f"rank {rank} takes {' or '.join(repr(f) for f in fits)}"
        if fits
        else "layouts are for ranks 3 to 5"
    )
    wanted = len(layout)
    return [
        f"{kind} {name!r} has rank {rank}, but layout {layout!r} is for rank {wanted} ({options})"
    ]


def _channel_axis(
    name: str, contract: InputContract, shape: ir.Shape | None, found: list[str]
) -> int | None:
    if contract.layout is not None:
        return contract.layout.index("C")
    axis = contract.channel_axis
    if axis is None:
        return None
    if shape is None:
        found.append(f"input {name!r} has no known rank; channel_axis needs one")
        return None
    if not -len(shape) <= axis < len(shape):
        found.append(f"input {name!r} has rank {len(shape)}: channel_axis {axis} is out of range")
        return None
    return axis % len(shape)


def _per_channel(
    name: str,
    key: str,
    constant: np.ndarray,
    axis: int | None,
    shape: ir.Shape | None,
    found: list[str],
) -> np.ndarray:
    """``constant`` shaped to broadcast along the channel axis."""
    if axis is None:
        found.append(
            f"input {name!r}: {key} has one value per channel, so give 'layout' or "
            "'channel_axis' to say which axis holds the channels"
        )
        return constant
    assert shape is not None
    channels = shape[axis]
    if isinstance(channels, int) and channels != constant.size:
        found.append(
            f"input {name!r}: {key} has {constant.size} values, but the input has "
            f"{channels} channels (axis {axis} of {list(_dims(shape))})"
        )
        return constant
    return constant.reshape([constant.size] + [1] * (len(shape) - 1 - axis))


def _dims(shape: ir.Shape) -> list[int | str]:
    return [d if isinstance(d, int) else str(d.value) for d in shape]


@hookimpl
def graphkit_passes() -> list[Pass]:
    return [set_inputs]
