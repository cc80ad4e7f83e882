"""Adapters for ops whose newer versions only allow more types, or rename attribute values.

onnx's version converter has no downward adapter for many versions that
did nothing but allow more element types (Relu 14, Add 14, Identity 16,
ConstantOfShape 20, ...). Such a node keeps its form; what the target must
check is that the node's types exist there.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import onnx
import onnx_ir as ir
from graphkit_plugins._opset.adapting import (
    WHERE_RUNS,
    Rule,
    add_node,
    check_types,
    down_across,
    int_attribute,
    rank,
    refuse,
    set_inputs,
)

# Versions up to here were read against onnx's changelog: where the schema's
# signature is unchanged, only the allowed types grew. A version added later
# is left to onnx's converter until someone checks what it changed.
REVIEWED_UP_TO = 28

# Before 13 a same-signature version often widened meaning (negative axes at
# 11, for instance), not only types.
_FIRST_TYPES_ONLY = 13

# Versions before 13 read one by one against onnx's changelog and schemas:
# same signature, same text, only integer types added (Clip 12, Max/Min 12,
# ReduceMax/ReduceMin 12 with int8 and uint8).
_REVIEWED_BEFORE_13 = frozenset(
    {("Clip", 12), ("Max", 12), ("Min", 12), ("ReduceMax", 12), ("ReduceMin", 12)}
)

# Versions that dropped types a node of the newer version cannot hold, and
# otherwise only added some: Erf 13 took bfloat16 and gave up the integer
# types Erf 9 listed, with the same text.
_NARROWED = frozenset({("Erf", 13)})

# Same signature, but the version changed more than types: subgraphs that
# onnx's converter must convert, or quantisation semantics.
_NOT_TYPES_ONLY = frozenset(
    {
        "If",
        "Loop",
        "Scan",
        "SequenceMap",
        "QuantizeLinear",
        "DequantizeLinear",
        "Pad",
        "Resize",
    }
)

# Same signature, one version that changed more: new attribute values
# (ScatterElements/ScatterND 18 'max' and 'min'), Mod 28 taking floats with
# fmod=0. Their other versions are judged like any op's.
_NOT_TYPES_ONLY_VERSIONS = frozenset({("Mod", 28), ("ScatterElements", 18), ("ScatterND", 18)})


def _signature(schema: onnx.defs.OpSchema) -> tuple[object, ...]:
    attributes = sorted(
        (a.name, a.type, a.required, a.default_value.SerializeToString())
        for a in schema.attributes.values()
    )
    return (
        [(f.option, f.type_str, f.is_homogeneous) for f in schema.inputs],
        [(f.option, f.type_str) for f in schema.outputs],
        attributes,
        schema.min_input,
        schema.max_input,
        schema.min_output,
        schema.max_output,
    )


@functools.cache
def _versions() -> dict[str, tuple[int, ...]]:
    """Every default-domain op's schema versions, oldest first."""
    versions: dict[str, set[int]] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in ("", "ai.onnx") and not schema.deprecated:
            versions.setdefault(schema.name, set()).add(schema.since_version)
    return {op: tuple(sorted(numbers)) for op, numbers in versions.items()}


@functools.cache
def types_only_versions() -> frozenset[tuple[str, int]]:
    """(op, version) where the version only allowed more types than the one before."""
    found = set()
    for op, numbers in _versions().items():
        if op in _NOT_TYPES_ONLY:
            continue
        ordered = sorted(numbers)
        for before, version in itertools.pairwise(ordered):
            if version > REVIEWED_UP_TO or (op, version) in _NOT_TYPES_ONLY_VERSIONS:
                continue
            if version < _FIRST_TYPES_ONLY and (op, version) not in _REVIEWED_BEFORE_13:
                continue
            old, new = onnx.defs.get_schema(op, before, ""), onnx.defs.get_schema(op, version, "")
            if _signature(old) != _signature(new):
                continue
            old_types = {c.type_param_str: set(c.allowed_type_strs) for c in old.type_constraints}
            new_types = {c.type_param_str: set(c.allowed_type_strs) for c in new.type_constraints}
            if old_types.keys() == new_types.keys() and (
                (op, version) in _NARROWED or all(old_types[k] <= new_types[k] for k in new_types)
            ):
                found.add((op, version))
    return frozenset(found)


def types_only_between(op: str, since: int, target: int) -> bool:
    """Whether the versions of ``op`` after the target's, up to ``since``, only added types."""
    try:
        at_target = onnx.defs.get_schema(op, target, "").since_version
    except onnx.defs.SchemaError:
        return False
    if at_target >= since:
        return False
    versions = [v for v in _versions().get(op, ()) if at_target < v <= since]
    return bool(versions) and all((op, v) in types_only_versions() for v in versions)


def _constant_of_shape(node: ir.Node, target: int) -> None:
    # The value attribute decides the output type; an absent one means float.
    attribute = node.attributes.get("value")
    dtype = attribute.as_tensor().dtype if attribute is not None else ir.DataType.FLOAT
    check_types(node, target, extra={"T2": ("attribute 'value'", dtype)})


# Constant 12 added these attributes; the opsets before spell them as 'value'.
_CONSTANT_FORMS = {
    "value_float": np.float32,
    "value_floats": np.float32,
    "value_int": np.int64,
    "value_ints": np.int64,
}


def _constant(node: ir.Node, target: int) -> None:
    """Constant 12's value_float/value_ints/... become the tensor ``value`` of 11."""
    for name, dtype in _CONSTANT_FORMS.items():
        attribute = node.attributes.pop(name, None)
        if attribute is not None:
            array = np.array(attribute.value, dtype=dtype)
            node.attributes["value"] = ir.AttrTensor("value", ir.tensor(array))
    newer = ("value_string", "value_strings") + (("sparse_value",) if target < 11 else ())
    for name in newer:
        if name in node.attributes:
            raise refuse(node, f"attribute {name!r} has no equivalent at opset {target}")
    check_types(node, target)


_GRID_SAMPLE_MODES = {"linear": "bilinear", "cubic": "bicubic", "nearest": "nearest"}


def _grid_sample(node: ir.Node, target: int) -> None:
    """GridSample 20 generalised 16's 4-D sampling to N-D and renamed its modes."""
    if target < 16:
        raise refuse(node, f"GridSample does not exist before opset 16 (target {target})")
    mode = node.attributes.get("mode")
    if mode is not None:
        name = mode.as_string()
        node.attributes["mode"] = ir.AttrString("mode", _GRID_SAMPLE_MODES.get(name, name))
    found = rank(node.inputs[0]) or rank(node.inputs[1])
    if found is None:
        raise refuse(
            node,
            f"the rank of input 0 ('X') is unknown, and GridSample at opset {target} "
            "samples 4-D inputs only",
        )
    if found != 4:
        raise refuse(
            node,
            f"input 0 ('X') is {found}-D, and GridSample at opset {target} samples 4-D inputs only",
        )
    check_types(node, target)


def _identity(node: ir.Node, target: int) -> None:
    """Identity 14 added sequences and 16 optionals; a tensor passes through at every opset."""
    for value in (*node.inputs, *node.outputs):
        kind = type(value.type) if value is not None else None
        if kind is ir.SequenceType and target < 14:
            raise refuse(node, "input 0 is a sequence, which Identity passes on from opset 14 on")
        if kind is ir.OptionalType and target < 16:
            raise refuse(node, "input 0 is optional, which Identity passes on from opset 16 on")
    check_types(node, target)


def _mod(node: ir.Node, target: int) -> None:
    """Mod 28 is Mod 13 except that it takes floats with fmod=0 (a floored remainder)."""
    if int_attribute(node, "fmod", 0) == 0:
        for index, value in enumerate(node.inputs[:2]):
            dtype = value.dtype if value is not None else None
            if dtype is None or dtype.is_floating_point():
                kind = "of unknown type" if dtype is None else dtype.name.lower()
                raise refuse(
                    node,
                    f"input {index} is {kind} with fmod=0, a floored remainder that Mod at "
                    f"opset {target} computes for integers only",
                )
    check_types(node, target)


def _pow(node: ir.Node, target: int) -> None:
    """Pow 12 let the exponent's type differ from the base's; Pow 7 takes one float type."""
    for index, value in enumerate(node.inputs[:2]):
        if value is None or value.dtype is None:
            raise refuse(
                node,
                f"the type of input {index} is unknown, and Pow at opset {target} needs "
                "the base and the exponent of one type",
            )
    check_types(node, target)


def _integer_extreme(node: ir.Node, target: int) -> None:
    """Max/Min took integers at 12; before, integers compare and select with Where."""
    dtypes = [value.dtype if value is not None else None for value in node.inputs]
    if not all(d is not None and d.is_integer() for d in dtypes):
        check_types(node, target)  # floats keep the node's form
        return
    if any(d not in WHERE_RUNS for d in dtypes):
        dtype = next(d for d in dtypes if d not in WHERE_RUNS)
        raise refuse(
            node,
            f"input is {dtype.name.lower()}: {node.op_type} at opset {target} takes no "
            "integers, and ONNX Runtime does not run the Where that would select them",
        )
    # Greater/Less and Where broadcast as Max and Min do; integers have no NaN to carry.
    compare = "Greater" if node.op_type == "Max" else "Less"
    inputs = list(node.inputs)
    best = inputs[0]
    for index, value in enumerate(inputs[1:-1], start=1):
        better = add_node(node, compare, [value, best], f"better_{index}")
        best = add_node(node, "Where", [better, value, best], f"best_{index}")
    node.attributes.clear()
    if len(inputs) == 1:
        node.op_type = "Identity"
        set_inputs(node, [best])
    else:
        better = add_node(node, compare, [inputs[-1], best], "better")
        node.op_type = "Where"
        set_inputs(node, [better, inputs[-1], best])
    check_types(node, target)


RULES: tuple[Rule, ...] = (
    Rule(
        frozenset({"Max", "Min"}),
        lambda since, target: since >= 12 and 9 <= target < 12,
        _integer_extreme,
    ),
    Rule(frozenset({"ConstantOfShape"}), down_across(20), _constant_of_shape),
    Rule(frozenset({"Mod"}), lambda since, target: since >= 28 and target < 13, _mod),
    # Pow 1 broadcast only with its 'broadcast' attribute.
    Rule(frozenset({"Pow"}), lambda since, target: since >= 12 and 7 <= target < 12, _pow),
    Rule(frozenset({"Constant"}), down_across(12), _constant),
    Rule(frozenset({"Identity"}), down_across(14), _identity),
    Rule(
        frozenset({"GridSample"}),
        lambda since, target: since >= 20 and 16 <= target < 20,
        _grid_sample,
    ),
)


def keep_form(node: ir.Node, target: int) -> None:
    """The rewrite of a node whose versions down to the target only differ in types."""
    check_types(node, target)
