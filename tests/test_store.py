"""The store: where it is, creating it, the errors when it cannot be used (each with its message and exit code
and the file left as it was), migrations (backup, newer schema refused), the schema matching the models,
settings (`crm config`), and the last lines of defence (Ctrl-C, unexpected errors)."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import sqlite3
from pathlib import Path

import pytest
from crm_helpers import audit_rows, cli, fails, fast_cli, one, query, template_store  # noqa: F401 (fixtures)
from typer.testing import CliRunner

from crmcli.cli.app import app
from crmcli.store import migrations


def run(*args, env=None, input=None):
    return CliRunner().invoke(app, list(args), env=env, input=input, catch_exceptions=False)


def fails_raw(result, code, *says):
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    assert result.exit_code == code, out
    error = result.stderr.strip()
    assert error.startswith("Error: ") and len(error.splitlines()) == 1, error
    for text in says:
        assert text in error, (text, error)
    return error


def file_state(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mode


# -------------------------------------------------------------------------------------------- init

def test_init_creates_a_private_file_and_says_where(tmp_path):
    db = tmp_path / "shop.sqlite"
    result = run("--db", str(db), "init", "--currency", "eur", "--region", "de", "--timezone", "Europe/Berlin")
    assert result.exit_code == 0 and result.stdout == f"{db}\n"
    assert f"Created a new store at {db}." in result.stderr
    assert "Currency EUR, phone region DE, time zone Europe/Berlin." in result.stderr
    assert db.stat().st_mode & 0o777 == 0o600
    assert query(db, "SELECT key, value FROM setting WHERE key IN ('currency', 'phone.region', 'timezone') ORDER BY key") == [
        ("currency", '"EUR"'), ("phone.region", '"DE"'), ("timezone", '"Europe/Berlin"')]
    # WAL, foreign keys and a busy timeout on every connection
    assert one(db, "PRAGMA journal_mode") == "wal"
    again = run("--db", str(db), "init", "--currency", "USD")
    assert again.exit_code == 0 and "nothing to do" in again.stderr and "Currency EUR" in again.stderr
    assert [r["action"] for r in audit_rows(db)] == ["init"]


def test_every_connection_gets_the_pragmas(store):
    from sqlalchemy import text

    with store.read() as session:
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert session.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_init_rejects_bad_settings_and_creates_nothing(tmp_path):
    db = tmp_path / "shop.sqlite"
    fails_raw(run("--db", str(db), "init", "--currency", "XYZ"), 5, "'XYZ' is not valid for currency", "ISO 4217")
    fails_raw(run("--db", str(db), "init", "--timezone", "Mars/Base"), 5, "'Mars/Base' is not valid for timezone")
    fails_raw(run("--db", str(db), "init", "--region", "ZZ"), 5, "'ZZ' is not valid for phone.region")
    assert not db.exists()


def test_init_in_a_missing_directory_is_refused(tmp_path):
    db = tmp_path / "no" / "such" / "dir" / "shop.sqlite"
    fails_raw(run("--db", str(db), "init"), 1, f"The directory {db.parent} does not exist", f"mkdir -p {db.parent}")
    assert not (tmp_path / "no").exists()


def test_crm_db_environment_variable(tmp_path):
    db = tmp_path / "env.sqlite"
    assert run("init", env={"CRM_DB": str(db)}).stdout == f"{db}\n"
    assert run("customer", "add", "Ann", env={"CRM_DB": str(db)}).exit_code == 0
    assert one(db, "SELECT name FROM customer") == "Ann"


def test_default_location_is_the_user_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("CRM_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    result = run("init", "--currency", "CNY")
    expected = tmp_path / "data" / "crmcli" / "crm.sqlite"
    assert result.exit_code == 0 and result.stdout == f"{expected}\n" and expected.exists()


# ------------------------------------------------------------------------------ unusable stores

def test_missing_store(tmp_path):
    db = tmp_path / "shop.sqlite"
    for args in (["customer", "list"], ["customer", "add", "Ann"], ["card", "show", "Ann"], ["config", "list"]):
        fails_raw(run("--db", str(db), *args), 1, f"No crmcli store at {db}", "crm init")
    assert not db.exists()


def test_an_empty_file_is_not_a_store_until_init(tmp_path):
    db = tmp_path / "empty.sqlite"
    db.touch()
    fails_raw(run("--db", str(db), "customer", "list"), 1, "No crmcli store at", "(the file is empty)", "crm init")
    assert db.stat().st_size == 0
    assert run("--db", str(db), "init").exit_code == 0
    assert run("--db", str(db), "customer", "list").exit_code == 0


def test_a_directory_as_db(tmp_path):
    fails_raw(run("--db", str(tmp_path), "customer", "list"), 1, f"{tmp_path} is a directory, not a store file",
              f"--db {tmp_path / 'crm.sqlite'}")
    fails_raw(run("--db", str(tmp_path), "init"), 1, "is a directory")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_sqlite(tmp_path):
    db = tmp_path / "notes.txt"
    db.write_text("these are my notes, not a database\n" * 20)
    before = file_state(db)
    for args in (["customer", "list"], ["init"], ["customer", "add", "Ann"]):
        fails_raw(run("--db", str(db), *args), 1, f"{db} is not a crmcli store", "--db")
    assert file_state(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_another_applications_sqlite_database(tmp_path):
    db = tmp_path / "other.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE recipes (id INTEGER PRIMARY KEY, title TEXT)")
    conn.commit()
    conn.close()
    before = file_state(db)
    fails_raw(run("--db", str(db), "customer", "list"), 1, "holds tables but is not a crmcli store")
    fails_raw(run("--db", str(db), "init"), 1, "not a crmcli store")
    assert file_state(db) == before


def test_a_store_from_a_newer_crmcli_is_refused(cli, db_path, unchanged):
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("INSERT INTO schema_migration (name, applied_at) VALUES ('m9999_from_the_future', '2099-01-01')")
    conn.close()
    check = unchanged()
    for args in (["customer", "list"], ["customer", "add", "Ann"], ["init"]):
        fails(cli, 1, *args, says=[f"The store {db_path} was written by a newer crmcli (schema m9999_from_the_future)",
                                   "Upgrade crmcli"])
    check()
    assert not list(db_path.parent.glob("*.bak"))


def _make_readonly(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """chmod 0400; when that does not stop writes (tests often run as root), make SQLite itself refuse them
    the way it does for a read-only file: every connection gets PRAGMA query_only, whose error is SQLite's
    'attempt to write a readonly database'."""
    db_path.chmod(0o400)
    if not os.access(db_path, os.W_OK):
        return "chmod"
    from sqlalchemy import event

    from crmcli.store import engine as engine_module

    original = engine_module._configure_sqlite

    def configure(engine):  # type: ignore[no-untyped-def]
        original(engine)

        @event.listens_for(engine, "connect")
        def _read_only(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.execute("PRAGMA query_only = ON")

    monkeypatch.setattr(engine_module, "_configure_sqlite", configure)
    return "query_only"


@pytest.mark.parametrize("args", [["customer", "add", "Ann"], ["customer", "edit", "C000001", "--city", "x"],
                                  ["purchase", "add", "C000001", "10"], ["config", "set", "currency", "USD"],
                                  ["customer", "log", "C000001", "-c", "phone", "-s", "hi"]])
def test_a_read_only_store_file(cli, db_path, unchanged, monkeypatch, args):
    cli.ok("customer", "add", "First")
    check = unchanged()
    _make_readonly(db_path, monkeypatch)
    fails(cli, 1, *args, says=[f"The store {db_path} is read-only", "permissions"])
    assert cli.json("customer", "list")[0]["name"] == "First"  # reading still works
    db_path.chmod(0o600)
    check()


def test_a_busy_store_gives_up_with_a_clear_message(cli, db_path, unchanged, monkeypatch):
    from crmcli.store import engine as engine_module

    monkeypatch.setattr(engine_module, "BUSY_TIMEOUT_MS", 200)
    check = unchanged()
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        fails(cli, 1, "customer", "add", "Ann", says=["is busy: another crm process kept it locked", "nothing was changed"])
        assert cli.json("customer", "list") == []  # readers are not blocked (WAL)
    finally:
        other.execute("ROLLBACK")
        other.close()
    check()


# ------------------------------------------------------------------------------------- migrations

def _old_store(path: Path, applied: list[str]) -> None:
    """A store as an older crmcli left it: only ``applied`` migrations, with one customer in it."""
    import sqlalchemy as sa

    from crmcli.store.engine import create_sqlite_file

    create_sqlite_file(path)
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE schema_migration (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP NOT NULL)"))
        for name in applied:
            migrations.upgrade_function(name)(conn)
            conn.execute(sa.text("INSERT INTO schema_migration VALUES (:n, '2024-01-01 00:00:00')"), {"n": name})
        conn.execute(sa.text("INSERT INTO customer (code, name, created_at, updated_at) "
                             "VALUES ('OLD1', 'Old Customer', '2024-01-01 00:00:00', '2024-01-01 00:00:00')"))
    engine.dispose()


@pytest.fixture
def fake_migration(monkeypatch):
    """One more migration than the code has, for when only the base migration exists."""
    import sys
    import types

    module = types.ModuleType("crmcli.store.migrations.m9000_test_extra")

    def upgrade(conn):  # type: ignore[no-untyped-def]
        import sqlalchemy as sa

        conn.execute(sa.text("CREATE TABLE test_extra (id INTEGER PRIMARY KEY)"))

    module.upgrade = upgrade  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, "m9000_test_extra"])
    return "m9000_test_extra"


def test_opening_an_old_store_backs_it_up_then_migrates(tmp_path, fake_migration):
    db = tmp_path / "old.sqlite"
    first = migrations.MIGRATIONS[0]
    _old_store(db, [first])
    old_bytes = db.read_bytes()
    rows = json.loads(run("--db", str(db), "customer", "list", "--format", "json").stdout)
    assert [r["code"] for r in rows] == ["OLD1"]  # data kept
    assert [r[0] for r in query(db, "SELECT name FROM schema_migration ORDER BY name")] == sorted(migrations.MIGRATIONS)
    backups = list(tmp_path.glob(f"old.sqlite.pre-{migrations.MIGRATIONS[1]}-*.bak"))
    assert len(backups) == 1
    backup = backups[0]
    assert backup.stat().st_mode & 0o777 == db.stat().st_mode & 0o777
    assert [r[0] for r in query(backup, "SELECT name FROM schema_migration")] == [first]
    assert query(backup, "SELECT code FROM customer") == [("OLD1",)]
    assert len(old_bytes) > 0
    # Once migrated, opening again makes no further backup.
    run("--db", str(db), "customer", "list")
    assert len(list(tmp_path.glob("*.bak"))) == 1


def test_backup_before_migration_unit(store, tmp_path):
    from crmcli.store.engine import backup_before_migration

    dest = backup_before_migration(store, "m9999_next")
    assert dest.name.startswith("shop.sqlite.pre-m9999_next-") and dest.suffix == ".bak"
    assert dest.stat().st_mode & 0o777 == 0o600
    assert query(dest, "SELECT count(*) FROM setting")[0][0] > 0


def test_a_failing_migration_leaves_the_store_as_it_was(tmp_path, monkeypatch, fake_migration):
    import sys

    db = tmp_path / "old.sqlite"
    _old_store(db, [migrations.MIGRATIONS[0]])

    def broken(conn):  # type: ignore[no-untyped-def]
        import sqlalchemy as sa

        conn.execute(sa.text("CREATE TABLE half_done (id INTEGER)"))
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sys.modules[f"crmcli.store.migrations.{fake_migration}"], "upgrade", broken)
    result = run("--db", str(db), "customer", "list")
    assert result.exit_code == 1 and "Traceback" not in result.stdout + result.stderr
    tables = {r[0] for r in query(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "half_done" not in tables and "test_extra" not in tables
    assert [r[0] for r in query(db, "SELECT name FROM schema_migration")] == [migrations.MIGRATIONS[0]]


def _crmcli_tables():
    """Every SQLModel table defined by crmcli (all store/models*.py modules, whoever added them)."""
    from sqlmodel import SQLModel

    import crmcli.store

    for info in pkgutil.iter_modules(crmcli.store.__path__):
        if info.name.startswith("models"):
            importlib.import_module(f"crmcli.store.{info.name}")
    tables = {}
    for mapper in SQLModel._sa_registry.mappers:  # type: ignore[attr-defined]
        if mapper.class_.__module__.startswith("crmcli.") and mapper.local_table is not None:
            tables[mapper.local_table.name] = mapper.local_table
    return tables


def test_a_migrated_store_has_exactly_the_models_schema(store):
    """Column by column (type, NULL, primary key), foreign keys, indexes and unique constraints, for every
    table of every feature: the frozen migrations and the SQLModel classes must never drift apart."""
    import sqlalchemy as sa

    dialect = store.engine.dialect
    models = _crmcli_tables()
    inspector = sa.inspect(store.engine)
    in_db = set(inspector.get_table_names()) - {"schema_migration"}
    assert in_db == set(models), f"only in the store: {in_db - set(models)}; only in models: {set(models) - in_db}"
    problems = []
    for name, table in sorted(models.items()):
        pk = set(inspector.get_pk_constraint(name)["constrained_columns"])  # (PostgreSQL's columns have no "primary_key")
        # Both sides compiled for the store's dialect: str() of a reflected PostgreSQL timestamptz drops the
        # "WITH TIME ZONE" (what once looked like a drift between migrations and models; there is none).
        db_cols = {c["name"]: (str(c["type"].compile(dialect=dialect)), bool(c["nullable"]) and c["name"] not in pk,
                               c["name"] in pk)
                   for c in inspector.get_columns(name)}
        model_cols = {c.name: (str(c.type.compile(dialect=dialect)), bool(c.nullable) and not c.primary_key,
                               bool(c.primary_key)) for c in table.columns}
        if dialect.name == "postgresql":
            # FLOAT is DOUBLE PRECISION there (reflected under that name). Every timestamp is timestamptz on
            # both sides, so the types are compared as they are.
            same = {"FLOAT": "DOUBLE PRECISION"}
            db_cols = {k: (same.get(v[0], v[0]), *v[1:]) for k, v in db_cols.items()}
            model_cols = {k: (same.get(v[0], v[0]), *v[1:]) for k, v in model_cols.items()}
        if db_cols != model_cols:
            problems.append((name, "columns", {k: (db_cols.get(k), model_cols.get(k)) for k in set(db_cols) | set(model_cols)
                                                if db_cols.get(k) != model_cols.get(k)}))
        db_fks = {(tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                  for f in inspector.get_foreign_keys(name)}
        model_fks = {(tuple(c.parent.name for c in fk.elements), fk.elements[0].column.table.name,
                      tuple(c.column.name for c in fk.elements)) for fk in table.foreign_key_constraints}
        if db_fks != model_fks:
            problems.append((name, "foreign keys", db_fks, model_fks))
        # PostgreSQL lists a UNIQUE constraint's index too, and m0008's NOCASE index is on lower(value) there.
        db_ix = {(i["name"], tuple(c or re.sub(r"^lower\((\w+).*$", r"\1", e)
                                   for c, e in zip(i["column_names"], i.get("expressions", i["column_names"]))),
                  bool(i["unique"])) for i in inspector.get_indexes(name) if not i.get("duplicates_constraint")}
        model_ix = {(i.name, tuple(c.name for c in i.columns), bool(i.unique)) for i in table.indexes}
        if db_ix != model_ix:
            problems.append((name, "indexes", sorted(db_ix - model_ix), sorted(model_ix - db_ix)))
        db_uq = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)}
        model_uq = {tuple(c.name for c in u.columns) for u in table.constraints if isinstance(u, sa.UniqueConstraint)}
        if db_uq != model_uq:
            problems.append((name, "unique constraints", db_uq, model_uq))
    assert problems == []


# Foreign keys whose referenced rows are never removed one by one, so a lookup by them never runs.
UNINDEXED_KEYS_ALLOWED = {
    ("class_history", "run_id"): "class_run rows are never removed (m0013 dropped the index: it halved recompute's writes)",
    ("survey_answer", "question_id"): "a question is only removed with its survey, before it has answers",
}


def test_every_foreign_key_is_looked_up_by_an_index(store):
    """Removing a row makes SQLite look for the rows that still refer to it (``child.col = id``) — with a full
    scan of the child table per removed row when no index starts with that column: an import undo of 100,000
    customers took hours that way (migration 0019)."""
    if not store.is_sqlite:
        pytest.skip("the query plan is SQLite's; the migration creates the same indexes on PostgreSQL")
    scans = []
    with store.engine.connect() as conn:
        for name, table in sorted(_crmcli_tables().items()):
            for fk in table.foreign_key_constraints:
                column = fk.elements[0].parent.name
                plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(
                    f'EXPLAIN QUERY PLAN SELECT 1 FROM "{name}" WHERE "{column}" = 1'))
                if not plan.startswith("SEARCH") and (name, column) not in UNINDEXED_KEYS_ALLOWED:
                    scans.append((name, column, plan))
    assert scans == []


def test_migration_modules_are_numbered_uniquely():
    numbers = [m.split("_")[0] for m in migrations.MIGRATIONS]
    assert len(numbers) == len(set(numbers)), migrations.MIGRATIONS
    assert migrations.MIGRATIONS == sorted(migrations.MIGRATIONS)


# ------------------------------------------------------------------------------------------- config

def test_config_list_get_set(cli, db_path):
    rows = cli.json("config", "list")
    assert all(list(r) == ["key", "value", "help"] for r in rows)
    values = {r["key"]: r["value"] for r in rows}
    assert values["currency"] == "CNY" and values["phone.region"] == "CN" and values["timezone"] == "Asia/Shanghai"
    assert values["privacy.mask"] is False
    assert cli.ok("config", "get", "currency").stdout == "CNY\n"
    assert cli.ok("config", "get", "privacy.mask").stdout == "false\n"
    result = cli.ok("config", "set", "privacy.mask", "yes")
    assert "privacy.mask = true" in result.stderr
    assert cli.ok("config", "get", "privacy.mask").stdout == "true\n"
    cli.ok("config", "set", "phone.region", "us")
    assert cli.ok("config", "get", "phone.region").stdout == "US\n"
    entry = audit_rows(db_path, "set")[-1]
    assert entry["entity"] == "setting" and entry["before"] == {"phone.region": "CN"} and entry["after"] == {"phone.region": "US"}
    assert entry["command"] == "crm config set"


def test_the_phone_region_setting_is_used(cli, db_path):
    cli.ok("config", "set", "phone.region", "GB")
    cli.ok("customer", "add", "Emma", "--phone", "07911 123456")
    assert one(db_path, "SELECT value FROM contact_point") == "+447911123456"
    cli.ok("config", "set", "phone.region", "")
    fails(cli, 5, "customer", "add", "Zhang", "--phone", "13800138000", says=["not a valid phone number",
                                                                              "crm config set phone.region"])


@pytest.mark.parametrize(("key", "value", "says"), [
    ("currency", "XXX", "'XXX' is not valid for currency: not an ISO 4217 currency code"),
    ("currency", "dollars", "'dollars' is not valid for currency"),
    ("phone.region", "XX", "'XX' is not valid for phone.region: not a region code"),
    ("timezone", "Mars/Base", "'Mars/Base' is not valid for timezone: not an IANA time zone"),
    ("privacy.mask", "maybe", "'maybe' is not valid for privacy.mask: expected true or false"),
    ("ui.language", "fr", "'fr' is not valid for ui.language"),
    ("customer.code_prefix", "A-B", "'A-B' is not valid for customer.code_prefix: expected 1-8 letters or digits"),
])
def test_config_set_rejects_invalid_values(cli, unchanged, key, value, says):
    check = unchanged()
    fails(cli, 5, "config", "set", key, value, says=[says])
    check()


def test_unknown_settings(cli, unchanged):
    check = unchanged()
    fails(cli, 3, "config", "get", "colour", says=["Unknown setting 'colour'", "crm config list"])
    fails(cli, 3, "config", "set", "colour", "red", says=["Unknown setting 'colour'"])
    check()


def test_changing_the_currency_once_amounts_exist(cli, unchanged):
    cli.ok("config", "set", "currency", "USD")  # no amounts yet: free to change
    cli.ok("config", "set", "currency", "CNY")
    cli.ok("customer", "add", "Ann")
    cli.ok("purchase", "add", "Ann", "10")
    check = unchanged()
    fails(cli, 4, "config", "set", "currency", "JPY", "--force",
          says=["holds 1 amounts in CNY; JPY has 0 decimals instead of 2", "Keep CNY"])
    fails(cli, 4, "config", "set", "currency", "usd", says=["relabels them as USD without converting", "--force"])
    check()
    cli.ok("config", "set", "currency", "usd", "--force")
    assert cli.json("purchase", "list")[0]["amount"] == "10.00"


# --------------------------------------------------------------------------------- last defences

def test_ctrl_c_exits_130_and_leaves_the_store_unchanged(cli, unchanged, monkeypatch):
    cli.ok("customer", "add", "Ann")
    check = unchanged()

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr("crmcli.core.audit.record_many", interrupted)  # after the rows are written, before commit
    result = cli("customer", "add", "Bob", "--phone", "13800138000", "--tag", "vip")
    assert result.exit_code == 130 and "Interrupted; the store is unchanged" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    check()


def test_an_unexpected_error_is_one_line_without_traceback(cli, monkeypatch):
    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setattr("crmcli.core.customers.list_customers", boom)
    fails(cli, 1, "customer", "list", says=["unexpected RuntimeError: boom", "--debug"])
    with pytest.raises(RuntimeError, match="boom"):
        cli("--debug", "customer", "list")


def test_debug_shows_the_domain_error(cli):
    from crmcli.errors import NotFound

    with pytest.raises(NotFound):
        cli("--debug", "customer", "show", "nobody")


def test_usage_errors_exit_2(cli):
    result = cli("customer", "add")
    assert result.exit_code == 2 and "Missing argument" in result.stderr and "Traceback" not in result.stderr
    assert cli("customer", "frobnicate").exit_code == 2
    assert cli("customer", "list", "--limit", "0").exit_code == 2


def test_a_closed_pipe_stops_quietly(cli, monkeypatch):
    """`crm customer list | head`: no "Error: Broken pipe" when the reader goes away."""
    def closed(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("crmcli.cli.output.emit", closed)
    result = cli("customer", "list")
    assert result.exit_code == 1 and result.stderr == "" and "Traceback" not in result.stdout


def test_a_damaged_store(cli, db_path):
    for i in range(20):
        cli.ok("customer", "add", f"Customer {i}", "--notes", "x" * 500)
    root = one(db_path, "SELECT rootpage FROM sqlite_master WHERE name = 'customer'")
    page = one(db_path, "PRAGMA page_size")
    data = bytearray(db_path.read_bytes())
    data[(root - 1) * page:root * page] = b"\xff" * page  # the customer table's root page is garbage now
    db_path.write_bytes(bytes(data))
    for args in (["customer", "list"], ["customer", "add", "Ann"]):
        fails(cli, 1, *args, says=[f"The store {db_path} is damaged", "malformed"])
    assert db_path.read_bytes() == bytes(data)
