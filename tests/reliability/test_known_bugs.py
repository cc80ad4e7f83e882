"""Known bugs of the tools graphkit builds on, each with the guard that keeps it out of graphkit.

Every test names its upstream issue and, where it can, first shows the anchor
tool misbehaving on the same model, so the test documents why the guard
exists. When an upstream fix makes the anchor behave, that part only warns
(:func:`still_broken`); graphkit's own assertions always run.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnx.tools.update_model_dims
import onnx_ir as ir
import pytest

import graphkit
from graphkit import PassError, SaveOptions
from graphkit._modelio.proto import to_proto
from graphkit.passes import check, cleanup, fix_dims, rename_io, set_opset, simplify
from tests.models import (
    as_ir,
    from_text,
    ir3_weights_as_inputs,
    random_input,
    run,
    tf2onnx_like,
    write,
)
from tests.models import with_if as with_if_model
from tests.reliability.conftest import run_console
from tests.reliability.hostile import converter_crasher, inference_crasher, with_loop, with_scan


def still_broken(broken: bool, issue: str) -> None:
    """Warn, rather than fail, once the anchor tool no longer shows ``issue``."""
    if not broken:
        warnings.warn(f"{issue} no longer reproduces with the installed version", stacklevel=2)


def serialized(model: ir.Model) -> onnx.ModelProto:
    return ir.serde.serialize_model(model)


def shapes_of(proto: onnx.ModelProto) -> dict[str, list[int | str]]:
    """Each value_info, input and output by name, as its dims; weights left out."""
    weights = {t.name for t in proto.graph.initializer}
    found = {}
    for info in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        if info.name in weights:
            continue
        dims = info.type.tensor_type.shape.dim
        found[info.name] = [d.dim_param or d.dim_value for d in dims]
    return found


# -- fix_dims against onnx.tools.update_model_dims ------------------------------------------------


def test_fixing_a_dim_updates_value_info_too() -> None:
    """onnx#2799: update_model_dims touches graph inputs and outputs only; value_info goes stale."""
    proto = tf2onnx_like()

    anchor = onnx.tools.update_model_dims.update_inputs_outputs_dims(
        copy.deepcopy(proto), {"input_1": [1, 8, 8, 3]}, {"conv2d_6": [1, 8, 8, 3]}
    )
    still_broken(shapes_of(anchor)["nchw"][0] == "unk__127", "onnx#2799")

    fixed = serialized(fix_dims(as_ir(proto), dims={"unk__127": 1}))
    assert {name: dims[0] for name, dims in shapes_of(fixed).items()} == dict.fromkeys(
        ["input_1", "conv2d_6", "nchw", "conv", "relu", "nhwc"], 1
    )
    feeds = {"input_1": random_input((1, 8, 8, 3))}
    np.testing.assert_allclose(
        run(fixed, feeds)["conv2d_6"], run(proto, feeds)["conv2d_6"], rtol=1e-6
    )


def test_inputs_and_outputs_left_out_are_fine() -> None:
    """onnx#4419: update_model_dims raises KeyError for every input or output not given."""
    proto = from_text(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 2] a, float[M, 2] b) => (float[N, 2] y, float[M, 2] z) {
            y = Relu(a)
            z = Neg(b)
        }"""
    )

    try:
        onnx.tools.update_model_dims.update_inputs_outputs_dims(
            copy.deepcopy(proto), {"a": [3, 2]}, {"y": [3, 2]}
        )
        broken = False
    except KeyError:
        broken = True
    still_broken(broken, "onnx#4419")

    fixed = serialized(fix_dims(as_ir(proto), shapes={"a": [3, 2]}))
    assert shapes_of(fixed) == {"a": [3, 2], "b": ["M", 2], "y": [3, 2], "z": ["M", 2]}


def test_stale_value_info_does_not_contradict_the_new_sizes() -> None:
    """onnxsim#155, onnx#4367: "Inferred shape and existing shape differ" from stale value_info.

    An exporter that traced with batch 1 left value_info saying 1 while the
    interface says ``unk__127``; making the batch 4 contradicts it.
    """
    proto = tf2onnx_like()
    for info in proto.graph.value_info:
        info.type.tensor_type.shape.dim[0].dim_value = 1

    anchor = onnx.tools.update_model_dims.update_inputs_outputs_dims(
        copy.deepcopy(proto), {"input_1": [4, 8, 8, 3]}, {"conv2d_6": [4, 8, 8, 3]}
    )
    try:
        onnx.shape_inference.infer_shapes(anchor, strict_mode=True)
        broken = False
    except onnx.shape_inference.InferenceError as error:
        broken = "differ" in str(error)
    still_broken(broken, "onnx#4367")

    fixed = serialized(fix_dims(as_ir(proto), dims={"unk__127": 4}))
    assert {dims[0] for dims in shapes_of(fixed).values()} == {4}
    feeds = {"input_1": random_input((4, 8, 8, 3))}
    np.testing.assert_allclose(
        run(fixed, feeds)["conv2d_6"], run(tf2onnx_like(), feeds)["conv2d_6"], rtol=1e-6
    )


# -- rename_io ------------------------------------------------------------------------------------

CONSTANT_OUTPUTS = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2] x) => (float[2] c0, float[2] c1, float[2] a, float[2] b)
    <float[2] c0 = {1, 2}, float[2] c1 = {3, 4}> {
    a = Relu(x)
    b = Neg(a)
}"""


def test_swapping_outputs_that_are_initializers() -> None:
    """onnx/ir-py#353: renaming in a loop fails when the new name belongs to another initializer."""
    model = as_ir(from_text(CONSTANT_OUTPUTS))
    try:
        for value, name in zip(list(model.graph.outputs)[:2], ["c1", "c0"], strict=True):
            value.name = name
        broken = False
    except ValueError as error:
        broken = "already exists" in str(error)
    still_broken(broken, "onnx/ir-py#353")

    renamed = serialized(
        rename_io(as_ir(from_text(CONSTANT_OUTPUTS)), outputs={"c0": "c1", "c1": "c0"})
    )
    onnx.checker.check_model(renamed, full_check=True)
    result = run(renamed, {"x": np.array([1, -2], np.float32)})
    assert result["c1"].tolist() == [1, 2] and result["c0"].tolist() == [3, 4]


@pytest.mark.parametrize(
    "outputs",
    [{"a": "b", "b": "a"}, {"a": "c0", "c0": "a"}, {"a": "result", "b": "a"}],
    ids=["swap-chained", "swap-with-initializer", "rename-onto-a-freed-name"],
)
def test_renaming_outputs_that_feed_one_another(outputs: dict[str, str]) -> None:
    """onnx/ir-py#448: a rename must leave no reference dangling; ``b`` reads ``a``."""
    renamed = serialized(rename_io(as_ir(from_text(CONSTANT_OUTPUTS)), outputs=outputs))

    onnx.checker.check_model(renamed, full_check=True)
    x = np.array([1, -2], np.float32)
    expected = run(from_text(CONSTANT_OUTPUTS), {"x": x})
    got = run(renamed, {"x": x})
    for old, value in expected.items():
        np.testing.assert_array_equal(got[outputs.get(old, old)], value)


def test_renaming_an_input_to_a_weights_name_is_refused() -> None:
    """onnx/ir-py#353: renaming onto an initializer's name left two values with one name."""
    with pytest.raises(PassError, match="cannot rename 'x' to 'c0': a tensor of that name exists"):
        rename_io(as_ir(from_text(CONSTANT_OUTPUTS)), inputs={"x": "c0"})


SUBGRAPH_MODELS = {
    "If": (with_if_model, {"x": "data"}, {"y": "result"}),
    "Loop": (with_loop, {"x": "data"}, {"y": "result"}),
    "Scan": (with_scan, {"x": "data"}, {"total": "sum", "scaled": "rows"}),
}


def _feeds(kind: str, name: str = "x") -> dict[str, np.ndarray]:
    x = np.arange(6, dtype=np.float32).reshape(3, 2) - 2.0
    return {name: x if kind != "If" else -x}


@pytest.mark.parametrize("kind", SUBGRAPH_MODELS)
def test_names_used_inside_subgraphs_are_renamed(kind: str) -> None:
    """onnx#4687: renaming left the names used inside If, Loop and Scan bodies behind."""
    build, inputs, outputs = SUBGRAPH_MODELS[kind]

    if kind == "If":
        prefixed = onnx.compose.add_prefix_graph(build().graph, "p_")
        try:
            onnx.checker.check_graph(prefixed)
            broken = False
        except onnx.checker.ValidationError:
            broken = True
        still_broken(broken, "onnx#4687")

    renamed = serialized(rename_io(as_ir(build()), inputs=inputs, outputs=outputs))
    onnx.checker.check_model(renamed, full_check=True)
    expected = run(build(), _feeds(kind))
    got = run(renamed, _feeds(kind, "data"))
    for old, value in expected.items():
        np.testing.assert_array_equal(got[outputs[old]], value)


def test_renaming_onto_a_name_used_inside_a_body_is_refused() -> None:
    """ONNX forbids a body to shadow an outer name; ``acc`` is the Loop body's own input."""
    with pytest.raises(PassError, match="cannot rename 'x' to 'acc': a tensor of that name exists"):
        rename_io(as_ir(with_loop()), inputs={"x": "acc"})


# -- cleanup --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SUBGRAPH_MODELS)
def test_cleanup_keeps_weights_used_only_inside_subgraphs(kind: str) -> None:
    """onnxscript#2810, onnxruntime#32131: a weight read only in a body looked unused and went."""
    build = SUBGRAPH_MODELS[kind][0]

    cleaned = serialized(cleanup(as_ir(build())))

    assert "k" in {t.name for t in cleaned.graph.initializer}
    onnx.checker.check_model(cleaned, full_check=True)
    expected = run(build(), _feeds(kind))
    for name, value in run(cleaned, _feeds(kind)).items():
        np.testing.assert_array_equal(value, expected[name])


IDENTITY_OUTPUTS = {
    "identity-of-an-output": """<ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 2] x) => (float[N, 2] a, float[N, 2] b) { a = Relu(x)  b = Identity(a) }""",
    "identity-of-an-output-first": """<ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 2] x) => (float[N, 2] b, float[N, 2] a) { a = Relu(x)  b = Identity(a) }""",
    "identity-chain-of-outputs": """<ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 2] x) => (float[N, 2] a, float[N, 2] b) { a = Identity(x)  b = Identity(a) }""",
}


@pytest.mark.parametrize("case", IDENTITY_OUTPUTS)
def test_cleanup_keeps_an_output_that_is_an_identity_of_another(case: str) -> None:
    """onnx-ir 1.1's IdentityEliminationPass merges outputs ``a`` and ``b = Identity(a)``.

    The outputs ``[a, b]`` became ``[b, b]``: one output gone, its name on the
    other. Found by fuzzing graphkit's passes.
    """
    from onnx_ir.passes.common import IdentityEliminationPass

    anchor = IdentityEliminationPass()(as_ir(from_text(IDENTITY_OUTPUTS[case]))).model
    names = [v.name for v in anchor.graph.outputs]
    still_broken(len(set(names)) < len(names), "onnx-ir identity elimination merging outputs")

    cleaned = serialized(cleanup(as_ir(from_text(IDENTITY_OUTPUTS[case]))))

    original = from_text(IDENTITY_OUTPUTS[case])
    assert [o.name for o in cleaned.graph.output] == [o.name for o in original.graph.output]
    x = np.array([[1, -2], [-3, 4]], np.float32)
    assert {k: v.tolist() for k, v in run(cleaned, {"x": x}).items()} == {
        k: v.tolist() for k, v in run(original, {"x": x}).items()
    }


def test_cleanup_keeps_an_identity_of_an_outer_value_in_a_body() -> None:
    """onnx-ir 1.1's IdentityEliminationPass fails on a body's ``Identity(r)``, ``r`` outside."""
    then_branch = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["r"], ["t"])],
        "then",
        [],
        [onnx.helper.make_tensor_value_info("t", onnx.TensorProto.FLOAT, [2])],
    )
    else_branch = onnx.helper.make_graph(
        [onnx.helper.make_node("Neg", ["r"], ["e"])],
        "else",
        [],
        [onnx.helper.make_tensor_value_info("e", onnx.TensorProto.FLOAT, [2])],
    )
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node("Relu", ["x"], ["r"]),
            onnx.helper.make_node(
                "If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch
            ),
        ],
        "outer",
        [
            onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2]),
            onnx.helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, []),
        ],
        [
            onnx.helper.make_tensor_value_info("r", onnx.TensorProto.FLOAT, [2]),
            onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2]),
        ],
    )
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    onnx.checker.check_model(proto, full_check=True)

    cleaned = serialized(cleanup(as_ir(proto)))

    assert [o.name for o in cleaned.graph.output] == ["r", "y"]
    for c in (True, False):
        feeds = {"x": np.array([1, -1], np.float32), "c": np.array(c)}
        for name, value in run(proto, feeds).items():
            np.testing.assert_array_equal(run(cleaned, feeds)[name], value)


# -- the version converter ------------------------------------------------------------------------


def _in_child(code: str, model: onnx.ModelProto, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``code`` with ``model`` loaded as ``m`` in a fresh interpreter: it may crash."""
    path = tmp_path / "anchor.onnx"
    path.write_bytes(model.SerializeToString())
    prelude = (
        f"import onnx, onnx.version_converter, onnx.shape_inference\nm = onnx.load({str(path)!r})\n"
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("text", "target", "op"),
    [
        (
            """<ir_version: 8, opset_import: ["" : 16]>
         g (float[2] x) => (float[2] y) { y = Identity(x) }""",
            15,
            "Identity",
        ),
        (
            """<ir_version: 8, opset_import: ["" : 14]>
         g (float[2] x) => (float[2] y) { y = Relu(x) }""",
            13,
            "Relu",
        ),
    ],
    ids=["Identity-16-to-15", "Relu-14-to-13"],
)
def test_a_downgrade_onnx_has_no_adapter_for_converts(text: str, target: int, op: str) -> None:
    """onnx#5988: a downgrade with no adapter fails with the text of a C++ assertion.

    Only the allowed types changed between these versions, so graphkit's
    adapters keep the node and the numbers stay the same.
    """
    try:
        onnx.version_converter.convert_version(from_text(text), target)
        broken = False
    except RuntimeError as error:
        broken = "Assertion" in str(error)
    still_broken(broken, "onnx#5988")

    source = from_text(text)
    result = set_opset.run(as_ir(source), set_opset.validate({"version": target}))
    assert result.notes[0] == f"converted by graphkit's adapters: {op} x1"
    converted = to_proto(result.model)
    assert {o.domain: o.version for o in converted.opset_import} == {"": target}
    x = np.array([-1.5, 2.0], np.float32)
    np.testing.assert_array_equal(run(converted, {"x": x})["y"], run(source, {"x": x})["y"])


def test_a_target_above_the_newest_opset_never_reaches_the_converter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """onnx#4178: the converter crashed the process (SIGSEGV) for a target past the newest opset."""
    from graphkit import _onnx_tools

    newest = onnx.defs.onnx_opset_version()
    model = from_text(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) { y = Relu(x) }"""
    )
    anchor = _in_child(f"onnx.version_converter.convert_version(m, {newest + 1})", model, tmp_path)
    still_broken(anchor.returncode < 0, "onnx#4178")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the converter was called")

    monkeypatch.setattr(_onnx_tools, "convert_version", never)
    with pytest.raises(PassError, match=f"opset {newest + 1} is unknown"):
        set_opset(as_ir(model), version=newest + 1)


@pytest.mark.parametrize(
    ("build", "tool", "anchor_code", "call"),
    [
        (
            converter_crasher,
            "version converter",
            "onnx.version_converter.convert_version(m, 18)",
            "set_opset(model, version=18)",
        ),
        (
            inference_crasher,
            "shape inference",
            "onnx.shape_inference.infer_shapes(m, strict_mode=True)",
            "infer_shapes(model)",
        ),
        (
            inference_crasher,
            "shape inference",
            "onnx.shape_inference.infer_shapes(m, strict_mode=True)",
            "fix_dims(model, shapes={'x': [2]})",
        ),
    ],
    ids=["set_opset", "infer_shapes", "fix_dims"],
)
def test_a_crash_in_onnx_is_an_error_not_the_end_of_graphkit(
    build, tool: str, anchor_code: str, call: str, tmp_path: Path
) -> None:
    """onnx 1.23 segfaults on these invalid models; graphkit runs its C++ tools in a helper process.

    Found by fuzzing the converter: an int ``axes`` on Unsqueeze (11 -> 18), an
    empty input name on RegexFullMatch. Graphkit's side runs in a child too, so
    a regression fails this test instead of ending the test run.
    """
    anchor = _in_child(anchor_code, build(), tmp_path)
    crashed = anchor.returncode < 0
    still_broken(crashed, f"onnx's {tool} crash")

    guarded = _in_child(
        "import graphkit, onnx_ir as ir\n"
        "from graphkit.passes import fix_dims, infer_shapes, set_opset\n"
        "model = ir.serde.deserialize_model(m)\n"
        "try:\n"
        f"    {call}\n"
        "except graphkit.PassError as error:\n"
        "    print(error)\n"
        "healthy = ir.serde.deserialize_model(onnx.parser.parse_model(\n"
        '    \'<ir_version: 8, opset_import: ["" : 13]> g (float[2] x) => (float[2] y) '
        "{ y = Relu(x) }'))\n"
        "print(set_opset(healthy, version=17).opset_imports[''])\n",
        build(),
        tmp_path,
    )

    assert guarded.returncode == 0, f"graphkit ended with {guarded.returncode}: {guarded.stderr}"
    error, after = guarded.stdout.splitlines()
    if crashed:
        assert f"onnx's {tool} crashed (SIGSEGV) on this model; it is invalid" in error
    assert after == "17"  # the helper process was started afresh for the next call


def test_a_crash_in_onnx_through_the_command_line(tmp_path: Path) -> None:
    """The whole run, as a user meets it: exit code 5 and one line, not a signal."""
    write(converter_crasher(), tmp_path / "m.onnx")
    (tmp_path / "r.yaml").write_text(
        "version: 1\nsource: {path: m.onnx}\noutput: out.onnx\n"
        "passes: [{set_opset: {version: 18}}]\n"
    )

    outcome = run_console("apply", "-q", "r.yaml", cwd=tmp_path)

    outcome.assert_clean_failure(PassError.exit_code, "passes[0] set_opset (r.yaml:4:10)")
    assert len(outcome.err.splitlines()) == 1
    assert not (tmp_path / "out.onnx").exists()


def test_the_checker_guards_the_converter() -> None:
    """The check pass rejects the converter's crasher cleanly, before anything converts it."""
    with pytest.raises(PassError, match=r"the model is invalid: .*Unsqueeze"):
        check(as_ir(converter_crasher()))


# -- onnxsim --------------------------------------------------------------------------------------


@pytest.mark.parametrize("change", ["drop", "rename"])
def test_simplify_refuses_an_interface_onnxsim_changed(
    change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxsim#227 dropped an output, onnxsim#79 renamed one; stood in for by a wrapper here.

    onnxsim 0.7 keeps these models' outputs, so the wrapper plays the old
    onnxsim: the guard compares the interface before and after, whatever the cause.
    """
    from graphkit import _onnx_tools

    real = _onnx_tools.onnxsim_simplify

    def misbehaving(model: onnx.ModelProto, **options: object) -> onnx.ModelProto:
        simplified = real(model, **options)
        last = simplified.graph.output[-1]
        if change == "drop":
            simplified.graph.output.remove(last)
        else:
            for node in simplified.graph.node:
                node.output[:] = ["output_0" if o == last.name else o for o in node.output]
            last.name = "output_0"
        return simplified

    monkeypatch.setattr(_onnx_tools, "onnxsim_simplify", misbehaving)
    model = from_text(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] a, float[2] b) { a = Relu(x)  b = Neg(a) }"""
    )

    with pytest.raises(PassError, match=r"onnxsim changed the model's interface: outputs \[a"):
        simplify(as_ir(model), engine="onnxsim")


def test_weights_listed_as_inputs_are_folded_out_loud() -> None:
    """onnxsim turns weights that old models list as inputs into constants, without a word."""
    with contextlib.redirect_stdout(io.StringIO()):
        anchor, _ = __import__("onnxsim").simplify(ir3_weights_as_inputs())
    still_broken([i.name for i in anchor.graph.input] == ["data"], "onnxsim weight inputs")

    result = graphkit.passes.simplify.run(as_ir(ir3_weights_as_inputs()), simplify.validate({}))
    assert [v.name for v in result.model.graph.inputs] == ["data"]
    assert result.notes[-1] == (
        "2 weights listed as inputs became constants (fold_weight_inputs: false keeps them inputs)"
    )

    kept = simplify(as_ir(ir3_weights_as_inputs()), fold_weight_inputs=False)
    assert [v.name for v in kept.graph.inputs] == ["data", "W", "B"]


# -- external data --------------------------------------------------------------------------------


def _weights(model: ir.Model) -> dict[str, np.ndarray]:
    return {
        name: np.array(value.const_value.numpy())
        for name, value in model.graph.initializers.items()
        if value.const_value is not None
    }


def test_saving_leaves_the_callers_weights_in_memory(tmp_path: Path) -> None:
    """onnx.save(save_as_external_data=True) empties the weights of the proto it was given."""
    proto = tf2onnx_like()
    onnx.save(proto, tmp_path / "anchor.onnx", save_as_external_data=True, size_threshold=0)
    still_broken(proto.graph.initializer[0].data_location == onnx.TensorProto.EXTERNAL, "strip")

    model = as_ir(tf2onnx_like())
    before = _weights(model)
    graphkit.save(model, tmp_path / "out.onnx", SaveOptions(external_data=True, threshold_bytes=0))

    after = _weights(model)
    assert after.keys() == before.keys()
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value)
    graphkit.save(model, tmp_path / "again.onnx", SaveOptions(external_data=False))
    feeds = {"input_1": random_input((1, 8, 8, 3))}
    np.testing.assert_array_equal(
        run(tmp_path / "again.onnx", feeds)["conv2d_6"], run(tf2onnx_like(), feeds)["conv2d_6"]
    )


def test_saving_twice_replaces_the_data_file_instead_of_appending(tmp_path: Path) -> None:
    """onnx.save appends to an existing data file of the same name; the file grows each time."""
    for _ in range(2):
        onnx.save(
            tf2onnx_like(),
            tmp_path / "anchor.onnx",
            save_as_external_data=True,
            location="anchor.data",
            size_threshold=0,
        )
    single = len(b"".join(t.raw_data for t in tf2onnx_like().graph.initializer))
    still_broken((tmp_path / "anchor.data").stat().st_size == 2 * single, "append")

    options = SaveOptions(external_data=True, threshold_bytes=0)
    for _ in range(2):
        graphkit.save(as_ir(tf2onnx_like()), tmp_path / "out.onnx", options)

    assert (tmp_path / "out.onnx.data").stat().st_size == single
    feeds = {"input_1": random_input((1, 8, 8, 3))}
    np.testing.assert_array_equal(
        run(tmp_path / "out.onnx", feeds)["conv2d_6"], run(tf2onnx_like(), feeds)["conv2d_6"]
    )


def test_external_data_is_found_from_any_working_folder(tmp_path: Path, in_other_dir: Path) -> None:
    """onnx.checker.check_model resolves a proto's external data against the working folder."""
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(
        tf2onnx_like(),
        folder / "m.onnx",
        save_as_external_data=True,
        location="m.onnx.data",
        size_threshold=0,
    )
    anchor = onnx.load(folder / "m.onnx", load_external_data=False)
    try:
        onnx.checker.check_model(anchor, full_check=True)
        broken = False
    except onnx.checker.ValidationError:
        broken = True
    still_broken(broken, "checker resolves external data against the working folder")

    (folder / "r.yaml").write_text(
        "version: 1\nsource: {path: m.onnx}\noutput: ../out/m.onnx\npasses:\n"
        "  - check\n  - {fix_dims: {dims: {unk__127: 2}}}\n  - {set_opset: {version: 17}}\n"
        "  - infer_shapes\n  - cleanup\n  - check\n"
    )
    result = graphkit.apply(folder / "r.yaml")

    assert result.output == folder / ".." / "out" / "m.onnx"
    assert sorted(os.listdir(tmp_path / "out")) == ["m.onnx", "m.onnx.data"]
    assert not list(in_other_dir.iterdir())
    feeds = {"input_1": random_input((2, 8, 8, 3))}
    np.testing.assert_allclose(
        run(tmp_path / "out" / "m.onnx", feeds)["conv2d_6"],
        run(tf2onnx_like(), feeds)["conv2d_6"],
        rtol=1e-6,
    )
