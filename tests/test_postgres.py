"""crmcli on PostgreSQL: parallel tills never double-spend points or lose purchases, `crm db copy` moves a
store SQLite → PostgreSQL → SQLite unchanged, file-only commands say they are the server's job, passwords
come from the URL/libpq/keyring and are never stored. Runs only with CRM_TEST_PG (see tests/pg_support.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import pg_support
from crm_helpers import audit_rows, fails, one, query

pytestmark = pytest.mark.skipif(not pg_support.PG_URL, reason="needs a PostgreSQL server: set CRM_TEST_PG "
                                "(e.g. postgresql+psycopg://postgres@localhost/postgres), see docs/postgresql.md")

# One process per till: imports crmcli once, waits for the shared start signal (so the writes overlap),
# then runs its `crm` commands through the real entry point, recording each exit code and error line.
WORKER = r"""
import contextlib, io, json, os, sys, time
import crmcli.cli.app, crmcli.core.purchases, crmcli.core.points.operations, crmcli.store.engine  # noqa
from crmcli.cli.entry import main
go, commands = sys.argv[1], json.loads(sys.argv[2])
print("ready", flush=True)
deadline = time.monotonic() + 600
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit(3)
    time.sleep(0.002)
results = []
for args in commands:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    results.append({"args": args, "code": code, "stderr": err.getvalue()})
print(json.dumps(results), flush=True)
"""


def run_tills(db: str, tmp_path: Path, lists: list[list[list[str]]]) -> list[list[dict[str, Any]]]:
    go = tmp_path / "go"
    env = {**os.environ, "CRM_LANG": "en", "NO_COLOR": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(go), json.dumps([["--db", db, *c] for c in cmds])],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for cmds in lists]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=900)
        assert p.returncode == 0, stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_parallel_redemptions_and_purchases_never_double_spend(cli: Any, tmp_path: Path) -> None:
    cli.ok("customer", "add", "王芳", "--phone", "13800138000")
    cli.ok("points", "rules", "set", "enabled", "yes")
    cli.ok("points", "rules", "set", "rate", "1")
    cli.ok("points", "adjust", "C000001", "+100", "--reason", "opening balance")
    cli.ok("points", "rules", "set", "lock-days", "7")  # what the sales below earn is not spendable yet
    # Four redeeming tills want 4 × 8 × 10 = 320 points of the 100 (plus whatever the sales earn, locked
    # for the return window, so not spendable); two tills record 8 sales at the same time.
    redeem = [["points", "redeem", "C000001", "10", "--reason", "voucher"]] * 8
    sales = [["purchase", "add", "C000001", "5.00", "--product", "tea"]] * 4
    results = run_tills(str(cli.db), tmp_path, [redeem, redeem, redeem, redeem, sales, sales])
    spent = [r for till in results[:4] for r in till if r["code"] == 0]
    refused = [r for till in results[:4] for r in till if r["code"] != 0]
    assert len(spent) == 10, [r["stderr"] for r in refused][:3]  # exactly the 100 opening points, no more
    assert all(r["code"] == 5 and "Error: " in r["stderr"] and "Traceback" not in r["stderr"] for r in refused)
    assert all(r["code"] == 0 for till in results[4:] for r in till), results[4:]
    assert one(cli.db, "SELECT COUNT(*) FROM purchase WHERE kind = 'sale'") == 8  # no lost sale
    assert one(cli.db, "SELECT COUNT(*) FROM points_ledger WHERE kind = 'redeem'") == 10
    assert one(cli.db, "SELECT -SUM(points) FROM points_ledger WHERE kind = 'redeem'") == 100
    balance = cli.json("points", "balance", "C000001")
    assert balance["spendable"] == 0 and balance["balance"] == 40, balance  # 8 sales × ¥5 × 1 point, locked
    assert one(cli.db, "SELECT SUM(points) FROM points_ledger") == 40
    cli.ok("db", "audit", "--verify")  # every till's audit rows are one unbroken chain
    assert len(audit_rows(cli.db, None)) == len(set(r["prev_hash"] for r in audit_rows(cli.db, None)))


def test_writers_take_the_store_lock_and_readers_do_not(cli: Any) -> None:
    """The mechanism behind the test above: a write transaction holds the advisory lock until it ends."""
    import sqlalchemy as sa

    from crmcli.store.engine import open_store
    from crmcli.store.postgres import WRITER_LOCK

    store = open_store(str(cli.db))
    try:
        locks = sa.text("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :k AND granted "
                        "AND pid = pg_backend_pid()")
        with store.read() as session:
            assert session.execute(locks, {"k": WRITER_LOCK}).scalar() == 0
        with store.write() as session:
            assert session.execute(locks, {"k": WRITER_LOCK}).scalar() == 1
        with store.read() as session:
            assert session.execute(locks, {"k": WRITER_LOCK}).scalar() == 0
    finally:
        store.dispose()


def _sqlite_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        # not copied (core/safety/copy.py NOT_COPIED): the migrations' record, and what `crm tier` keeps between
        # runs with its counters (each store's own; the copy's first run rebuilds the cache)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN "
                                             "('schema_migration', 'class_cache', 'class_cache_state') ORDER BY name")]
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


@pytest.fixture
def demo_file(tmp_path: Path) -> Path:
    """The bundled demo shop as a plain SQLite file (customers, purchases, points, tiers, audit)."""
    from typer.testing import CliRunner

    from crmcli.cli.app import app

    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(app, ["demo"], catch_exceptions=False)
    finally:
        os.chdir(here)
    assert result.exit_code == 0, result.stderr
    return tmp_path / "crm-demo.sqlite"


def test_copy_sqlite_to_postgres_and_back_keeps_every_row(demo_file: Path, db_path: Any, tmp_path: Path) -> None:
    from conftest import Cli

    before = _sqlite_rows(demo_file)
    to_pg = Cli(demo_file).json("db", "copy", "--to", str(db_path))
    counts = {r["table"]: r["copied_rows"] for r in to_pg}
    assert all(r["source_rows"] == r["copied_rows"] for r in to_pg)
    assert counts["customer"] == 20 and counts["purchase"] == 302 and counts["audit"] == len(before["audit"])
    assert one(db_path, "SELECT COUNT(*) FROM purchase") == 302
    pg = Cli(db_path)
    file = Cli(demo_file)
    for args in (["customer", "list"], ["report", "summary"], ["tier", "list"], ["points", "balance", "张伟"]):
        assert pg.json(*args) == file.json(*args), args  # the same answers from either store
    pg.ok("customer", "add", "新客", "--phone", "13900000001")  # sequences continue after the copied ids
    assert pg.json("customer", "show", "新客")["customer"]["id"] == 21
    back = tmp_path / "back.sqlite"
    Cli(demo_file).ok("db", "copy", "--to", str(tmp_path / "first.sqlite"))  # a plain file copy, for comparison
    pg_before_add = _sqlite_rows(tmp_path / "first.sqlite")
    assert pg_before_add == before
    Cli(db_path).ok("db", "copy", "--to", str(back))
    assert oct(back.stat().st_mode & 0o777) == "0o600"
    after = _sqlite_rows(back)
    assert {t: len(r) for t, r in after.items()} == {t: len(r) + (1 if t == "customer" else 0) for t, r in before.items()
                                                      } | {"audit": len(after["audit"]), "contact_point": len(after["contact_point"])}
    assert [r for r in after["customer"] if r[0] <= 20] == before["customer"]  # SQLite → PG → SQLite: identical
    assert after["purchase"] == before["purchase"] and after["points_ledger"] == before["points_ledger"]
    Cli(back).ok("db", "audit", "--verify")


def test_copy_refuses_a_target_with_data_and_leaves_both_unchanged(cli: Any, demo_file: Path, unchanged: Any) -> None:
    from conftest import Cli

    check = unchanged()
    fails(Cli(demo_file), 4, "db", "copy", "--to", str(cli.db), says=["already holds data"])
    check()
    fails(cli, 1, "db", "copy", "--to", str(cli.db), says=["target is the store itself"])


def test_file_only_commands_say_they_are_the_servers_job(cli: Any) -> None:
    fails(cli, 1, "db", "encrypt", says=["Encryption at rest is the database server's job", "not crmcli's"])
    fails(cli, 1, "db", "restore", "x.sqlite", "--yes", says=["database server's job"])
    check = cli.json("db", "check")
    assert [c["check"] for c in check] == ["audit"] and check[0]["ok"] is True


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not on PATH")
def test_backup_is_a_pg_dump(cli: Any, tmp_path: Path) -> None:
    cli.ok("customer", "add", "王芳", "--phone", "13800138000")
    out = Path(cli.ok("db", "backup", str(tmp_path) + "/", "--keep", "1").stdout.strip())
    assert out.parent == tmp_path and out.suffix == ".dump" and out.stat().st_size > 0
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    listing = subprocess.run(["pg_restore", "--list", str(out)], capture_output=True, text=True)
    if listing.returncode == 0:  # pg_restore ships with pg_dump; the dump names the customer table
        assert "TABLE DATA" in listing.stdout and "customer" in listing.stdout


def test_password_comes_from_the_keyring_and_is_never_stored(cli: Any, memory_keyring: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from crmcli.store import postgres

    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("HOME", "/nonexistent")  # no ~/.pgpass
    monkeypatch.delenv("PGPASSFILE", raising=False)
    url = postgres.normalize(str(cli.db))
    memory_keyring.set_password(postgres.KEYRING_SERVICE, postgres.keyring_user(url), "s3cret-pw")
    engine = postgres.create_engine(str(cli.db))
    assert engine.url.password == "s3cret-pw"
    engine.dispose()
    monkeypatch.setenv("PGPASSWORD", "from-env")  # libpq's own source wins: crmcli adds nothing
    engine = postgres.create_engine(str(cli.db))
    assert engine.url.password is None
    engine.dispose()
    monkeypatch.delenv("PGPASSWORD")
    cli.ok("customer", "list")  # (the test server trusts localhost, so any password works)
    for table, column in (("setting", "value"), ("audit", "after"), ("audit", "before")):
        assert not query(cli.db, f"SELECT 1 FROM {table} WHERE {column} LIKE '%s3cret%'")
    assert "s3cret" not in cli.ok("config", "list").stdout


def test_timestamps_read_back_as_naive_utc_like_sqlite(cli: Any) -> None:
    from crmcli.store.engine import open_store

    cli.ok("customer", "add", "王芳")
    store = open_store(str(cli.db))
    try:
        with store.read() as session:
            from sqlalchemy import text

            at = session.execute(text("SELECT created_at FROM customer")).scalar_one()
        assert at.tzinfo is None and abs(time.time() - at.replace(tzinfo=__import__("datetime").timezone.utc).timestamp()) < 600
    finally:
        store.dispose()


def test_an_import_keeps_the_planners_statistics_current(cli: Any, tmp_path: Path) -> None:
    """PostgreSQL plans by a table's last ANALYZE, and autovacuum looks again only after a minute: with the
    tables still costed as empty, the per-batch lookups of a 5,000-customer import became nested loops over
    every contact so far (3 ms → 1.5 s each). The import refreshes the statistics as it grows."""
    with pg_support.connect(cli.db.name) as conn:
        for table in ("customer", "contact_point"):  # so that only the import can have analysed them
            conn.execute(f'ALTER TABLE "{table}" SET (autovacuum_enabled = false)')
    source = tmp_path / "many.csv"
    source.write_text("name,phone,email\n" + "".join(f"Guest {i},+86138{i:08d},g{i}@example.com\n"
                                                     for i in range(600)), encoding="utf-8")
    cli.ok("import", "customers", str(source))
    with pg_support.connect(cli.db.name) as conn:
        counted = dict(conn.execute("SELECT relname, reltuples FROM pg_class WHERE relname IN "
                                    "('customer', 'contact_point') AND relnamespace = to_regnamespace(%s)",
                                    (cli.db.name,)).fetchall())
    assert counted["customer"] >= 500 and counted["contact_point"] >= 1000


def test_batch_lookups_probe_the_indexes_whatever_the_table_size(cli: Any, store: Any, monkeypatch: Any) -> None:
    """An import looks up each batch's codes, phones, e-mails and order refs. Sent as one long IN list, these
    made PostgreSQL's planner scan the whole contact table per batch while it held fewer than ~100,000 rows
    (cheaper by its costs than 900 index probes), so a customer import grew with the square of its size
    (issue #11's scaling benchmark). Each value is now one index probe: no plan may scan a table."""
    from crmcli.core.io import lookups

    n = 30_000
    with pg_support.connect(cli.db.name) as conn:
        conn.execute("INSERT INTO customer (code, name, created_at, updated_at) SELECT 'P' || lpad(i::text, 7, '0'), "
                     "'Guest ' || i, now(), now() FROM generate_series(1, %s) AS i", (n,))
        conn.execute("INSERT INTO contact_point (customer_id, kind, value, position) "
                     "SELECT id, 'email', 'G' || id || '@Example.com', 0 FROM customer UNION ALL "
                     "SELECT id, 'phone', '+86138' || lpad(id::text, 8, '0'), 0 FROM customer")
        conn.execute("INSERT INTO purchase (customer_id, kind, amount_minor, quantity, purchased_at, purchased_on, ref, "
                     "created_at) SELECT id, 'sale', 100, 1, now(), current_date, 'R' || id, now() FROM customer")
        for table in ("customer", "contact_point", "purchase"):
            conn.execute(f'ANALYZE "{table}"')
        ids = dict(conn.execute("SELECT code, id FROM customer").fetchall())
    sent: list[tuple[str, tuple[Any, ...]]] = []
    real = lookups._statement

    def spy(*args: Any, **kwargs: Any) -> tuple[str, tuple[Any, ...]]:
        sent.append(real(*args, **kwargs))
        return sent[-1]

    monkeypatch.setattr(lookups, "_statement", spy)
    wanted = [f"P{i:07d}" for i in range(1, n + 1, 17)] + ["P9999999"]  # 1,765 codes: two batches, one unknown
    with store.read() as session:
        by_code = lookups.by_code(session, wanted)
        by_email = lookups.by_contact(session, "email", [f"g{ids[c]}@example.com" for c in wanted[:-1]])
        by_phone = lookups.by_contact(session, "phone", [f"+86138{ids[c]:08d}" for c in wanted[:-1]])
        by_ref = lookups.ids_by(session, "purchase", "ref", [f"R{ids[c]}" for c in wanted[:-1]])
    assert by_code == {c: ids[c] for c in wanted[:-1]}
    assert by_email == {f"g{ids[c]}@example.com": {ids[c]} for c in wanted[:-1]}
    assert by_phone == {f"+86138{ids[c]:08d}": {ids[c]} for c in wanted[:-1]}
    assert len(by_ref) == len(wanted) - 1
    assert len(sent) == 8
    with pg_support.connect(cli.db.name) as conn:
        for sql, params in sent:
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params).fetchall())
            assert "Seq Scan" not in plan and "Index" in plan, (sql[:200], plan)
