"""The ``savedmodel`` frontend: start a recipe from a TensorFlow SavedModel, converted by tf2onnx.

TensorFlow and tf2onnx are imported only when a SavedModel is read, so the
rest of graphkit never pays for them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from graphkit import (
    Frontend,
    Imported,
    ModelError,
    Params,
    SourceContext,
    frontend,
    hookimpl,
)
from graphkit._framework_logs import native_stderr_hidden

if TYPE_CHECKING:
    from types import ModuleType

    import numpy as np
    import onnx_ir as ir

#: What to install when TensorFlow or tf2onnx is missing.
TF_EXTRA = 'pip install "graphkit[tf]"'
#: tf2onnx 1.17 knows IR versions for opsets up to this one.
MAX_OPSET = 18
#: A signature key TensorFlow reserves for its initialiser; never a model's signature.
_INIT_OP_KEY = "__saved_model_init_op"
_SHARD = re.compile(r"^variables\.data-(\d+)-of-(\d+)$")


class SavedModelOptions(Params):
    signature: str = Field(
        "serving_default",
        min_length=1,
        description="The signature to convert (a SignatureDef key such as 'serving_default').",
    )
    tag: str = Field(
        "serve",
        min_length=1,
        description="The tag of the MetaGraph to load; a tag set as 'serve,gpu'.",
    )
    opset: int = Field(
        17,
        ge=9,
        le=MAX_OPSET,
        description=(
            "ONNX opset to convert to, 9 to 18 (tf2onnx 1.17 goes no further). The default, "
            "17, is newer than tf2onnx's own default of 15 and runs on ONNX Runtime 1.13 or "
            "later, including its .NET package."
        ),
    )
    inputs_as_nchw: list[str] = Field(
        default_factory=list,
        description=(
            "Rank-4 inputs (by their ONNX names) to take as NCHW instead of TensorFlow's NHWC; "
            "tf2onnx adds the Transpose and the reference transposes back."
        ),
    )
    large_model: bool = Field(
        False,
        description=(
            "Use tf2onnx's large-model mode, needed when the weights pass protobuf's 2 GiB limit. "
            "Weights stay in memory; graphkit's save writes them as external data beside the "
            "output (above 2 GiB, or always with save.external_data: true)."
        ),
    )


def _is_savedmodel(path: Path) -> bool:
    return path.is_dir() and (path / "saved_model.pb").is_file()


@frontend("savedmodel", SavedModelOptions, detect=_is_savedmodel)
def import_savedmodel(path: Path, options: SavedModelOptions, context: SourceContext) -> Imported:
    """A TensorFlow SavedModel folder, converted by tf2onnx; TensorFlow runs as the reference.

    Reads SavedModels written by Keras 2 (``model.save``), Keras 3
    (``model.export``) and ``tf.saved_model.save``. Loading a SavedModel runs
    its TensorFlow graph: read only SavedModels you trust.
    """
    _check_folder(path)
    modules = import_tensorflow(path)
    tags = [t.strip() for t in options.tag.split(",") if t.strip()]
    meta_graph = _meta_graph(path, tags, modules.saved_model_pb2)
    _check_signature(path, meta_graph, options.signature, options.tag)
    _check_variables(path, meta_graph)
    converted = _convert(path, tags, options, modules)
    model = _to_ir(path, converted)
    _check_ops(path, model, options.signature)
    _check_names(path, model, converted)
    reference = TensorFlowReference(
        folder=path.absolute(),
        tags=tags,
        signature=options.signature,
        inputs={onnx: key for key, onnx in converted.input_names.items()},
        outputs=converted.output_names,
        nchw=frozenset(options.inputs_as_nchw),
        loaded=converted.loaded,
    )
    notes = [
        f"signature {options.signature!r} (tag {options.tag!r}) converted by tf2onnx "
        f"{modules.tf2onnx.__version__} from TensorFlow {modules.tf.__version__} at opset "
        f"{options.opset}"
    ]
    if options.large_model:
        notes.append(
            f"large_model: {converted.external_count} weights kept out of the protobuf while "
            "converting; they are held in memory until saved"
        )
    return Imported(model=model, reference=reference, notes=notes)


@hookimpl
def graphkit_frontends() -> list[Frontend]:
    return [import_savedmodel]


# -- finding TensorFlow ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Modules:
    tf: ModuleType
    tf2onnx: ModuleType
    tf_loader: ModuleType
    convert: ModuleType
    saved_model_pb2: ModuleType


def import_tensorflow(path: Path) -> _Modules:
    """Import TensorFlow and tf2onnx, or explain which extra to install."""
    # TensorFlow's C++ start-up chatter (CUDA probing on machines without a GPU,
    # oneDNN notices) is noise here; a user can still set the variable lower.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with native_stderr_hidden():
            import tensorflow as tf
            import tf2onnx
            from tensorflow.core.protobuf import saved_model_pb2
            from tf2onnx import convert, tf_loader
    except ImportError as error:
        raise ModelError(
            f"{path}: reading a SavedModel needs TensorFlow and tf2onnx ({error}): {TF_EXTRA}"
        ) from error
    return _Modules(tf, tf2onnx, tf_loader, convert, saved_model_pb2)


# -- checking the folder before TensorFlow sees it -----------------------------------------------


def _check_folder(path: Path) -> None:
    if not path.exists():
        raise ModelError(f"{path}: no such SavedModel folder")
    if not path.is_dir():
        raise ModelError(
            f"{path}: not a folder; a SavedModel is a folder holding saved_model.pb and variables/"
        )
    if not (path / "saved_model.pb").is_file():
        raise ModelError(f"{path}: no saved_model.pb in this folder, so it is not a SavedModel")


def _meta_graph(path: Path, tags: list[str], saved_model_pb2: ModuleType) -> Any:
    """The MetaGraphDef whose tag set is exactly ``tags``, as TensorFlow's loader picks it."""
    from google.protobuf.message import DecodeError

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((path / "saved_model.pb").read_bytes())
    except (DecodeError, RuntimeError, ValueError) as error:
        raise ModelError(
            f"{path}: saved_model.pb is damaged or not a SavedModel ({error})"
        ) from None
    if not proto.meta_graphs:
        raise ModelError(f"{path}: saved_model.pb holds no MetaGraph; it is damaged or empty")
    for meta_graph in proto.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == set(tags):
            return meta_graph
    found = ", ".join(repr(",".join(m.meta_info_def.tags)) for m in proto.meta_graphs)
    raise ModelError(f"{path}: no MetaGraph tagged {','.join(tags)!r}; its tags: {found}")


def _signature_names(meta_graph: Any) -> list[str]:
    # tf2onnx, like TensorFlow's loader, offers no signature whose key starts with '_'.
    return sorted(
        k for k in meta_graph.signature_def if not k.startswith("_") and k != _INIT_OP_KEY
    )


def _check_signature(path: Path, meta_graph: Any, signature: str, tag: str) -> None:
    names = _signature_names(meta_graph)
    if signature in names:
        return
    found = ", ".join(repr(n) for n in names) or "none (it was saved without signatures)"
    raise ModelError(
        f"{path}: no signature {signature!r} under tag {tag!r}; its signatures: {found}"
    )


def _check_variables(path: Path, meta_graph: Any) -> None:
    """Refuse a copy whose variables are missing, before TensorFlow fails on it less clearly."""
    # TensorFlow 2 restores a checkpoint for every SavedModel, weights or not;
    # TensorFlow 1 only for a graph with a saver.
    if not (len(meta_graph.object_graph_def.nodes) or meta_graph.HasField("saver_def")):
        return
    folder = path / "variables"
    if not folder.is_dir():
        raise ModelError(f"{path}: the variables/ folder is missing (it holds the weights)")
    if not (folder / "variables.index").is_file():
        raise ModelError(f"{path}: variables/variables.index is missing")
    shards: dict[int, int] = {}
    for file in folder.iterdir():
        match = _SHARD.match(file.name)
        if match and file.is_file():
            shards[int(match[1])] = int(match[2])
    if not shards:
        raise ModelError(f"{path}: variables/variables.data-* is missing (the weights themselves)")
    total = max(shards.values())
    missing = [f"variables.data-{i:05d}-of-{total:05d}" for i in range(total) if i not in shards]
    if missing:
        raise ModelError(f"{path}: variables/ lacks {', '.join(missing)}")


# -- converting ------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Converted:
    proto: Any  # onnx.ModelProto
    external: dict[str, bytes]  # tf2onnx's large-model tensors by location
    input_names: dict[str, str]  # signature input key -> ONNX input name
    output_names: dict[str, str]  # signature output key -> ONNX output name
    input_ranks: dict[str, int | None]  # ONNX input name -> rank
    loaded: Any  # the SavedModel as TensorFlow loaded it for the conversion

    @property
    def external_count(self) -> int:
        return len(self.external)


def _convert(
    path: Path, tags: list[str], options: SavedModelOptions, modules: _Modules
) -> _Converted:
    """Load and convert the signature exactly as tf2onnx's ``--saved-model`` command does."""
    tf, tf_loader, convert = modules.tf, modules.tf_loader, modules.convert
    version = modules.tf2onnx.__version__
    try:
        (graph_def, inputs, outputs, function, loaded, tables, renames) = (
            tf_loader.from_saved_model(
                str(path.absolute()),
                None,
                None,
                tag=tags,
                signatures=[options.signature],
                large_model=options.large_model,
                return_concrete_func=True,
                return_initialized_tables=True,
                return_tensors_to_rename=True,
            )
        )
    except Exception as error:
        raise ModelError(
            f"{path}: TensorFlow cannot load the SavedModel: {_one_line(error)}"
        ) from error

    # tf2onnx names ONNX inputs after the signature's TensorSpecs, pairing them
    # by position with the graph's placeholders; keep that pairing by key.
    _args, kwargs = function.structured_input_signature
    output_keys = sorted(function.structured_outputs)
    if len(kwargs) != len(inputs) or len(output_keys) != len(outputs):
        raise ModelError(
            f"{path}: signature {options.signature!r} has inputs {sorted(kwargs)} and outputs "
            f"{output_keys}, but its graph {inputs} and {outputs}"
        )
    input_names = {key: renames.get(i, i) for key, i in zip(sorted(kwargs), inputs, strict=True)}
    input_ranks = {input_names[key]: kwargs[key].shape.rank for key in input_names}
    output_names = {key: renames.get(o, o) for key, o in zip(output_keys, outputs, strict=True)}
    _check_nchw(path, options.inputs_as_nchw, input_ranks)

    try:
        with tf.device("/cpu:0"), _numpy_product_for_tf2onnx(options.large_model):
            proto, storage = convert._convert_common(
                graph_def,
                name=str(path),
                # A failing op handler must fail the import; unmapped ops are caught after.
                continue_on_error=False,
                opset=options.opset,
                input_names=inputs,
                output_names=outputs,
                inputs_as_nchw=options.inputs_as_nchw or None,
                large_model=options.large_model,
                tensors_to_rename=renames,
                initialized_tables=tables,
            )
    except Exception as error:
        raise ModelError(
            f"{path}: tf2onnx {version} cannot convert signature {options.signature!r}: "
            f"{_one_line(error)}"
        ) from error
    external = dict(storage.name_to_tensor_data) if storage is not None else {}
    return _Converted(proto, external, input_names, output_names, input_ranks, loaded)


def _check_nchw(path: Path, names: list[str], ranks: Mapping[str, int | None]) -> None:
    problems = []
    for name in names:
        if name not in ranks:
            listing = ", ".join(repr(n) for n in ranks)
            problems.append(f"inputs_as_nchw names {name!r}, which is not an input ({listing})")
        elif ranks[name] != 4:
            rank = "an unknown rank" if ranks[name] is None else f"rank {ranks[name]}"
            problems.append(f"inputs_as_nchw: input {name!r} has {rank}, not 4 (NHWC)")
    if problems:
        raise ModelError(f"{path}: {'; '.join(problems)}")


@contextlib.contextmanager
def _numpy_product_for_tf2onnx(needed: bool) -> Iterator[None]:
    """Lend NumPy 2 the ``np.product`` alias that tf2onnx 1.17's large-model mode still calls."""
    import numpy as np

    if not needed or hasattr(np, "product"):
        yield
        return
    np.product = np.prod  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del np.product  # type: ignore[attr-defined]


def _to_ir(path: Path, converted: _Converted) -> ir.Model:
    """Wrap tf2onnx's ModelProto, putting large-model weights in memory as tensors."""
    import numpy as np
    import onnx_ir as ir

    from graphkit._modelio.proto import from_proto

    model = from_proto(converted.proto)
    if not converted.external:
        return model

    def in_memory(tensor: ir.ExternalTensor, name: str) -> ir.Tensor:
        data = converted.external.get(str(tensor.location))
        if data is None:
            # tf2onnx names only tensors it holds; anything else would point at a file.
            raise ModelError(f"{path}: tf2onnx left tensor {name!r} in {tensor.location!r}")
        array = np.frombuffer(data, dtype=tensor.dtype.numpy()).reshape(tensor.shape.numpy())
        return ir.Tensor(array, name=name)

    for graph in model.graphs():
        for value in graph.initializers.values():
            if isinstance(value.const_value, ir.ExternalTensor):
                value.const_value = in_memory(value.const_value, value.name or "")
        for node in graph:
            for name, attr in list(node.attributes.items()):
                if attr.type == ir.AttributeType.TENSOR and isinstance(
                    attr.value, ir.ExternalTensor
                ):
                    node.attributes[name] = ir.AttrTensor(name, in_memory(attr.value, name))
    return model


def _check_ops(path: Path, model: ir.Model, signature: str) -> None:
    """Refuse ops tf2onnx could not map: it only logs them and copies them over unchanged."""
    import collections

    import onnx

    unknown: collections.Counter[str] = collections.Counter()
    for graph in model.graphs():
        for node in graph:
            domain = "" if node.domain == "ai.onnx" else node.domain
            if domain in ("", "ai.onnx.ml") and not onnx.defs.has(node.op_type, domain):
                unknown[node.op_type] += 1
    if unknown:
        ops = ", ".join(f"{op} ({count})" for op, count in sorted(unknown.items()))
        raise ModelError(
            f"{path}: tf2onnx cannot convert these TensorFlow ops of signature {signature!r}: {ops}"
        )


def _check_names(path: Path, model: ir.Model, converted: _Converted) -> None:
    """The reference must be keyed by the names the ONNX model really has."""
    got = ([v.name for v in model.graph.inputs], [v.name for v in model.graph.outputs])
    want = (list(converted.input_names.values()), list(converted.output_names.values()))
    if sorted(got[0]) != sorted(want[0]) or sorted(got[1]) != sorted(want[1]):
        raise ModelError(
            f"{path}: tf2onnx named the model's inputs {got[0]} and outputs {got[1]}, "
            f"but the signature's are {want[0]} and {want[1]}"
        )


def _one_line(error: BaseException) -> str:
    text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    text = text.removeprefix("make_sure failure: ")
    if len(text) > 400:
        text = text[:400] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# -- the reference ---------------------------------------------------------------------------------


@dataclasses.dataclass
class TensorFlowReference:
    """Runs the SavedModel's signature in TensorFlow, keyed by the ONNX model's names.

    The SavedModel the conversion loaded is kept and reused: loading it again
    would cost as long as the conversion itself (the model's weights are held
    twice meanwhile, as TensorFlow variables and in the ONNX model).

    Attributes:
        folder: The SavedModel folder.
        tags: The MetaGraph's tag set.
        signature: The signature to run.
        inputs: ONNX input name -> signature input key.
        outputs: Signature output key -> ONNX output name.
        nchw: ONNX inputs given as NCHW, transposed back to NHWC for TensorFlow.
        loaded: The SavedModel as TensorFlow loaded it; loaded on the first call if None.
    """

    folder: Path
    tags: list[str]
    signature: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    nchw: frozenset[str] = frozenset()
    loaded: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the signature on ``feeds`` and return its outputs by ONNX name."""
        import numpy as np

        missing = [name for name in self.inputs if name not in feeds]
        unknown = [name for name in feeds if name not in self.inputs]
        if missing or unknown:
            raise ModelError(
                f"{self.folder}: TensorFlow reference: inputs missing {missing}, unknown {unknown} "
                f"(inputs: {list(self.inputs)})"
            )
        modules = import_tensorflow(self.folder)
        tf = modules.tf
        arguments = {}
        for name, key in self.inputs.items():
            array = np.asarray(feeds[name])
            if name in self.nchw:
                array = np.transpose(array, (0, 2, 3, 1))
            arguments[key] = tf.convert_to_tensor(array)
        try:
            with tf.device("/cpu:0"):
                results = self._function(tf)(**arguments)
        except ModelError:
            raise
        except Exception as error:
            raise ModelError(
                f"{self.folder}: TensorFlow failed to run signature {self.signature!r}: "
                f"{_one_line(error)}"
            ) from error
        return {self.outputs[key]: value.numpy() for key, value in results.items()}

    def _function(self, tf: ModuleType) -> Any:
        if self.loaded is None:
            try:
                self.loaded = tf.saved_model.load(str(self.folder), tags=self.tags)
            except Exception as error:
                raise ModelError(
                    f"{self.folder}: TensorFlow cannot load the SavedModel: {_one_line(error)}"
                ) from error
        # The signature holds only weak references to the variables; keeping the
        # loaded object alive in self.loaded keeps them.
        return self.loaded.signatures[self.signature]
