"""A model's tensors: how large they are, which are kept as external data, and reading those in.

The in-memory model is an ``onnx_ir.Model``: tensors stored as external data
stay on disk (memory-mapped when read), so graph-only surgery on a model of
many GiB never reads its weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator

import onnx_ir as ir

#: Protobuf cannot serialise a message of 2 GiB or more; keep a margin for the graph itself.
PROTOBUF_LIMIT = 2**31 - 64 * 2**20


@dataclasses.dataclass
class TensorSizes:
    """What a model's tensors add to its serialised size."""

    initializers: list[ir.TensorProtocol]
    attributes: int
    has_external: bool

    @classmethod
    def of(cls, model: ir.Model) -> TensorSizes:
        initializers = [
            v.const_value
            for g in model.graphs()
            for v in g.initializers.values()
            if v.const_value is not None
        ]
        attributes = sum(
            t.nbytes
            for _, attribute in tensor_attributes(model)
            for t in attribute_tensors(attribute)
        )
        has_external = any(isinstance(t, ir.ExternalTensor) for t in initializers)
        return cls(initializers, attributes, has_external)

    @property
    def total(self) -> int:
        return self.attributes + sum(t.nbytes for t in self.initializers)

    def below(self, threshold: int) -> int:
        return sum(t.nbytes for t in self.initializers if t.nbytes < threshold)


def tensor_bytes(model: ir.Model) -> int:
    """How many bytes of tensors ``model`` holds, in every graph, wherever they are kept.

    This is what its weights would add to a model file without external
    data: initializers of the main graph and of subgraphs, and tensor-valued
    attributes such as Constant nodes' values.
    """
    return TensorSizes.of(model).total


def gib(count: int) -> str:
    return f"{count / 2**30:.2f} GiB"


def missing_external_data(model: ir.Model) -> str | None:
    """Describe the first external tensor whose file is missing or too short."""
    sizes: dict[str, int] = {}
    for tensor in external_tensors(model):
        path = tensor.path
        if path not in sizes:
            try:
                sizes[path] = os.path.getsize(path)
            except OSError:
                return f"tensor {tensor.name!r}: external data file {path} is missing"
        end = (tensor.offset or 0) + (tensor.length if tensor.length is not None else tensor.nbytes)
        if end > sizes[path]:
            return (
                f"tensor {tensor.name!r}: needs bytes up to {end} of {path}, "
                f"which has only {sizes[path]}"
            )
    return None


def external_tensors(model: ir.Model) -> Iterator[ir.ExternalTensor]:
    for graph in model.graphs():
        for value in graph.initializers.values():
            if isinstance(value.const_value, ir.ExternalTensor):
                yield value.const_value
    for _, attribute in tensor_attributes(model):
        for tensor in attribute_tensors(attribute):
            if isinstance(tensor, ir.ExternalTensor):
                yield tensor


def tensor_attributes(model: ir.Model) -> Iterator[tuple[ir.Node, ir.Attr]]:
    """Every tensor-valued node attribute (Constant values, say) in all graphs and functions."""
    roots: list[ir.Graph | ir.Function] = [model.graph, *model.functions.values()]
    for root in roots:
        for node in ir.traversal.RecursiveGraphIterator(root):
            for attribute in node.attributes.values():
                if attribute.is_ref():
                    continue
                if attribute.type in (ir.AttributeType.TENSOR, ir.AttributeType.TENSORS):
                    yield node, attribute


def attribute_tensors(attribute: ir.Attr) -> list[ir.TensorProtocol]:
    if attribute.value is None:
        return []
    if attribute.type == ir.AttributeType.TENSOR:
        return [attribute.value]
    return list(attribute.value)


def in_memory(tensor: ir.TensorProtocol) -> ir.TensorProtocol:
    """``tensor``, or for an external one a tensor over its memory-mapped bytes."""
    if not isinstance(tensor, ir.ExternalTensor):
        return tensor
    return ir.Tensor(tensor.numpy(), dtype=tensor.dtype, name=tensor.name)


@contextlib.contextmanager
def attributes_in_memory(model: ir.Model) -> Iterator[dict[tuple[ir.Node, str], ir.Attr]]:
    """Swap attributes holding external tensors for in-memory ones while the block runs.

    ir writes only initializers to external data; a Constant node's value is
    written inline, so it must be read. Yields the in-memory attributes.
    """
    swapped: dict[tuple[ir.Node, str], tuple[ir.Attr, ir.Attr]] = {}
    try:
        for node, attribute in list(tensor_attributes(model)):
            tensors = attribute_tensors(attribute)
            if not any(isinstance(t, ir.ExternalTensor) for t in tensors):
                continue
            loaded = [in_memory(t) for t in tensors]
            value = loaded[0] if attribute.type == ir.AttributeType.TENSOR else loaded
            replacement = ir.Attr(
                attribute.name, attribute.type, value, doc_string=attribute.doc_string
            )
            swapped[(node, attribute.name)] = (attribute, replacement)
            node.attributes[attribute.name] = replacement
        yield {key: replacement for key, (_, replacement) in swapped.items()}
    finally:
        for (node, name), (original, _) in swapped.items():
            node.attributes[name] = original
