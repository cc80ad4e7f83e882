"""set_opset: ops the target lacks become their ONNX function bodies, with the same numbers."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphkit
from graphkit import PassError
from graphkit._modelio.proto import to_proto
from tests.models import as_ir, from_text, run

set_opset = graphkit.passes.set_opset


def model(opset: int, signature: str, body: str, *, extra: str = "") -> onnx.ModelProto:
    return from_text(
        f"""<ir_version: 10, opset_import: ["" : {opset}{extra}]>
        g {signature} {{ {body} }}"""
    )


def feeds(source: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for every graph input, of its declared type and shape."""
    rng = np.random.default_rng(seed)
    result = {}
    for value in source.graph.input:
        tensor = value.type.tensor_type
        shape = [d.dim_value for d in tensor.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        result[value.name] = (rng.standard_normal(shape) * 2).astype(dtype)
    return result


def convert(source: onnx.ModelProto, target: int) -> tuple[onnx.ModelProto, list[str]]:
    result = set_opset.run(as_ir(source), set_opset.validate({"version": target}))
    proto = to_proto(result.model)
    onnx.checker.check_model(proto, full_check=True)
    return proto, result.notes


def ops(proto: onnx.ModelProto) -> set[str]:
    found = set()
    for node in proto.graph.node:
        found.add(node.op_type)
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                found.update(n.op_type for n in attribute.g.node)
    return found


def assert_same_numbers(source: onnx.ModelProto, converted: onnx.ModelProto) -> None:
    inputs = feeds(source)
    expected, got = run(source, inputs), run(converted, inputs)
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-5, err_msg=name)


# (id, source opset, target, signature, body): each op is absent at the target.
EXPANSIONS = [
    ("Mish", 18, 17, "(float[2,5] x) => (float[2,5] y)", "y = Mish(x)"),
    ("Gelu", 20, 17, "(float[2,5] x) => (float[2,5] y)", "y = Gelu(x)"),
    (
        "Gelu-tanh",
        20,
        17,
        "(float[2,5] x) => (float[2,5] y)",
        'y = Gelu<approximate = "tanh">(x)',
    ),
    ("HardSwish", 14, 13, "(float[2,5] x) => (float[2,5] y)", "y = HardSwish(x)"),
    (
        "LayerNormalization",
        17,
        13,
        "(float[2,3,4] x, float[4] scale, float[4] bias) => (float[2,3,4] y)",
        "y = LayerNormalization<axis = -1, epsilon = 0.001>(x, scale, bias)",
    ),
    (
        "LayerNormalization-no-bias",
        17,
        15,
        "(float[2,3,4] x, float[3,4] scale) => (float[2,3,4] y)",
        "y = LayerNormalization<axis = 1>(x, scale)",
    ),
    (
        "GroupNormalization-21",
        21,
        17,
        "(float[2,4,3,3] x, float[4] scale, float[4] bias) => (float[2,4,3,3] y)",
        "y = GroupNormalization<num_groups = 2, epsilon = 0.01>(x, scale, bias)",
    ),
    (
        "RMSNormalization",
        23,
        17,
        "(float[2,3,4] x, float[4] scale) => (float[2,3,4] y)",
        "y = RMSNormalization<axis = -1>(x, scale)",
    ),
    (
        "RotaryEmbedding",
        23,
        17,
        "(float[1,2,3,4] x, float[3,2] cos, float[3,2] sin, int64[1,3] pos) => (float[1,2,3,4] y)",
        "y = RotaryEmbedding(x, cos, sin, pos)",
    ),
    (
        "Attention",
        23,
        17,
        "(float[1,2,3,4] q, float[1,2,5,4] k, float[1,2,5,4] v) => (float[1,2,3,4] y)",
        "y = Attention(q, k, v)",
    ),
    (
        # The body picks 2-D or 3-D with an If on the size's length: a constant here.
        "AffineGrid",
        20,
        17,
        "(float[2,2,3] theta) => (float[2,5,6,2] y)",
        "size = Constant<value = int64[4] {2, 3, 5, 6}>() y = AffineGrid(theta, size)",
    ),
    (
        "CenterCropPad",
        18,
        17,
        "(float[5,4,2] x) => (float[3,6,2] y)",
        "shape = Constant<value = int64[2] {3, 6}>() y = CenterCropPad<axes = [0, 1]>(x, shape)",
    ),
]


@pytest.mark.parametrize(
    ("opset", "target", "signature", "body"),
    [pytest.param(*case[1:], id=case[0]) for case in EXPANSIONS],
)
def test_an_op_the_target_lacks_is_expanded_with_the_same_numbers(
    opset: int, target: int, signature: str, body: str
) -> None:
    source = model(opset, signature, body)
    op = source.graph.node[-1].op_type
    converted, notes = convert(source, target)
    assert op not in ops(converted)
    assert f"expanded into their function bodies: {op} x1" in notes
    inputs = feeds(source)
    if "pos" in inputs:  # RotaryEmbedding's position ids index its cos and sin caches
        inputs["pos"] = np.array([[0, 2, 1]], dtype=np.int64)
    expected, got = run(source, inputs), run(converted, inputs)
    np.testing.assert_allclose(got["y"], expected["y"], rtol=1e-5, atol=1e-5)


def test_names_stay_unique_and_graph_outputs_keep_theirs() -> None:
    """Two Mish nodes, one feeding a graph output, and a value already named like a body value."""
    source = model(
        18,
        "(float[2,5] x) => (float[2,5] y, float[2,5] z)",
        """t = Mish(x)
        Softplus_X = Relu(t)
        y = Mish(Softplus_X)
        z = Add(t, Softplus_X)""",
    )
    converted, notes = convert(source, 17)
    assert notes[0] == "expanded into their function bodies: Mish x2"
    assert [o.name for o in converted.graph.output] == ["y", "z"]
    names = [o for n in converted.graph.node for o in n.output]
    assert len(names) == len(set(names))
    node_names = [n.name for n in converted.graph.node if n.name]
    assert len(node_names) == len(set(node_names))
    assert_same_numbers(source, converted)


def test_a_node_inside_an_if_branch_is_expanded() -> None:
    source = model(
        18,
        "(float[2,5] x, bool c) => (float[2,5] y)",
        """y = If(c) <
            then_branch = g1 () => (float[2,5] a) { a = Mish(x) },
            else_branch = g2 () => (float[2,5] b) { b = Neg(x) }
        >""",
    )
    converted, notes = convert(source, 17)
    assert "Mish" not in ops(converted)
    assert notes[0] == "expanded into their function bodies: Mish x1"
    inputs = feeds(source)
    for flag in (True, False):
        inputs["c"] = np.array(flag)
        np.testing.assert_allclose(run(converted, inputs)["y"], run(source, inputs)["y"], rtol=1e-6)


def test_names_in_a_branch_stay_unique_across_the_whole_model() -> None:
    """The main graph already has the name the branch's expansion would pick first."""
    source = model(
        18,
        "(float[2,5] x, bool c) => (float[2,5] y)",
        """taken = Neg(x)
        y = If(c) <
            then_branch = g1 () => (float[2,5] a) { a = Mish(x) },
            else_branch = g2 () => (float[2,5] b) { b = Identity(taken) }
        >""",
    )
    source.graph.node[0].output[0] = "Mish/Softplus_X"
    source.graph.node[1].attribute[1].g.node[0].input[0] = "Mish/Softplus_X"
    converted, _ = convert(source, 17)
    names = [o for n in converted.graph.node for o in n.output]
    for node in converted.graph.node:
        for attribute in node.attribute:
            names += [o for n in attribute.g.node for o in n.output]
    assert "Mish/Softplus_X" in names
    assert len(names) == len(set(names)), names
    inputs = feeds(source)
    for flag in (True, False):
        inputs["c"] = np.array(flag)
        np.testing.assert_allclose(run(converted, inputs)["y"], run(source, inputs)["y"], rtol=1e-6)


def test_other_domains_keep_their_ops_and_opsets() -> None:
    """A com.microsoft op stays as it is while a default-domain op is expanded around it."""
    source = onnx.parser.parse_model(
        """<ir_version: 10, opset_import: ["" : 18, "com.microsoft" : 1]>
        g (float[2,5] x) => (float[2,5] y) { t = Mish(x)  y = com.microsoft.Gelu(t) }"""
    )
    result = set_opset.run(as_ir(source), set_opset.validate({"version": 17}))
    proto = to_proto(result.model)
    assert {o.domain: o.version for o in proto.opset_import} == {"": 17, "com.microsoft": 1}
    assert [(n.domain, n.op_type) for n in proto.graph.node][-1] == ("com.microsoft", "Gelu")
    assert_same_numbers(source, proto)


def test_an_op_that_exists_at_the_target_is_not_expanded() -> None:
    source = model(18, "(float[2,5] x) => (float[2,5] y)", "y = Mish(x)")
    converted, notes = convert(source, 19)
    assert ops(converted) == {"Mish"}
    assert not any(note.startswith("expanded") for note in notes)


def test_a_body_that_cannot_reach_the_target_names_the_node() -> None:
    """Gelu's body needs Erf, which opset 8 does not have."""
    source = model(20, "(float[2,5] x) => (float[2,5] y)", "y = Gelu(x)")
    source.graph.node[0].name = "act"
    with pytest.raises(PassError) as caught:
        set_opset(as_ir(source), version=8)
    message = str(caught.value)
    assert message.startswith(
        "cannot convert opset 20 to 8: Gelu node 'act': its function body does not convert: "
    )
    assert "Erf" in message


def test_a_result_invalid_at_the_target_is_refused_naming_the_node() -> None:
    """onnx's converter keeps AveragePool's 'dilations' going down to 17, where it is unknown."""
    source = model(
        19,
        "(float[1,1,6,6] x) => (float[1,1,2,2] y)",
        "y = AveragePool<kernel_shape = [2, 2], dilations = [2, 2], strides = [2, 2]>(x)",
    )
    source.graph.node[0].name = "pool"
    with pytest.raises(PassError) as caught:
        set_opset(as_ir(source), version=17)
    assert str(caught.value).startswith("cannot convert opset 19 to 17: AveragePool node 'pool': ")
    assert "dilations" in str(caught.value)


def test_scan_8_is_refused_going_up() -> None:
    """onnx's converter drops Scan-8's batch axis, so the result expects inputs of another rank."""
    body = onnx.helper.make_graph(
        [onnx.helper.make_node("Add", ["s_in", "x_in"], ["s_out"])],
        "body",
        [
            onnx.helper.make_tensor_value_info("s_in", onnx.TensorProto.FLOAT, [2]),
            onnx.helper.make_tensor_value_info("x_in", onnx.TensorProto.FLOAT, [2]),
        ],
        [onnx.helper.make_tensor_value_info("s_out", onnx.TensorProto.FLOAT, [2])],
    )
    scan = onnx.helper.make_node(
        "Scan", ["", "s0", "x"], ["s"], num_scan_inputs=1, body=body, name="loop"
    )
    source = onnx.helper.make_model(
        onnx.helper.make_graph(
            [scan],
            "scan8",
            [
                onnx.helper.make_tensor_value_info("s0", onnx.TensorProto.FLOAT, [1, 2]),
                onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 2]),
            ],
            [onnx.helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, [1, 2])],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 8)],
        ir_version=4,
    )
    with pytest.raises(PassError) as caught:
        set_opset(as_ir(source), version=21)
    assert str(caught.value) == (
        "cannot convert opset 8 to 21: Scan node 'loop': Scan-8 iterates over a batch axis "
        "that Scan-9 does not have, so neither form can express the other"
    )


@pytest.mark.filterwarnings("ignore")  # onnx's case generators divide by zero on purpose
def test_a_result_whose_shapes_change_at_the_target_is_refused() -> None:
    """AveragePool-19 drops a last window that starts on the padding; AveragePool-11 keeps it."""
    from onnx.backend.test.case.node import collect_testcases

    [case] = [
        c
        for c in collect_testcases(None)
        if c.name == "test_averagepool_2d_ceil_last_window_starts_on_pad"
    ]
    with pytest.raises(PassError) as caught:
        set_opset(as_ir(case.model), version=17)
    message = str(caught.value)
    assert message.startswith("cannot convert opset ")
    assert "the result would not be valid: AveragePool node '(unnamed)': at the target it " in (
        message
    )
    assert "computes another shape than the model declares" in message


def test_a_node_the_targets_form_cannot_express_is_expanded_instead() -> None:
    """Celu-12 takes float only; a float16 Celu-28 becomes its body, whose ops take float16."""
    source = model(28, "(float16[2,5] x) => (float16[2,5] y)", "y = Celu<alpha = 0.5>(x)")
    converted, notes = convert(source, 17)
    assert "Celu" not in ops(converted)
    assert "expanded into their function bodies: Celu x1" in notes
    inputs = feeds(source)
    np.testing.assert_allclose(
        run(converted, inputs)["y"].astype(np.float32),
        run(source, inputs)["y"].astype(np.float32),
        rtol=1e-3,
        atol=1e-3,
    )
