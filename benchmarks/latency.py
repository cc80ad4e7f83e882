"""ONNX Runtime latency of two models with the same inputs, measured alternately.

    python latency.py first.onnx second.onnx --runs 5

Prints the median milliseconds per inference of each, the lowest and highest
per-run ratio of the first to the second, and the inferences per run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort

PER_RUN = 30
WARM_UP = 5


def session(path: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # One thread each: the machine's other core is left to whatever else runs on it.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def feeds_for(session: ort.InferenceSession, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {i.name: a for i, a in zip(session.get_inputs(), arrays, strict=True)}


def timed(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> float:
    started = time.perf_counter()
    for _ in range(PER_RUN):
        session.run(None, feeds)
    return (time.perf_counter() - started) / PER_RUN * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sessions = [session(args.first), session(args.second)]
    rng = np.random.default_rng(0)
    shapes = [[d if isinstance(d, int) else 1 for d in i.shape] for i in sessions[0].get_inputs()]
    arrays = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in shapes]
    feeds = [feeds_for(s, arrays) for s in sessions]
    first_out = sessions[0].run(None, feeds[0])
    second_out = sessions[1].run(None, feeds[1])
    for ours, theirs in zip(first_out, second_out, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)
    for s, f in zip(sessions, feeds, strict=True):
        for _ in range(WARM_UP):
            s.run(None, f)
    times: list[list[float]] = [[], []]
    for run in range(args.runs):
        order = [0, 1] if run % 2 == 0 else [1, 0]
        for index in order:
            times[index].append(timed(sessions[index], feeds[index]))
    ratios = [a / b for a, b in zip(times[0], times[1], strict=True)]
    print(
        f"{statistics.median(times[0]):.4f} {statistics.median(times[1]):.4f} "
        f"{min(ratios):.4f} {max(ratios):.4f} {PER_RUN}"
    )


if __name__ == "__main__":
    main()
