"""onnx's version converter messages, as one line naming the node, the op and the reason.

onnx's converter says "No Adapter From Version $14 for Relu" or "No
initializer or constant input to node found"; the user needs to know which
node of their model is meant.
"""

from __future__ import annotations

import re

import onnx
import onnx_ir as ir

_NO_ADAPTER = re.compile(r"No Adapter (To|From) Version \$(\d+) for (\w+)")
_NO_PREVIOUS = re.compile(r"No Previous Version of (\w+) exists")
_TYPE_NOT_ALLOWED = re.compile(
    r"DataType \((\d+)\) of Input or Output of operator '(\w+)' "
    r"is unallowed for Opset Version (\d+)"
)
# onnx's C++ assertions read "file.h:48: function: Assertion `expression` failed: message".
_ASSERTION = re.compile(r"^\S+:\d+: \S+: Assertion `.*?` failed: ", re.DOTALL)


class ConverterRefused(Exception):
    """onnx's converter refused; ``op`` is the op it named, if any."""

    def __init__(self, text: str, current: int, target: int) -> None:
        super().__init__(text)
        self.text, self.current, self.target = text, current, target
        found = _NO_ADAPTER.search(text) or _NO_PREVIOUS.search(text)
        type_found = _TYPE_NOT_ALLOWED.search(text)
        if found:
            self.op: str | None = found.groups()[-1]
        elif type_found:
            self.op = type_found.group(2)
        else:
            self.op = None

    def message(self, model: ir.Model) -> str:
        return explain(self.text, model, self.current, self.target)


def default_nodes(model: ir.Model) -> list[ir.Node]:
    """The default domain's nodes, subgraphs included."""
    return [
        node
        for node in ir.traversal.RecursiveGraphIterator(model.graph)
        if node.domain in ("", "ai.onnx")
    ]


def explain(message: str, model: ir.Model, current: int, target: int) -> str:
    """onnx's converter message in one line that names the node and op."""
    found = _NO_ADAPTER.search(message)
    if found:
        direction, version, op = found.groups()
        return (
            f"{_first_node(model, op)}: onnx's version converter has no adapter for "
            f"{op} {direction.lower()} opset {version}"
        )
    found = _NO_PREVIOUS.search(message)
    if found:
        op = found.group(1)
        return (
            f"{_first_node(model, op)}: {op} does not exist before opset "
            f"{onnx.defs.get_schema(op, current, '').since_version} and has no function body "
            "to expand into"
        )
    found = _TYPE_NOT_ALLOWED.search(message)
    if found:
        dtype, op, version = found.groups()
        return (
            f"{_first_node(model, op)}: {op} does not accept "
            f"{_dtype_name(int(dtype))} at opset {version}"
        )
    detail = " ".join(_ASSERTION.sub("", message).split())
    if _NO_CONSTANT in message:
        culprit = _computed_input(model, current, target)
        if culprit:
            return f"{culprit}, and onnx's version converter needs a constant there"
        return (
            f"onnx's version converter needs a constant input where the model "
            f"computes a value ({detail})"
        )
    named = _op_in(message, model)
    if named:
        return f"{_first_node(model, named)}: {detail}"
    changing = _changing_nodes(model, current, target)
    found = re.search(r"[Aa]ttribute '?(\w+)", message)
    if found:
        changing = [n for n in changing if found.group(1) in n.attributes] or changing
    if changing:
        node = changing[0]
        return f"{_first_node(model, node.op_type)}: {detail}"
    return detail


def _changing_nodes(model: ir.Model, current: int, target: int) -> list[ir.Node]:
    """Default-domain nodes whose op has another version at ``target`` than at ``current``."""
    nodes = []
    for node in default_nodes(model):
        try:
            before = onnx.defs.get_schema(node.op_type, current, "").since_version
            after = onnx.defs.get_schema(node.op_type, target, "").since_version
        except onnx.defs.SchemaError:
            nodes.append(node)
            continue
        if before != after:
            nodes.append(node)
    return nodes


_NO_CONSTANT = "No initializer or constant input to node found"


def _first_node(model: ir.Model, op: str) -> str:
    """``Op node 'name'`` for the first default-domain node of ``op``, with how many more."""
    nodes = [n for n in default_nodes(model) if n.op_type == op]
    if not nodes:
        return op
    more = f" (and {len(nodes) - 1} more)" if len(nodes) > 1 else ""
    return f"{op} node {nodes[0].name or '(unnamed)'!r}{more}"


def _op_in(message: str, model: ir.Model) -> str | None:
    """The op of the model that onnx's message mentions, longest name first."""
    ops = sorted({n.op_type for n in default_nodes(model)}, key=len, reverse=True)
    for op in ops:
        if re.search(rf"\b{op}\b", message):
            return op
    # onnx's adapters sometimes name an op family: "Scatter reduction ..." for ScatterElements.
    for word in re.findall(r"\b[A-Z][A-Za-z]+\b", message):
        family = [op for op in ops if op.startswith(word)]
        if len(family) == 1:
            return family[0]
    return None


def _computed_input(model: ir.Model, current: int, target: int) -> str | None:
    """The first input the converter would need as a constant that is not one, and why."""
    for node in _changing_nodes(model, current, target):
        for index, value in enumerate(node.inputs[1:], start=1):
            if value is None or value.const_value is not None:
                continue
            producer = value.producer()
            if producer is not None and producer.op_type == "Constant":
                continue
            if value.is_graph_input() or producer is not None:
                source = "a graph input, fed at run time" if producer is None else "computed"
                return (
                    f"{node.op_type} node {node.name or '(unnamed)'!r}: input {index} "
                    f"({value.name!r}) is {source}"
                )
    return None


def _dtype_name(number: int) -> str:
    try:
        return ir.DataType(number).name.lower()
    except ValueError:
        return f"data type {number}"
