"""An installed third-party plugin: one pass, found through the ``graphkit`` entry-point group."""

from __future__ import annotations

from pydantic import Field

import graphkit


class StampParams(graphkit.Params):
    key: str = Field("stamped_by", description="The metadata_props key to set.")
    value: str = Field("graphkit-example-plugin", description="The value to set it to.")


@graphkit.graph_pass("stamp", StampParams)
def stamp(model, params: StampParams) -> graphkit.PassResult:
    """Record a key and value in the model's metadata_props."""
    changed = model.metadata_props.get(params.key) != params.value
    model.metadata_props[params.key] = params.value
    return graphkit.PassResult(model, modified=changed)


@graphkit.hookimpl
def graphkit_passes() -> list[graphkit.Pass]:
    return [stamp]
