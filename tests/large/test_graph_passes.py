"""Loading and the graph-only passes never read weights kept as external data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import pytest

import graphkit
from graphkit import ModelError, PassError
from graphkit._modelio.proto import call_on_graph, to_proto
from tests.large.builders import DATA_NAME, FileWatch, external_model, snapshot
from tests.models import random_input, run

#: The passes that only need the graph, with parameters that change the model.
GRAPH_PASSES: list[tuple[str, dict[str, Any]]] = [
    ("rename_io", {"inputs": {"input_1": "input"}, "outputs": {"conv2d_6": "output"}}),
    ("fix_dims", {"dims": {"unk__127": 1, "unk__128": 1}}),
    ("set_opset", {"version": 17}),
    ("set_metadata", {"producer": "graphkit-test", "metadata_props": {"k": "v"}}),
    ("infer_shapes", {"discard_existing": True}),
    ("cleanup", {}),
]


def _run(model: ir.Model, name: str, params: dict[str, Any]) -> ir.Model:
    pass_ = getattr(graphkit.passes, name)
    return pass_.run(model, pass_.validate(params)).model


def _check_graph(model: ir.Model) -> None:
    """The graph part of the ``check`` pass: onnx's full checker on the graph."""
    call_on_graph(
        model, lambda proto: onnx.checker.check_model(proto, full_check=True), rebuild=False
    )


def _external(model: ir.Model) -> list[str]:
    return sorted(
        v.name or ""
        for g in model.graphs()
        for v in g.initializers.values()
        if isinstance(v.const_value, ir.ExternalTensor)
    )


@pytest.mark.skipif(not FileWatch.available(), reason="needs Linux's inotify")
def test_loading_and_graph_passes_never_open_the_data_file(
    source: Path, in_other_dir: Path
) -> None:
    # setup
    watch = FileWatch(source.parent / DATA_NAME)
    try:
        # execute / assert: every step, with the data file there to be read
        model = graphkit.load(source)
        assert watch.events() == [], "load"
        for name, params in GRAPH_PASSES:
            model = _run(model, name, params)
            assert watch.events() == [], name
        _check_graph(model)
        assert watch.events() == [], "onnx's checker on the graph"
        _run(model, "check", {})
        assert watch.events() == [], "check, which looks at the data file's size"
        assert _external(model) == ["W", "gain"]

        # the watch does see the file being read: saving copies it
        graphkit.save(model, in_other_dir / "out" / "model.onnx")
        assert f"{DATA_NAME}: open" in watch.events()
    finally:
        watch.close()


def test_graph_passes_work_with_the_data_file_deleted(source: Path, in_other_dir: Path) -> None:
    # setup
    (source.parent / DATA_NAME).unlink()

    # execute
    model = graphkit.load(source)
    for name, params in GRAPH_PASSES:
        model = _run(model, name, params)
    _check_graph(model)

    # assert
    assert [v.name for v in model.graph.inputs] == ["input"]
    assert [str(v.shape) for v in model.graph.outputs] == ["[1,8,8,16]"]
    assert model.opset_imports[""] == 17
    assert _external(model) == ["W", "gain"], "weights stay external, in their own graphs"


def test_check_reports_the_missing_data_file(source: Path, in_other_dir: Path) -> None:
    (source.parent / DATA_NAME).unlink()
    model = graphkit.load(source)
    with pytest.raises(
        PassError, match=r"tensor 'W': external data file .*model\.onnx\.data is missing"
    ):
        _run(model, "check", {})


def test_saving_without_the_data_file_fails_cleanly(
    source: Path, tmp_path: Path, in_other_dir: Path
) -> None:
    # setup: an earlier output that must survive
    model = graphkit.load(source)
    out = tmp_path / "out"
    graphkit.save(model, out / "model.onnx")
    before = snapshot(out)
    (source.parent / DATA_NAME).unlink()

    # execute
    with pytest.raises(ModelError) as caught:
        graphkit.save(_run(model, "set_metadata", {"producer": "x"}), out / "model.onnx")

    # assert
    assert f"{source.parent / DATA_NAME} is missing" in str(caught.value)
    assert snapshot(out) == before, "no partial output, no staging folder left"


def test_saving_to_a_new_folder_without_the_data_file_creates_no_files(
    source: Path, tmp_path: Path
) -> None:
    (source.parent / DATA_NAME).unlink()
    model = graphkit.load(source)
    out = tmp_path / "new"
    out.mkdir()
    with pytest.raises(ModelError, match="is missing"):
        graphkit.save(model, out / "model.onnx")
    assert list(out.iterdir()) == []


def test_weights_of_subgraphs_go_back_where_they_were(source: Path, in_other_dir: Path) -> None:
    """Subgraph weights are lifted to main-graph inputs for onnx; the result keeps them in place."""
    model = _run(graphkit.load(source), "infer_shapes", {"discard_existing": True})
    [if_node] = [n for n in model.graph if n.op_type == "If"]
    then_branch = if_node.attributes["then_branch"].as_graph()
    assert list(then_branch.initializers) == ["gain"]
    assert list(model.graph.initializers) == ["W", "B", "limit"], "order kept too"
    assert [v.name for v in model.graph.inputs] == ["input_1"]


def test_graph_passes_keep_what_the_model_computes(source: Path, in_other_dir: Path) -> None:
    # setup
    reference = external_model()
    x = random_input((1, 8, 8, 3))

    # execute
    model = graphkit.load(source)
    for name, params in GRAPH_PASSES:
        model = _run(model, name, params)

    # assert: both branches of the If
    for scale in (1.0, -1.0):
        expected = run(reference, {"input_1": scale * x})["conv2d_6"]
        got = run(to_proto(model), {"input": scale * x})["output"]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_to_proto_reads_external_data_from_any_folder(source: Path, in_other_dir: Path) -> None:
    proto = to_proto(graphkit.load(source))
    expected = onnx.load(source, load_external_data=True)
    assert proto.graph.initializer[0].raw_data == expected.graph.initializer[0].raw_data
    assert not any(
        t.data_location == onnx.TensorProto.EXTERNAL
        for t in onnx.external_data_helper._get_all_tensors(proto)
    )
