"""The former home of loading, saving and the ModelProto bridge, kept as an import path.

Plugins written against it keep working; new code imports from
:mod:`graphkit._load`, :mod:`graphkit._save`, :mod:`graphkit._proto` and
:mod:`graphkit._tensors`. Names are looked up on each access, so a test that
changes ``graphkit._tensors.PROTOBUF_LIMIT`` changes what is read here too.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "MAX_GRAPH_DEPTH": "graphkit._load",
    "integrity_problem": "graphkit._load",
    "load": "graphkit._load",
    "save": "graphkit._save",
    "call_on_graph": "graphkit._proto",
    "from_proto": "graphkit._proto",
    "to_proto": "graphkit._proto",
    "weights_held_back": "graphkit._proto",
    "PROTOBUF_LIMIT": "graphkit._tensors",
    "tensor_bytes": "graphkit._tensors",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'graphkit._model_io' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
