"""The torch frontend: checkpoints and TorchScript archives to ONNX, every option, every error."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx_ir as ir
import pytest
from graphkit_plugins.frontends.torch_source import TorchOptions, import_torch

import graphkit
from graphkit import Imported, ModelError, RecipeError, SourceContext
from graphkit._cli import main
from tests.models import run, tf2onnx_like, write

try:
    import torch
except ImportError:  # only the tests marked torch need it; they are skipped
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs PyTorch")

TINY_MODELS = '''
"""Tiny models for the torch frontend's tests."""

import torch
from torch import nn


class Tiny(nn.Module):
    """x [N, features] to (scores [N, 2], total [N]), through a batch norm and a Mish."""

    def __init__(self, features: int = 4, hidden: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, hidden), nn.BatchNorm1d(hidden), nn.Mish())
        self.head = nn.Linear(hidden, 2)

    def forward(self, x):
        h = self.body(x.float())
        return self.head(h), h.sum(dim=1)


class Pair(nn.Module):
    """Two inputs of any dtype to one output; tells the inputs apart."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([1.5, -2.0, 0.5]))

    def forward(self, a, b):
        return a.float() * self.scale - 2 * b.float()


class Named(nn.Module):
    """Outputs in a dict, flattened in order."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3)

    def forward(self, x):
        return {"first": self.linear(x), "second": x * 2}


class DataDependent(nn.Module):
    """Branches on a tensor's value, which torch.export cannot capture."""

    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x - 1
'''


def import_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"tiny_{abs(hash(path))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seeded(model: Any, seed: int) -> Any:
    """``model`` with random weights and batch-norm statistics, in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
    return model.eval()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the model file and seeded checkpoints in several layouts."""
    folder = tmp_path_factory.mktemp("torch_project")
    (folder / "tiny.py").write_text(TINY_MODELS)
    if torch is None:
        return folder
    models = import_file(folder / "tiny.py")
    tiny = seeded(models.Tiny(), seed=1)
    torch.save(tiny.state_dict(), folder / "tiny.pt")
    torch.save({"model": tiny.state_dict()}, folder / "seed_format.pt")
    torch.save({"checkpoint": {"ema": tiny.state_dict()}, "epoch": 3}, folder / "nested.ckpt")
    torch.save(seeded(models.Tiny(hidden=5), seed=2).state_dict(), folder / "tiny5.pth")
    torch.save(seeded(models.Pair(), seed=3).state_dict(), folder / "pair.pt")
    torch.save(seeded(models.Named(), seed=4).state_dict(), folder / "named.pt")
    torch.save({}, folder / "nothing.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still read
        torch.jit.script(tiny).save(str(folder / "scripted.pt"))
    # A whole pickled module, of torch's own classes so any process can unpickle it.
    torch.save(seeded(torch.nn.Sequential(torch.nn.Linear(4, 2)), seed=5), folder / "whole.pt")
    return folder


TINY_INPUTS = {"x": {"shape": [1, 4], "dtype": "float32"}}


@pytest.fixture(scope="module")
def tiny(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Imported:
    """tiny.pt imported with the defaults, shared by the tests that only look at the result."""
    return convert(project, "tiny.pt", tmp_path_factory.mktemp("tiny"), module="tiny.py:Tiny")


def convert(folder: Path, checkpoint: str, tmp_path: Path, **options: Any) -> Imported:
    """Import ``folder/checkpoint`` with the torch frontend, as a recipe in ``folder`` would."""
    options.setdefault("inputs", TINY_INPUTS)
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    context = SourceContext(recipe_dir=folder, workdir=workdir)
    return import_torch.load(folder / checkpoint, TorchOptions.model_validate(options), context)


def onnx_run(imported: Imported, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return run(ir.serde.serialize_model(imported.model), feeds)


def assert_parity(imported: Imported, feeds: dict[str, np.ndarray]) -> None:
    """ONNX Runtime on the imported model gives the torch reference's outputs."""
    assert imported.reference is not None
    want = imported.reference(feeds)
    got = onnx_run(imported, feeds)
    assert list(got) == list(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5, err_msg=name)


def interface(model: ir.Model) -> tuple[list[str], list[str]]:
    from graphkit._inspect import real_inputs, value_signature

    return (
        [value_signature(v) for v in real_inputs(model.graph)],
        [value_signature(v) for v in model.graph.outputs],
    )


def x_feeds(batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((batch, 4)).astype(np.float32)}


# Start-up -----------------------------------------------------------------------------------------


def test_cli_and_onnx_recipes_never_import_torch(tmp_path: Path) -> None:
    # setup
    write(tf2onnx_like(), tmp_path / "model.onnx")
    (tmp_path / "recipe.yaml").write_text(
        "version: 1\nsource: {path: model.onnx}\npasses: [cleanup]\noutput: out.onnx\n"
    )
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from graphkit._cli import main
        recipe = {str(tmp_path / "recipe.yaml")!r}
        for argv in (["passes"], ["plugins"], ["recipes"], ["apply", "-q", recipe]):
            assert main(argv) == 0, argv
        from graphkit_plugins.frontends.torch_source import import_torch
        assert import_torch.detect(Path("model.pt")) and not import_torch.detect(Path("m.onnx"))
        try:
            main(["--help"])
        except SystemExit:
            pass
        print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
        """
    )
    # execute
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    # assert
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    assert (tmp_path / "out.onnx").is_file()


def test_without_torch_the_error_names_the_extra(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"not read")
    (tmp_path / "recipe.yaml").write_text(
        "version: 1\nsource:\n  path: model.pt\n  inputs: {x: {shape: [1]}}\n"
    )
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # what an environment without torch looks like
        from graphkit._cli import main
        sys.exit(main(["apply", {str(tmp_path / "recipe.yaml")!r}]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.returncode == ModelError.exit_code
    assert done.stderr == (
        f"graphkit: error: {tmp_path / 'model.pt'}: reading PyTorch checkpoints needs torch: "
        'pip install "graphkit[torch]"\n'
    )


@pytest.mark.parametrize(
    ("name", "detected"),
    [
        ("model.pt", True),
        ("model.PTH", True),
        ("last.ckpt", True),
        ("model.onnx", False),
        ("saved_model.pb", False),
        ("weights.bin", False),  # not there, so not known to be torch's
    ],
)
def test_detect_by_suffix(tmp_path: Path, name: str, detected: bool) -> None:
    assert import_torch.detect(tmp_path / name) is detected


@pytest.mark.torch
@needs_torch
def test_detect_looks_inside_bin_files(project: Path, tmp_path: Path) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes((project / "tiny.pt").read_bytes())
    (tmp_path / "other.bin").write_bytes(b"\x00" * 64)
    assert import_torch.detect(tmp_path / "pytorch_model.bin")
    assert not import_torch.detect(tmp_path / "other.bin")


# The model class ---------------------------------------------------------------------------------


@pytest.mark.torch
@needs_torch
def test_module_from_a_file_next_to_the_recipe(tiny: Imported) -> None:
    assert interface(tiny.model) == (
        ["x float32[1,4]"],
        ["output0 float32[1,2]", "output1 float32[1]"],
    )
    assert_parity(tiny, x_feeds())
    assert tiny.notes == [
        "loaded 9 tensors into tiny.py:Tiny",
        "exported with the dynamo exporter at opset 18",
    ]


@pytest.mark.torch
@needs_torch
def test_the_torchscript_exporter(project: Path, tmp_path: Path) -> None:
    imported = convert(project, "tiny.pt", tmp_path, module="tiny.py:Tiny", exporter="torchscript")
    assert interface(imported.model) == (
        ["x float32[1,4]"],
        ["output0 float32[1,2]", "output1 float32[1]"],
    )
    assert_parity(imported, x_feeds())
    assert "exported with the torchscript exporter at opset 18" in imported.notes


@pytest.mark.torch
@needs_torch
def test_module_from_an_importable_package(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "pkg" / "tinymodels_for_graphkit"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(TINY_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    imported = convert(project, "tiny.pt", tmp_path, module="tinymodels_for_graphkit.nets:Tiny")
    assert_parity(imported, x_feeds())
    assert "loaded 9 tensors into tinymodels_for_graphkit.nets:Tiny" in imported.notes


@pytest.mark.torch
@needs_torch
def test_module_kwargs_build_the_class(project: Path, tmp_path: Path) -> None:
    imported = convert(
        project, "tiny5.pth", tmp_path, module="tiny.py:Tiny", module_kwargs={"hidden": 5}
    )
    assert_parity(imported, x_feeds())


@pytest.mark.torch
@needs_torch
def test_without_module_kwargs_the_shapes_do_not_fit(project: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as error:
        convert(project, "tiny5.pth", tmp_path, module="tiny.py:Tiny")
    assert str(error.value) == (
        f"{project / 'tiny5.pth'}: the weights do not fit tiny.py:Tiny: other shapes: "
        "body.0.weight [5, 4] (the model has [3, 4]), body.0.bias [5] (the model has [3]), "
        "body.1.weight [5] (the model has [3]), body.1.bias [5] (the model has [3]), "
        "body.1.running_mean [5] (the model has [3]), and 2 more"
    )


@pytest.mark.torch
@needs_torch
@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("missing.py:Tiny", "module 'missing.py:Tiny': {project}/missing.py: no such file"),
        (
            "tiny.py:Tinny",
            "module 'tiny.py:Tinny': no 'Tinny' in tiny.py "
            "(it has 'DataDependent', 'Named', 'Pair', 'Tiny')",
        ),
        (
            "no_such_package_for_graphkit.nets:Tiny",
            "module 'no_such_package_for_graphkit.nets:Tiny': cannot import "
            "'no_such_package_for_graphkit.nets': No module named 'no_such_package_for_graphkit'",
        ),
    ],
    ids=["file-missing", "class-not-found", "package-missing"],
)
def test_module_errors(project: Path, tmp_path: Path, module: str, message: str) -> None:
    with pytest.raises(ModelError) as error:
        convert(project, "tiny.pt", tmp_path, module=module)
    assert str(error.value) == message.format(project=project)


@pytest.mark.torch
@needs_torch
def test_bad_module_kwargs_name_the_class(project: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ModelError,
        match=r"^module 'tiny.py:Tiny': Tiny\(\*\*module_kwargs\) "
        r"failed: TypeError: .*unexpected keyword argument 'width'$",
    ):
        convert(project, "tiny.pt", tmp_path, module="tiny.py:Tiny", module_kwargs={"width": 2})


# Where the weights are ---------------------------------------------------------------------------


@pytest.mark.torch
@needs_torch
def test_state_dict_key_follows_dots(project: Path, tmp_path: Path) -> None:
    imported = convert(
        project, "nested.ckpt", tmp_path, module="tiny.py:Tiny", state_dict_key="checkpoint.ema"
    )
    assert_parity(imported, x_feeds())


@pytest.mark.torch
@needs_torch
@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            "model",
            "no key 'model' in the checkpoint: at the top level the keys are 'checkpoint', 'epoch'",
        ),
        (
            "checkpoint.ema2",
            "no key 'checkpoint.ema2' in the checkpoint: at 'checkpoint' the keys are 'ema'",
        ),
        ("epoch.x", "state_dict_key 'epoch.x': 'epoch' is a int, not a mapping of keys"),
    ],
)
def test_a_missing_state_dict_key_lists_the_keys_there_are(
    project: Path, tmp_path: Path, key: str, message: str
) -> None:
    with pytest.raises(ModelError) as error:
        convert(project, "nested.ckpt", tmp_path, module="tiny.py:Tiny", state_dict_key=key)
    assert str(error.value) == f"{project / 'nested.ckpt'}: {message}"


@pytest.mark.torch
@needs_torch
def test_a_wrapped_state_dict_without_its_key_says_where_the_weights_are(
    project: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelError) as error:
        convert(project, "seed_format.pt", tmp_path, module="tiny.py:Tiny")
    assert str(error.value) == (
        f"{project / 'seed_format.pt'}: the checkpoint is not a state dict: 'model' hold no "
        "tensors (its keys: 'model'); the weights look to be under 'model': set state_dict_key"
    )


@pytest.mark.torch
@needs_torch
def test_strict_loading_lists_missing_and_unexpected_keys(project: Path, tmp_path: Path) -> None:
    # setup: rename one key, add a head the model lacks, and drop forty more into the mix
    state = torch.load(project / "tiny.pt", weights_only=True)
    state["head.w"] = state.pop("head.weight")
    state.update({f"extra.{i}": torch.zeros(1) for i in range(12)})
    torch.save(state, tmp_path / "renamed.pt")
    (tmp_path / "tiny.py").write_text(TINY_MODELS)
    # execute
    with pytest.raises(ModelError) as error:
        convert(tmp_path, "renamed.pt", tmp_path, module="tiny.py:Tiny")
    # assert
    assert str(error.value) == (
        f"{tmp_path / 'renamed.pt'}: the weights do not fit tiny.py:Tiny: "
        "missing keys: 'head.weight'; unexpected keys: 'head.w', 'extra.0', 'extra.1', "
        "'extra.2', 'extra.3', 'extra.4', 'extra.5', 'extra.6', 'extra.7', 'extra.8', "
        "and 3 more"
    )


@pytest.mark.torch
@needs_torch
def test_weights_without_a_module_ask_for_one(project: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as error:
        convert(project, "tiny.pt", tmp_path)
    assert str(error.value) == (
        f"{project / 'tiny.pt'}: holds weights but no model; name the model class with "
        "module: 'file.py:ClassName' or 'package.module:ClassName'"
    )


# What the file is --------------------------------------------------------------------------------


@pytest.mark.torch
@needs_torch
def test_torchscript_archives_need_no_module(project: Path, tmp_path: Path) -> None:
    imported = convert(project, "scripted.pt", tmp_path)
    assert "read a TorchScript archive" in imported.notes
    assert "exported with the torchscript exporter at opset 18" in imported.notes
    assert_parity(imported, x_feeds())


@pytest.mark.torch
@needs_torch
def test_torchscript_archives_with_a_module_export_with_dynamo(
    project: Path, tmp_path: Path
) -> None:
    imported = convert(project, "scripted.pt", tmp_path, module="tiny.py:Tiny")
    assert "exported with the dynamo exporter at opset 18" in imported.notes
    assert_parity(imported, x_feeds())


@pytest.mark.torch
@needs_torch
def test_dynamo_asked_for_a_torchscript_archive_says_what_works(
    project: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelError) as error:
        convert(project, "scripted.pt", tmp_path, exporter="dynamo")
    assert str(error.value) == (
        f"{project / 'scripted.pt'}: the dynamo exporter cannot export a TorchScript archive; "
        "use exporter: torchscript, or give `module` to load its weights into a Python class"
    )


@pytest.mark.torch
@needs_torch
def test_a_pickled_module_is_refused_without_trust(project: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as error:
        convert(project, "whole.pt", tmp_path)
    assert str(error.value) == (
        f"{project / 'whole.pt'}: holds Python objects such as "
        "torch.nn.modules.container.Sequential, not just tensors; "
        "torch.load(weights_only=True) refuses them because unpickling can run any code. "
        "If you trust this file, set trust: true in the recipe's source block"
    )


@pytest.mark.torch
@needs_torch
def test_trust_reads_a_pickled_module(project: Path, tmp_path: Path) -> None:
    imported = convert(project, "whole.pt", tmp_path, trust=True)
    assert imported.notes[0] == (
        "read with trust: true (weights_only=False): the file holds Python objects such as "
        "torch.nn.modules.container.Sequential"
    )
    assert_parity(imported, x_feeds())


@pytest.mark.torch
@needs_torch
def test_checkpoints_are_always_read_with_weights_only(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []
    load = torch.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("weights_only"))
        return load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    convert(project, "tiny.pt", tmp_path, module="tiny.py:Tiny")
    with pytest.raises(ModelError):
        convert(project, "whole.pt", tmp_path)
    assert calls == [True, True]


@pytest.mark.torch
@needs_torch
@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (None, "no such checkpoint"),
        (b"", "file is empty"),
        (b"hello, world", "not a PyTorch checkpoint (neither a torch.save file nor TorchScript)"),
        (b"\x80\x02}q\x00(X", "not a PyTorch checkpoint, or a damaged one ("),
    ],
    ids=["missing", "empty", "text", "cut-short"],
)
def test_files_that_are_not_checkpoints(
    tmp_path: Path, contents: bytes | None, message: str
) -> None:
    path = tmp_path / "model.pt"
    if contents is not None:
        path.write_bytes(contents)
    with pytest.raises(ModelError) as error:
        convert(tmp_path, "model.pt", tmp_path, module="tiny.py:Tiny")
    assert str(error.value).startswith(f"{path}: {message}")


@pytest.mark.torch
@needs_torch
def test_a_state_dict_of_no_tensors_for_the_model(project: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as error:
        convert(project, "nothing.pt", tmp_path, module="tiny.py:Tiny")
    assert str(error.value).startswith(
        f"{project / 'nothing.pt'}: the weights do not fit tiny.py:Tiny: missing keys: "
        "'body.0.weight', 'body.0.bias', "
    )


# The interface -----------------------------------------------------------------------------------


@pytest.mark.torch
@needs_torch
@pytest.mark.parametrize("dtype", ["uint8", "float16", "float32", "int64", "int32", "bool"])
def test_input_dtypes(project: Path, tmp_path: Path, dtype: str) -> None:
    # setup
    inputs = {"a": {"shape": [2, 3], "dtype": dtype}, "b": {"shape": [2, 3], "dtype": "float32"}}
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, (2, 3)) if dtype == "bool" else rng.integers(0, 200, (2, 3))
    feeds = {"a": a.astype(dtype), "b": rng.standard_normal((2, 3)).astype(np.float32)}
    # execute
    imported = convert(project, "pair.pt", tmp_path, module="tiny.py:Pair", inputs=inputs)
    # assert
    assert interface(imported.model)[0] == [f"a {dtype}[2,3]", "b float32[2,3]"]
    assert_parity(imported, feeds)


@pytest.mark.torch
@needs_torch
def test_output_names(project: Path, tmp_path: Path) -> None:
    imported = convert(
        project,
        "named.pt",
        tmp_path,
        module="tiny.py:Named",
        inputs={"x": {"shape": [2, 3]}},
        outputs=["logits", "doubled"],
    )
    assert interface(imported.model) == (
        ["x float32[2,3]"],
        ["logits float32[2,3]", "doubled float32[2,3]"],
    )
    assert_parity(imported, {"x": np.arange(6, dtype=np.float32).reshape(2, 3)})


@pytest.mark.torch
@needs_torch
def test_as_many_output_names_as_forward_returns(project: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as error:
        convert(project, "tiny.pt", tmp_path, module="tiny.py:Tiny", outputs=["scores"])
    assert str(error.value) == (
        f"{project / 'tiny.pt'}: forward returns 2 tensors, but outputs names 1: ['scores']"
    )


@pytest.mark.torch
@needs_torch
def test_inputs_forward_cannot_take_fail_before_export(project: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ModelError,
        match=r"tiny.pt: forward fails on inputs x float32\[1, 5\]: "
        r"RuntimeError: mat1 and mat2 shapes cannot be multiplied",
    ):
        convert(
            project, "tiny.pt", tmp_path, module="tiny.py:Tiny", inputs={"x": {"shape": [1, 5]}}
        )


@pytest.mark.torch
@needs_torch
@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_dynamic_axes(project: Path, tmp_path: Path, exporter: str) -> None:
    imported = convert(
        project,
        "tiny.pt",
        tmp_path,
        module="tiny.py:Tiny",
        dynamic={"x": {0: "batch"}},
        exporter=exporter,
    )
    inputs, outputs = interface(imported.model)
    assert inputs == ["x float32[batch,4]"]
    assert outputs[0].startswith("output0 float32[") and outputs[0].endswith(",2]")
    assert_parity(imported, x_feeds(batch=3))
    assert_parity(imported, x_feeds(batch=1, seed=1))


@pytest.mark.torch
@needs_torch
@pytest.mark.parametrize(("exporter", "opset"), [("dynamo", 20), ("torchscript", 17)])
def test_opset(project: Path, tmp_path: Path, exporter: str, opset: int) -> None:
    imported = convert(
        project, "tiny.pt", tmp_path, module="tiny.py:Tiny", opset=opset, exporter=exporter
    )
    assert imported.model.opset_imports[""] == opset
    assert_parity(imported, x_feeds())


@pytest.mark.torch
@needs_torch
def test_dynamo_export_shares_the_module_weights(tiny: Imported) -> None:
    module = tiny.reference.module  # type: ignore[union-attr]
    weights = {p.data_ptr() for p in module.parameters()}
    shared = [
        value.name
        for value in tiny.model.graph.initializers.values()
        if isinstance(getattr(value.const_value, "raw", None), torch.Tensor)
        and value.const_value.raw.data_ptr() in weights
    ]
    assert shared, "the exported model copied every weight"


@pytest.mark.torch
@needs_torch
def test_export_failure_is_one_line_and_nothing_else(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    torch.save({}, tmp_path / "empty_state.pt")
    (tmp_path / "tiny.py").write_text(TINY_MODELS)
    with pytest.raises(ModelError) as error:
        convert(
            tmp_path,
            "empty_state.pt",
            tmp_path,
            module="tiny.py:DataDependent",
            inputs={"x": {"shape": [2]}},
        )
    message = str(error.value)
    assert capfd.readouterr() == ("", "")  # no graph dumps, warnings or log lines
    assert "\n" not in message
    assert message.startswith(
        f"{tmp_path / 'empty_state.pt'}: the dynamo exporter failed: GuardOnDataDependentSymNode: "
    )
    assert message.endswith(
        "(exporter: torchscript may work where torch.export cannot capture the model)"
    )


@pytest.mark.torch
@needs_torch
def test_the_reference_is_keyed_by_onnx_names(tiny: Imported) -> None:
    assert tiny.reference is not None
    outputs = tiny.reference(x_feeds())
    assert list(outputs) == ["output0", "output1"]
    assert outputs["output0"].dtype == np.float32 and outputs["output0"].shape == (1, 2)
    with pytest.raises(
        ModelError, match=r"the torch reference needs inputs \['x'\]; it got \['y'\]"
    ):
        tiny.reference({"y": np.zeros((1, 4), np.float32)})


# Recipes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "module: tiny.Tiny",
            "recipe.yaml:5:11: source.module: must be 'file.py:ClassName' or "
            "'package.module:ClassName'",
        ),
        (
            "dynamic: {y: {0: batch}}",
            "recipe.yaml:5:12: source.dynamic: 'y' is not one of the inputs",
        ),
        (
            "dynamic: {x: {2: batch}}",
            "recipe.yaml:5:12: source.dynamic: input 'x' has 2 axes, so no axis 2",
        ),
        (
            "exporter: onnx",
            "recipe.yaml:5:13: source.exporter: Input should be 'dynamo' or 'torchscript'",
        ),
        ("outputs: [x]", "recipe.yaml:5:12: source.outputs: names also used by inputs ['x']"),
    ],
    ids=["module-form", "dynamic-name", "dynamic-axis", "exporter", "output-name"],
)
def test_recipe_validation(tmp_path: Path, source: str, message: str) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"version: 1\nsource:\n  path: model.pt\n  inputs: {{x: {{shape: [1, 4]}}}}\n  {source}\n"
    )
    with pytest.raises(RecipeError) as error:
        graphkit.load_recipe(recipe)
    assert str(error.value) == f"{tmp_path / message}"


@pytest.mark.torch
@needs_torch
def test_a_user_recipe_with_its_own_module_file(
    project: Path, tmp_path: Path, in_other_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # setup: the seed project's layout: {'model': state_dict} and a model file beside the recipe
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "nets.py").write_text(TINY_MODELS)
    (folder / "weights.pt").write_bytes((project / "seed_format.pt").read_bytes())
    (folder / "recipe.yaml").write_text(
        textwrap.dedent(
            """\
            version: 1
            description: my tiny model
            source:
              path: weights.pt
              module: nets.py:Tiny
              state_dict_key: model
              inputs:
                features: {shape: [1, 4], dtype: float32}
              outputs: [scores, total]
              dynamic: {features: {0: batch}}
            passes: [simplify, cleanup, check]
            output: tiny.onnx
            verify:
              samples: 2
            """
        )
    )
    # execute
    code = main(["apply", str(folder / "recipe.yaml")])
    # assert
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert f"import {folder / 'weights.pt'} (torch)" in out
    assert "  scores: max abs err " in out
    model = graphkit.load(folder / "tiny.onnx")
    assert interface(model)[0] == ["features float32[batch,4]"]
    assert [v.name for v in model.graph.outputs] == ["scores", "total"]
    assert not list(in_other_dir.iterdir())
