"""Dry-run imports (issue #10): a dry run is one transaction that is rolled back, so on an SQLite file it would
hold the write lock for its whole run. A dry run of anything but a small file works on a private copy of the
store instead: other commands keep writing meanwhile, the answers are the same, and the copy is removed."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from conftest import snapshot_db
from crm_helpers import cli, one, query, template_store  # noqa: F401 (fixtures)

import crmcli.cli.importer as cli_importer
import crmcli.core.io.importer as importer
from crmcli.store.engine import SCRATCH_MARK

CSV = ("name,phone,email,tags\n"
       "Ada,13800138000,ada@example.com,vip\n"
       "Bob,13900139000,bob@example.com,\n"
       "Bob again,13900139000,,\n"          # the same phone as the row before: taken within the file
       "Cat,12345,cat@example.com,\n"       # not a phone
       "Dan,13700137000,dan@example.com,new\n")


@pytest.fixture
def sqlite_only(db_path: Any) -> None:
    if not isinstance(db_path, Path):
        pytest.skip("PostgreSQL locks rows, not the database: its dry runs stay in place")


@pytest.fixture
def shop(cli: Any, sqlite_only: None) -> Any:
    cli.ok("customer", "add", "Existing", "--phone", "13600136000", "--email", "dan@example.com")
    return cli


@pytest.fixture
def always_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "DRY_RUN_IN_PLACE_BYTES", -1)


@pytest.fixture
def meanwhile(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Runs the functions appended to it (with no argument) while the import runs, after its first batch
    (the CLI's progress callback, which a terminal would get)."""
    todo: list[Any] = []

    class During:
        def __init__(self, _source: Any) -> None:
            pass

        def __enter__(self) -> Any:
            def update(_rows: int) -> None:
                while todo:
                    todo.pop(0)()
            return update

        def __exit__(self, *exc: Any) -> None:
            pass

    monkeypatch.setattr(cli_importer, "_progress", During)
    return todo


def dry_run(cli: Any, path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    result = cli("import", "customers", str(path), "--dry-run", "--format", "json", *args)
    return result.exit_code, json.loads(result.stdout), result.stderr


def scratch_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if SCRATCH_MARK in p.name)


def test_a_large_dry_run_leaves_the_write_lock_to_other_commands(shop, db_path, tmp_path, always_copy, meanwhile):
    path = tmp_path / "in.csv"
    path.write_text(CSV, encoding="utf-8")
    seen: list[list[str]] = []

    def another_command_writes() -> None:
        seen.append(scratch_files(db_path.parent))
        other = sqlite3.connect(db_path, timeout=0, isolation_level=None)  # no waiting: the lock must be free
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE customer SET notes = 'written during the dry run' WHERE name = 'Existing'")
            other.execute("COMMIT")
        finally:
            other.close()

    meanwhile.append(another_command_writes)
    before = {t: rows for t, rows in snapshot_db(db_path).items() if t != "customer"}
    code, data, _ = dry_run(shop, path)
    assert (code, data["dry_run"], data["committed"], data["created"], data["rejected"]) == (5, True, False, 2, 3)
    copy = f"shop.sqlite{SCRATCH_MARK}{os.getpid()}"
    assert seen == [[copy, f"{copy}-shm", f"{copy}-wal"]]  # the copy existed while the import ran
    assert scratch_files(db_path.parent) == []  # and is gone
    assert query(db_path, "SELECT name, notes FROM customer") == [("Existing", "written during the dry run")]
    assert {t: rows for t, rows in snapshot_db(db_path).items() if t != "customer"} == before


def test_in_place_the_same_dry_run_would_have_blocked_them(shop, db_path, tmp_path, meanwhile):
    """The control for the test above: without the copy the other writer finds the store locked."""
    path = tmp_path / "in.csv"
    path.write_text(CSV, encoding="utf-8")
    errors: list[str] = []

    def another_command_writes() -> None:
        other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            errors.append(str(e))
        finally:
            other.close()

    meanwhile.append(another_command_writes)
    code, data, _ = dry_run(shop, path)
    assert (code, data["created"], data["rejected"]) == (5, 2, 3)
    assert errors == ["database is locked"]


def test_a_dry_run_on_a_copy_gives_the_same_answers_as_in_place(shop, db_path, tmp_path, monkeypatch):
    path = tmp_path / "in.csv"
    path.write_text(CSV, encoding="utf-8")
    answers = []
    for threshold in (10**9, -1):  # in place, then on a copy
        monkeypatch.setattr(importer, "DRY_RUN_IN_PLACE_BYTES", threshold)
        rejects = tmp_path / "rejects.csv"
        code, data, stderr = dry_run(shop, path, "--mode", "upsert", "--match", "email,phone",
                                     "--rejects", str(rejects))
        data.pop("run_id", None)
        answers.append((code, data, stderr, rejects.read_bytes()))
    assert answers[0] == answers[1]
    # Bob again matched Bob of the line before by phone, Dan the stored customer by e-mail
    assert [answers[0][1][k] for k in ("created", "updated", "rejected")] == [2, 2, 1]
    assert one(db_path, "SELECT count(*) FROM import_run") == 0


def test_a_small_file_from_standard_input_is_dry_run_in_place(shop, db_path, monkeypatch):
    copies: list[Any] = []
    import crmcli.store.engine as engine

    original = engine.scratch_copy
    monkeypatch.setattr(engine, "scratch_copy", lambda store: copies.append(store) or original(store))
    result = shop("import", "customers", "-", "--dry-run", "--format", "json", input="name\nEve\n")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["created"] == 1 and copies == []


def test_a_copy_left_by_a_killed_dry_run_is_removed_by_the_next(shop, db_path, tmp_path, always_copy):
    dead = db_path.parent / f"shop.sqlite{SCRATCH_MARK}999999999"  # beyond any pid_max: no such process
    alive = db_path.parent / f"shop.sqlite{SCRATCH_MARK}1"  # init: alive
    for path in (dead, alive, Path(f"{dead}-wal")):
        path.write_bytes(b"customer data")
    src = tmp_path / "in.csv"
    src.write_text("name\nEve\n", encoding="utf-8")
    code, data, _ = dry_run(shop, src)
    assert (code, data["created"]) == (0, 1)
    assert scratch_files(db_path.parent) == [alive.name]


def test_the_copy_of_an_encrypted_store_is_encrypted(shop, db_path, tmp_path, always_copy, meanwhile,
                                                     memory_keyring):
    from crmcli.store import keys

    shop.ok("db", "encrypt")
    headers: list[bytes] = []
    meanwhile.append(lambda: headers.extend(p.read_bytes()[:16] for p in db_path.parent.iterdir()
                                            if p.name.endswith(f"{SCRATCH_MARK}{os.getpid()}")))
    src = tmp_path / "in.csv"
    src.write_text(CSV, encoding="utf-8")
    code, data, _ = dry_run(shop, src)
    assert (code, data["created"], data["rejected"]) == (5, 2, 3)
    assert len(headers) == 1 and headers[0] != keys.SQLITE_HEADER
    assert scratch_files(db_path.parent) == []
