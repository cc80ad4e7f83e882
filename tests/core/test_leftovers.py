"""Nothing left behind: the next save removes a killed save's staging folder and unused data.

Only what graphkit itself wrote goes: a staging folder whose marker no save
holds locked, and data files that the replaced output named and that carry the
same save token. Look-alikes stay.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import graphkit
from graphkit import SaveOptions
from graphkit._modelio.leftovers import MARKER, TOKEN_ATTRIBUTE, Staging, token_of
from graphkit._modelio.proto import to_proto
from tests.large.builders import external_model, write_external
from tests.models import random_input, run

KILLED_SAVE = """
import os, signal, sys
import graphkit
import graphkit._modelio.save as save_module
from tests.large.builders import external_model
from tests.models import as_ir

write_staged = save_module._write_staged

def write_then_die(*args, **kwargs):
    written = write_staged(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # as if the machine lost power mid-save

save_module._write_staged = write_then_die
graphkit.save(as_ir(external_model()), sys.argv[1], graphkit.SaveOptions(external_data=True))
"""


def _xattrs_work(folder: Path) -> bool:
    probe = folder / "probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, TOKEN_ATTRIBUTE, b"x")
        return True
    except (OSError, AttributeError):
        return False
    finally:
        probe.unlink()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- staging folders -------------------------------------------------------------------------------


def test_a_killed_saves_staging_folder_is_removed_by_the_next_save(folder: Path) -> None:
    # setup: a save killed after writing its files into the staging folder
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", KILLED_SAVE, str(folder / "model.onnx")],
        cwd=root,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == -9
    [left] = _hidden(folder)
    assert left.startswith(".model.onnx.")
    assert sorted(p.name for p in (folder / left).iterdir()) == [
        MARKER,
        "model.onnx",
        "model.onnx.data",
    ]
    assert not (folder / "model.onnx").exists()
    # execute
    notes = graphkit.save(
        graphkit.load(write_external(external_model(), folder.parent / "src")),
        folder / "model.onnx",
    )
    # assert
    assert _hidden(folder) == []
    assert f"removed {left}/, left by a save of model.onnx that did not finish" in notes
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "model.onnx.data"]


def test_a_running_saves_staging_folder_stays(folder: Path) -> None:
    running = Staging(folder, "other.onnx")  # another save, still holding its lock
    try:
        (running.path / "other.onnx").write_bytes(b"half")
        notes = graphkit.save(graphkit.load(_source(folder.parent)), folder / "model.onnx")
        assert (running.path / "other.onnx").read_bytes() == b"half"
        assert not any(note.startswith("removed") for note in notes)
    finally:
        running.remove()


def test_look_alikes_of_staging_folders_stay(folder: Path) -> None:
    # setup: hidden folders and files named like staging folders, none of them graphkit's
    unmarked = folder / ".model.onnx.abcd1234"
    unmarked.mkdir()
    (unmarked / "notes.txt").write_text("mine")
    wrong_marker = folder / ".model.onnx.efgh5678"
    wrong_marker.mkdir()
    (wrong_marker / MARKER).write_text("something else\n")
    nested = folder / ".model.onnx.ijkl9012"
    (nested / "sub").mkdir(parents=True)
    (nested / MARKER).write_bytes(b"graphkit staging folder of a save of model.onnx\n")
    target = folder.parent / "elsewhere"
    target.mkdir()
    (target / MARKER).write_bytes(b"graphkit staging folder of a save of model.onnx\n")
    (folder / ".model.onnx.mnop3456").symlink_to(target, target_is_directory=True)
    (folder / ".model.onnx.qrst7890").write_text("a file, not a folder")
    other_output = folder / ".model.onnx.uvwx1234"  # a marker naming another output
    other_output.mkdir()
    (other_output / MARKER).write_bytes(b"graphkit staging folder of a save of other.onnx\n")
    before = _hidden(folder)
    # execute
    graphkit.save(graphkit.load(_source(folder.parent)), folder / "model.onnx")
    # assert
    assert _hidden(folder) == before
    assert (unmarked / "notes.txt").read_text() == "mine"
    assert (target / MARKER).exists()


# -- data files of an earlier layout ---------------------------------------------------------------


def _source(root: Path) -> Path:
    return write_external(external_model(), root / "src")


@pytest.fixture
def xattrs(folder: Path) -> None:
    if not _xattrs_work(folder):
        pytest.skip("the file system has no user extended attributes")


@pytest.mark.usefixtures("xattrs")
@pytest.mark.parametrize(
    ("first", "second", "removed"),
    [
        (
            SaveOptions(external_data=True, max_shard_bytes=2048),
            SaveOptions(external_data=True),
            [
                "model-00001-of-00002.onnx.data",
                "model-00002-of-00002.onnx.data",
            ],
        ),
        (SaveOptions(external_data=True), SaveOptions(external_data=False), ["model.onnx.data"]),
        (
            SaveOptions(external_data="weights.bin"),
            SaveOptions(external_data=True),
            ["weights.bin"],
        ),
    ],
    ids=["sharded-to-one-file", "external-to-inline", "renamed"],
)
def test_data_files_of_the_previous_layout_are_removed(
    folder: Path, first: SaveOptions, second: SaveOptions, removed: list[str]
) -> None:
    # setup
    out = folder / "model.onnx"
    graphkit.save(graphkit.load(_source(folder.parent)), out, first)
    old = sorted(p.name for p in folder.iterdir() if p.name != "model.onnx")
    assert old == sorted(removed)
    assert all(token_of(folder / name) == token_of(out) for name in old)
    # execute
    notes = graphkit.save(graphkit.load(_source(folder.parent)), out, second)
    # assert: only the new layout's files, and the model runs
    assert f"removed data files the previous model.onnx used: {', '.join(removed)}" in notes
    left = sorted(p.name for p in folder.iterdir())
    assert left == (["model.onnx", "model.onnx.data"] if second.external_data else ["model.onnx"])
    x = random_input((1, 8, 8, 3))
    np.testing.assert_allclose(
        run(out, {"input_1": x})["conv2d_6"],
        run(external_model(), {"input_1": x})["conv2d_6"],
        rtol=1e-6,
    )


@pytest.mark.usefixtures("xattrs")
def test_saving_over_its_own_source_in_a_new_layout_keeps_the_model_whole(folder: Path) -> None:
    out = folder / "model.onnx"
    graphkit.save(
        graphkit.load(_source(folder.parent)),
        out,
        SaveOptions(external_data=True, max_shard_bytes=2048),
    )
    model = graphkit.load(out)
    notes = graphkit.save(model, out, SaveOptions(external_data=False))
    assert any(note.startswith("removed data files the previous model.onnx used") for note in notes)
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx"]
    # the model in memory read the shards; it still has every weight
    x = random_input((1, 8, 8, 3))
    expected = run(external_model(), {"input_1": x})["conv2d_6"]
    np.testing.assert_allclose(
        run(to_proto(model), {"input_1": x})["conv2d_6"], expected, rtol=1e-6
    )


def test_data_graphkit_did_not_write_stays(folder: Path) -> None:
    # setup: the output and its data written by another tool, plus look-alike files
    out = write_external(external_model(), folder)
    (folder / "model.onnx.data.bak").write_bytes(b"backup")
    (folder / "model-00001-of-00002.onnx.data").write_bytes(b"someone's shard")
    # execute
    notes = graphkit.save(
        graphkit.load(_source(folder.parent)), out, SaveOptions(external_data=False)
    )
    # assert
    assert sorted(p.name for p in folder.iterdir()) == [
        "model-00001-of-00002.onnx.data",
        "model.onnx",
        "model.onnx.data",
        "model.onnx.data.bak",
    ]
    assert not any(note.startswith("removed") for note in notes)


@pytest.mark.usefixtures("xattrs")
def test_data_replaced_by_another_tool_stays_and_is_named(folder: Path) -> None:
    # setup: graphkit's output, whose data file another tool then rewrote as a new file
    out = folder / "model.onnx"
    graphkit.save(graphkit.load(_source(folder.parent)), out, SaveOptions(external_data=True))
    data = folder / "model.onnx.data"
    copy = data.read_bytes()
    data.unlink()
    data.write_bytes(copy)
    unrelated = folder / "unrelated.bin"
    unrelated.write_bytes(b"x")
    os.setxattr(unrelated, TOKEN_ATTRIBUTE, os.getxattr(out, TOKEN_ATTRIBUTE))
    # execute
    notes = graphkit.save(
        graphkit.load(_source(folder.parent)), out, SaveOptions(external_data=False)
    )
    # assert: nothing proves graphkit wrote the new data file; a stamped file never named stays too
    assert data.read_bytes() == copy
    assert unrelated.exists()
    assert (
        "data files the previous model.onnx used are left in place "
        "(graphkit cannot tell it wrote them): model.onnx.data"
    ) in notes


def test_another_models_output_in_the_folder_keeps_its_data(folder: Path) -> None:
    first = folder / "a.onnx"
    graphkit.save(graphkit.load(_source(folder.parent)), first, SaveOptions(external_data=True))
    graphkit.save(
        graphkit.load(_source(folder.parent)), folder / "b.onnx", SaveOptions(external_data=False)
    )
    assert (folder / "a.onnx.data").exists()
    weight = onnx.load(first, load_external_data=False).graph.initializer[0]
    assert weight.data_location == onnx.TensorProto.EXTERNAL
