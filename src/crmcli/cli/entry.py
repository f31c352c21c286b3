"""The ``crm`` console script. Chooses the interface language before the command modules (whose help
texts are translated at import) are loaded. Uses only the standard library before that point."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path


def _db_from_argv(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--db" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--db="):
            return arg[5:]
    return os.environ.get("CRM_DB")


def _stored_language_pg(location: str) -> str | None:
    """The same read on a PostgreSQL store, with psycopg alone (no SQLAlchemy at start-up); None on any
    failure (the command itself then reports a server that cannot be reached)."""
    scheme, _sep, rest = location.partition("://")
    if scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        return None
    try:
        import psycopg

        with psycopg.connect(f"postgresql://{rest}", connect_timeout=3, autocommit=True) as conn:
            row = conn.execute("SELECT value FROM setting WHERE key = 'ui.language'").fetchone()
    except Exception:  # noqa: BLE001 - no driver, no server, no table: no stored language
        return None
    import json

    try:
        return (json.loads(row[0]) or None) if row else None
    except ValueError:
        return None


def stored_language(location: str | None) -> str | None:
    """The store's ui.language setting, read with stdlib sqlite3 (read-only), or None."""
    if location is None:
        from platformdirs import user_data_path

        path = user_data_path("crmcli", appauthor=False) / "crm.sqlite"
    elif "://" in location:
        return _stored_language_pg(location)
    else:
        path = Path(location).expanduser()
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            row = conn.execute("SELECT value FROM setting WHERE key = 'ui.language'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    if not row:
        return None
    import json

    try:
        value = json.loads(row[0])
    except ValueError:
        return None
    return value or None


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    from crmcli import i18n

    i18n.set_language(stored_language(_db_from_argv(args)))
    from crmcli.cli.app import app

    app(args=args, prog_name="crm")
