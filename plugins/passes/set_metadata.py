"""The ``set_metadata`` pass: doc string, producer and metadata properties."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from graphkit import Params, Pass, PassResult, graph_pass, hookimpl

if TYPE_CHECKING:
    import onnx_ir as ir


class SetMetadataParams(Params):
    doc_string: str | None = Field(None, description="The model's doc string.")
    producer: str | None = Field(None, description="producer_name: the tool that made the model.")
    producer_version: str | None = Field(None, description="producer_version.")
    domain: str | None = Field(None, description="The model's domain, in reverse-DNS form.")
    model_version: int | None = Field(None, ge=0, description="The model's own version number.")
    metadata_props: dict[str, str | None] = Field(
        default_factory=dict,
        description="Entries of metadata_props to set; a null value removes the key.",
    )


@graph_pass("set_metadata", SetMetadataParams)
def set_metadata(model: ir.Model, params: SetMetadataParams) -> PassResult:
    """Set the model's doc string, producer, domain, version and metadata_props."""
    before = _state(model)
    fields = {
        "doc_string": params.doc_string,
        "producer_name": params.producer,
        "producer_version": params.producer_version,
        "domain": params.domain,
        "model_version": params.model_version,
    }
    for attribute, value in fields.items():
        if value is not None:
            setattr(model, attribute, value)
    for key, value in params.metadata_props.items():
        if value is None:
            model.metadata_props.pop(key, None)
        else:
            model.metadata_props[key] = value
    return PassResult(model, modified=_state(model) != before)


def _state(model: ir.Model) -> tuple[object, ...]:
    return (
        model.doc_string,
        model.producer_name,
        model.producer_version,
        model.domain,
        model.model_version,
        dict(model.metadata_props),
    )


@hookimpl
def graphkit_passes() -> list[Pass]:
    return [set_metadata]
