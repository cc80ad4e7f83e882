"""Is every default-domain node valid for the target opset's schema?

onnx's version converter can write a model that does not load: it keeps
AveragePool's ``dilations`` going down to 17, where the attribute does not
exist. These checks run on the converted model before it is handed back, so
such a model is refused with the node, op and reason instead.
"""

from __future__ import annotations

import re

import onnx
import onnx_ir as ir

# onnx's checker and shape inference name the node like this.
_NODE_IN_MESSAGE = re.compile(r"\(op_type:(\w+)(?:, node name: ([^)]*))?\)")


def schema_problems(model: ir.Model, target: int) -> list[str]:
    """One line for each default-domain node the target opset's schema rejects."""
    problems = []
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        if node.domain not in ("", "ai.onnx"):
            continue
        label = f"{node.op_type} node {node.name or '(unnamed)'!r}"
        try:
            schema = onnx.defs.get_schema(node.op_type, target, "")
        except onnx.defs.SchemaError:
            problems.append(f"{label}: {node.op_type} does not exist at opset {target}")
            continue
        for name in node.attributes:
            if name not in schema.attributes:
                problems.append(
                    f"{label}: attribute {name!r} does not exist at opset {target} "
                    f"({node.op_type}-{schema.since_version})"
                )
        for name, attribute in schema.attributes.items():
            if attribute.required and name not in node.attributes:
                problems.append(
                    f"{label}: {node.op_type}-{schema.since_version} requires attribute {name!r}"
                )
        inputs = list(node.inputs)
        while inputs and inputs[-1] is None:
            inputs.pop()
        if not schema.min_input <= len(inputs) <= schema.max_input:
            problems.append(
                f"{label}: {len(inputs)} inputs, but {node.op_type}-{schema.since_version} "
                f"takes {_range(schema.min_input, schema.max_input)}"
            )
        if not schema.min_output <= len(node.outputs) <= schema.max_output:
            problems.append(
                f"{label}: {len(node.outputs)} outputs, but {node.op_type}-"
                f"{schema.since_version} has {_range(schema.min_output, schema.max_output)}"
            )
    return problems


def explain_checker(message: str) -> str:
    """onnx's checker message in one line, naming the node first when the message does."""
    found = _NODE_IN_MESSAGE.search(message)
    detail = _NODE_IN_MESSAGE.sub("", " ".join(message.split()))
    detail = re.sub(r"^Inference error\(s\):[\s:]*", "", detail)
    detail = re.sub(r"^\[\w+\]\s*", "", detail).strip(" :")
    if "Inferred shape and existing shape differ" in detail:
        detail = f"at the target it computes another shape than the model declares ({detail})"
    if found:
        op, name = found.groups()
        return f"{op} node {name or '(unnamed)'!r}: {detail}"
    return detail


def _range(low: int, high: int) -> str:
    if low == high:
        return str(low)
    if high >= 2**31 - 1:
        return f"{low} or more"
    return f"{low} to {high}"
