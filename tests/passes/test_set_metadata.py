"""set_metadata: doc string, producer, domain, version, metadata_props."""

from __future__ import annotations

import graphkit
from graphkit._modelio.proto import to_proto
from tests.models import as_ir, tf2onnx_like

set_metadata = graphkit.passes.set_metadata


def test_sets_fields_and_props() -> None:
    source = tf2onnx_like()
    source.metadata_props.add(key="old", value="x")
    model = set_metadata(
        as_ir(source),
        doc_string="Signature cleaning.",
        producer="graphkit",
        producer_version="0.1",
        domain="ai.example",
        model_version=3,
        metadata_props={"license": "MIT", "old": None},
    )
    proto = to_proto(model)
    assert (proto.doc_string, proto.producer_name, proto.producer_version) == (
        "Signature cleaning.",
        "graphkit",
        "0.1",
    )
    assert (proto.domain, proto.model_version) == ("ai.example", 3)
    assert {p.key: p.value for p in proto.metadata_props} == {"license": "MIT"}


def test_fields_not_given_are_kept() -> None:
    model = set_metadata(as_ir(tf2onnx_like()), doc_string="d")
    assert model.producer_name == "tf2onnx"


def test_setting_the_same_values_is_no_change() -> None:
    model = set_metadata(as_ir(tf2onnx_like()), producer="x")
    result = set_metadata.run(model, set_metadata.validate({"producer": "x"}))
    assert result.modified is False
