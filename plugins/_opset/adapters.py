"""set_opset's own adapters: the default-domain nodes graphkit converts itself.

set_opset asks :func:`adapter_for` about every default-domain node. Where an
adapter is returned, the node is kept away from onnx's version converter and
rewritten by the adapter once the rest of the model is at the target opset.
Adapters cover what onnx's converter lacks (no adapter between two versions)
or gets wrong (an attribute the target does not know kept as is).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Protocol

from graphkit_plugins._opset import (
    adapters_attrs,
    adapters_pool,
    adapters_reduce,
    adapters_resize,
    adapters_shape,
    adapters_softmax,
    adapters_types,
)
from graphkit_plugins._opset.adapting import Rule

if TYPE_CHECKING:
    import onnx_ir as ir


class Adapter(Protocol):
    def rewrite(self, node: ir.Node, target: int) -> None:
        """Rewrite ``node`` in place (or replace it) into its form at opset ``target``."""


RULES: tuple[Rule, ...] = (
    *adapters_types.RULES,
    *adapters_shape.RULES,
    *adapters_reduce.RULES,
    *adapters_resize.RULES,
    *adapters_pool.RULES,
    *adapters_attrs.RULES,
    *adapters_softmax.RULES,
)


def adapter_for(op_type: str, since_version: int, target: int) -> Adapter | None:
    """The adapter graphkit uses for a default-domain node, or None for onnx's converter.

    Args:
        op_type: The node's op.
        since_version: The version of the op's schema at the model's opset.
        target: The opset the model is converted to.
    """
    for rule in RULES:
        if op_type in rule.ops and rule.applies(since_version, target):
            return _RuleAdapter(rule)
    if adapters_types.types_only_between(op_type, since_version, target):
        return _RuleAdapter(Rule(frozenset({op_type}), lambda s, t: True, adapters_types.keep_form))
    return None


@dataclasses.dataclass(frozen=True)
class _RuleAdapter:
    rule: Rule

    def rewrite(self, node: ir.Node, target: int) -> None:
        self.rule.rewrite(node, target)
