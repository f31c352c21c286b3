"""File steps shared by encryption, backup and restore: temporary files beside a target, directory fsync."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_beside(path: Path, tag: str) -> Path:
    tmp = path.with_name(f".{path.name}.{tag}-{os.getpid()}.tmp")
    for extra in ("", "-journal", "-wal", "-shm"):
        Path(str(tmp) + extra).unlink(missing_ok=True)
    return tmp
