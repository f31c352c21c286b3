"""Schema migrations: modules ``mNNNN_what.py`` in this package, each with ``upgrade(conn)``, applied in
number order and recorded by name in ``schema_migration``.

To change the schema, add the next-numbered module; never edit one that has shipped. A store that records
a migration this code does not know was written by a newer crmcli and is refused rather than guessed at.
"""

from __future__ import annotations

import pkgutil
import re
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^m\d{4}_[a-z0-9_]+$")

MIGRATIONS: list[str] = sorted(
    m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if _NAME.match(m.name))


def upgrade_function(name: str) -> Callable[[Any], None]:
    return import_module(f"{__name__}.{name}").upgrade  # type: ignore[no-any-return]
