"""onnx's backend test cases run through every pass: does each pass keep a model working?

onnx ships the generators of its backend tests in its wheel: about 1,900 small
models, each with inputs and expected outputs. Every case that ONNX Runtime
runs correctly as it is goes through a pass configuration by the library API
(load, apply, save to a temporary folder), then the result runs in ONNX
Runtime and is compared with onnx's expected outputs. Each case ends:

* ``ok``: the result loads, runs and gives the expected outputs;
* ``refused``: graphkit said no with one of its errors (a ``GraphkitError``);
* ``wrong``: the numbers differ, or the result no longer loads or runs;
* ``crash``: any other exception, or the process died (``run_all`` runs the
  cases in a child process, so a crash in native code ends one case, not the
  run).

Usage::

    python benchmarks/conformance.py                     # every configuration, every case
    python benchmarks/conformance.py --pass set_opset    # configurations of one pass
    python benchmarks/conformance.py --limit 200         # 200 cases spread over the list
    python benchmarks/conformance.py --markdown          # only the Markdown table
    python benchmarks/conformance.py --refused           # also list each refusal's reason

Library use (the repository root on ``sys.path``)::

    from benchmarks.conformance import CONFIGS, collect_cases, run_all, run_case, table

    collected = collect_cases()               # or collect_cases(["test_abs", ...])
    outcome = run_case(collected.cases[0], CONFIGS[0])   # Outcome(status, detail), in-process
    print(table(run_all(collected.cases, CONFIGS)))

A configuration is data: adding one, such as ``simplify_config(engine="onnxslim")``,
is one line in ``CONFIGS``. ``CONVERTER_CONFIGS`` run onnx's version converter
alone on the same cases, as the baseline for ``set_opset``.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx

Status = Literal["ok", "refused", "wrong", "crash"]
STATUSES: tuple[Status, ...] = ("ok", "refused", "wrong", "crash")


@dataclasses.dataclass(frozen=True)
class Case:
    """One onnx backend test case that ONNX Runtime runs correctly as it is."""

    name: str
    model: onnx.ModelProto
    data_sets: tuple[tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]], ...]
    rtol: float
    atol: float

    @property
    def opset(self) -> int | None:
        """The default domain's opset version, if the model imports it."""
        for entry in self.model.opset_import:
            if entry.domain in ("", "ai.onnx"):
                return entry.version
        return None

    @property
    def input_names(self) -> list[str]:
        """Graph inputs that are not initializers, in order."""
        weights = {t.name for t in self.model.graph.initializer}
        return [v.name for v in self.model.graph.input if v.name not in weights]

    @property
    def output_names(self) -> list[str]:
        return [v.name for v in self.model.graph.output]


@dataclasses.dataclass
class Collected:
    """The usable cases, and the ones left out with the reason for each."""

    cases: list[Case]
    excluded: dict[str, list[str]]  # reason -> case names

    def summary(self) -> str:
        parts = [f"{len(self.cases)} cases"]
        parts += [f"{len(names)} excluded: {reason}" for reason, names in self.excluded.items()]
        return "; ".join(parts)


@dataclasses.dataclass(frozen=True)
class Config:
    """A pass with the parameters to give it for a case.

    ``params`` returns None where the configuration does not apply to a case
    (set_opset to the case's own version, say). ``tool``, when set, replaces
    graphkit: it takes a ModelProto and returns the converted one.
    """

    name: str
    pass_name: str
    params: Callable[[Case], dict[str, Any] | None]
    tool: Callable[[onnx.ModelProto, dict[str, Any]], onnx.ModelProto] | None = None


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class Result:
    case: str
    config: str
    outcome: Outcome | None  # None: the configuration does not apply to the case
    seconds: float = 0.0


# -- configurations --------------------------------------------------------------------------------


def _none(case: Case) -> dict[str, Any]:
    return {}


def _rename_everything(case: Case) -> dict[str, Any]:
    return {
        "inputs": {name: f"renamed_input_{i}" for i, name in enumerate(case.input_names)},
        "outputs": {name: f"renamed_output_{i}" for i, name in enumerate(case.output_names)},
    }


def _fix_every_input(case: Case) -> dict[str, Any]:
    inputs = case.data_sets[0][0]
    return {"shapes": {n: list(a.shape) for n, a in zip(case.input_names, inputs, strict=True)}}


def _opset(version: int, direction: Literal["down", "up"]) -> Callable[[Case], dict | None]:
    def params(case: Case) -> dict[str, Any] | None:
        current = case.opset
        if current is None:
            return None
        applies = current > version if direction == "down" else current < version
        return {"version": version} if applies else None

    return params


def simplify_config(**params: Any) -> Config:
    """A ``simplify`` configuration; ``simplify_config(engine="onnxslim")`` names itself."""
    label = " ".join(f"{k}={v}" for k, v in params.items())
    return Config(f"simplify {label}".strip(), "simplify", lambda case: dict(params))


DOWN = (11, 13, 15, 17)
UP = (21,)

CONFIGS: list[Config] = [
    Config("rename_io", "rename_io", _rename_everything),
    Config("fix_dims", "fix_dims", _fix_every_input),
    simplify_config(),
    Config("cleanup", "cleanup", _none),
    Config("infer_shapes", "infer_shapes", _none),
    Config("check", "check", _none),
    *(Config(f"set_opset {v}", "set_opset", _opset(v, "down")) for v in DOWN),
    *(Config(f"set_opset {v}", "set_opset", _opset(v, "up")) for v in UP),
]


def _onnx_converter(proto: onnx.ModelProto, params: dict[str, Any]) -> onnx.ModelProto:
    from graphkit import _onnx_tools

    return _onnx_tools.convert_version(proto, params["version"])


#: onnx's version converter alone on the same cases: what set_opset is measured against.
CONVERTER_CONFIGS: list[Config] = [
    Config(f"onnx converter {v}", "onnx_converter", _opset(v, "down"), _onnx_converter)
    for v in DOWN
] + [Config(f"onnx converter {v}", "onnx_converter", _opset(v, "up"), _onnx_converter) for v in UP]


# -- cases -----------------------------------------------------------------------------------------


def collect_cases(names: Iterable[str] | None = None) -> Collected:
    """onnx's node and model test cases that ONNX Runtime runs correctly as they are.

    Each case is run once in ONNX Runtime to decide; the others are listed in
    ``excluded`` by reason. ``names`` restricts the collection to those cases
    (unknown names raise ``KeyError``).
    """
    from onnx.backend.test.case import model as model_cases
    from onnx.backend.test.case import node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators compute overflowing casts on purpose
        found = [*node_cases.collect_testcases(None), *model_cases.collect_testcases()]
    if names is not None:
        by_name = {c.name: c for c in found}
        found = [by_name[n] for n in names]
    cases, excluded = [], collections.defaultdict(list)
    for test in found:
        case, reason = _usable(test)
        if case is None:
            excluded[reason].append(test.name)
        else:
            cases.append(case)
    return Collected(cases, dict(excluded))


def _usable(test: Any) -> tuple[Case | None, str]:
    if test.model is None:
        return None, "model is downloaded, not shipped"
    sets = []
    for inputs, outputs in test.data_sets:
        arrays = [_array(a) for a in [*inputs, *outputs]]
        if any(a is None for a in arrays):
            return None, "sequence or optional inputs or outputs"
        sets.append((tuple(arrays[: len(inputs)]), tuple(arrays[len(inputs) :])))
    case = Case(test.name, test.model, tuple(sets), test.rtol, test.atol)
    with tempfile.TemporaryDirectory(prefix="conformance-") as folder:
        path = Path(folder) / "model.onnx"
        onnx.save(case.model, path)
        try:
            session = _session(path)
        except Exception:
            return None, "ONNX Runtime cannot load it"
        problem = _run_and_compare(session, case)
    if problem == "run":
        return None, "ONNX Runtime cannot run it"
    if problem:
        return None, "ONNX Runtime's outputs differ from onnx's expected ones"
    return case, ""


def _array(data: Any) -> np.ndarray | None:
    """A case's input or output as an array; None for a sequence, map or missing optional."""
    if isinstance(data, onnx.TensorProto):
        return onnx.numpy_helper.to_array(data)
    if isinstance(data, np.ndarray | np.generic):
        return np.asarray(data)
    return None


# -- running ---------------------------------------------------------------------------------------


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # errors come back as exceptions; keep the log quiet
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run_and_compare(session: Any, case: Case) -> str | None:
    """None when every data set gives the expected outputs; ``"run"`` when running fails."""
    names = [i.name for i in session.get_inputs()]
    for inputs, expected in case.data_sets:
        if len(names) != len(inputs):
            return "run"
        try:
            got = session.run(None, dict(zip(names, inputs, strict=True)))
        except Exception:
            return "run"
        problem = _difference(expected, got, case.rtol, case.atol)
        if problem:
            return problem
    return None


def _difference(
    expected: Sequence[np.ndarray], got: Sequence[Any], rtol: float, atol: float
) -> str | None:
    if len(got) != len(expected):
        return f"{len(got)} outputs instead of {len(expected)}"
    for index, (want, have) in enumerate(zip(expected, got, strict=True)):
        have = np.asarray(have)
        if have.shape != want.shape:
            return f"output {index}: shape {list(have.shape)} instead of {list(want.shape)}"
        if have.dtype != want.dtype:
            return f"output {index}: dtype {have.dtype} instead of {want.dtype}"
        if want.dtype == object or want.dtype.kind in "SU":
            if not np.array_equal(have, want):
                return f"output {index}: strings differ"
            continue
        if want.dtype.name == "bfloat16":
            want, have, rtol = want.astype(np.float32), have.astype(np.float32), max(rtol, 2**-6)
        try:
            np.testing.assert_allclose(have, want, rtol=rtol, atol=atol)
        except AssertionError:
            error = np.abs(have.astype(np.float64) - want.astype(np.float64))
            return f"output {index}: values differ (max abs err {np.nanmax(error):.3g})"
    return None


def run_case(case: Case, config: Config, workdir: Path | None = None) -> Outcome | None:
    """Run ``case`` through ``config``; None when the configuration does not apply to it."""
    params = config.params(case)
    if params is None:
        return None
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="conformance-")))
        return _run(case, config, params, workdir)


def _run(case: Case, config: Config, params: dict[str, Any], workdir: Path) -> Outcome:
    import graphkit
    from graphkit import GraphkitError

    source, result = workdir / "source" / "model.onnx", workdir / "result" / "model.onnx"
    source.parent.mkdir(exist_ok=True)
    result.parent.mkdir(exist_ok=True)
    try:
        if config.tool is not None:
            converted = config.tool(case.model, params)
            onnx.save(converted, result)
        else:
            onnx.save(case.model, source)
            model = graphkit.load(source)
            model = getattr(graphkit.passes, config.pass_name)(model, **params)
            graphkit.save(model, result)
    except GraphkitError as error:
        return Outcome("refused", _one_line(error))
    except Exception as error:
        if config.tool is not None and _is_tool_error(error):
            return Outcome("refused", _one_line(error))
        return Outcome("crash", f"{type(error).__name__}: {_one_line(error)}")
    try:
        session = _session(result)
    except Exception as error:
        return Outcome("wrong", f"ONNX Runtime cannot load the result: {_one_line(error)}")
    names = [i.name for i in session.get_inputs()]
    for inputs, expected in case.data_sets:
        if len(names) != len(inputs):
            return Outcome("wrong", f"the result has {len(names)} inputs, not {len(inputs)}")
        try:
            got = session.run(None, dict(zip(names, inputs, strict=True)))
        except Exception as error:
            return Outcome("wrong", f"ONNX Runtime cannot run the result: {_one_line(error)}")
        problem = _difference(expected, got, case.rtol, case.atol)
        if problem:
            return Outcome("wrong", problem)
    return Outcome("ok")


def _is_tool_error(error: Exception) -> bool:
    """An error an onnx tool raises to refuse a model (as opposed to crashing on it)."""
    return isinstance(
        error, RuntimeError | IndexError | KeyError | ValueError | onnx.checker.ValidationError
    )


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."


def run_all(
    cases: Sequence[Case], configs: Sequence[Config], progress: Callable[[str], None] | None = None
) -> list[Result]:
    """Every case through every configuration, in a child process that may die.

    Native code (onnxsim, ONNX Runtime) can crash the process outright on a
    model; the case then ends ``crash`` and a fresh child takes the rest. One
    child runs every case in turn, so start-up is paid once, not per case.
    """
    global _JOBS
    folder = tempfile.mkdtemp(prefix="conformance-")
    _JOBS = (list(cases), list(configs), Path(folder))
    context = multiprocessing.get_context("fork")  # the child inherits the cases, unpickled
    results = []
    executor = concurrent.futures.ProcessPoolExecutor(1, mp_context=context)
    try:
        for c, config in enumerate(configs):
            started = time.perf_counter()
            for k, case in enumerate(cases):
                begin = time.perf_counter()
                try:
                    outcome = executor.submit(_job, k, c).result()
                except concurrent.futures.process.BrokenProcessPool:
                    outcome = Outcome("crash", "the process died (a crash in native code)")
                    executor.shutdown(wait=True)
                    executor = concurrent.futures.ProcessPoolExecutor(1, mp_context=context)
                results.append(Result(case.name, config.name, outcome, time.perf_counter() - begin))
            if progress:
                progress(f"{config.name}: {time.perf_counter() - started:.1f}s")
    finally:
        executor.shutdown(wait=True)
        shutil.rmtree(folder, ignore_errors=True)
        _JOBS = ([], [], Path())
    return results


#: What the child runs: the cases, the configurations and a scratch folder (set before forking).
_JOBS: tuple[list[Case], list[Config], Path] = ([], [], Path())


def _job(case_index: int, config_index: int) -> Outcome | None:
    """In the child: run one case, in a scratch folder of its own."""
    cases, configs, folder = _JOBS
    workdir = folder / str(os.getpid())
    workdir.mkdir(exist_ok=True)
    return run_case(cases[case_index], configs[config_index], workdir)


# -- reporting -------------------------------------------------------------------------------------


def table(results: Iterable[Result]) -> str:
    """The Markdown table: one row per configuration, cases counted by outcome."""
    counts: dict[str, collections.Counter[str]] = {}
    for result in results:
        row = counts.setdefault(result.config, collections.Counter())
        row[result.outcome.status if result.outcome else "n/a"] += 1
    lines = [
        "| configuration | cases run | ok | refused | wrong | crash |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for config, row in counts.items():
        ran = sum(row[s] for s in STATUSES)
        lines.append(f"| {config} | {ran} | " + " | ".join(str(row[s]) for s in STATUSES) + " |")
    return "\n".join(lines)


def failures(results: Iterable[Result], statuses: Sequence[Status] = ("wrong", "crash")) -> str:
    """One line per case with one of ``statuses``: configuration, case, status, detail."""
    return "\n".join(
        f"{r.config}: {r.case}: {r.outcome.status}: {r.outcome.detail}"
        for r in results
        if r.outcome and r.outcome.status in statuses
    )


def _selected(pass_names: Sequence[str]) -> list[Config]:
    everything = [*CONFIGS, *CONVERTER_CONFIGS]
    if not pass_names:
        return everything
    chosen = [c for c in everything if c.pass_name in pass_names or c.name in pass_names]
    if not chosen:
        known = sorted({c.pass_name for c in everything} | {c.name for c in everything})
        raise SystemExit(f"no configuration named {', '.join(pass_names)}; known: {known}")
    return chosen


def _spread(cases: list[Case], limit: int | None) -> list[Case]:
    if limit is None or limit >= len(cases):
        return cases
    step = len(cases) / limit
    return [cases[int(i * step)] for i in range(limit)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pass",
        dest="passes",
        action="append",
        default=[],
        help="a pass name (all its configurations) or a configuration name; repeatable",
    )
    parser.add_argument("--limit", type=int, help="run this many cases, spread over the list")
    parser.add_argument("--markdown", action="store_true", help="print only the Markdown table")
    parser.add_argument(
        "--refused", action="store_true", help="also list refused cases with the reason"
    )
    args = parser.parse_args(argv)
    configs = _selected(args.passes)
    say = (lambda line: None) if args.markdown else (lambda line: print(line, flush=True))
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # failures come back as exceptions, with their message
    started = time.perf_counter()
    collected = collect_cases()
    say(f"{collected.summary()} ({time.perf_counter() - started:.1f}s)")
    cases = _spread(collected.cases, args.limit)
    results = run_all(cases, configs, progress=say)
    print(table(results))
    if not args.markdown:
        statuses: tuple[Status, ...] = ("refused", "wrong", "crash") if args.refused else ()
        listed = failures(results, statuses or ("wrong", "crash"))
        if listed:
            print("\n" + listed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
