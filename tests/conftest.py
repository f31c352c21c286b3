"""Shared fixtures: every test gets its own store file, English messages, no colour, a fixed width,
an in-memory keyring and a fixed time zone for the store."""

from __future__ import annotations

import os

# Before crmcli is imported: help texts are translated at import time.
os.environ["CRM_LANG"] = "en"
os.environ["NO_COLOR"] = "1"
os.environ["COLUMNS"] = "100"
os.environ.pop("CRM_DB", None)
# Every tier run in the suite also reads the store in full and fails if the cache kept between runs
# (core/class_cache.py) gave anything else: the whole tier suite is a differential test of the cache.
os.environ["CRM_CLASS_CACHE"] = "check"

from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import keyring  # noqa: E402
import pytest  # noqa: E402
from keyring.backend import KeyringBackend  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import pg_support  # noqa: E402
from crmcli.cli.app import app  # noqa: E402


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.data.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.data[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.data.pop((service, username), None)


@pytest.fixture(autouse=True)
def pg_sqlite3(monkeypatch: pytest.MonkeyPatch) -> None:
    """With CRM_TEST_PG, direct sqlite3.connect(db_path) reads and writes reach the test's PG schema."""
    if pg_support.PG_URL:
        pg_support.patch_sqlite3(monkeypatch)


@pytest.fixture(autouse=True)
def memory_keyring() -> Iterator[MemoryKeyring]:
    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


class Cli:
    """Runs `crm` in-process against one store file; results keep stdout and stderr apart."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, ok: bool | None = None) -> Any:
        result = self.runner.invoke(app, ["--db", str(self.db), *args], input=input, catch_exceptions=False)
        if ok is True:
            assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        return result

    def ok(self, *args: str, input: str | None = None) -> Any:
        return self(*args, input=input, ok=True)

    def json(self, *args: str) -> Any:
        import json

        return json.loads(self.ok(*args, "--format", "json").stdout)


@pytest.fixture
def db_path(tmp_path: Path) -> Iterator[Any]:
    """The test's store: a file in tmp_path, or a fresh PostgreSQL database with CRM_TEST_PG (pg_support.py)."""
    if pg_support.PG_URL:
        db = pg_support.new_database()
        yield db
        pg_support.drop_database(db, wait=False)
    else:
        yield tmp_path / "shop.sqlite"


@pytest.fixture
def cli(db_path: Path) -> Cli:
    """A CLI bound to a fresh, initialised store (CNY, region CN, Asia/Shanghai)."""
    c = Cli(db_path)
    c.ok("init", "--currency", "CNY", "--region", "CN", "--timezone", "Asia/Shanghai")
    return c


@pytest.fixture
def store(cli: Cli) -> Iterator[Any]:
    from crmcli.store.engine import open_store

    s = open_store(str(cli.db))
    yield s
    s.dispose()


def snapshot_db(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to assert that a failed command changed nothing."""
    import sqlite3

    if isinstance(path, pg_support.PgDb):
        return pg_support.snapshot(path)

    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


@pytest.fixture
def unchanged(db_path: Path) -> Callable[[], Any]:
    """Call once to take a snapshot; call the returned function to assert the store is the same."""

    def take() -> Callable[[], None]:
        before = snapshot_db(db_path)

        def check() -> None:
            after = snapshot_db(db_path)
            # class_cache_state holds counters that only go up to mark the tier cache stale (m0021): a stepped
            # import taken back deletes its committed purchases, which raises purchase_gen as it should (the
            # next tier run reads the store in full). Every row of every other table must be as it was.
            for counters in (before, after):
                counters.pop("class_cache_state", None)
            assert after == before, "the store changed"

        return check

    return take


# Tests about the store FILE itself (and two known differences); with CRM_TEST_PG they skip with the reason
# (docs/postgresql.md says what PostgreSQL does instead). Keys are node-id prefixes.
FILE_ONLY = {
    "tests/test_db_encryption.py::test_": "SQLCipher encrypts a file; on PostgreSQL encryption at rest is the server's job",
    "tests/test_db_backup.py::test_": "SQLite file backups/restore/PRAGMA checks; PostgreSQL uses pg_dump (tests/test_postgres.py)",
    "tests/test_store.py::test_every_connection_gets_the_pragmas": "SQLite PRAGMAs",
    "tests/test_store.py::test_a_store_from_a_newer_crmcli_is_refused": "checks no .bak file beside the store file",
    "tests/test_store.py::test_a_read_only_store_file": "file permissions",
    "tests/test_store.py::test_a_busy_store_gives_up_with_a_clear_message": "SQLite's file lock (PostgreSQL: lock_timeout)",
    "tests/test_store.py::test_backup_before_migration_unit": "the pre-migration copy of a store file",
    "tests/test_store.py::test_a_damaged_store": "a damaged SQLite file",
    "tests/test_smoke.py::test_init_is_idempotent_and_prints_the_path": "the store file's mode 0600",
    "tests/test_i18n.py::test_the_store_setting_is_read_before_the_cli_loads": "a missing store file's name",
    "tests/test_db_audit.py::test_verify_names_the_first_broken_row": "db check's file checks (on PostgreSQL: the audit chain only)",
    "tests/test_privacy.py::test_the_shared_consent_rule": "asserts the store is a file on disk",
    "tests/test_survey_smtp.py::test_send_invitations_by_email": "greps the store file's bytes for the SMTP password",
}


# Tests that open a store only for its settings and then compare Python code paths: the same on either store.
SETTINGS_ONLY = {
    "tests/test_import_plain_rows.py::test_plain_rows_are_prepared_exactly_as_the_full_path":
        "compares the quick and the full validation of 400 random rows in Python; the store only supplies settings",
}


NO_STORE = ("does not open a store through db_path/cli, so it runs exactly as in the default (SQLite) run; "
            "the PostgreSQL run is for what touches the store")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not pg_support.PG_URL:
        return
    for item in items:
        # Parsers, formats, help texts, and the robustness tests that build their own SQLite files: the same code
        # on the same data either way, so running them twice in CI would only cost time.
        if "db_path" not in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.skip(reason=f"not a store test on CRM_TEST_PG: {NO_STORE}"))
            continue
        for prefix, reason in SETTINGS_ONLY.items():
            if item.nodeid.startswith(prefix):
                item.add_marker(pytest.mark.skip(reason=f"settings only on CRM_TEST_PG: {reason}"))
        for prefix, reason in FILE_ONLY.items():
            if item.nodeid.startswith(prefix) and "help_does_not_import" not in item.nodeid:
                item.add_marker(pytest.mark.skip(reason=f"file-only on CRM_TEST_PG: {reason}"))


def pytest_sessionfinish(session: pytest.Session) -> None:
    if pg_support.PG_URL:
        pg_support.drop_all_mine()
