"""``python -m graphkit``."""

from graphkit._cli import run

run()
