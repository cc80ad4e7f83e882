"""Bad input through the real CLI: one clear line naming the file, a non-zero exit, nothing written.

Every case runs ``graphkit`` as a user would, on files built in the test, and
checks the folder afterwards: no new file, no changed file, no file replaced.
"""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

from graphkit import ModelError, PassError, RecipeError
from tests.models import from_text, random_input, run, tf2onnx_like, write
from tests.reliability.conftest import Cli, run_console, snapshot

# -- model files ----------------------------------------------------------------------------------


def _truncated(path: Path) -> None:
    data = tf2onnx_like().SerializeToString()
    path.write_bytes(data[: len(data) // 2])


def _text(path: Path) -> None:
    path.write_text("# not a model\nversion: 1\npasses: [cleanup]\n")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _folder(path: Path) -> None:
    path.mkdir()


def _not_utf8(path: Path) -> None:
    data = tf2onnx_like().SerializeToString()
    path.write_bytes(data.replace(b"Relu", b"\xffelu"))  # protobuf hands it over as bytes


def _attribute_without_type(path: Path) -> None:
    model = tf2onnx_like()
    model.graph.node[0].attribute[0].type = onnx.AttributeProto.UNDEFINED  # a flipped byte
    onnx.save(model, path)


def _output_cut_off(path: Path) -> None:
    model = tf2onnx_like()
    del model.graph.node[-1]  # the Sigmoid that makes the output
    onnx.save(model, path)


MODEL_FILES = {
    "truncated": (_truncated, "not an ONNX model, or a damaged one"),
    "text": (_text, "not an ONNX model"),
    "empty": (_empty, "file is empty"),
    "folder": (_folder, "is a folder, not an ONNX file"),
    "not-utf8": (_not_utf8, "graph.node[2].op_type is not UTF-8 text"),
    "attribute-without-type": (
        _attribute_without_type,
        "damaged model: attribute 'perm' of node 'to_nchw' has no type, so no value",
    ),
    "output-cut-off": (
        _output_cut_off,
        "damaged model: graph output 'conv2d_6' is not produced by any node",
    ),
    "missing": (lambda path: None, "no such file"),
}


@pytest.mark.parametrize("case", MODEL_FILES)
def test_inspect_a_bad_model_file(case: str, tmp_path: Path, cli: Cli) -> None:
    make, problem = MODEL_FILES[case]
    path = tmp_path / "model.onnx"
    make(path)
    before = snapshot(tmp_path)

    outcome = cli("inspect", path)

    outcome.assert_clean_failure(ModelError.exit_code, f"graphkit: error: {path}: {problem}")
    assert len(outcome.err.splitlines()) == 1
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("case", MODEL_FILES)
def test_apply_to_a_bad_model_file(case: str, tmp_path: Path, cli: Cli) -> None:
    make, problem = MODEL_FILES[case]
    make(tmp_path / "model.onnx")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: {path: model.onnx}\noutput: out.onnx\npasses: [cleanup]\n"
    )
    before = snapshot(tmp_path)

    outcome = cli("apply", recipe)

    outcome.assert_clean_failure(ModelError.exit_code, f"{tmp_path / 'model.onnx'}: {problem}")
    assert len(outcome.err.splitlines()) == 1
    assert snapshot(tmp_path) == before


def test_a_damaged_model_is_one_line_in_a_real_terminal(tmp_path: Path) -> None:
    """onnx_ir logs what it finds wrong; in-process, pytest swallows that, so run the script."""
    _output_cut_off(tmp_path / "model.onnx")

    outcome = run_console("inspect", "model.onnx", cwd=tmp_path)

    outcome.assert_clean_failure(ModelError.exit_code, "graph output 'conv2d_6' is not produced")
    assert len(outcome.err.splitlines()) == 1, outcome.err


def test_a_damaged_model_names_the_broken_reference(tmp_path: Path, cli: Cli) -> None:
    """A file that parses but lost a node: the reader of the missing value is named."""
    model = tf2onnx_like()
    del model.graph.node[2]  # the Relu: the Transpose after it reads "relu", which nothing makes
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    cli("inspect", path).assert_clean_failure(
        ModelError.exit_code, f"{path}: damaged model: node 'to_nhwc' reads 'relu'"
    )


# -- recipes --------------------------------------------------------------------------------------

RECIPES = {
    "yaml-syntax": (
        "version: 1\nsource: {path: m.onnx\npasses: [cleanup]\n",
        "r.yaml:3:7: YAML syntax error",
    ),
    "wrong-type": (
        "version: 1\nsource: {path: m.onnx}\npasses:\n  - fix_dims: {dims: {unk__127: '1'}}\n",
        "r.yaml:4:33: passes[0].fix_dims.dims.unk__127: Input should be a valid integer",
    ),
    "unknown-parameter": (
        "version: 1\nsource: {path: m.onnx}\npasses:\n  - cleanup: {sort: true, fast: true}\n",
        "r.yaml:4:27: passes[0].cleanup.fast: unknown parameter "
        "(parameters: identities, unused, sort)",
    ),
    "unknown-key": (
        "version: 1\nsource: {path: m.onnx}\npasses: [cleanup]\noptimise: true\n",
        "r.yaml:4:1: optimise: unknown key",
    ),
    "missing-version": (
        "source: {path: m.onnx}\npasses: [cleanup]\n",
        "version: required, but missing",
    ),
    "misspelt-pass": (
        "version: 1\nsource: {path: m.onnx}\npasses:\n  - cleanup\n  - fix_dim: {dims: {a: 1}}\n",
        "r.yaml:5:5: passes[1]: unknown pass 'fix_dim'; did you mean 'fix_dims'?",
    ),
    "not-a-mapping": ("- cleanup\n- check\n", "r.yaml:1:1: (recipe): a recipe must be a mapping"),
    "binary": ("version: 1\n\xff\xfe\n", "not a text file (invalid UTF-8)"),
}


@pytest.mark.parametrize("command", ["validate", "apply"])
@pytest.mark.parametrize("case", RECIPES)
def test_a_bad_recipe(case: str, command: str, tmp_path: Path, cli: Cli) -> None:
    text, problem = RECIPES[case]
    write(tf2onnx_like(), tmp_path / "m.onnx")
    recipe = tmp_path / "r.yaml"
    recipe.write_bytes(text.encode("latin-1"))
    before = snapshot(tmp_path)

    outcome = cli(command, recipe)

    outcome.assert_clean_failure(RecipeError.exit_code, str(recipe), problem)
    assert snapshot(tmp_path) == before


def test_a_recipe_that_never_ends_is_refused(tmp_path: Path) -> None:
    """``/dev/zero`` (or a FIFO, or a huge file) was read whole: memory ran out, exit 70."""
    outcome = run_console("validate", "/dev/zero", cwd=tmp_path, limit_memory=2**30)
    outcome.assert_clean_failure(RecipeError.exit_code, "/dev/zero: larger than 1024 KiB")


# -- parameters that do not fit the model ---------------------------------------------------------

PASS_PROBLEMS = {
    "fix_dims-unknown-dim": (
        "{fix_dims: {dims: {batch: 1}}}",
        "no symbolic dim named 'batch' (the model has: 'unk__127', 'unk__128')",
    ),
    "fix_dims-unknown-input": (
        "{fix_dims: {shapes: {image: [1, 8, 8, 3]}}}",
        "no graph input named 'image' (inputs: 'input_1')",
    ),
    "rename_io-unknown-input": (
        "{rename_io: {inputs: {image: input}}}",
        "no graph input named 'image' (inputs: 'input_1')",
    ),
    "rename_io-taken-name": (
        "{rename_io: {outputs: {conv2d_6: relu}}}",
        "cannot rename 'conv2d_6' to 'relu': a tensor of that name exists",
    ),
    "rename_io-taken-by-a-weight": (
        "{rename_io: {inputs: {input_1: W}}}",
        "cannot rename 'input_1' to 'W': a tensor of that name exists",
    ),
    "set_opset-unknown-version": (
        "{set_opset: {version: 99}}",
        "opset 99 is unknown: the newest the installed onnx",
    ),
}


@pytest.mark.parametrize("case", PASS_PROBLEMS)
def test_parameters_that_do_not_fit_the_model(case: str, tmp_path: Path, cli: Cli) -> None:
    step, problem = PASS_PROBLEMS[case]
    write(tf2onnx_like(), tmp_path / "m.onnx")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: {path: m.onnx}\noutput: out.onnx\n"
        f"passes:\n  - cleanup\n  - {step}\n"
    )
    before = snapshot(tmp_path)

    outcome = cli("apply", recipe)

    name = step.strip("{").split(":")[0]
    outcome.assert_clean_failure(PassError.exit_code, f"passes[1] {name} ({recipe}:6:5)", problem)
    assert len(outcome.err.splitlines()) == 1
    assert snapshot(tmp_path) == before


DOWNGRADES = {
    "ScatterElements-max-18-to-17": (
        """<ir_version: 8, opset_import: ["" : 18]>
        g (float[3] x, int64[1] i, float[1] u) => (float[3] y) {
            y = ScatterElements<reduction = "max">(x, i, u)
        }""",
        17,
        "ScatterElements node '(unnamed)': Scatter reduction 'max' and 'min' are not supported "
        "when downgrading to opset 17",
    ),
    "bfloat16-Conv-22-to-21": (
        """<ir_version: 10, opset_import: ["" : 22]>
        g (bfloat16[1, 1, 3, 3] x, bfloat16[1, 1, 1, 1] w) => (bfloat16[1, 1, 3, 3] y) {
            y = Conv(x, w)
        }""",
        21,
        "is bfloat16, which Conv does not accept at opset 21",
    ),
    "DeformConv-19-to-18": (
        """<ir_version: 10, opset_import: ["" : 19]>
        g (float[1, 1, 3, 3] x, float[1, 1, 1, 1] w, float[1, 2, 3, 3] offset)
            => (float[1, 1, 3, 3] y) { y = DeformConv(x, w, offset) }""",
        18,
        "DeformConv node '(unnamed)': DeformConv does not exist before opset 19 and has no "
        "function body to expand into",
    ),
}


@pytest.mark.parametrize("case", DOWNGRADES)
def test_a_downgrade_the_converter_cannot_do(case: str, tmp_path: Path, cli: Cli) -> None:
    """The converter's assertion text (file, line, C++ expression) becomes one readable line."""
    text, target, problem = DOWNGRADES[case]
    write(from_text(text), tmp_path / "m.onnx")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: {path: m.onnx}\noutput: out.onnx\n"
        f"passes: [{{set_opset: {{version: {target}}}}}]\n"
    )
    before = snapshot(tmp_path)

    outcome = cli("apply", recipe)

    outcome.assert_clean_failure(PassError.exit_code, problem)
    assert "Assertion" not in outcome.err and ".h:" not in outcome.err
    assert snapshot(tmp_path) == before


# -- the 2 GiB limit ------------------------------------------------------------------------------

INFLATE = textwrap.dedent(
    '''\
    """A pass that makes the weight W report 3 GiB, and fails if anything reads its bytes."""
    import numpy as np
    import onnx_ir as ir

    import graphkit


    class Huge(ir.Tensor):
        @property
        def nbytes(self):
            return 3 * 2**30

        def tobytes(self):
            raise AssertionError("the weights were serialised before their size was checked")

        numpy = __array__ = tobytes


    @graphkit.graph_pass("inflate")
    def inflate(model, params):
        """Make W report 3 GiB."""
        value = model.graph.initializers["W"]
        value.const_value = Huge(np.zeros(value.const_value.shape.numpy(), np.float32), name="W")
        return graphkit.PassResult(model, modified=True)


    @graphkit.hookimpl
    def graphkit_passes():
        return [inflate]
    '''
)


def test_a_model_past_2_gib_without_external_data_is_refused_before_serialising(
    tmp_path: Path, cli: Cli
) -> None:
    (tmp_path / "inflate.py").write_text(INFLATE)
    write(tf2onnx_like(), tmp_path / "m.onnx")
    (tmp_path / "out.onnx").write_bytes(b"an earlier output")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nplugins: [inflate.py]\nsource: {path: m.onnx}\noutput: out.onnx\n"
        "save: {external_data: false}\npasses: [inflate]\n"
    )
    before = snapshot(tmp_path)

    outcome = cli("apply", "-q", recipe)

    outcome.assert_clean_failure(
        ModelError.exit_code,
        f"{tmp_path / 'out.onnx'}: the model holds 3.00 GiB of tensors, over protobuf's 2 GiB "
        "limit, and save.external_data is false",
    )
    assert snapshot(tmp_path) == before


# -- outputs: a failed run leaves them as they were; a good one replaces them whole ---------------


@pytest.mark.parametrize("output", ["out.onnx", "m.onnx"], ids=["existing-output", "own-source"])
@pytest.mark.parametrize(
    "step",
    ["{fix_dims: {dims: {batch: 1}}}", "{set_opset: {version: 12}}", "check"],
    ids=["bad-parameter", "converter-refuses", "checker-refuses"],
)
def test_a_failed_run_leaves_an_existing_output_as_it_was(
    output: str, step: str, tmp_path: Path, cli: Cli
) -> None:
    model = tf2onnx_like()
    model.graph.value_info[0].type.tensor_type.elem_type = onnx.TensorProto.INT64  # check fails
    write(model, tmp_path / "m.onnx")
    if output != "m.onnx":
        (tmp_path / output).write_bytes(b"an earlier output")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"version: 1\nsource: {{path: m.onnx}}\noutput: {output}\npasses: [cleanup, {step}]\n"
    )
    before = snapshot(tmp_path)

    outcome = cli("apply", recipe)

    outcome.assert_clean_failure(PassError.exit_code, str(recipe))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("external", [False, True], ids=["inline", "external-data"])
def test_a_run_whose_output_is_its_source_replaces_it_whole(
    external: bool, tmp_path: Path, in_other_dir: Path, cli: Cli
) -> None:
    """The source's bytes are never written in place: handles open on the old files still read them.

    (Hard links would show the same, but onnx_ir refuses to read external data
    that has more than one link.)
    """
    source = tmp_path / "m.onnx"
    if external:
        # the name graphkit writes: the save replaces the very file the model reads from
        onnx.save(
            tf2onnx_like(),
            source,
            save_as_external_data=True,
            location="m.onnx.data",
            size_threshold=0,
        )
    else:
        write(tf2onnx_like(), source)
    old = snapshot(tmp_path)
    handles = {name: (tmp_path / name).open("rb") for name in old}  # they see writes in place
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: {path: m.onnx}\noutput: m.onnx\n"
        "passes: [{fix_dims: {dims: {unk__127: 1}}}, {rename_io: {inputs: {input_1: image}}}]\n"
    )

    outcome = cli("apply", "-q", recipe)

    assert outcome.code == 0, outcome.err
    new = snapshot(tmp_path)
    for name, (data, inode) in old.items():
        with handles[name] as handle:
            assert handle.read() == data  # the old file, untouched
        assert new[name][1] != inode  # a new file took its name
    feeds = random_input((1, 8, 8, 3))
    expected = run(tf2onnx_like(), {"input_1": feeds})["conv2d_6"]
    np.testing.assert_allclose(run(source, {"image": feeds})["conv2d_6"], expected, rtol=1e-6)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging left behind"


def test_an_output_never_overwrites_the_sources_external_data(tmp_path: Path, cli: Cli) -> None:
    """A downloaded model may name its data file anything, out.onnx.data included."""
    onnx.save(
        tf2onnx_like(),
        tmp_path / "m.onnx",
        save_as_external_data=True,
        location="out.onnx.data",
        size_threshold=0,
    )
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: {path: m.onnx}\noutput: out.onnx\n"
        "passes: [{fix_dims: {dims: {unk__127: 1}}}]\n"
    )
    before = snapshot(tmp_path)

    outcome = cli("apply", "-q", recipe)

    outcome.assert_clean_failure(
        ModelError.exit_code,
        f"{tmp_path / 'out.onnx'}: its external data would replace {tmp_path / 'out.onnx.data'}",
    )
    assert snapshot(tmp_path) == before
    feeds = {"input_1": random_input((1, 8, 8, 3))}
    run(tmp_path / "m.onnx", feeds)  # the source still reads its weights


def test_an_output_that_is_not_a_regular_file_is_refused(tmp_path: Path, cli: Cli) -> None:
    """As root, ``-o /dev/stdout`` replaced the /dev/stdout link with a file; a FIFO stands in."""
    write(tf2onnx_like(), tmp_path / "m.onnx")
    fifo = tmp_path / "out.onnx"
    os.mkfifo(fifo)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\nsource: {path: m.onnx}\npasses: [cleanup]\n")

    outcome = cli("apply", "-q", recipe, "-o", fifo)

    assert stat.S_ISFIFO(fifo.lstat().st_mode), "the FIFO was replaced"
    outcome.assert_clean_failure(ModelError.exit_code, f"{fifo}: exists and is not a regular file")


def test_an_empty_output_path_is_refused(tmp_path: Path, cli: Cli) -> None:
    """``output: ''`` wrote nothing and exited 0, as if the model had been written."""
    write(tf2onnx_like(), tmp_path / "m.onnx")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\nsource: {path: m.onnx}\noutput: ''\npasses: [cleanup]\n")
    cli("apply", recipe).assert_clean_failure(RecipeError.exit_code, f"{recipe}:3:9: output")


# -- the frontends --------------------------------------------------------------------------------


@pytest.mark.tf
def test_a_savedmodel_folder_without_saved_model_pb(tmp_path: Path, cli: Cli) -> None:
    folder = tmp_path / "exported"
    (folder / "variables").mkdir(parents=True)
    (folder / "keras_metadata.pb").write_bytes(b"\x08\x01")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: {path: exported, format: savedmodel}\noutput: out.onnx\npasses: []\n"
    )
    before = snapshot(tmp_path)

    outcome = cli("apply", recipe)

    outcome.assert_clean_failure(
        ModelError.exit_code,
        f"{folder}: no saved_model.pb in this folder, so it is not a SavedModel",
    )
    assert snapshot(tmp_path) == before


@pytest.mark.torch
def test_a_checkpoint_whose_keys_do_not_fit_the_model(tmp_path: Path, cli: Cli) -> None:
    torch = pytest.importorskip("torch")
    (tmp_path / "net.py").write_text(
        "import torch\n\nclass Net(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.fc = torch.nn.Linear(2, 2)\n\n"
        "    def forward(self, x):\n        return self.fc(x)\n"
    )
    # saved from a model whose layer had another name
    torch.save({"head.weight": torch.zeros(2, 2), "head.bias": torch.zeros(2)}, tmp_path / "w.pt")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: {path: w.pt, module: 'net.py:Net', inputs: {x: {shape: [1, 2]}}}\n"
        "output: out.onnx\npasses: []\n"
    )
    before = snapshot(tmp_path)

    outcome = cli("apply", recipe)

    outcome.assert_clean_failure(
        ModelError.exit_code,
        f"{tmp_path / 'w.pt'}: the weights do not fit net.py:Net: missing keys: 'fc.weight', "
        "'fc.bias'; unexpected keys: 'head.weight', 'head.bias'",
    )
    assert snapshot(tmp_path) == before
