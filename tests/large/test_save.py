"""Saving: external data streamed file to file, sharding, atomic replacement, the 2 GiB switch."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest

import graphkit
import graphkit._modelio.tensors as tensors
from graphkit import ModelError, SaveOptions
from graphkit._modelio.proto import to_proto
from tests.large.builders import (
    DATA_NAME,
    data_files,
    external_model,
    snapshot,
    write_external,
)
from tests.models import as_ir, random_input, run


def _locations(path: Path) -> dict[str, str]:
    """Tensor name to external data location, for every tensor of the saved model."""
    proto = onnx.load(path, load_external_data=False)
    found = {}
    for tensor in onnx.external_data_helper._get_all_tensors(proto):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            found[tensor.name] = {e.key: e.value for e in tensor.external_data}["location"]
    return found


def _outputs(model: onnx.ModelProto | Path) -> np.ndarray:
    """``conv2d_6`` for an input that takes each branch of the If."""
    x = random_input((1, 8, 8, 3))
    return np.stack([run(model, {"input_1": s * x})["conv2d_6"] for s in (1.0, -1.0)])


def _weights(model: ir.Model) -> dict[str, np.ndarray]:
    return {
        v.name or "": np.array(v.const_value.numpy())
        for g in model.graphs()
        for v in g.initializers.values()
        if v.const_value is not None
    }


def test_external_data_is_copied_to_the_output_folder(
    source: Path, tmp_path: Path, in_other_dir: Path
) -> None:
    # setup
    model = graphkit.load(source)
    out = tmp_path / "out" / "model.onnx"

    # execute
    notes = graphkit.save(model, out)

    # assert
    assert notes == ["weights kept as external data in model.onnx.data"]
    assert sorted(os.listdir(out.parent)) == ["model.onnx", DATA_NAME]
    assert _locations(out) == {"W": DATA_NAME, "gain": DATA_NAME}
    np.testing.assert_allclose(_outputs(out), _outputs(external_model()), rtol=1e-6)


def test_external_data_is_not_read_into_memory(source: Path, tmp_path: Path) -> None:
    """The weights are copied file to file: never memory-mapped, never in a Python buffer."""
    # setup: a weight much larger than anything else the save allocates
    big = external_model(channels=1024, small_constant=True)  # W 108 KiB, gain 256 KiB
    model = graphkit.load(write_external(big, tmp_path / "big"))
    tensors = [
        v.const_value
        for g in model.graphs()
        for v in g.initializers.values()
        if isinstance(v.const_value, ir.ExternalTensor)
    ]

    # execute
    tracemalloc.start()
    try:
        graphkit.save(model, tmp_path / "out" / "model.onnx")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # assert
    assert all(t.raw is None for t in tensors), "no tensor was memory-mapped"
    assert peak < 64 * 1024, f"{peak} bytes allocated while saving"
    assert (tmp_path / "out" / DATA_NAME).stat().st_size == sum(t.nbytes for t in tensors)


def test_a_recipe_copies_the_weights_to_its_output(
    source: Path, tmp_path: Path, in_other_dir: Path
) -> None:
    # setup
    lines: list[str] = []
    out = tmp_path / "out" / "model.onnx"

    # execute
    graphkit.apply(
        {"version": 1, "passes": [{"fix_dims": {"dims": {"unk__127": 1}}}, "check"]},
        source=source,
        output=out,
        echo=lines.append,
    )

    # assert
    assert "  note: weights kept as external data in model.onnx.data" in lines
    assert data_files(out.parent) == [DATA_NAME]
    assert _locations(out) == {"W": DATA_NAME, "gain": DATA_NAME}
    np.testing.assert_allclose(_outputs(out), _outputs(external_model()), rtol=1e-6)


def test_a_named_data_file(source: Path, tmp_path: Path, in_other_dir: Path) -> None:
    out = tmp_path / "out" / "model.onnx"
    graphkit.save(graphkit.load(source), out, SaveOptions(external_data="weights.bin"))
    assert sorted(os.listdir(out.parent)) == ["model.onnx", "weights.bin"]
    assert set(_locations(out).values()) == {"weights.bin"}


def test_inline_when_asked(source: Path, tmp_path: Path, in_other_dir: Path) -> None:
    # setup
    model = graphkit.load(source)
    out = tmp_path / "out" / "model.onnx"

    # execute
    graphkit.save(model, out, SaveOptions(external_data=False))

    # assert
    assert os.listdir(out.parent) == ["model.onnx"]
    assert _locations(out) == {}
    assert isinstance(model.graph.initializers["W"].const_value, ir.ExternalTensor), (
        "the model still reads its weights from the source"
    )
    np.testing.assert_allclose(_outputs(out), _outputs(external_model()), rtol=1e-6)


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (1024, ["W", "gain", "shift"]),  # W is 1728 bytes, gain and shift 4096
        (1728, ["W", "gain", "shift"]),  # a tensor of exactly the threshold goes out
        (1729, ["gain", "shift"]),
        (4097, []),
    ],
)
def test_threshold_bytes_keeps_smaller_tensors_inline(
    threshold: int, expected: list[str], tmp_path: Path
) -> None:
    # setup: Constant nodes' values in external data too
    model = graphkit.load(write_external(external_model(), tmp_path / "src", attributes=True))
    out = tmp_path / "out" / "model.onnx"

    # execute
    graphkit.save(model, out, SaveOptions(external_data=True, threshold_bytes=threshold))

    # assert: Constant nodes' values are always written inline
    assert sorted(_locations(out)) == [n for n in expected if n != "shift"]
    np.testing.assert_allclose(_outputs(out), _outputs(external_model()), rtol=1e-6)


def test_shards(tmp_path: Path, in_other_dir: Path) -> None:
    # setup: W 1728 bytes, gain 4096 bytes
    model = graphkit.load(write_external(external_model(), tmp_path / "src"))
    out = tmp_path / "out" / "model.onnx"

    # execute
    notes = graphkit.save(model, out, SaveOptions(external_data=True, max_shard_bytes=2048))

    # assert
    shards = ["model-00001-of-00002.onnx.data", "model-00002-of-00002.onnx.data"]
    assert data_files(out.parent) == shards
    assert _locations(out) == {"W": shards[0], "gain": shards[1]}
    assert notes == [
        "external data split into 2 files",
        "1 tensors are larger than save.max_shard_bytes (2048) and have a file each: 'gain'",
    ]
    np.testing.assert_allclose(_outputs(out), _outputs(external_model()), rtol=1e-6)


def test_shards_under_the_limit(tmp_path: Path) -> None:
    model = graphkit.load(write_external(external_model(), tmp_path / "src"))
    out = tmp_path / "out" / "model.onnx"
    graphkit.save(model, out, SaveOptions(max_shard_bytes=4096))
    sizes = [(out.parent / name).stat().st_size for name in data_files(out.parent)]
    assert sizes == [1728, 4096]


def test_resaving_shards_replaces_them(tmp_path: Path) -> None:
    model = graphkit.load(write_external(external_model(), tmp_path / "src"))
    out = tmp_path / "out" / "model.onnx"
    options = SaveOptions(max_shard_bytes=2048)
    graphkit.save(model, out, options)
    graphkit.save(model, out, options)
    assert len(data_files(out.parent)) == 2
    np.testing.assert_allclose(_outputs(out), _outputs(external_model()), rtol=1e-6)


def test_an_existing_data_file_is_replaced_not_appended_to(
    source: Path, tmp_path: Path, in_other_dir: Path
) -> None:
    # setup: a larger data file of the same name, and a file that is not ours
    out = tmp_path / "out"
    out.mkdir()
    (out / DATA_NAME).write_bytes(b"\xff" * 100_000)
    (out / "notes.txt").write_text("kept")

    # execute
    graphkit.save(graphkit.load(source), out / "model.onnx")

    # assert
    assert (out / DATA_NAME).read_bytes() == (source.parent / DATA_NAME).read_bytes()
    assert (out / "notes.txt").read_text() == "kept"


def test_a_failed_save_leaves_the_existing_output_unchanged(
    source: Path, tmp_path: Path, in_other_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # setup: an earlier output, and a disk that fills up halfway through the data
    out = tmp_path / "out"
    model = graphkit.load(source)
    graphkit.save(model, out / "model.onnx")
    before = snapshot(out)
    real = ir.ExternalTensor.tofile

    def disk_full(self: ir.ExternalTensor, file) -> None:  # type: ignore[no-untyped-def]
        if self.name == "gain":
            file.write(b"\0" * 100)
            raise OSError(28, "No space left on device")
        real(self, file)

    monkeypatch.setattr(ir.ExternalTensor, "tofile", disk_full)

    # execute
    with pytest.raises(ModelError, match="No space left on device"):
        graphkit.save(_renamed(model), out / "model.onnx")

    # assert
    assert snapshot(out) == before


def _renamed(model: ir.Model) -> ir.Model:
    return graphkit.passes.rename_io(model, inputs={"input_1": "input"})


def test_the_callers_in_memory_weights_stay(tmp_path: Path, in_other_dir: Path) -> None:
    """onnx.save(save_as_external_data=True) empties the tensors it writes out; save must not."""
    # setup
    model = as_ir(external_model())
    before = _weights(model)

    # execute
    graphkit.save(model, tmp_path / "out" / "model.onnx", SaveOptions(external_data=True))

    # assert
    assert not any(
        isinstance(v.const_value, ir.ExternalTensor)
        for g in model.graphs()
        for v in g.initializers.values()
    )
    after = _weights(model)
    assert after.keys() == before.keys()
    for name, array in before.items():
        np.testing.assert_array_equal(after[name], array)


def test_saving_over_the_source_keeps_the_model_readable(source: Path, in_other_dir: Path) -> None:
    # setup: a save that lays the data file out differently (B goes out too); the
    # weights are not read before, so no memory map keeps the old file's bytes alive
    model = graphkit.load(source)
    before = _weights(as_ir(external_model()))

    # execute
    graphkit.save(model, source, SaveOptions(threshold_bytes=16))

    # assert: the in-memory model reads the new file, at the new offsets
    for name, array in _weights(model).items():
        np.testing.assert_array_equal(array, before[name], err_msg=name)
    assert sorted(_locations(source)) == ["B", "W", "gain"]
    assert data_files(source.parent) == [DATA_NAME]
    np.testing.assert_allclose(_outputs(to_proto(model)), _outputs(external_model()), rtol=1e-6)


def test_data_name_must_be_a_plain_file_name() -> None:
    with pytest.raises(ValueError, match="is not a plain file name"):
        SaveOptions(external_data="../weights.bin")
    with pytest.raises(ValueError, match="external_data is false"):
        SaveOptions(external_data=False, max_shard_bytes=1000)


class TestTheTwoGibLimit:
    """Shrinks the limit so that small models cross it; the counting is what is tested."""

    @pytest.fixture(autouse=True)
    def _small_limit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # external_model(): W 1728 bytes, gain 4096 (in the If), shift 4096 (a Constant)
        monkeypatch.setattr(tensors, "PROTOBUF_LIMIT", 9000)

    def test_a_model_past_the_limit_gets_external_data(self, tmp_path: Path) -> None:
        # setup: weights in memory, 9996 bytes of tensors in all
        model = as_ir(external_model())
        out = tmp_path / "model.onnx"

        # execute
        notes = graphkit.save(model, out)

        # assert
        assert notes == [
            "tensors of 0.00 GiB pass protobuf's 2 GiB limit; saved as external data in "
            "model.onnx.data"
        ]
        assert sorted(_locations(out)) == ["W", "gain"]
        np.testing.assert_allclose(_outputs(out), _outputs(external_model()), rtol=1e-6)

    @pytest.mark.parametrize("left_out", ["subgraph weight", "Constant value"])
    def test_every_serialised_tensor_counts(self, left_out: str, tmp_path: Path) -> None:
        """Without either the If's weight or the Constant's value, the model stays under."""
        proto = external_model()
        branch = "then_branch" if left_out == "subgraph weight" else "else_branch"
        [if_node] = [n for n in proto.graph.node if n.op_type == "If"]
        [attribute] = [a for a in if_node.attribute if a.name == branch]
        tensor = (
            attribute.g.initializer[0]
            if left_out == "subgraph weight"
            else attribute.g.node[0].attribute[0].t
        )
        tensor.CopyFrom(onnx.numpy_helper.from_array(np.ones((16, 1, 1), np.float32), tensor.name))
        notes = graphkit.save(as_ir(proto), tmp_path / "model.onnx")
        assert notes == []
        assert os.listdir(tmp_path) == ["model.onnx"]

    def test_inline_only_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(
            ModelError, match=r"over protobuf's 2 GiB limit, and save\.external_data is false"
        ):
            graphkit.save(
                as_ir(external_model()), tmp_path / "model.onnx", SaveOptions(external_data=False)
            )
        assert os.listdir(tmp_path) == []

    def test_what_must_stay_inline_is_checked_too(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(tensors, "PROTOBUF_LIMIT", 4000)
        with pytest.raises(ModelError, match="Constant-node values"):
            graphkit.save(as_ir(external_model()), tmp_path / "model.onnx")
        assert os.listdir(tmp_path) == []

    def test_the_runner_prints_the_note(self, tmp_path: Path) -> None:
        # setup
        source = tmp_path / "in.onnx"
        onnx.save(external_model(), source)
        lines: list[str] = []

        # execute
        graphkit.apply(
            {"version": 1, "passes": ["cleanup"]},
            source=source,
            output=tmp_path / "out" / "model.onnx",
            echo=lines.append,
        )

        # assert
        assert (
            "  note: tensors of 0.00 GiB pass protobuf's 2 GiB limit; "
            "saved as external data in model.onnx.data" in lines
        )
        assert data_files(tmp_path / "out") == [DATA_NAME]


def test_the_sources_data_file_is_never_replaced(tmp_path: Path, in_other_dir: Path) -> None:
    """A source may keep its weights in a file named like the output's data: out.onnx.data."""
    # setup
    source = tmp_path / "m.onnx"
    write_external(external_model(), tmp_path)  # tmp_path/model.onnx + model.onnx.data
    (tmp_path / "model.onnx").rename(source)
    before = snapshot(tmp_path)
    model = graphkit.load(source)

    # execute: the output model.onnx would write its data to model.onnx.data
    with pytest.raises(ModelError, match=r"would replace .*model\.onnx\.data, from which"):
        graphkit.save(model, tmp_path / "model.onnx")

    # assert
    assert snapshot(tmp_path) == before
    graphkit.save(model, tmp_path / "model.onnx", SaveOptions(external_data="model.weights"))
    np.testing.assert_allclose(_outputs(source), _outputs(external_model()), rtol=1e-6)


@pytest.mark.parametrize("kind", ["fifo", "link to a fifo", "folder"])
def test_an_output_that_is_not_a_regular_file_is_refused(kind: str, tmp_path: Path) -> None:
    # setup
    out = tmp_path / "out.onnx"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "link to a fifo":
        os.mkfifo(tmp_path / "pipe")
        out.symlink_to(tmp_path / "pipe")
    else:
        out.mkdir()
    before = {p.name: p.lstat().st_mode for p in tmp_path.iterdir()}

    # execute / assert
    with pytest.raises(ModelError, match="exists and is"):
        graphkit.save(as_ir(external_model()), out)
    assert {p.name: p.lstat().st_mode for p in tmp_path.iterdir()} == before


def test_a_link_to_a_file_is_replaced_not_written_through(tmp_path: Path) -> None:
    # setup
    (tmp_path / "elsewhere.onnx").write_bytes(b"kept")
    out = tmp_path / "out.onnx"
    out.symlink_to(tmp_path / "elsewhere.onnx")

    # execute
    graphkit.save(as_ir(external_model()), out)

    # assert
    assert not out.is_symlink()
    assert (tmp_path / "elsewhere.onnx").read_bytes() == b"kept"
    np.testing.assert_allclose(_outputs(out), _outputs(external_model()), rtol=1e-6)


def test_a_data_file_that_is_a_folder_is_refused(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / DATA_NAME).mkdir(parents=True)
    with pytest.raises(ModelError, match=r"model\.onnx\.data: exists and is a folder"):
        graphkit.save(graphkit.load(source), out / "model.onnx")
    assert os.listdir(out) == [DATA_NAME]
