"""``graphkit demo``, the README's first command, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from graphkit._cli import main


@pytest.mark.tf
@pytest.mark.torch
@pytest.mark.slow
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


@pytest.mark.parametrize(
    ("absent", "missing", "extra"),
    [
        (["torch"], "torch is", "torch"),
        (["onnxscript"], "onnxscript is", "torch"),
        (["tf2onnx", "tf_keras"], "tf_keras, tf2onnx are", "tf"),
        (["tensorflow", "torch"], "tensorflow, torch are", "all"),
    ],
)
def test_without_the_frameworks_the_demo_names_the_extra(
    tmp_path: Path, absent: list[str], missing: str, extra: str
) -> None:
    # setup: a process where these modules cannot be imported, as in a core-only install
    script = (
        "import sys\n"
        f"for name in {absent!r}:\n"
        "    sys.modules[name] = None\n"
        "from graphkit._cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    # execute
    done = subprocess.run(
        [sys.executable, "-c", script, "demo", "--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # assert: one line naming the extra, and nothing built
    assert done.returncode == 1
    assert done.stderr == (
        "graphkit: error: graphkit demo builds its stand-ins with TensorFlow and PyTorch, "
        f'and {missing} not installed: pip install "graphkit[{extra}]"\n'
    )
    assert done.stdout == ""
    assert not (tmp_path / "demo").exists()
