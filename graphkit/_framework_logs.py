"""Keeping the frameworks' own logs (TensorFlow, absl, tf2onnx, ONNX Runtime) off the terminal.

The command line hides them unless run with ``--debug``; a library user's
process is left as it is. What the frameworks have to say that matters
reaches the user as graphkit's own one-line errors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnxruntime

_hidden = False

#: ONNX Runtime's severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal.
_ORT_FATAL = 4


def hide() -> None:
    """Hide framework logs for the rest of the process."""
    global _hidden
    if _hidden:
        return
    _hidden = True
    # Read by TensorFlow's C++ logging after start-up, and by any process it starts.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Python-side logs (tf2onnx, absl, tensorflow, onnxscript) reach stderr only through
    # logging's last resort or an implicit basicConfig, both of which a root handler stops.
    logging.getLogger().addHandler(logging.NullHandler())
    logging.captureWarnings(True)


def hidden() -> bool:
    """Whether framework logs are being hidden."""
    return _hidden


@contextlib.contextmanager
def native_stderr_hidden() -> Iterator[None]:
    """While the block runs, send what native code writes to file descriptor 2 nowhere.

    TensorFlow's shared libraries log while they load (absl's "before
    InitializeLog" warning, oneDNN and CUDA notes) straight to the file
    descriptor, and ignore TF_CPP_MIN_LOG_LEVEL set after the process
    started; only the descriptor can be silenced. Does nothing unless logs
    are hidden. Keep the block short: Python's own stderr is silenced too.
    """
    if not _hidden:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield  # no usable descriptor 2 (an embedded interpreter, say): nothing to hide
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def ort_session_options() -> onnxruntime.SessionOptions:
    """Session options for ONNX Runtime; its warnings and error logs hidden when logs are."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if _hidden:
        # Failures still raise, and graphkit words them; the log lines would repeat them.
        ort.set_default_logger_severity(_ORT_FATAL)
        options.log_severity_level = _ORT_FATAL
    return options
