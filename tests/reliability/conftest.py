"""Fixtures for the reliability tests: the CLI as a user meets it, and snapshots of folders."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from graphkit._cli import main

#: The console script installed next to this interpreter.
GRAPHKIT = str(Path(sys.executable).parent / "graphkit")


@dataclasses.dataclass
class Outcome:
    """What one run of the CLI did."""

    code: int
    out: str
    err: str

    def assert_clean_failure(self, code: int, *fragments: str) -> None:
        """Failed with ``code``, errors only as ``graphkit: error:`` lines, each fragment said."""
        assert self.code == code, f"exit code {self.code}, expected {code}; stderr:\n{self.err}"
        assert "Traceback" not in self.err and "internal error" not in self.err, self.err
        lines = self.err.splitlines()
        assert lines, "no error message"
        for line in lines:
            assert line.startswith("graphkit: error: "), self.err
        for fragment in fragments:
            assert fragment in self.err, f"{fragment!r} not in:\n{self.err}"


Cli = Callable[..., Outcome]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``graphkit ARGS...`` in this process and capture what it prints."""

    def run(*argv: str | os.PathLike[str]) -> Outcome:
        code = main([os.fspath(a) for a in argv])
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def run_console(
    *argv: str | os.PathLike[str], cwd: Path, limit_memory: int | None = None
) -> Outcome:
    """Run the installed ``graphkit`` script in a child process, as a shell would.

    Args:
        limit_memory: Cap the child's address space at this many bytes, so a
            runaway allocation fails fast instead of exhausting the machine.
    """

    def limits() -> None:
        import resource

        assert limit_memory is not None
        resource.setrlimit(resource.RLIMIT_AS, (limit_memory, limit_memory))

    result = subprocess.run(
        [GRAPHKIT, *(os.fspath(a) for a in argv)],
        capture_output=True,
        text=True,
        cwd=cwd,
        preexec_fn=limits if limit_memory is not None else None,
        timeout=300,
    )
    return Outcome(result.returncode, result.stdout, result.stderr)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: its bytes and inode, to tell written, replaced and new files."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            found[str(path.relative_to(folder))] = (path.read_bytes(), path.stat().st_ino)
    return found
