"""The switch that runs the suite against PostgreSQL: ``CRM_TEST_PG=postgresql+psycopg://USER@HOST/DB``.

With it set, the ``db_path`` fixture gives each test a fresh schema in that database (its store URL sets
``search_path`` to it; CREATE DATABASE costs seconds per test, a schema almost nothing) instead of a
file; copying a prepared store (the template fixtures) replays the migrations' DDL into the new schema
and copies every row. The direct-read helpers (``query``, ``one``, ``audit_rows``, ``snapshot_db``) read
that schema and return values in the form the stdlib ``sqlite3`` module gives for the same store
(timestamps as SQLAlchemy's SQLite text, booleans as 0/1, JSON as text), so assertions written against
the file hold unchanged. Tests about the file itself (encryption, file modes, file backups) skip on
PostgreSQL with their reason (``FILE_ONLY`` in conftest.py).
"""

from __future__ import annotations

import itertools
import json
import os
import re
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any

PG_URL = os.environ.get("CRM_TEST_PG") or None
_counter = itertools.count()


class PgDb(str):
    """A test store on PostgreSQL: the ``--db`` URL string (its search_path names the test's own schema);
    ``.name`` is the schema."""

    name: str

    def __new__(cls, url: str, name: str) -> "PgDb":
        obj = super().__new__(cls, url)
        obj.name = name
        return obj


def _url_parts() -> Any:
    from sqlalchemy.engine import make_url

    assert PG_URL is not None
    return make_url(PG_URL)


def _conninfo() -> str:
    url = _url_parts()
    parts = {"host": url.host or "localhost", "port": url.port or 5432, "user": url.username,
             "password": url.password, "dbname": url.database or "postgres"}
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)


def connect(schema: str | None = None, **kwargs: Any) -> Any:
    import psycopg

    options = "-c timezone=UTC" + (f" -c search_path={schema}" if schema else "")
    return psycopg.connect(_conninfo(), autocommit=True, options=options, **kwargs)


def url_for(schema: str) -> str:
    url = _url_parts().set(drivername="postgresql+psycopg").update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)  # type: ignore[no-any-return]


def new_database() -> PgDb:
    """A fresh, empty schema in the CRM_TEST_PG database (CREATE DATABASE costs seconds, a schema nothing)."""
    name = f"crmt_{os.getpid()}_{next(_counter)}"
    with connect() as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{name}"')
        conn.execute(SQLITE_MASTER.format(schema=name))
    db = PgDb(url_for(name), name)
    _live[name] = db
    return db


def drop_database(db: PgDb, *, wait: bool = True) -> None:
    """Drop the test's schema; ``wait=False`` leaves it to a background thread (a DROP of ~100 tables takes
    a noticeable fraction of a second, and the next test need not wait for it)."""
    _live.pop(db.name, None)
    reader = _readers.pop(db.name, None)
    if reader is not None:
        reader.close()
    if wait:
        with connect() as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{db.name}" CASCADE')
        return
    _dropper().put(db.name)


_queue: Any = None


def _dropper() -> Any:
    global _queue
    if _queue is None:
        import queue
        import threading

        _queue = queue.Queue()

        def work() -> None:
            with connect() as conn:
                while True:
                    name = _queue.get()
                    try:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
                    finally:
                        _queue.task_done()

        threading.Thread(target=work, daemon=True, name="pg-schema-dropper").start()
    return _queue


# Tests list tables the SQLite way; a view answers them (crmcli's own table lists ignore views).
SQLITE_MASTER = ('CREATE VIEW "{schema}".sqlite_master AS SELECT \'table\'::text AS type, tablename::text AS name, '
                 "tablename::text AS tbl_name, NULL::text AS sql FROM pg_tables WHERE schemaname = '{schema}'")

SETVAL = ("SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'), "
          'COALESCE(MAX("{column}"), 0) + 1, false) FROM "{table}"')

_ddl: list[str] = []


def _schema_ddl() -> list[str]:
    """The DDL the migrations run, recorded once by migrating a scratch schema (the same statements
    `crm init` runs, so a copy has exactly the store's schema)."""
    if not _ddl:
        from sqlalchemy import event

        from crmcli.store.engine import migrate_store, open_store

        scratch = new_database()
        store = open_store(str(scratch), migrate=False)

        @event.listens_for(store.engine, "before_cursor_execute")
        def _record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
            if statement.lstrip().split(None, 1)[0].upper() in ("CREATE", "ALTER", "DROP", "COMMENT"):
                assert not params, statement  # DDL carries no parameters
                _ddl.append(statement)

        migrate_store(store)
        store.dispose()
        drop_database(scratch)
    return _ddl


def copy_store(src: Any, dst: Any) -> None:
    """``shutil.copy2(src, dst)`` for store files; for PostgreSQL test stores, dst's schema becomes a copy
    of src's: the migrations' DDL, then every row (in foreign-key order) and the id sequences."""
    if not isinstance(dst, PgDb):
        import shutil

        shutil.copy2(src, dst)
        return
    assert isinstance(src, PgDb), (src, dst)
    ddl = _schema_ddl()
    with connect(src.name) as conn:
        order, serials = _table_order(conn), _serials(conn)
    script = [f'DROP SCHEMA IF EXISTS "{dst.name}" CASCADE', f'CREATE SCHEMA "{dst.name}"',
              SQLITE_MASTER.format(schema=dst.name), f'SET LOCAL search_path = "{dst.name}"', *ddl,
              *(f'INSERT INTO "{t}" SELECT * FROM "{src.name}"."{t}"' for t in order),
              *(SETVAL.format(table=t, column=c) for t, c in serials)]
    with connect() as conn:
        conn.execute(";\n".join(script))  # one round trip, one implicit transaction (no parameters)


_order: list[str] = []
_serial: list[tuple[str, str]] = []


def _table_order(conn: Any) -> list[str]:
    """Tables of the current schema, parents before children (computed once: every copy has one schema)."""
    if not _order:
        fks = conn.execute(
            "SELECT tc.relname, rc.relname FROM pg_constraint c JOIN pg_class tc ON tc.oid = c.conrelid "
            "JOIN pg_class rc ON rc.oid = c.confrelid WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace"
        ).fetchall()
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1")]
        parents = {t: {p for c, p in fks if c == t and p != t} for t in tables}
        done: list[str] = []
        while len(done) < len(tables):
            ready = [t for t in tables if t not in done and parents[t] <= set(done)]
            assert ready, "foreign-key cycle between tables"
            done.extend(ready)
        _order.extend(done)
    return _order


def _serials(conn: Any) -> list[tuple[str, str]]:
    if not _serial:
        _serial.extend(conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND column_default LIKE 'nextval(%%'").fetchall())
    return _serial


# ----------------------------------------------------------------------------- reads shaped like sqlite3's

def _like_sqlite(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M:%S.%f")
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


_QMARK = re.compile(r"\?")


def pg_sql(sql: str) -> str:
    """sqlite3's ``?`` placeholders as psycopg's ``%s`` (a literal % doubled first)."""
    return _QMARK.sub("%s", sql.replace("%", "%%"))


_readers: dict[str, Any] = {}


def _reader(db: PgDb) -> Any:
    """One autocommit connection per test schema for the tests' own reads (a PostgreSQL connection is a new
    server process: several ms each, and tests read after every command). Closed when the schema is dropped."""
    conn = _readers.get(db.name)
    if conn is None or conn.closed:
        conn = _readers[db.name] = connect(db.name)
        conn.prepare_threshold = None  # no server-side plans: a test may change a table between two reads
    return conn


def query(db: PgDb, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    rows = _reader(db).execute(pg_sql(sql), params).fetchall()
    return [tuple(_like_sqlite(v) for v in row) for row in rows]


def dict_rows(db: PgDb, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    rows = _reader(db).cursor(row_factory=dict_row).execute(pg_sql(sql), params).fetchall()
    return [{k: _like_sqlite(v) for k, v in row.items()} for row in rows]


def snapshot(db: PgDb) -> dict[str, list[tuple[Any, ...]]]:
    tables = [r[0] for r in query(db, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")]
    return {t: sorted(query(db, f'SELECT * FROM "{t}"'), key=repr) for t in tables}


def drop_all_mine() -> None:
    """Drop every schema this test process created (templates included)."""
    if _queue is not None:
        _queue.join()
    with connect() as conn:
        names = [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                            (f"crmt\\_{os.getpid()}\\_%",))]
        for name in names:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


# ----------------------------------------------------------------------------- sqlite3.connect on a PG store

class _Cursor:
    def __init__(self, cur: Any, row_factory: Any) -> None:
        self._cur = cur
        self._row_factory = row_factory
        self.rowcount = cur.rowcount
        self.lastrowid = None

    def _shape(self, row: tuple[Any, ...]) -> Any:
        values = tuple(_like_sqlite(v) for v in row)
        if self._row_factory is None:
            return values
        names = [d.name for d in self._cur.description]
        return _Row(names, values)

    def fetchall(self) -> list[Any]:
        return [self._shape(r) for r in self._cur.fetchall()] if self._cur.description else []

    def fetchone(self) -> Any:
        row = self._cur.fetchone() if self._cur.description else None
        return None if row is None else self._shape(row)

    def __iter__(self) -> Any:
        return iter(self.fetchall())

    def close(self) -> None:
        self._cur.close()


class _Row(tuple):  # sqlite3.Row: by index and by name, dict(row) works
    def __new__(cls, names: list[str], values: tuple[Any, ...]) -> "_Row":
        obj = super().__new__(cls, values)
        obj._names = names  # type: ignore[attr-defined]
        return obj

    def keys(self) -> list[str]:
        return list(self._names)  # type: ignore[attr-defined]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))  # type: ignore[attr-defined]
        return tuple.__getitem__(self, key)


class SqliteLikeConnection:
    """What tests do with ``sqlite3.connect(store)`` (execute, commit, close, row_factory), on the test's
    PostgreSQL schema: ``?`` placeholders become ``%s`` and values come back in sqlite3's form."""

    def __init__(self, db: PgDb) -> None:
        self._conn = connect(db.name)
        self._conn.autocommit = False
        self.row_factory: Any = None
        self._wrote = False

    def execute(self, sql: str, params: Any = ()) -> _Cursor:
        cur = self._conn.cursor()
        if sql.lstrip().upper().startswith("PRAGMA"):  # SQLite tuning in a test's set-up: nothing to do here
            cur.execute("SELECT 1 WHERE false")
            return _Cursor(cur, self.row_factory)
        self._wrote |= sql.lstrip().upper().startswith("INSERT")
        cur.execute(pg_sql(sql), tuple(params) if not isinstance(params, dict) else params)
        return _Cursor(cur, self.row_factory)

    def executemany(self, sql: str, seq: Any) -> None:
        self._wrote |= sql.lstrip().upper().startswith("INSERT")
        self._conn.cursor().executemany(pg_sql(sql), [tuple(p) for p in seq])

    def commit(self) -> None:
        if self._wrote:  # rows inserted with explicit ids: move the sequences past them, as SQLite would
            for table, column in _serials(self._conn):
                self._conn.execute(SETVAL.format(table=table, column=column))
            self._wrote = False
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()

    def close(self) -> None:
        self._conn.close()  # like sqlite3: an uncommitted change is dropped

    def __enter__(self) -> "SqliteLikeConnection":
        return self

    def __exit__(self, kind: Any, *_exc: Any) -> None:  # sqlite3's context manager commits or rolls back
        if kind is None:
            self.commit()
        else:
            self._conn.rollback()


def _pg_target(database: Any) -> PgDb | None:
    if isinstance(database, PgDb):
        return database
    text = str(database)
    for db in _live.values():
        if db in text:
            return db
    return None


_live: dict[str, PgDb] = {}


def patch_sqlite3(monkeypatch: Any) -> None:
    """Under CRM_TEST_PG, ``sqlite3.connect`` on a test's PG store URL (as tests do with ``db_path``, also as a
    ``file:...?mode=ro`` URI) gives a SqliteLikeConnection, and ``shutil.copy*`` of it to a file writes that
    store as an SQLite file (`crm db copy`); on real files both are the stdlib's."""
    import sqlite3

    real = sqlite3.connect

    def connect_any(database: Any, *args: Any, **kwargs: Any) -> Any:
        db = _pg_target(database)
        return SqliteLikeConnection(db) if db is not None else real(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect_any)

    import shutil

    for name in ("copy", "copy2", "copyfile"):
        real_copy = getattr(shutil, name)

        def copy_any(src: Any, dst: Any, *args: Any, _real: Any = real_copy, **kwargs: Any) -> Any:
            db = _pg_target(src)
            if db is None:
                return _real(src, dst, *args, **kwargs)
            # A test copies "the store file" to a file: the same store as an SQLite file (crm db copy).
            from crmcli.core.safety.copy import copy_store as db_copy
            from crmcli.store.engine import open_store

            source = open_store(str(db))
            try:
                db_copy(source, str(dst))
            finally:
                source.dispose()
            return dst

        monkeypatch.setattr(shutil, name, copy_any)
