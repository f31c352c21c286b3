"""Rich consoles for stdout/stderr. Colour follows NO_COLOR and whether the stream is a terminal."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from rich.console import Console


def stdout_console(stream: TextIO | None = None, *, record: bool = False, width: int | None = None) -> Console:
    stream = stream or sys.stdout
    if width is None and not stream.isatty():
        width = int(os.environ.get("COLUMNS", "0") or 0) or 100
    return Console(file=stream, record=record, width=width, no_color="NO_COLOR" in os.environ or None,
                   highlight=False, soft_wrap=False)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)
