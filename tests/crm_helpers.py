"""Helpers shared by the foundation's CLI tests: error assertions and direct reads of the store file."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pg_support


def fails(cli: Any, code: int, *args: str, says: tuple[str, ...] | list[str] = (), input: str | None = None) -> str:
    """Run a command that must fail: the exit code, one 'Error: ...' line on stderr containing every
    string in ``says``, nothing on stdout, and no traceback anywhere. Returns the error line."""
    result = cli(*args, input=input)
    everything = result.stdout + result.stderr
    assert "Traceback" not in everything, everything
    assert result.exit_code == code, f"exit {result.exit_code} (wanted {code})\nstdout: {result.stdout}\nstderr: {result.stderr}"
    error = result.stderr.strip()
    assert error.startswith("Error: "), error
    assert len(error.splitlines()) == 1, f"more than one line: {error!r}"
    assert result.stdout == "", result.stdout
    for text in says:
        assert text in error, f"{text!r} not in {error!r}"
    return error


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows straight from the store file (no crmcli code involved)."""
    if isinstance(db, pg_support.PgDb):
        return pg_support.query(db, sql, params)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def one(db: Path, sql: str, *params: Any) -> Any:
    rows = query(db, sql, *params)
    assert len(rows) == 1, rows
    return rows[0][0] if len(rows[0]) == 1 else rows[0]


def audit_rows(db: Path, action: str | None = None) -> list[dict[str, Any]]:
    import json

    sql = "SELECT * FROM audit" + (" WHERE action = ?" if action else "") + " ORDER BY id"
    if isinstance(db, pg_support.PgDb):
        rows = pg_support.dict_rows(db, sql, (action,) if action else ())
    else:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in conn.execute(sql, (action,) if action else ())]
        finally:
            conn.close()
    for r in rows:
        r["before"] = json.loads(r["before"]) if r["before"] else None
        r["after"] = json.loads(r["after"]) if r["after"] else None
    return rows


_commands: dict[int, Any] = {}


def _cached_get_command(app: Any) -> Any:
    """Typer rebuilds the whole Click command tree on every CliRunner.invoke (~0.15 s with all groups);
    the tree never changes during a test run, so build it once."""
    from typer.main import get_command

    key = id(app)
    if key not in _commands:
        _commands[key] = get_command(app)
    return _commands[key]


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def fast_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """Import into a test module (``from crm_helpers import fast_cli``) to reuse one Click command tree."""
    import typer.testing

    monkeypatch.setattr(typer.testing, "_get_command", _cached_get_command)


@pytest.fixture(scope="session")
def template_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[Any, str]]:
    """One store initialised like conftest's ``cli`` fixture (CNY, CN, Asia/Shanghai), built once per run,
    with the keyring entries its creation made (in memory, never the real keychain)."""
    import keyring
    from conftest import Cli, MemoryKeyring

    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        path = pg_support.new_database() if pg_support.PG_URL else tmp_path_factory.mktemp("template") / "template.sqlite"
        Cli(path).ok("init", "--currency", "CNY", "--region", "CN", "--timezone", "Asia/Shanghai")
    finally:
        keyring.set_keyring(previous)
    for suffix in ("-wal", "-shm"):
        assert not Path(f"{path}{suffix}").exists(), "the template store was not closed cleanly"
    return path, dict(backend.data)


@pytest.fixture
def cli(db_path: Path, template_store: tuple[Path, dict[Any, str]], memory_keyring: Any) -> Any:
    """Same as conftest's ``cli`` (a fresh initialised store), but a copy of a template instead of a new
    `crm init` each time (which costs ~0.5 s once every feature's migrations exist)."""
    from conftest import Cli

    template, secrets = template_store
    pg_support.copy_store(template, db_path)  # a file copy keeps the 0600 mode
    memory_keyring.data.update(secrets)
    return Cli(db_path)


_built: dict[str, Path] = {}


def from_template(name: str, cli: Any, tmp_path_factory: pytest.TempPathFactory, build: Any) -> Any:
    """Give ``cli`` a store prepared by ``build(cli)``, built once per test run under ``name`` and copied
    for each test (tests that only read a prepared shop then cost a file copy, not a dozen commands)."""
    from conftest import Cli

    if name not in _built:
        path = pg_support.new_database() if pg_support.PG_URL else tmp_path_factory.mktemp(name) / "built.sqlite"
        pg_support.copy_store(cli.db, path)
        build(Cli(path))
        for suffix in ("-wal", "-shm"):
            assert not Path(f"{path}{suffix}").exists(), "the built store was not closed cleanly"
        _built[name] = path
    pg_support.copy_store(_built[name], cli.db)
    return cli
