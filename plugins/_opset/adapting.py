"""What every set_opset adapter needs: refusals that name the node, constants, types, new values.

An adapter rewrites one default-domain node, already back in a graph whose
model imports the target opset, into the form the target opset's schema
accepts. Whatever the target cannot express is refused with a
:class:`graphkit.PassError` naming the node, the op, the input or attribute
and the reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import onnx
import onnx_ir as ir

from graphkit import PassError


def describe(node: ir.Node) -> str:
    """``Split node 'split_3'``, or the first output's name for an unnamed node."""
    if node.name:
        return f"{node.op_type} node {node.name!r}"
    output = node.outputs[0].name if node.outputs else None
    return f"{node.op_type} node (unnamed, output {output!r})"


def refuse(node: ir.Node, reason: str) -> PassError:
    """The error an adapter raises: ``<Op> node '<name>': <reason>``."""
    return PassError(f"{describe(node)}: {reason}")


def input_name(node: ir.Node, index: int) -> str:
    """The schema's name for input ``index`` (``'axes'``), for refusals."""
    try:
        formal = onnx.defs.get_schema(node.op_type, node.version or 1_000, "").inputs
    except onnx.defs.SchemaError:
        formal = []
    name = formal[index].name if index < len(formal) else "?"
    return f"input {index} ({name!r})"


def present(node: ir.Node, index: int) -> ir.Value | None:
    """Input ``index``, or None when the node leaves it out."""
    if index >= len(node.inputs):
        return None
    return node.inputs[index]


def constant(node: ir.Node, index: int, why: str) -> np.ndarray | None:
    """The value of input ``index`` as a NumPy array, or None when the input is absent.

    Args:
        node: The node being rewritten.
        index: The input's position.
        why: What the target opset needs the constant for, completing
            "but ...", e.g. "opset 17 needs it as the attribute 'axes'".

    Raises:
        PassError: the model computes the input instead of holding it as a
            weight or a Constant.
    """
    value = present(node, index)
    if value is None:
        return None
    array = known_value(value)
    if array is None:
        origin = "a graph input" if value.is_graph_input() else "computed by the model"
        raise refuse(node, f"{input_name(node, index)} {value.name!r} is {origin}, but {why}")
    return array


# Ops whose result is fixed once their inputs are: a value they compute from
# weights and static shapes is a constant the adapters may read.
_FOLDABLE = frozenset(
    {
        "Add", "Cast", "Concat", "Constant", "Div", "Gather", "Identity", "Mul", "Neg",
        "Range", "Reshape", "Shape", "Size", "Slice", "Squeeze", "Sub", "Unsqueeze",
    }
)  # fmt: skip
_FOLD_LIMIT = 32  # nodes; a longer chain is not worth evaluating for an attribute


def known_value(value: ir.Value, budget: list[int] | None = None) -> np.ndarray | None:
    """``value`` as an array when weights, Constants and static shapes fix it, else None.

    Function bodies compute such values (RMSNormalization's reduction axes
    from its input's rank), where the older opset needs them as attributes.
    """
    tensor = ir.convenience.get_const_tensor(value)
    if tensor is not None:
        return tensor.numpy()
    budget = [_FOLD_LIMIT] if budget is None else budget
    node = value.producer()
    if node is None or node.domain not in ("", "ai.onnx") or node.op_type not in _FOLDABLE:
        return None
    budget[0] -= 1
    if budget[0] < 0:
        return None
    if node.op_type in ("Shape", "Size"):
        return _shape_fact(node)
    arrays = []
    for operand in node.inputs:
        array = None if operand is None else known_value(operand, budget)
        if operand is not None and array is None:
            return None
        arrays.append(array)
    return _evaluate(node, arrays, value)


def _shape_fact(node: ir.Node) -> np.ndarray | None:
    source = node.inputs[0]
    if node.op_type == "Size":
        producer = source.producer() if source is not None else None
        dims = static_dims(source)
        if dims is not None:
            return np.array(int(np.prod(dims)), dtype=np.int64)
        if producer is not None and producer.op_type == "Shape" and not producer.attributes:
            known = rank(producer.inputs[0])
            return None if known is None else np.array(known, dtype=np.int64)
        return None
    dims = static_dims(source)
    if dims is None:
        return None
    start = int_attribute(node, "start", 0)
    end = node.attributes.get("end")
    return np.array(dims[start : None if end is None else end.as_int()], dtype=np.int64)


def _evaluate(node: ir.Node, arrays: list[np.ndarray | None], value: ir.Value) -> np.ndarray | None:
    import onnx.reference

    if node.op_type == "Constant":
        return None  # get_const_tensor reads every form of Constant
    names = [f"in{i}" if a is not None else "" for i, a in enumerate(arrays)]
    proto = onnx.helper.make_node(
        node.op_type,
        names,
        [f"out{i}" for i in range(len(node.outputs))],
        **{a.name: a.value for a in node.attributes.values() if not isinstance(a.value, ir.Graph)},
    )
    try:
        outputs = onnx.reference.ReferenceEvaluator(proto).run(
            None, {n: a for n, a in zip(names, arrays, strict=True) if n}
        )
    except Exception:  # any failure means "not a known constant"
        return None
    return np.asarray(outputs[value.index()])


def ints_attribute(node: ir.Node, name: str) -> list[int] | None:
    attribute = node.attributes.get(name)
    return None if attribute is None else list(attribute.as_ints())


def int_attribute(node: ir.Node, name: str, default: int) -> int:
    attribute = node.attributes.get(name)
    return default if attribute is None else attribute.as_int()


def string_attribute(node: ir.Node, name: str, default: str) -> str:
    attribute = node.attributes.get(name)
    return default if attribute is None else attribute.as_string()


def rank(value: ir.Value | None) -> int | None:
    if value is None or value.shape is None:
        return None
    return len(value.shape)


def static_dims(value: ir.Value | None) -> list[int] | None:
    """Every dimension of ``value`` when all are known numbers, else None."""
    if value is None or value.shape is None:
        return None
    dims = list(value.shape.dims)
    return dims if all(isinstance(d, int) for d in dims) else None


def fresh_name(node: ir.Node, purpose: str) -> str:
    """A value or node name derived from the node's first output, unused in its graph."""
    base = f"{node.outputs[0].name or node.name or node.op_type}__{purpose}"
    graph = node.graph
    taken: set[str] = set()
    if isinstance(graph, ir.Graph):
        taken = {v.name for v in graph.initializers.values() if v.name}
        taken |= {v.name for v in graph.inputs if v.name}
        taken |= {o.name for n in graph.all_nodes() for o in n.outputs if o.name}
        taken |= {n.name for n in graph.all_nodes() if n.name}
    name, count = base, 1
    while name in taken:
        count += 1
        name = f"{base}_{count}"
    return name


def add_constant(node: ir.Node, array: np.ndarray, purpose: str) -> ir.Value:
    """A new weight in the node's graph holding ``array``."""
    name = fresh_name(node, purpose)
    value = ir.Value(
        name=name,
        const_value=ir.tensor(array, name=name),
        type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
        shape=ir.Shape(array.shape),
    )
    graph = node.graph
    assert isinstance(graph, ir.Graph), "adapters rewrite graph nodes, not function bodies"
    graph.register_initializer(value)
    return value


def add_node(
    node: ir.Node, op_type: str, inputs: Sequence[ir.Value], purpose: str, **attributes: object
) -> ir.Value:
    """A new default-domain node computing something ``node`` needs, placed before it."""
    name = fresh_name(node, purpose)
    new = ir.Node(
        "",
        op_type,
        inputs,
        [ir.convenience.convert_attribute(k, v) for k, v in attributes.items()],
        outputs=[ir.Value(name=name)],
        name=name,
    )
    graph = node.graph
    assert graph is not None
    graph.insert_before(node, new)
    return new.outputs[0]


# The element types ONNX Runtime runs Where for before opset 16; a Where of
# another type is valid ONNX there but does not load in ONNX Runtime, so
# adapters that select with Where refuse the others.
WHERE_RUNS = frozenset(
    {
        ir.DataType.FLOAT,
        ir.DataType.DOUBLE,
        ir.DataType.FLOAT16,
        ir.DataType.STRING,
        ir.DataType.INT8,
        ir.DataType.INT32,
        ir.DataType.INT64,
        ir.DataType.UINT8,
        ir.DataType.UINT32,
    }
)


def follow_with(
    node: ir.Node,
    op_type: str,
    extra: Sequence[ir.Value],
    purpose: str,
    at: int = 0,
    **attributes: object,
) -> ir.Node:
    """A new node after ``node`` that takes its output and takes over its name and users.

    The node's output is the new node's input ``at``, among ``extra``. It gets
    a fresh name and loses its declared shape, which the new node's output keeps.
    """
    result = node.outputs[0]
    placeholder = ir.Value()
    inputs = list(extra)
    inputs.insert(at, placeholder)
    after = ir.Node(
        "",
        op_type,
        inputs,
        [ir.convenience.convert_attribute(k, v) for k, v in attributes.items()],
        name=fresh_name(node, purpose),
    )
    taken_over = after.outputs[0]
    result.replace_all_uses_with(taken_over, replace_graph_outputs=True)
    name = result.name
    result.name = fresh_name(node, f"before_{purpose}")
    taken_over.name = name
    taken_over.type, taken_over.shape = result.type, result.shape
    result.shape = None
    after.replace_input_with(at, result)
    graph = node.graph
    assert graph is not None
    graph.insert_after(node, after)
    return after


def take_over(value: ir.Value, new: ir.Value, purpose: str) -> None:
    """``new`` takes over the name, users and declared type of ``value``, which keeps none."""
    value.replace_all_uses_with(new, replace_graph_outputs=True)
    name = value.name
    producer = value.producer()
    value.name = fresh_name(producer, purpose) if producer is not None else None
    new.name = name
    new.type, new.shape = value.type, value.shape


def set_inputs(node: ir.Node, inputs: Sequence[ir.Value | None]) -> None:
    """Give ``node`` exactly ``inputs``, dropping trailing absent ones."""
    inputs = list(inputs)
    while inputs and inputs[-1] is None:
        inputs.pop()
    node.resize_inputs(len(inputs))
    for index, value in enumerate(inputs):
        if node.inputs[index] is not value:
            node.replace_input_with(index, value)


def drop_attributes(node: ir.Node, *names: str) -> None:
    for name in names:
        node.attributes.pop(name, None)


def type_string(dtype: ir.DataType) -> str:
    """``tensor(float8e4m3fn)``: how onnx's schemas spell a tensor type."""
    return f"tensor({onnx.TensorProto.DataType.Name(dtype.value).lower()})"


def check_types(
    node: ir.Node, target: int, *, extra: dict[str, tuple[str, ir.DataType]] | None = None
) -> None:
    """Refuse a node whose known input/output types the target schema does not allow.

    Args:
        node: The node being rewritten.
        target: The target opset.
        extra: Types the schema's type parameters take from elsewhere, checked
            first, such as ConstantOfShape's ``value`` attribute:
            {type parameter: (where, data type)}.
    """
    schema = onnx.defs.get_schema(node.op_type, target, "")
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    found = [(parameter, where, dtype) for parameter, (where, dtype) in (extra or {}).items()]
    for formals, values, kind in (
        (schema.inputs, node.inputs, "input"),
        (schema.outputs, node.outputs, "output"),
    ):
        for index, value in enumerate(values):
            # Sequences and optionals are left to the full check of the result.
            if not isinstance(value.type if value is not None else None, ir.TensorType):
                continue
            if value.dtype is None or not formals:
                continue
            formal = formals[min(index, len(formals) - 1)]
            found.append((formal.type_str, f"{kind} {index} ({formal.name!r})", value.dtype))
    bound: dict[str, tuple[str, ir.DataType]] = {}
    for parameter, where, dtype in found:
        options = allowed.get(parameter)
        if options is None:
            options = {parameter}  # a fixed type such as "tensor(int64)"
        if type_string(dtype) not in options:
            raise refuse(
                node,
                f"{where} is {dtype.name.lower()}, which {node.op_type} does not accept "
                f"at opset {target}",
            )
        first_where, first = bound.setdefault(parameter, (where, dtype))
        if first != dtype:
            raise refuse(
                node,
                f"{where} is {dtype.name.lower()} and {first_where} {first.name.lower()}, "
                f"but {node.op_type} at opset {target} takes one type for both",
            )


def since_version(op_type: str, opset: int) -> int:
    """The version of ``op_type``'s schema in force at ``opset`` (0 when it does not exist)."""
    try:
        return onnx.defs.get_schema(op_type, opset, "").since_version
    except onnx.defs.SchemaError:
        return 0


@dataclasses.dataclass(frozen=True)
class Rule:
    """An adapter for the ops in ``ops`` when ``applies(since_version, target)``.

    Attributes:
        ops: The default-domain ops the rule covers.
        applies: Whether graphkit converts a node whose schema is
            ``since_version`` at the model's opset to ``target``.
        rewrite: The adapter's rewrite.
    """

    ops: frozenset[str]
    applies: Callable[[int, int], bool]
    rewrite: Callable[[ir.Node, int], None]


def down_across(version: int) -> Callable[[int, int], bool]:
    """A rule for a node at ``version`` or later converted to an opset before it."""
    return lambda since, target: since >= version and target < version
