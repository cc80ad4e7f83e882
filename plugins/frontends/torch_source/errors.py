"""How torch's failures read in graphkit's one-line errors."""

from __future__ import annotations

import re

INSTALL_HINT = 'pip install "graphkit[torch]"'


def _first_line(error: BaseException, limit: int = 300) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    line = next((part.strip() for part in text.splitlines() if part.strip()), type(error).__name__)
    return line if len(line) <= limit else line[: limit - 3] + "..."
