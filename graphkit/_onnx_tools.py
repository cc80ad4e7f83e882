"""C++ tools (onnx's shape inference, checker and version converter; onnxsim) in a child process.

On some invalid models they do not raise but crash the process outright, a
segfault no ``except`` can catch: in onnx 1.23 the converter does so on an
``Unsqueeze`` whose ``axes`` is an int instead of ints (opset 11 to 18), and
both the converter and shape inference on a ``RegexFullMatch`` whose input
name is empty. A model downloaded from anywhere must not take graphkit down
with it, so these calls go to one long-lived helper process, started on first
use and started again after a crash. Only the graph travels (weights are held
back by :func:`graphkit._modelio.proto.call_on_graph`), so the round trip is cheap.

onnxsim has a helper of its own: it can then run beside onnx's tools (simplify
runs onnxslim and checks its result while onnxsim works), and its import, over
a second, can start early (:func:`prestart`) and overlap the source's import.

Errors the tools raise come back as the same exception types, so callers
catch what they caught before; a crash becomes :class:`ToolCrashed`.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import struct
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx

_HEADER = struct.Struct("<IQ")  # JSON length, payload length

# The helper's own program. It runs with ``-I`` (no current folder on sys.path,
# no PYTHON* variables), so a file named onnx.py where graphkit is run cannot
# stand in for onnx; the parent's sys.path is handed over instead.
_CHILD = r"""
import importlib, json, os, struct, sys
sys.path[:0] = json.loads(sys.argv[1])


def load(name):
    # onnxsim 0.8 imports torch when it is imported (over a second), for training
    # and export helpers; simplify never uses torch, so the import is kept out.
    # A release that cannot be imported without torch gets it after all.
    blocked = "torch" not in sys.modules
    if blocked:
        sys.modules["torch"] = None
    try:
        return importlib.import_module(name)
    except ImportError:
        if not blocked:
            raise
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]
        del sys.modules["torch"]
        blocked = False
        return importlib.import_module(name)
    finally:
        if blocked:
            del sys.modules["torch"]


# Modules to import before the first request; one that fails is imported again,
# and fails in one line, when a request needs it.
for name in json.loads(sys.argv[2]):
    try:
        load(name)
    except Exception:
        pass
import onnx, onnx.checker, onnx.shape_inference, onnx.version_converter

header = struct.Struct("<IQ")
# Replies go on a private copy of stdout; anything the C++ code prints lands on stderr.
replies = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
requests = sys.stdin.buffer


def read(count):
    data = requests.read(count)
    if len(data) != count:
        sys.exit(0)  # the parent is gone
    return data


def run(tool, options, model):
    if tool == "infer_shapes":
        return onnx.shape_inference.infer_shapes(model, **options).SerializeToString()
    if tool == "check_model":
        onnx.checker.check_model(model, **options)
        return b""
    if tool == "convert_version":
        return onnx.version_converter.convert_version(model, options["target"]).SerializeToString()
    if tool == "onnxsim":
        simplified, ok = load("onnxsim").simplify(model, **options)
        if not ok:
            raise ValueError("onnxsim's own check found outputs that differ")
        return simplified.SerializeToString()
    raise ValueError(f"unknown tool {tool!r}")


while True:
    size, payload_size = header.unpack(read(header.size))
    request = json.loads(read(size))
    model = onnx.ModelProto()
    try:
        model.ParseFromString(read(payload_size))
        payload = run(request["tool"], request["options"], model)
        reply = {"ok": True}
    except Exception as error:
        payload = b""
        reply = {"ok": False, "type": type(error).__name__, "message": str(error)}
    data = json.dumps(reply).encode()
    replies.write(header.pack(len(data), len(payload)) + data + payload)
    replies.flush()
"""


def _error_type(name: str) -> type[Exception]:
    """The exception type a tool raised, rebuilt in the parent by name."""
    import onnx

    known: dict[str, type[Exception]] = {
        "InferenceError": onnx.shape_inference.InferenceError,
        "ValidationError": onnx.checker.ValidationError,
        "ConvertError": RuntimeError,
        "RuntimeError": RuntimeError,
        "IndexError": IndexError,
        "KeyError": KeyError,
        "ValueError": ValueError,
        "TypeError": TypeError,
    }
    return known.get(name, RuntimeError)


_TOOL_NAMES = {
    "infer_shapes": "shape inference",
    "check_model": "checker",
    "convert_version": "version converter",
    "onnxsim": "onnxsim",
}


class ToolCrashed(Exception):
    """The helper process died while an onnx tool ran: the tool crashed on this model."""

    def __init__(self, tool: str, returncode: int | None) -> None:
        self.tool = tool
        self.returncode = returncode
        self.how = _describe(returncode)  # "SIGSEGV", "exit code 1"
        super().__init__(f"onnx's {_TOOL_NAMES.get(tool, tool)} crashed ({_describe(returncode)})")


def prestart(*tools: str) -> None:
    """Start the helpers for ``tools`` now (onnx's tools when none are named).

    Their start-up (importing onnx, or onnxsim) then overlaps with other work,
    such as the source's import, instead of delaying the first call. This
    module imports onnx only when a tool is called, so the helpers can start
    before the caller imports onnx itself.
    """
    for worker in {_worker(tool) for tool in tools or ("check_model",)}:
        worker.start()


def infer_shapes(proto: onnx.ModelProto, **options: Any) -> onnx.ModelProto:
    """``onnx.shape_inference.infer_shapes(proto, **options)``, in the helper process."""
    return _parse(_TOOLS.call("infer_shapes", options, proto))


def check_model(proto: onnx.ModelProto, **options: Any) -> None:
    """``onnx.checker.check_model(proto, **options)``, in the helper process."""
    _TOOLS.call("check_model", options, proto)


def convert_version(proto: onnx.ModelProto, target: int) -> onnx.ModelProto:
    """``onnx.version_converter.convert_version(proto, target)``, in the helper process."""
    return _parse(_TOOLS.call("convert_version", {"target": target}, proto))


def onnxsim_simplify(proto: onnx.ModelProto, **options: Any) -> onnx.ModelProto:
    """``onnxsim.simplify(proto, **options)``'s model, in onnxsim's helper process.

    onnxsim's C++ code aborts the process on some valid models (a MatMul of
    two 1-D tensors, a Shape whose start is past its end).
    """
    return _parse(_ONNXSIM.call("onnxsim", options, proto))


def _worker(tool: str) -> _Worker:
    if tool not in _TOOL_NAMES:
        raise ValueError(f"no helper runs {tool!r}; the tools are {', '.join(_TOOL_NAMES)}")
    return _ONNXSIM if tool == "onnxsim" else _TOOLS


def _parse(data: bytes) -> onnx.ModelProto:
    import onnx

    model = onnx.ModelProto()
    model.ParseFromString(data)
    return model


def _describe(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


class _Worker:
    """A helper process, started on first use, used by one call at a time.

    ``preload`` names the modules it imports as soon as it starts.
    """

    def __init__(self, preload: tuple[str, ...]) -> None:
        self._preload = preload
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._owner = 0  # the pid that started the helper: a fork must not share its pipes

    def start(self) -> None:
        """Start the helper unless it runs already."""
        with self._lock:
            self._started()

    def call(self, tool: str, options: dict[str, Any], proto: onnx.ModelProto) -> bytes:
        request = json.dumps({"tool": tool, "options": options}).encode()
        payload = proto.SerializeToString()
        with self._lock:
            try:
                process = self._started()
            except OSError as error:  # no usable sys.executable, say, in an embedded Python
                raise RuntimeError(
                    f"cannot start a helper process for onnx's {_TOOL_NAMES.get(tool, tool)}: "
                    f"{error}"
                ) from error
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(_HEADER.pack(len(request), len(payload)))
                process.stdin.write(request)
                process.stdin.write(payload)
                process.stdin.flush()
                size, payload_size = _HEADER.unpack(_read(process.stdout, _HEADER.size))
                reply = json.loads(_read(process.stdout, size))
                result = _read(process.stdout, payload_size)
            except (OSError, EOFError) as error:
                self._process = None
                raise ToolCrashed(tool, process.wait()) from error
            except BaseException:
                # Interrupted mid-exchange: the pipe is out of step, so start afresh next time.
                self._stop(process)
                raise
        if not reply["ok"]:
            kind = _error_type(reply["type"])
            raise kind(reply["message"])
        return result

    def _started(self) -> subprocess.Popen[bytes]:
        process = self._process
        if process is not None and self._owner == os.getpid() and process.poll() is None:
            return process
        paths = [p for p in sys.path if p and os.path.isabs(p)]
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-c", _CHILD, json.dumps(paths), json.dumps(self._preload)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._owner = os.getpid()
        return self._process

    def _stop(self, process: subprocess.Popen[bytes]) -> None:
        self._process = None
        process.kill()
        process.wait()

    def close(self) -> None:
        """End the helper at once, even in the middle of its start-up imports.

        It holds nothing worth a graceful end: it writes no files, and no call
        is in flight when its parent exits.
        """
        process, self._process = self._process, None
        if process is None or self._owner != os.getpid():
            return
        process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def _read(stream: Any, count: int) -> bytes:
    chunks = []
    while count:
        chunk = stream.read(count)
        if not chunk:
            raise EOFError("the helper process ended")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


_TOOLS = _Worker(preload=())
_ONNXSIM = _Worker(preload=("onnxsim",))
atexit.register(_TOOLS.close)
atexit.register(_ONNXSIM.close)
