"""The Python environments the figures run in, and the plain pip one ``--env`` builds.

The running environment is normally the project's own set-up, with the
versions constraints.txt pins. The plain pip environment is what a user gets
from ``pip install ".[all]"`` without constraints.txt: whatever versions pip
picks within pyproject.toml's ranges (newer releases than those pinned, say).

It lives in benchmarks/work/plain-env and is reused while pyproject.toml is
unchanged: a hash of the file is stored in it once the build has finished. It
installs ``torch==2.13.0`` first, since pip would otherwise choose a CUDA build
of several GB (on this machine pip's find-links hold the CPU wheel; elsewhere
point pip at PyTorch's CPU index). graphkit is installed editable (``pip
install -e``): the environment then runs the repository's current code, so
only pyproject.toml (the dependencies and the package layout) decides when it
must be rebuilt; a copied install would run the code of the day it was built.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from benchmarks.harness import REPO, WORK, Failed, remove, size

PLAIN = WORK / "plain-env"
#: Written into the plain environment when its build has finished.
STAMP = "graphkit-pyproject.sha256"
#: torch is installed on its own, first, at the version constraints.txt pins (a CPU build).
TORCH = "torch==2.13.0"
#: The versions the Machine section lists.
PACKAGES = (
    "onnx",
    "onnx-ir",
    "onnxruntime",
    "onnxsim",
    "onnxslim",
    "onnxscript",
    "tf2onnx",
    "tensorflow",
    "torch",
)


@dataclasses.dataclass(frozen=True)
class Environment:
    """A Python environment the figures run in: its interpreter and graphkit command.

    Attributes:
        key: A short name for its log files, such as ``plain``.
        title: The heading its results get, such as ``plain pip environment``.
        python: Its python executable.
        graphkit: Its graphkit executable.
    """

    key: str
    title: str
    python: str
    graphkit: str

    @classmethod
    def of(cls, python: str | os.PathLike[str], key: str, title: str) -> Environment:
        """The environment whose interpreter is ``python``; its graphkit lies beside it."""
        return cls(key, title, os.fspath(python), str(Path(python).with_name("graphkit")))

    def log(self, name: str) -> str:
        """The name of a log file of this environment's commands."""
        return f"{self.key}-{name}"


def running_environment() -> Environment:
    """The environment running this script, titled after whether it has constraints.txt's pins."""
    pinned = pins()
    off = off_pins(versions(sys.executable, pinned), pinned)
    if off:
        title = f"running environment (not at constraints.txt's pins: {', '.join(off)})"
    else:
        title = "constraints.txt environment"
    return Environment.of(sys.executable, "pinned", title)


def plain_environment(folder: Path = PLAIN) -> Environment:
    """The plain pip environment, built unless one built from this pyproject.toml is there.

    Raises:
        Failed: venv or pip failed; the log's last lines say why.
    """
    digest = file_hash(REPO / "pyproject.toml")
    if not reusable(folder, digest):
        remove(folder)
        print(f"  building the plain pip environment in {folder} (a few minutes) ...", flush=True)
        pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--no-input"]
        build = [
            [sys.executable, "-m", "venv", str(folder)],
            [*pip, TORCH],
            [*pip, "-e", f"{REPO}[all]"],
        ]
        log = WORK / "logs" / "plain-env-build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as output:
            for command in build:
                status = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT)
                if status.returncode != 0:
                    tail = " / ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
                    raise Failed(f"`{' '.join(command)}` exited with {status.returncode}: {tail}")
        (folder / STAMP).write_text(digest + "\n")
    return Environment.of(folder / "bin" / "python", "plain", "plain pip environment")


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reusable(folder: Path, digest: str) -> bool:
    """Whether ``folder`` holds a finished environment built from the pyproject.toml ``digest``."""
    stamp = folder / STAMP
    return (
        stamp.is_file()
        and stamp.read_text().strip() == digest
        and (folder / "bin" / "python").exists()
        and (folder / "bin" / "graphkit").exists()
    )


def pins(path: Path | None = None) -> dict[str, str]:
    """The ``name==version`` lines of a constraints file (constraints.txt by default)."""
    text = (path or REPO / "constraints.txt").read_text()
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[name.strip()] = version.strip()
    return found


def off_pins(installed: dict[str, str | None], pinned: dict[str, str]) -> list[str]:
    """``name version`` of each installed package whose version is not the pinned one.

    A local build tag (torch's ``+cpu``) is not part of the comparison;
    packages that are not installed are not counted.
    """
    return [
        f"{name} {version}"
        for name, version in installed.items()
        if version is not None and name in pinned and version.split("+")[0] != pinned[name]
    ]


_VERSIONS = """
import importlib.metadata, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        found[name] = None
print(json.dumps(found))
"""


def versions(python: str, names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """The installed version of each package in ``names`` (None: not installed), per ``python``."""
    names = list(names)
    result = subprocess.run([python, "-c", _VERSIONS, *names], capture_output=True, text=True)
    if result.returncode != 0:
        return dict.fromkeys(names)
    return json.loads(result.stdout)


def listed(found: dict[str, str | None]) -> str:
    return ", ".join(f"{n} {v}" if v else f"{n} (not installed)" for n, v in found.items())


def machine(environments: list[Environment], *, titled: bool = False) -> list[str]:
    """The Machine section: when, which commit, the hardware, and each environment's packages.

    Args:
        environments: The environments whose packages to list.
        titled: Name each environment before its packages (always, with several).
    """
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        memory = int(info.readline().split()[1]) * 1024
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    lines = [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"graphkit commit {commit or 'unknown'}",
        f"- CPU: {cpu}, {os.cpu_count()} cores; RAM: {size(memory)}",
        f"- {platform.platform()}, Python {platform.python_version()}",
    ]
    if len(environments) == 1 and not titled:
        return [*lines, f"- {listed(versions(environments[0].python))}"]
    return [*lines, *(f"- {e.title}: {listed(versions(e.python))}" for e in environments)]
