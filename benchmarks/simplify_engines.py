"""Top-level node counts after each simplifier, on models shaped like real exports.

Each engine runs on its own copy of each model in tests/exports.py (and two of
tests/models.py), as its
library offers it (onnxsim.simplify, onnxslim.slim, onnxscript.optimizer.optimize),
and as graphkit's ``simplify`` with each ``engine``. A result counts only if
ONNX Runtime runs it and its outputs match the original's on three seeded
inputs (max abs error below 1e-4); otherwise the cell says why not.

    python benchmarks/simplify_engines.py            # prints the Markdown table
    python benchmarks/simplify_engines.py --write    # and puts it in benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "RESULTS.md"
BEGIN, END = "<!-- simplify-engines:begin -->", "<!-- simplify-engines:end -->"
sys.path.insert(0, str(REPO))

from tests import models  # noqa: E402
from tests.exports import EXPORTS, seeded_feeds  # noqa: E402

MODELS = {
    **EXPORTS,
    "tf2onnx_image (tests/models.py)": models.tf2onnx_like,
    "with_if (tests/models.py)": models.with_if,
}


def _onnxsim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim

    return onnxsim.simplify(model, mutable_initializer=True)[0]


def _onnxslim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    return onnxslim.slim(model)


def _onnxscript(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxscript.optimizer

    return onnxscript.optimizer.optimize(model)


def _graphkit(engine: str) -> Callable[[onnx.ModelProto], onnx.ModelProto]:
    def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
        import graphkit
        from graphkit._modelio.proto import from_proto, to_proto

        return to_proto(graphkit.passes.simplify(from_proto(model), engine=engine))

    return simplify


ENGINES: dict[str, Callable[[onnx.ModelProto], onnx.ModelProto]] = {
    "onnxsim": _onnxsim,
    "onnxslim": _onnxslim,
    "onnxscript optimizer": _onnxscript,
    "graphkit onnxsim": _graphkit("onnxsim"),
    "graphkit onnxslim": _graphkit("onnxslim"),
    "graphkit auto": _graphkit("auto"),
}


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 4  # the table reports failures; keep ONNX Runtime's log quiet
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in feeds.items() if k in names})


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    return f"FAIL ({text[:48]}...)"


def measure(
    source: onnx.ModelProto, engine: Callable[[onnx.ModelProto], onnx.ModelProto], runs: int
) -> tuple[str, float]:
    """The cell for one engine on one model, and its median seconds."""
    seconds = []
    result = None
    for _ in range(runs):
        given = copy.deepcopy(source)
        start = time.perf_counter()
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                result = engine(given)
        except Exception as error:
            return _short(error), float("nan")
        seconds.append(time.perf_counter() - start)
    assert result is not None
    try:
        worst = 0.0
        for seed in range(3):
            feeds = seeded_feeds(source, seed)
            for want, got in zip(_run(source, feeds), _run(result, feeds), strict=True):
                worst = max(worst, float(np.max(np.abs(want - got))) if want.size else 0.0)
    except Exception as error:
        return _short(error), statistics.median(seconds)
    if worst > 1e-4:
        return f"WRONG (max abs error {worst:.1e})", statistics.median(seconds)
    inputs = {i.name for i in result.graph.input}
    weights = {t.name for t in source.graph.initializer}
    dropped = [i.name for i in source.graph.input if i.name not in inputs]
    folded = [name for name in dropped if name in weights]
    lost = [name for name in dropped if name not in weights]
    note = f" ({len(folded)} weight inputs folded)" if folded else ""
    note += f" (drops input {', '.join(lost)})" if lost else ""
    return f"{len(result.graph.node)}{note}", statistics.median(seconds)


def table(runs: int) -> str:
    """The Markdown table: nodes after each engine, then median milliseconds."""
    head = ["model", "before", *ENGINES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    totals = dict.fromkeys(ENGINES, 0.0)
    for name, build in MODELS.items():
        source = build()
        cells = []
        for engine_name, engine in ENGINES.items():
            cell, seconds = measure(source, engine, runs)
            cells.append(cell)
            if seconds == seconds:  # not NaN
                totals[engine_name] += seconds
        lines.append(f"| {name} | {len(source.graph.node)} | " + " | ".join(cells) + " |")
    lines.append(
        "| total median time, ms | | "
        + " | ".join(f"{totals[e] * 1000:.0f}" for e in ENGINES)
        + " |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per engine and model")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    text = table(args.runs)
    print(text)
    if args.write:
        results = RESULTS.read_text()
        block = f"{BEGIN}\n{text}\n{END}"
        if BEGIN in results:
            start, end = results.index(BEGIN), results.index(END) + len(END)
            results = results[:start] + block + results[end:]
        else:
            results = results.rstrip("\n") + "\n\n" + _SECTION + block + "\n"
        RESULTS.write_text(results)


_SECTION = """## simplify's engines

Top-level nodes after each engine on the export-shaped models of tests/exports.py
(generated by `python benchmarks/simplify_engines.py --write`; FAIL: the engine
raised, or ONNX Runtime refused its result; times are medians on this machine,
so compare them within a row only).

"""

if __name__ == "__main__":
    main()
