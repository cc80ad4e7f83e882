"""What a save leaves in the output's folder, and how the next save recognises and removes it.

Two things can be left: the hidden staging folder of a save that was killed
before it finished, and data files of an earlier output that a save with
another layout (inline, sharded, another file name) no longer uses. Only
graphkit's own are ever removed, and only on proof:

- a staging folder holds a marker file that its save keeps locked while it
  runs; a folder whose marker can be locked has no save running any more.
- every file a save writes carries an extended attribute with a token unique
  to that save. An old data file is removed only if the output being
  replaced names it and both carry the same token. Where extended attributes
  are not available (macOS, Windows, some file systems), old data files are
  left where they are; a data file that lacks the token of graphkit's output
  naming it is left too, and the save says so.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: staging folders are not recognised, so never removed
    fcntl = None  # type: ignore[assignment]

#: The marker file inside a staging folder; it never reaches the output's folder.
MARKER = ".graphkit-staging"
#: The extended attribute holding the token of the save that wrote a file.
TOKEN_ATTRIBUTE = "user.graphkit.save"
#: tempfile.mkdtemp's names: the prefix, then eight characters of this alphabet.
_STAGING_NAME = re.compile(r"^\.(?P<output>.+)\.[a-z0-9_]{8}$")


def _marker_text(output: str) -> bytes:
    return f"graphkit staging folder of a save of {output}\n".encode()


class Staging:
    """A new hidden folder beside an output, marked and locked as one save's own."""

    def __init__(self, folder: Path, output: str) -> None:
        """Create the folder and its locked marker.

        Raises:
            OSError: the folder cannot be created.
        """
        self.path = Path(tempfile.mkdtemp(prefix=f".{output}.", dir=folder))
        self._lock: BinaryIO | None = None
        if fcntl is None:
            return
        try:
            # Locked before it gets its name, so no other save ever sees it unlocked.
            pending = self.path / f"{MARKER}.pending"
            self._lock = open(pending, "wb")  # noqa: SIM115  (held open for the whole save)
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            self._lock.write(_marker_text(output))
            self._lock.flush()
            os.replace(pending, self.path / MARKER)
        except OSError:
            self.remove()
            raise

    def files(self) -> list[Path]:
        """What the save wrote into the folder: everything but the marker."""
        return [f for f in self.path.iterdir() if f.name not in (MARKER, f"{MARKER}.pending")]

    def remove(self) -> None:
        """Remove the folder and what is left in it, then release the lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()


def remove_unfinished_saves(folder: Path) -> list[str]:
    """Remove staging folders that saves into ``folder`` left when they were killed.

    A folder is removed only if its name is a staging folder's, it holds
    nothing but regular files, its marker file has the expected contents and
    no running save holds the marker's lock.

    Returns:
        A note for each folder removed.
    """
    if fcntl is None:
        return []
    notes = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        match = _STAGING_NAME.match(entry.name)
        if match is None or not entry.is_dir(follow_symlinks=False):
            continue
        with contextlib.suppress(OSError):
            if _remove_if_abandoned(Path(entry.path), match["output"]):
                notes.append(
                    f"removed {entry.name}/, left by a save of {match['output']} "
                    "that did not finish"
                )
    return notes


def _remove_if_abandoned(staging: Path, output: str) -> bool:
    assert fcntl is not None
    children = list(os.scandir(staging))
    if not all(child.is_file(follow_symlinks=False) for child in children):
        return False
    if MARKER not in {child.name for child in children}:
        return False
    descriptor = os.open(staging / MARKER, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with open(descriptor, "rb") as marker:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return False
        if marker.read(1024) != _marker_text(output):
            return False
        try:
            fcntl.flock(marker, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a save is writing into it right now
        shutil.rmtree(staging)
    return True


def new_token() -> str:
    """A token for the files of one save."""
    return uuid.uuid4().hex


def stamp(files: Iterable[Path], token: str) -> None:
    """Mark ``files`` as written by the save of ``token``, where the file system allows it."""
    if not hasattr(os, "setxattr"):
        return
    for file in files:
        with contextlib.suppress(OSError):
            os.setxattr(file, TOKEN_ATTRIBUTE, token.encode(), follow_symlinks=False)


def token_of(path: Path) -> str | None:
    """The token of the save that wrote ``path``, or ``None`` if graphkit did not write it."""
    if not hasattr(os, "getxattr"):
        return None
    try:
        return os.getxattr(path, TOKEN_ATTRIBUTE, follow_symlinks=False).decode()
    except (OSError, UnicodeDecodeError):
        return None


def stale_data(
    folder: Path, previous_token: str | None, previous_data: Iterable[str], kept: set[str]
) -> tuple[list[Path], list[str]]:
    """The data files of a replaced output that graphkit wrote and the new output does not use.

    Args:
        folder: The output's folder.
        previous_token: The token of the output being replaced, if graphkit wrote it.
        previous_data: The external data locations the replaced output names.
        kept: The names of the files the new output consists of.

    Returns:
        The files to remove, and the names of unused files that stay because
        nothing proves graphkit wrote them.
    """
    stale, unproven = [], []
    for name in sorted(set(previous_data) - kept):
        if Path(name).name != name or name in (".", ".."):
            continue  # graphkit writes data only as plain names in the output's folder
        path = folder / name
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
        except OSError:
            continue
        if previous_token is not None and token_of(path) == previous_token:
            stale.append(path)
        else:
            unproven.append(name)
    return stale, unproven
