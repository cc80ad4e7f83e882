"""Small models whose weights live in external data, and a watch on the files a process opens."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DATA_NAME = "model.onnx.data"


def external_model(
    size: int = 8, channels: int = 16, opset: int = 13, *, small_constant: bool = False
) -> onnx.ModelProto:
    """What tf2onnx makes of a Keras image model, with weights worth keeping outside.

    An NHWC input ``input_1`` [unk__127,size,size,3], a Conv with ``channels``
    filters and a Relu, then an If whose then-branch scales by its own weight
    ``gain`` (a subgraph initializer) and whose else-branch adds a Constant
    node's value; a Sigmoid output ``conv2d_6`` [unk__128,size,size,channels].
    ``W``, ``gain`` and ``shift`` (the Constant's value) are over 1 KiB, unless
    ``small_constant`` makes ``shift`` one value per channel.
    """
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((channels, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(channels).astype(np.float32)
    gain = rng.random((channels, size, size), dtype=np.float32) + 0.5
    shift_shape = (channels, 1, 1) if small_constant else (channels, size, size)
    shift = rng.standard_normal(shift_shape).astype(np.float32)
    shape = ["unk__127", channels, size, size]
    then_branch = helper.make_graph(
        [helper.make_node("Mul", ["relu", "gain"], ["scaled"])],
        "then",
        [],
        [helper.make_tensor_value_info("scaled", TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(gain, "gain")],
    )
    else_branch = helper.make_graph(
        [
            helper.make_node("Constant", [], ["shift"], value=numpy_helper.from_array(shift)),
            helper.make_node("Add", ["relu", "shift"], ["shifted"]),
        ],
        "else",
        [],
        [helper.make_tensor_value_info("shifted", TensorProto.FLOAT, shape)],
    )
    nodes = [
        helper.make_node("Transpose", ["input_1"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "W", "B"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("ReduceSum", ["relu"], ["total"], keepdims=0),
        helper.make_node("Greater", ["total", "limit"], ["cond"]),
        helper.make_node(
            "If", ["cond"], ["branched"], then_branch=then_branch, else_branch=else_branch
        ),
        helper.make_node("Transpose", ["branched"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Sigmoid", ["nhwc"], ["conv2d_6"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tf2onnx",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__127", size, size, 3])],
        [
            helper.make_tensor_value_info(
                "conv2d_6", TensorProto.FLOAT, ["unk__128", size, size, channels]
            )
        ],
        [
            numpy_helper.from_array(weight, "W"),
            numpy_helper.from_array(bias, "B"),
            numpy_helper.from_array(np.array(size * size * channels, np.float32), "limit"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8, producer_name="tf2onnx"
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def write_external(
    model: onnx.ModelProto, folder: Path, *, threshold: int = 1024, attributes: bool = False
) -> Path:
    """Save ``model`` as ``folder/model.onnx`` with tensors of ``threshold`` bytes or more outside.

    All go to one file, ``model.onnx.data``; Constant nodes' values too with ``attributes``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    model = onnx.ModelProto.FromString(model.SerializeToString())
    onnx.external_data_helper.convert_model_to_external_data(
        model,
        all_tensors_to_one_file=True,
        location=DATA_NAME,
        size_threshold=threshold,
        convert_attribute=attributes,
    )
    onnx.save_model(model, path)
    return path


def data_files(folder: Path) -> list[str]:
    """Every file in ``folder`` but ONNX model files, sorted."""
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".onnx")


def snapshot(folder: Path) -> dict[str, bytes]:
    """The name and bytes of every entry of ``folder``; folders show as ``b'<dir>'``."""
    return {p.name: b"<dir>" if p.is_dir() else p.read_bytes() for p in sorted(folder.iterdir())}


class FileWatch:
    """Reports every open and read of some files by any process, through Linux's inotify.

    mmap needs an open, so memory-mapping a file is seen too; ``stat`` is not.
    """

    IN_ACCESS = 0x1
    IN_OPEN = 0x20

    def __init__(self, *paths: Path) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._names: dict[int, str] = {}
        for path in paths:
            watch = self._libc.inotify_add_watch(
                self._fd, os.fsencode(path), self.IN_ACCESS | self.IN_OPEN
            )
            if watch < 0:
                raise OSError(ctypes.get_errno(), f"cannot watch {path}")
            self._names[watch] = Path(path).name

    def events(self) -> list[str]:
        """``'model.onnx.data: open'`` and the like, since the last call."""
        found = []
        while True:
            try:
                buffer = os.read(self._fd, 65536)
            except BlockingIOError:
                return found
            offset = 0
            while offset < len(buffer):
                watch, mask, _, length = struct.unpack_from("iIII", buffer, offset)
                offset += 16 + length
                kind = (
                    "open"
                    if mask & self.IN_OPEN
                    else "read"
                    if mask & self.IN_ACCESS
                    else hex(mask)
                )
                found.append(f"{self._names.get(watch, '?')}: {kind}")

    def close(self) -> None:
        os.close(self._fd)

    @staticmethod
    def available() -> bool:
        return sys.platform.startswith("linux")
