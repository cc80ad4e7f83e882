"""onnx's backend test cases through every pass configuration: a fixed sample, for CI.

The full run is ``python benchmarks/conformance.py``; this runs a sample that
covers the op families passes treat differently (subgraphs, recurrent layers,
strings, weights, shape arithmetic, contrib-free ML ops) and asserts that no
configuration leaves a case wrong or crashes on one.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import helper

from benchmarks.conformance import (
    CONFIGS,
    CONVERTER_CONFIGS,
    Case,
    Collected,
    Config,
    Result,
    collect_cases,
    failures,
    run_case,
    table,
)

SAMPLE = [
    "test_abs", "test_add_bcast", "test_matmul_2d", "test_gemm_default_matrix_bias",
    "test_conv_with_strides_padding", "test_convtranspose", "test_batchnorm_example",
    "test_instancenorm_example", "test_maxpool_2d_default", "test_averagepool_2d_default",
    "test_averagepool_2d_dilations", "test_reshape_negative_dim", "test_gather_0", "test_slice",
    "test_concat_2d_axis_1", "test_split_variable_parts_2d_opset13",
    "test_resize_upsample_scales_linear", "test_softmax_axis_0", "test_hardmax_axis_0",
    "test_layer_normalization_4d_axis0_expanded", "test_mvn_expanded", "test_lstm_defaults",
    "test_gru_defaults", "test_rnn_seq_length", "test_if", "test_loop11", "test_scan9_sum",
    "test_scan_sum", "test_einsum_batch_matmul", "test_equal_string", "test_string_concat",
    "test_cast_FLOAT_to_FLOAT16", "test_nonzero_example", "test_constantofshape_float_ones",
    "test_where_example", "test_range_float_type_positive_delta_expanded", "test_dropout_default",
    "test_clip_example", "test_shape_start_1", "test_unique_sorted_with_axis",
    "test_dynamicquantizelinear_expanded", "test_attention_4d", "test_expand_shape_model1",
    "test_sequence_model3", "test_ai_onnx_ml_label_encoder_string_int",
    "test_castlike_FLOAT_to_DOUBLE_expanded",
]  # fmt: skip


# The sample keeps the cases onnx's converter alone gets wrong (Scan 8 going up, AveragePool's
# dilations and Cast's saturate kept going down): set_opset must refuse or convert them.
@pytest.fixture(scope="module")
def collected() -> Collected:
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    return collect_cases(SAMPLE)


def test_every_sampled_case_runs_in_onnx_runtime(collected: Collected) -> None:
    # A sample case ONNX Runtime stops running would silently shrink the sample.
    assert collected.excluded == {}
    assert len(collected.cases) == len(SAMPLE)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_no_case_ends_wrong_or_crashes(
    config: Config, collected: Collected, tmp_path: Path
) -> None:
    results = [
        Result(case.name, config.name, run_case(case, config, tmp_path)) for case in collected.cases
    ]
    ran = [r for r in results if r.outcome is not None]
    assert len(ran) >= 10, f"only {len(ran)} sampled cases apply to {config.name}"
    bad = failures(results)
    assert not bad, f"\n{table(results)}\n{bad}"
    assert sum(r.outcome.status == "ok" for r in ran) >= 5, table(results)


# -- the harness itself ----------------------------------------------------------------------------


def _add_case() -> Case:
    import numpy as np

    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Add", ["a", "b"], ["c"])],
            "add",
            [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [2]) for n in "ab"],
            [helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [2])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
        ir_version=8,
    )
    a, b = np.array([1, 2], np.float32), np.array([3, 4], np.float32)
    return Case("add", model, (((a, b), (a + b,)),), rtol=1e-3, atol=1e-7)


def _with_op(op: str):
    def tool(proto: onnx.ModelProto, params: dict) -> onnx.ModelProto:
        proto = onnx.ModelProto.FromString(proto.SerializeToString())
        proto.graph.node[0].op_type = op
        return proto

    return tool


@pytest.mark.parametrize(
    ("tool", "status", "detail"),
    [
        (_with_op("Add"), "ok", ""),
        (_with_op("Sub"), "wrong", "values differ"),
        (_with_op("NoSuchOp"), "wrong", "cannot load the result"),
        (lambda proto, params: 1 / 0, "crash", "ZeroDivisionError"),
    ],
    ids=["unchanged", "numbers-differ", "does-not-load", "exception"],
)
def test_the_harness_tells_each_outcome(tool, status: str, detail: str, tmp_path: Path) -> None:
    outcome = run_case(_add_case(), Config("probe", "probe", lambda case: {}, tool), tmp_path)
    assert outcome is not None
    assert outcome.status == status
    assert detail in outcome.detail


def test_a_pass_that_refuses_is_refused(tmp_path: Path) -> None:
    config = Config("rename", "rename_io", lambda case: {"inputs": {"missing": "x"}})
    outcome = run_case(_add_case(), config, tmp_path)
    assert outcome is not None and outcome.status == "refused"
    assert "no graph input named 'missing'" in outcome.detail


def test_the_converter_baseline_runs_onnx_alone(collected: Collected, tmp_path: Path) -> None:
    # onnx's converter keeps Softmax's axis going below opset 13, where it means more axes;
    # set_opset moves the axis last, the converter alone gets it wrong: the baseline must show it.
    by_name = {c.name: c for c in collected.cases}
    [down] = [c for c in CONVERTER_CONFIGS if c.name == "onnx converter 11"]
    assert run_case(by_name["test_convtranspose"], down, tmp_path).status == "ok"
    outcome = run_case(by_name["test_softmax_axis_0"], down, tmp_path)
    assert outcome.status == "wrong", outcome
    [ours] = [c for c in CONFIGS if c.name == "set_opset 11"]
    assert run_case(by_name["test_softmax_axis_0"], ours, tmp_path).status == "ok"


def test_set_opset_configurations_apply_only_across_versions() -> None:
    case = _add_case()  # opset 17
    applies = {c.name: c.params(case) is not None for c in CONFIGS if c.pass_name == "set_opset"}
    assert applies == {
        "set_opset 11": True, "set_opset 13": True, "set_opset 15": True, "set_opset 17": False,
        "set_opset 21": True,
    }  # fmt: skip
