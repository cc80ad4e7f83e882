"""Property tests: whatever recipe, file or graph comes in, graphkit answers with its own errors.

* Random recipes, valid and not, through ``load_recipe`` and the CLI: only
  ``GraphkitError`` subclasses, never another exception or a traceback.
* Random byte mutations of model files (flips, cuts, insertions, repeats):
  ``graphkit.load`` gives a ``ModelError`` or a model that can be inspected,
  checked and saved, never another exception and never a crash.
* Random small graphs (elementwise and MatMul chains with random names and
  symbolic dims) through rename_io, fix_dims, set_opset, infer_shapes and
  cleanup: ONNX Runtime's numbers stay the same, or a pass says no with a
  ``PassError``.

The examples are derandomized and few, so CI stays fast and repeatable. For a
longer campaign, raise the count (and optionally vary the seed)::

    GRAPHKIT_FUZZ_EXAMPLES=5000 pytest tests/reliability/test_fuzz.py
    GRAPHKIT_FUZZ_EXAMPLES=5000 GRAPHKIT_FUZZ_RANDOM=1 pytest tests/reliability/test_fuzz.py

``GRAPHKIT_FUZZ_RANDOM=1`` drops the fixed seed, so each run explores new
inputs; Hypothesis prints the seed of any failure so it can be replayed.
"""

from __future__ import annotations

import contextlib
import io
import os
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import yaml
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import graphkit
from graphkit import GraphkitError, ModelError, PassError
from graphkit._cli import main
from graphkit._inspect import describe
from graphkit._recipe.recipe import load_recipe
from tests.models import run, tf2onnx_like
from tests.models import with_if as with_if_model
from tests.reliability.hostile import with_loop

EXAMPLES = int(os.environ.get("GRAPHKIT_FUZZ_EXAMPLES", "0"))


def fuzz(default: int) -> settings:
    """Settings for one property: ``default`` examples in CI, more when asked."""
    return settings(
        max_examples=EXAMPLES or default,
        derandomize=not os.environ.get("GRAPHKIT_FUZZ_RANDOM"),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A fresh folder per example (pytest's tmp_path is one per test, not per example)."""
    with tempfile.TemporaryDirectory(prefix="graphkit-fuzz-") as folder:
        yield Path(folder)


# -- recipes --------------------------------------------------------------------------------------

PASS_NAMES = ["rename_io", "fix_dims", "set_opset", "infer_shapes", "check", "cleanup", "simplify"]
PARAM_NAMES = [
    "inputs", "outputs", "dims", "shapes", "version", "full", "identities", "unused", "sort",
    "data_prop", "strict", "discard_existing", "check_n",
]  # fmt: skip
KEYS = ["version", "name", "description", "plugins", "source", "passes", "output", "save"]

names = st.sampled_from(["input_1", "conv2d_6", "unk__127", "W", "x", ""]) | st.text(max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | names
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.one_of(names, st.integers(), st.booleans()), inner, max_size=4)
    ),
    max_leaves=12,
)
params = st.dictionaries(st.sampled_from(PARAM_NAMES) | names, values, max_size=3)
steps = st.one_of(
    st.sampled_from(PASS_NAMES),
    st.dictionaries(st.sampled_from(PASS_NAMES) | names, params | values, min_size=1, max_size=2),
    values,
)
sources = st.one_of(
    st.fixed_dictionaries({"path": st.sampled_from(["m.onnx", "missing.onnx", "r.yaml", "."])}),
    st.dictionaries(st.sampled_from(["path", "format", "module", "inputs"]) | names, values),
    values,
)
recipes = st.fixed_dictionaries(
    {},
    optional={
        "version": st.sampled_from([1, 1, 1, 2, "1", 1.0, True, None]),
        "name": values,
        "plugins": st.lists(names, max_size=2) | values,
        "source": sources,
        "passes": st.lists(steps, max_size=4) | values,
        "output": st.sampled_from(["out.onnx", "out/m.onnx", "", ".", "m.onnx"]) | values,
        "save": st.dictionaries(
            st.sampled_from(["external_data", "threshold_bytes", "max_shard_bytes"]) | names,
            values,
            max_size=2,
        )
        | values,
    },
).flatmap(lambda known: st.dictionaries(names, values, max_size=2).map(lambda extra: extra | known))

VALID = """\
version: 1
name: fuzz
source: {path: m.onnx}
output: out.onnx
passes:
  - {fix_dims: {dims: {unk__127: 1}}}
  - {rename_io: {inputs: {input_1: image}, outputs: {conv2d_6: mask}}}
  - cleanup
"""
YAML_NOISE = [*":-[]{},&*!|>'\"#%@`?\t\n ", "\x00", "\ud800", "\u2028", "\ufeff", "!!python/"]


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    """The valid recipe above with characters of YAML's syntax inserted, replaced or cut."""
    text = VALID
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "replace", "cut"]))
        noise = draw(st.sampled_from(YAML_NOISE) | st.text(max_size=3))
        if action == "insert":
            text = text[:at] + noise + text[at:]
        elif action == "replace":
            text = text[:at] + noise + text[at + len(noise) :]
        else:
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
    return text


def _as_yaml(recipe: dict[Any, Any]) -> str:
    return yaml.safe_dump(recipe, allow_unicode=True, sort_keys=False)


@fuzz(300)
@given(recipe=recipes)
def test_any_recipe_as_data_is_accepted_or_refused_as_a_recipe_error(recipe: dict) -> None:
    with workdir() as folder:
        onnx.save(tf2onnx_like(), folder / "m.onnx")
        with contextlib.suppress(GraphkitError):
            load_recipe(recipe, base_dir=folder)


@fuzz(300)
@given(text=st.one_of(recipes.map(_as_yaml), mutated_text()))
def test_any_recipe_file_is_accepted_or_refused_as_a_recipe_error(text: str) -> None:
    with workdir() as folder:
        onnx.save(tf2onnx_like(), folder / "m.onnx")
        path = folder / "r.yaml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        with contextlib.suppress(GraphkitError):
            load_recipe(path)


@fuzz(60)
@given(text=st.one_of(recipes.map(_as_yaml), mutated_text(), st.just(VALID)))
def test_any_recipe_through_the_cli_ends_with_an_exit_code_and_lines(text: str) -> None:
    """``graphkit apply``: success, or ``graphkit: error:`` lines and a graphkit exit code."""
    with workdir() as folder:
        onnx.save(tf2onnx_like(), folder / "m.onnx")
        path = folder / "r.yaml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))

        with contextlib.redirect_stderr(io.StringIO()) as stderr:
            code = main(["apply", "-q", str(path)])

        err = stderr.getvalue()
        assert code in (0, 3, 4, 5, 6), err
        assert all(line.startswith("graphkit: error: ") for line in err.splitlines()), err
        if code != 0:
            assert not (folder / "out.onnx").exists()


# -- model files ----------------------------------------------------------------------------------

SEEDS = {
    "tf2onnx": tf2onnx_like().SerializeToString(),
    "if": with_if_model().SerializeToString(),
    "loop": with_loop().SerializeToString(),
}


@st.composite
def mutated_model(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "repeat"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x1A, 0x22]))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 32))]
    return bytes(data)


@fuzz(400)
@given(data=mutated_model())
def test_a_damaged_model_file_is_a_model_error_or_a_usable_model(data: bytes) -> None:
    with workdir() as folder:
        path = folder / "m.onnx"
        path.write_bytes(data)
        try:
            model = graphkit.load(path)
        except ModelError:
            return
        # what loads must also inspect, check and save without surprises
        describe(model, path)
        with contextlib.suppress(PassError):
            graphkit.passes.check(model, full=False)
        with contextlib.suppress(ModelError):
            graphkit.save(model, folder / "out.onnx")


# -- graphs through the passes --------------------------------------------------------------------

UNARY = ["Relu", "Neg", "Abs", "Sigmoid", "Tanh", "Identity", "Softsign"]
#: Ops whose attributes became inputs in some opset: where a converter could go wrong.
MOVED = ["unsqueeze_squeeze", "reduce_sum", "reduce_mean", "clip"]
KINDS = ["unary", "add", "mul", "matmul", "softmax", "transpose2", *MOVED]
NAME_CHARS = string.ascii_letters + string.digits + "_/:.-"
tensor_names = st.text(NAME_CHARS, min_size=1, max_size=10) | st.text(min_size=1, max_size=4)


@st.composite
def chains(draw: st.DrawFn) -> tuple[onnx.ModelProto, dict[str, np.ndarray], str]:
    """A chain of ops on ``[N, D]`` at a random opset; returns model, feeds and N's name.

    Elementwise ops, MatMul, last-axis Softmax, and ops whose attributes became
    inputs at some opset (Unsqueeze and Squeeze, ReduceSum, ReduceMean, Clip),
    written the way their opset wants.
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    opset = draw(st.integers(9, onnx.defs.onnx_opset_version()))
    used: set[str] = set()

    def fresh() -> str:
        name = draw(tensor_names)
        while name in used:  # a suffix, not a filter: random names collide too often
            name += "'"
        used.add(name)
        return name

    def constant(array: np.ndarray) -> str:
        name = fresh()
        weights.append(numpy_helper.from_array(array, name))
        return name

    batch_dim, width = fresh(), draw(st.integers(1, 4))
    x, other = fresh(), fresh()
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [batch_dim, width])]
    nodes: list[onnx.NodeProto] = []
    weights: list[onnx.TensorProto] = []
    outputs: list[str] = []
    widths: dict[str, int] = {}
    current, current_width = x, width
    two_inputs = draw(st.booleans())
    if two_inputs:
        inputs.append(helper.make_tensor_value_info(other, TensorProto.FLOAT, [batch_dim, width]))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(KINDS))
        out = fresh()
        if kind == "unary":
            nodes.append(helper.make_node(draw(st.sampled_from(UNARY)), [current], [out]))
        elif kind == "add":
            bias = constant(rng.standard_normal(current_width).astype("f"))
            nodes.append(helper.make_node("Add", [current, bias], [out]))
        elif kind == "mul" and two_inputs and current_width == width:
            nodes.append(helper.make_node("Mul", [current, other], [out]))
        elif kind == "matmul":
            new_width = draw(st.integers(1, 4))
            weight = constant(rng.standard_normal((current_width, new_width)).astype("f"))
            nodes.append(helper.make_node("MatMul", [current, weight], [out]))
            current_width = new_width
        elif kind == "softmax":
            nodes.append(helper.make_node("Softmax", [current], [out], axis=-1))
        elif kind == "unsqueeze_squeeze":
            middle = fresh()
            if opset >= 13:
                axes = constant(np.array([1], np.int64))
                nodes.append(helper.make_node("Unsqueeze", [current, axes], [middle]))
                nodes.append(helper.make_node("Squeeze", [middle, axes], [out]))
            else:
                nodes.append(helper.make_node("Unsqueeze", [current], [middle], axes=[1]))
                nodes.append(helper.make_node("Squeeze", [middle], [out], axes=[1]))
        elif kind in ("reduce_sum", "reduce_mean"):
            op = "ReduceSum" if kind == "reduce_sum" else "ReduceMean"
            if opset >= (13 if op == "ReduceSum" else 18):
                axes = constant(np.array([-1], np.int64))
                nodes.append(helper.make_node(op, [current, axes], [out], keepdims=1))
            else:
                nodes.append(helper.make_node(op, [current], [out], axes=[-1], keepdims=1))
            current_width = 1
        elif kind == "clip":
            # high >= 0: ONNX Runtime's Relu+Clip fusion raises min to 0 and then refuses
            # a Clip whose max is below it, on a valid model.
            below, above = np.abs(rng.standard_normal(2)).astype("f").tolist()
            low, high = -below, above
            if opset >= 11:
                bounds = [constant(np.array(low, np.float32)), constant(np.array(high, np.float32))]
                nodes.append(helper.make_node("Clip", [current, *bounds], [out]))
            else:
                nodes.append(helper.make_node("Clip", [current], [out], min=low, max=high))
        else:
            middle = fresh()
            nodes.append(helper.make_node("Transpose", [current], [middle], perm=[1, 0]))
            nodes.append(helper.make_node("Transpose", [middle], [out], perm=[1, 0]))
        current = out
        widths[out] = current_width
        if draw(st.booleans()):
            outputs.append(out)
    if current not in outputs:
        outputs.append(current)
    graph = helper.make_graph(
        nodes,
        fresh(),
        inputs,
        [
            helper.make_tensor_value_info(o, TensorProto.FLOAT, [batch_dim, widths[o]])
            for o in outputs
        ],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    event(f"from opset {opset // 5 * 5}+")
    batch = draw(st.integers(1, 3))
    feeds = {i.name: rng.standard_normal((batch, width)).astype("f") for i in inputs}
    return model, feeds, batch_dim


PLANNED = ["rename_io", "fix_dims", "set_opset", "cleanup", "infer_shapes"]


@st.composite
def pass_plans(draw: st.DrawFn, model: onnx.ModelProto, batch_dim: str, batch: int) -> list:
    """A random sequence of passes with parameters fitting ``model`` (mostly)."""
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    plan = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(
            st.sampled_from(["rename_io", "fix_dims", "set_opset", "cleanup", "infer_shapes"])
        )
        if name == "rename_io":
            chosen_in = draw(st.lists(st.sampled_from(inputs), unique=True, max_size=len(inputs)))
            chosen_out = draw(
                st.lists(st.sampled_from(outputs), unique=True, max_size=len(outputs))
            )
            new = draw(
                st.lists(
                    tensor_names,
                    min_size=len(chosen_in) + len(chosen_out),
                    max_size=len(chosen_in) + len(chosen_out),
                    unique=True,
                )
            )
            params = {
                "inputs": dict(zip(chosen_in, new[: len(chosen_in)], strict=True)),
                "outputs": dict(zip(chosen_out, new[len(chosen_in) :], strict=True)),
            }
            plan.append((name, params))
            inputs = [params["inputs"].get(n, n) for n in inputs]
            outputs = [params["outputs"].get(n, n) for n in outputs]
        elif name == "fix_dims":
            plan.append((name, {"dims": {batch_dim: batch}}))
        elif name == "set_opset":
            plan.append((name, {"version": draw(st.integers(7, onnx.defs.onnx_opset_version()))}))
        else:
            plan.append((name, {}))
    return plan


@fuzz(50)
@given(data=st.data())
def test_passes_keep_onnx_runtimes_numbers(data: st.DataObject) -> None:
    model, feeds, batch_dim = data.draw(chains())
    batch = next(iter(feeds.values())).shape[0]
    plan = data.draw(pass_plans(model, batch_dim, batch))
    note(onnx.printer.to_text(model))  # shown with a failing example
    expected = run(model, feeds)
    in_names = [i.name for i in model.graph.input]
    out_names = [o.name for o in model.graph.output]

    with workdir() as folder:
        onnx.save(model, folder / "m.onnx")
        current = graphkit.load(folder / "m.onnx")
        for name, params in plan:
            try:
                current = getattr(graphkit.passes, name)(current, **params)
            except PassError as error:
                event(f"{name} refused: {str(error).split(':')[0]}")
                assume(False)  # a refusal is an acceptable answer; the numbers are not in question
            event(f"{name} ran")
            if name == "rename_io":
                in_names = [params["inputs"].get(n, n) for n in in_names]
                out_names = [params["outputs"].get(n, n) for n in out_names]
        graphkit.save(current, folder / "out.onnx")
        got = run(folder / "out.onnx", dict(zip(in_names, feeds.values(), strict=True)))

    assert list(got) == out_names
    for old, new in zip(expected, out_names, strict=True):
        np.testing.assert_allclose(got[new], expected[old], rtol=1e-5, atol=1e-6)
