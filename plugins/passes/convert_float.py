"""The ``convert_float`` pass: float32 to float16 with onnxruntime's converter, checked.

onnxruntime ships a maintained copy of onnxconverter-common's float16
converter (``onnxruntime.transformers.float16``); graphkit hands it the model
and repairs, around the call, what it gets wrong on subgraphs and external data.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from graphkit import Params, Pass, PassError, PassResult, graph_pass, hookimpl

if TYPE_CHECKING:
    import onnx
    import onnx_ir as ir

#: float16's smallest positive (subnormal) and largest finite values.
FLOAT16_TINY = 5.96e-08
FLOAT16_MAX = 65504.0


class ConvertFloatParams(Params):
    to: Literal["float16", "bfloat16"] = Field(
        "float16",
        description=(
            "The type float32 tensors become. bfloat16 is refused: ONNX Runtime's CPU "
            "provider has no bfloat16 kernels for MatMul, Conv, Add or Relu."
        ),
    )
    keep_io_types: bool = Field(
        True,
        description=(
            "Keep float32 graph inputs and outputs float32, with a Cast at each edge; "
            "false makes them float16 too."
        ),
    )
    op_block_list: list[str] = Field(
        default_factory=list,
        description=(
            "Op types kept in float32 (with Casts around them), in addition to the "
            "converter's own list of ops without float16 kernels (TopK, Range, CumSum, "
            "Min, Max, NonMaxSuppression, RoiAlign, ...)."
        ),
    )
    min_positive_val: float = Field(
        FLOAT16_TINY,
        ge=FLOAT16_TINY,
        description="Weights closer to zero than this become +/- this value instead of 0.",
    )
    max_finite_val: float = Field(
        FLOAT16_MAX,
        gt=0,
        le=FLOAT16_MAX,
        description="Weights larger in magnitude than this become +/- this value, not infinity.",
    )

    @field_validator("op_block_list")
    @classmethod
    def _known_ops(cls, value: list[str]) -> list[str]:
        unknown = [op for op in value if not _is_onnx_op(op)]
        if unknown:
            raise ValueError(f"not ONNX operators: {', '.join(map(repr, unknown))}")
        return value


@graph_pass("convert_float", ConvertFloatParams)
def convert_float(model: ir.Model, params: ConvertFloatParams) -> PassResult:
    """Convert float32 weights and computation to float16 (onnxruntime's converter).

    Ops without float16 kernels stay float32 behind Casts; by default the
    inputs and outputs stay float32 too. The converter needs every weight in
    memory: weights kept as external data are read in (the model must fit
    protobuf's 2 GiB), and the result holds them in memory, so it is saved
    inline unless ``save.external_data`` says otherwise. graphkit repairs
    what the converter gets wrong: it appends every Cast to the main graph
    (unsorted, and out of reach of the If/Loop body that needs it), stops on
    a weight name two subgraphs share, names its Casts' outputs
    (graph_input_cast_0, x_cast_to_fp32) without checking that the model is
    free of them, and changes the type of a weight kept as external data
    without converting its bytes. The result must pass
    onnx's type inference, or the pass fails.
    """
    from onnxruntime.transformers import float16

    from graphkit._modelio.proto import from_proto, to_proto

    if params.to == "bfloat16":
        raise PassError(
            "to: bfloat16 is not supported: ONNX Runtime's CPU provider has no bfloat16 "
            "kernels for MatMul, Conv, Add or Relu, and onnxruntime's converter targets "
            "float16 only; use to: float16"
        )
    floats = _float32_tensors(model)
    if not floats and not _has_float32_values(model):
        return PassResult(model, modified=False, notes=["no float32 tensors to convert"])

    from graphkit_plugins._common.shapes import infer

    # The converter reads every value's type from value_info; infer them in graphkit's
    # helper process (onnx's inference can crash) instead of letting it run inference itself.
    clashing = _rename_clashing_values(model)
    infer(model, strict=False)
    external = sum(1 for t in floats if _is_external(t))
    renamed = _unique_subgraph_weight_names(model)
    try:
        proto = to_proto(model)
    finally:
        _restore_names(model, renamed)
    clamped = _clamped_count(proto, params)
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(params.op_block_list))
    try:
        converted = float16.convert_float_to_float16(
            proto,
            min_positive_val=params.min_positive_val,
            max_finite_val=params.max_finite_val,
            keep_io_types=params.keep_io_types,
            disable_shape_infer=True,
            op_block_list=block,
        )
    except Exception as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise PassError(f"onnxruntime's float16 converter failed: {detail}") from error
    moved = _move_casts_into_subgraphs(converted.graph)
    result = from_proto(converted)
    _restore_names(result, renamed)
    try:
        result.graph.sort()
    except ValueError as error:
        raise PassError(f"the converted graph has a cycle: {error}") from None
    try:
        infer(result, strict=True)
    except PassError as error:
        raise PassError(f"the float16 converter left an inconsistent model: {error}") from None

    notes = [_weights_note(floats, result)]
    kept = sorted({n.op_type for g in result.graphs() for n in g if n.op_type in block})
    if kept:
        notes.append(f"kept in float32 behind Casts: {', '.join(kept)}")
    if params.keep_io_types and _has_float32_io(model):
        notes.append("float32 inputs and outputs kept, with Casts at the edges")
    if clamped:
        notes.append(
            f"{clamped} weight values outside float16's range (magnitudes outside "
            f"[{params.min_positive_val:g}, {params.max_finite_val:g}], zero aside), "
            "clamped in the weights converted"
        )
    if moved:
        notes.append(f"moved {moved} Casts the converter put in the main graph into their bodies")
    if clashing:
        notes.append(
            f"renamed {clashing} values named like the converter's Casts (such as "
            "graph_input_cast_0), which it would have defined twice"
        )
    if external:
        notes.append(
            f"{external} weights were read from external data; the result holds them in memory "
            "(save.external_data: true writes them out again)"
        )
    return PassResult(result, modified=True, notes=notes)


def _is_onnx_op(op_type: str) -> bool:
    import onnx

    return any(onnx.defs.has(op_type, domain) for domain in ("", "ai.onnx.ml"))


def _float32_tensors(model: ir.Model) -> list[ir.TensorProtocol]:
    import onnx_ir as ir

    return [
        v.const_value
        for g in model.graphs()
        for v in g.initializers.values()
        if v.const_value is not None and v.const_value.dtype == ir.DataType.FLOAT
    ]


def _has_float32_values(model: ir.Model) -> bool:
    import onnx_ir as ir

    for graph in model.graphs():
        values = [*graph.inputs, *(v for node in graph for v in node.outputs)]
        if any(v.dtype == ir.DataType.FLOAT for v in values):
            return True
    return False


def _has_float32_io(model: ir.Model) -> bool:
    import onnx_ir as ir

    graph = model.graph
    return any(v.dtype == ir.DataType.FLOAT for v in [*graph.inputs, *graph.outputs])


def _is_external(tensor: ir.TensorProtocol) -> bool:
    import onnx_ir as ir

    return isinstance(tensor, ir.ExternalTensor)


#: Names the converter gives the values it adds, whatever the model already uses.
_CONVERTER_NAMES = re.compile(r"^graph_(input|output)_cast_\d+$|_cast_to_(fp32|fp16|bfloat16)$")


def _rename_clashing_values(model: ir.Model) -> int:
    """Rename values whose names the converter would give its own; returns how many.

    The converter names its Casts' outputs graph_input_cast_0, x_cast_to_fp32
    and so on without checking that the model is free of them; a clash
    defines a value twice. The model's own inputs and outputs are not renamed:
    such a name is refused.
    """
    from graphkit_plugins._common.names import all_values, listing

    interface = [v for v in (*model.graph.inputs, *model.graph.outputs)]
    refused = [v.name for v in interface if v.name and _CONVERTER_NAMES.search(v.name)]
    if refused:
        raise PassError(
            f"inputs or outputs named like the Casts the converter adds: {listing(refused)}; "
            "rename them first (rename_io)"
        )
    taken = {v.name for v in all_values(model)}
    count = 0
    for value in list(all_values(model)):
        if not value.name or not _CONVERTER_NAMES.search(value.name):
            continue
        index = 1
        while f"{value.name}__{index}" in taken:
            index += 1
        new = f"{value.name}__{index}"
        taken.add(new)
        graph = value.graph
        if value.is_initializer() and graph is not None:
            graph.initializers.pop(value.name)
            value.name = new
            graph.register_initializer(value)
        else:
            value.name = new
        count += 1
    return count


def _unique_subgraph_weight_names(model: ir.Model) -> dict[str, str]:
    """Give subgraph weights names no other weight has; returns {new name: old name}.

    The converter keeps one table of weights by name for all graphs and stops
    (an AssertionError) when two subgraphs, such as an If's two branches,
    each have a weight of the same name.
    """
    taken = {v.name for g in model.graphs() for v in g.initializers.values()}
    taken |= {v.name for g in model.graphs() for n in g for v in n.outputs}
    seen: set[str | None] = set(model.graph.initializers)
    renamed: dict[str, str] = {}
    for graph in model.graphs():
        if graph is model.graph:
            continue
        for value in list(graph.initializers.values()):
            if value.name not in seen:
                seen.add(value.name)
                continue
            old = value.name or ""
            index = 1
            while f"{old}__{index}" in taken:
                index += 1
            new = f"{old}__{index}"
            taken.add(new)
            graph.initializers.pop(old)
            value.name = new
            graph.register_initializer(value)
            renamed[new] = old
    return renamed


def _restore_names(model: ir.Model, renamed: dict[str, str]) -> None:
    """Undo :func:`_unique_subgraph_weight_names` ({new name: old name})."""
    for graph in model.graphs():
        if graph is model.graph:
            continue
        for value in list(graph.initializers.values()):
            old = renamed.get(value.name or "")
            if old is not None:
                graph.initializers.pop(value.name)
                value.name = old
                graph.register_initializer(value)


def _clamped_count(proto: onnx.ModelProto, params: ConvertFloatParams) -> int:
    """How many float32 weight values lie outside what float16 can hold (as asked)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    count = 0
    for tensor in _graph_initializers(proto.graph):
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        magnitude = np.abs(numpy_helper.to_array(tensor))
        finite = np.isfinite(magnitude)
        count += int(np.count_nonzero(finite & (magnitude > params.max_finite_val)))
        count += int(np.count_nonzero((magnitude > 0) & (magnitude < params.min_positive_val)))
    return count


def _graph_initializers(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    found = list(graph.initializer)
    for node in graph.node:
        for attribute in node.attribute:
            subgraphs = [attribute.g] if attribute.HasField("g") else []
            for subgraph in [*subgraphs, *attribute.graphs]:
                found.extend(_graph_initializers(subgraph))
    return found


def _move_casts_into_subgraphs(graph: onnx.GraphProto) -> int:
    """Move main-graph nodes whose input only a subgraph defines into that subgraph.

    For an op kept in float32 inside an If or Loop body, the converter adds
    the Casts around it to the main graph, where the body's values do not
    exist. Each such Cast goes to the body that defines its input, with its
    value_info. Returns how many moved.
    """
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {o for node in graph.node for o in node.output}
    owners: dict[str, onnx.GraphProto] = {}
    for node in graph.node:
        for attribute in node.attribute:
            subgraphs = [attribute.g] if attribute.HasField("g") else []
            for subgraph in [*subgraphs, *attribute.graphs]:
                _collect_owners(subgraph, owners)
    stray = [
        node
        for node in graph.node
        if any(name and name not in defined and name in owners for name in node.input)
    ]
    for node in stray:
        owner = next(owners[name] for name in node.input if name and name not in defined)
        graph.node.remove(node)
        owner.node.append(node)
        infos = [vi for vi in graph.value_info if vi.name in node.output]
        for info in infos:
            graph.value_info.remove(info)
            owner.value_info.append(info)
    return len(stray)


def _collect_owners(graph: onnx.GraphProto, owners: dict[str, onnx.GraphProto]) -> None:
    for value in graph.input:
        owners.setdefault(value.name, graph)
    for tensor in graph.initializer:
        owners.setdefault(tensor.name, graph)
    for node in graph.node:
        for output in node.output:
            owners.setdefault(output, graph)
        for attribute in node.attribute:
            subgraphs = [attribute.g] if attribute.HasField("g") else []
            for subgraph in [*subgraphs, *attribute.graphs]:
                _collect_owners(subgraph, owners)


def _weights_note(before: list[ir.TensorProtocol], result: ir.Model) -> str:
    import onnx_ir as ir

    after = [
        v.const_value
        for g in result.graphs()
        for v in g.initializers.values()
        if v.const_value is not None
    ]
    halves = sum(1 for t in after if t.dtype == ir.DataType.FLOAT16)
    old = sum(t.nbytes for t in before)
    new = sum(t.nbytes for t in after if t.dtype in (ir.DataType.FLOAT16, ir.DataType.FLOAT))
    return (
        f"onnxruntime's float16 converter: {halves} of {len(before)} float32 weights now "
        f"float16 ({old / 2**20:.2f} MiB -> {new / 2**20:.2f} MiB of float weights)"
    )


@hookimpl
def graphkit_passes() -> list[Pass]:
    return [convert_float]
