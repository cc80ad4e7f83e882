"""``graphkit demo``: the two signature models, from stand-ins in their original formats to ONNX.

The stand-ins have the originals' architecture and file formats (a Keras 2
SavedModel, a ``{'model': state_dict}`` checkpoint) with seeded weights; the
built-in recipes convert and verify them exactly as they would the originals.
"""

from __future__ import annotations

import importlib.util
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from graphkit import ApplyResult, GraphkitError, apply, load_recipe
from graphkit._inspect import real_inputs, value_signature

#: Where each built-in recipe expects its original download, relative to its folder.
CLEANING_SOURCE = Path("signature-image-cleaning") / "model"
VERIFICATION_SOURCE = Path("signature-verification") / "convnet_best_loss.pt"
#: The modules each extra installs that the demo needs: the stand-ins are built by the frameworks.
EXTRAS = {"tf": ("tensorflow", "tf_keras", "tf2onnx"), "torch": ("torch", "onnxscript")}


def run_demo(workdir: Path, echo: Callable[[str], None] = print) -> list[ApplyResult]:
    """Build both stand-ins in ``workdir`` and apply the built-in recipes to them.

    Raises:
        GraphkitError: TensorFlow or PyTorch is not installed (naming the extra
            to install), or a recipe fails.
    """
    _check_extras()
    from graphkit_plugins.signature.cleaning import build_cleaning_savedmodel
    from graphkit_plugins.signature.siamese import build_verification_checkpoint

    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    echo(f"graphkit demo in {workdir}")
    started = time.perf_counter()
    build_cleaning_savedmodel(workdir / CLEANING_SOURCE, seed=0)
    echo(f"  built {CLEANING_SOURCE}: a Keras 2 SavedModel of the signature-cleaning autoencoder")
    build_verification_checkpoint(workdir / VERIFICATION_SOURCE, seed=0)
    echo(
        f"  built {VERIFICATION_SOURCE}: a {{'model': state_dict}} checkpoint of the Siamese SigNet"
    )
    echo(f"  ({time.perf_counter() - started:.1f}s)")

    results = []
    for name in ("signature-cleaning", "signature-verification"):
        echo(f"\n== graphkit apply {name} ==")
        started = time.perf_counter()
        indented = lambda text: echo(textwrap.indent(text, "  "))  # noqa: E731
        result = apply(load_recipe(name, base_dir=workdir), echo=indented)
        echo(f"  ({time.perf_counter() - started:.1f}s)")
        results.append((name, result))

    echo("\nsummary:")
    for name, result in results:
        graph = result.model.graph
        inputs = ", ".join(value_signature(v) for v in real_inputs(graph))
        outputs = ", ".join(value_signature(v) for v in graph.outputs)
        echo(f"  {name}: {inputs} -> {outputs}")
        if result.parity is not None:
            worst = max(o.max_abs for o in result.parity.outputs)
            verdict = "ok" if result.parity.ok else "FAILED"
            echo(f"    parity with the source framework: {verdict} (max abs err {worst:.2g})")
        echo(f"    wrote {result.output}")
    return [result for _, result in results]


def _check_extras() -> None:
    """Refuse, before building anything, when a framework the demo needs is not installed."""
    missing: dict[str, list[str]] = {}
    for extra, modules in EXTRAS.items():
        absent = [m for m in modules if not _installed(m)]
        if absent:
            missing[extra] = absent
    if not missing:
        return
    extra = "all" if len(missing) == len(EXTRAS) else next(iter(missing))
    names = ", ".join(m for modules in missing.values() for m in modules)
    raise GraphkitError(
        "graphkit demo builds its stand-ins with TensorFlow and PyTorch, and "
        f"{names} {'is' if ',' not in names else 'are'} not installed: "
        f'pip install "graphkit[{extra}]"'
    )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
