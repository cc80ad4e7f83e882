"""Whether a rewritten model computes what the original did, on seeded random inputs.

A quick guard for passes that hand a model to another library, not a
verification: inputs are random, so a model whose results depend on valid
indices or lengths is not compared (the original fails to run on them) rather
than blamed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import onnx

#: Size of dims without a fixed size, in the inputs made up for the comparison.
FREE_DIM = 1
RTOL = 1e-3
ATOL = 1e-4


class OutputCheck:
    """Compares rewritten models with ``original`` on ``samples`` seeded random inputs.

    The original runs once, on the first comparison, however many results
    are compared with it.
    """

    def __init__(self, original: onnx.ModelProto, samples: int) -> None:
        self.original = original
        self.samples = samples
        self._reference: tuple[list[str], list[dict], list[list]] | None = None
        self._runnable = True

    def problem(self, result: onnx.ModelProto) -> str | None:
        """One line on how ``result``'s outputs differ from the original's, or None.

        None also when the original cannot be run on random inputs (then there
        is nothing to compare with). A result ONNX Runtime cannot load or run,
        where the original ran, differs.
        """
        import numpy as np

        reference = self._run_original()
        if reference is None:
            return None
        names, input_sets, wanted = reference
        session = _session(result)
        if session is None:
            return "ONNX Runtime cannot load the result"
        for feeds, want in zip(input_sets, wanted, strict=True):
            try:
                got = session.run(names, feeds)  # type: ignore[attr-defined]
            except Exception as error:
                return f"ONNX Runtime cannot run the result: {' '.join(str(error).split())[:200]}"
            for name, a, b in zip(names, want, got, strict=True):
                problem = _difference(np.asarray(a), np.asarray(b))
                if problem:
                    return f"output {name!r} {problem}"
        return None

    def _run_original(self) -> tuple[list[str], list[dict], list[list]] | None:
        import numpy as np

        if self._reference is None and self._runnable:
            session = _session(self.original)
            rng = np.random.default_rng(0)
            try:
                if session is None:
                    raise RuntimeError("ONNX Runtime cannot load the original")
                input_sets = [_inputs(session, rng) for _ in range(self.samples)]
                wanted = [session.run(None, feeds) for feeds in input_sets]  # type: ignore[attr-defined]
            except Exception:
                self._runnable = False
                return None
            names = [o.name for o in session.get_outputs()]  # type: ignore[attr-defined]
            self._reference = (names, input_sets, wanted)
        return self._reference


def same_computation(original: onnx.ModelProto, result: onnx.ModelProto) -> bool:
    """Whether ``result`` holds exactly ``original``'s nodes, weights, inputs and outputs.

    Such a result computes what the original did, so there is nothing to run:
    simplifiers often give back an already simple model unchanged but for the
    shapes they inferred and names for unnamed nodes. Declared shapes,
    value_info, node names and doc strings are not compared.
    """
    a, b = original.graph, result.graph
    if len(a.node) != len(b.node) or len(a.initializer) != len(b.initializer):
        return False
    if [i.name for i in a.input] != [i.name for i in b.input]:
        return False
    if [o.name for o in a.output] != [o.name for o in b.output]:
        return False
    if [_node_key(n) for n in a.node] != [_node_key(n) for n in b.node]:
        return False
    if list(a.sparse_initializer) != list(b.sparse_initializer):
        return False
    if list(original.opset_import) != list(result.opset_import):
        return False
    if list(original.functions) != list(result.functions):
        return False
    weights = {t.name: t for t in a.initializer}
    return all(t.name in weights and weights[t.name] == t for t in b.initializer)


def _node_key(node: onnx.NodeProto) -> tuple[object, ...]:
    """What a node computes: all of it but its name and doc string."""
    return (
        node.op_type,
        node.domain,
        node.overload,
        tuple(node.input),
        tuple(node.output),
        tuple(node.attribute),
    )


def _session(model: onnx.ModelProto) -> object | None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures are reported by the caller, in one line
    try:
        return ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception:
        return None


def _inputs(session: object, rng: np.random.Generator) -> dict[str, np.ndarray]:
    import numpy as np

    feeds = {}
    for value in session.get_inputs():  # type: ignore[attr-defined]
        kind = value.type
        if not kind.startswith("tensor("):
            raise TypeError(f"cannot make a {kind} input")
        dtype = np.dtype(_NUMPY[kind[len("tensor(") : -1]])
        shape = [d if isinstance(d, int) and d >= 0 else FREE_DIM for d in value.shape]
        if dtype.kind == "f":
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[value.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[value.name] = rng.integers(0, 4, shape).astype(dtype)
    return feeds


_NUMPY = {
    "float": "float32",
    "double": "float64",
    "float16": "float16",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "bool": "bool",
}


def _difference(want: np.ndarray, got: np.ndarray) -> str | None:
    import numpy as np

    if want.shape != got.shape:
        return f"has shape {list(got.shape)}, not {list(want.shape)}"
    if want.dtype.kind not in "fc":
        return None if np.array_equal(want, got) else "has different values"
    if np.allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True):
        return None
    with np.errstate(invalid="ignore"):
        worst = float(np.nanmax(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    return f"differs (max abs error {worst:.3g})"
