"""``graphkit demo``, the README's first command, end to end."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from graphkit._cli import main

pytestmark = [pytest.mark.tf, pytest.mark.torch, pytest.mark.slow]


def test_demo_converts_and_verifies_both_models(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("parity with the source framework: ok") == 2
    cleaning = onnx.load(tmp_path / "signature-image-cleaning" / "signature-cleaning.onnx")
    assert [i.name for i in cleaning.graph.input] == ["input"]
    assert [o.name for o in cleaning.graph.output] == ["output"]
    verification = onnx.load(tmp_path / "signature-verification" / "signature-verification.onnx")
    assert [i.name for i in verification.graph.input] == ["input0", "input1"]
    assert [o.name for o in verification.graph.output] == ["output0", "output1", "output2"]
    assert (
        "  signature-verification: input0 uint8[150,220], input1 uint8[150,220] -> "
        "output0 float32[1,2048], output1 float32[1,2048], output2 float32[1,1]\n"
    ) in out
