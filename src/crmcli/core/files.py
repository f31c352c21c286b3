"""Files crmcli writes for the user (exports, reports, cards): they hold personal data, so they are created
readable by the owner only (0600, like the store) and appear complete or not at all (written beside the
target, then renamed over it), so a crash or a full disk never leaves half a file under the final name."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from crmcli.core.safety.files import fsync_dir


@contextmanager
def private_file(path: str | os.PathLike[str], *, encoding: str = "utf-8", newline: str | None = None) -> Iterator[IO[str]]:
    """A text stream whose content replaces ``path`` atomically when the block ends without an error.

    A symlink, a named pipe or a device (/dev/stdout, /dev/full) is written into instead: renaming over it
    would replace the link or the device node itself (as root, /dev/full became a file and ENOSPC went
    unseen)."""
    target = Path(path)
    if target.is_symlink() or (target.exists() and not target.is_file()):
        with open(target, "w", encoding=encoding, newline=newline) as stream:
            yield stream
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=str(target.parent or "."))
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding=encoding, newline=newline) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())  # the data is on disk before the new name points at it
        os.replace(tmp, target)
        fsync_dir(target.parent)  # the new name itself survives a power cut
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_private_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> None:
    with private_file(path, encoding=encoding) as stream:
        stream.write(text)
