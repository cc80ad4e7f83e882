"""check: onnx's checker plus external data that is really there; changes nothing."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

import graphkit
from graphkit import PassError
from graphkit._modelio.proto import from_proto
from tests.models import as_ir, matmul, tf2onnx_like, with_if

check = graphkit.passes.check


def test_a_valid_model_passes_unchanged() -> None:
    for source in (tf2onnx_like(), with_if()):
        result = check.run(as_ir(source), check.validate({}))
        assert result.modified is False


def test_an_invalid_model_fails() -> None:
    source = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[2] y) { y = Relu<bogus = 1>(x) }"""
    )
    with pytest.raises(PassError, match=r"the model is invalid: .*bogus"):
        check(from_proto(source))


def test_full_check_catches_type_errors() -> None:
    source = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x, int64[2] i) => (float[2] y) { y = Add(x, i) }"""
    )
    model = from_proto(source)
    assert check.run(model, check.validate({"full": False})).modified is False
    with pytest.raises(PassError, match="the model is invalid"):
        check(model, full=True)


@pytest.fixture
def external(tmp_path: Path) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(matmul(32), path, save_as_external_data=True, location="m.data", size_threshold=0)
    return path


def test_external_data_is_checked(external: Path) -> None:
    assert check.run(graphkit.load(external), check.validate({})).modified is False
    data = external.parent / "m.data"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(
        PassError, match=r"tensor 'w': needs bytes up to 4096 of .*m\.data, which has only 100"
    ):
        check(graphkit.load(external))
    data.unlink()
    with pytest.raises(PassError, match=r"tensor 'w': external data file .*m\.data is missing"):
        check(graphkit.load(external))


def test_runtime_proves_onnx_runtime_loads_the_model(external: Path) -> None:
    for model in (as_ir(tf2onnx_like()), as_ir(with_if()), graphkit.load(external)):
        assert check.run(model, check.validate({"runtime": True})).modified is False


def test_runtime_refuses_what_onnx_runtime_refuses_in_one_quiet_line(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # onnx's checker accepts an op of an unknown domain; ONNX Runtime has no kernel for it.
    source = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17, "com.example" : 1]>
        g (float[2] x) => (float[2] y) { y = com.example.Frobnicate(x) }"""
    )
    model = graphkit._modelio.proto.from_proto(source)
    assert check.run(model, check.validate({})).modified is False
    with pytest.raises(PassError) as caught:
        check(model, runtime=True)
    message = str(caught.value)
    assert message.startswith("ONNX Runtime cannot load the model: ")
    assert "Frobnicate" in message
    assert "\n" not in message and "ONNXRuntimeError" not in message and "/tmp" not in message
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
