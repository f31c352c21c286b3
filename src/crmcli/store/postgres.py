"""PostgreSQL stores: ``--db postgresql+psycopg://user@host[:port]/dbname`` (or ``CRM_DB``).

The password is never stored by crmcli: it comes from the URL itself, from libpq's own sources
(``PGPASSWORD``, ``~/.pgpass``, ``PGSERVICE``; psycopg reads them) or, when none of those is given,
from the system keyring (service ``crmcli-postgres``, user name = the URL without its password, e.g.
``postgresql+psycopg://shop@db.example/crm``).

Writers: SQLite serialises writers with ``BEGIN IMMEDIATE``; on PostgreSQL every write transaction
starts by taking one transaction-scoped advisory lock (:data:`WRITER_LOCK`). The audit trail is a hash
chain (each row hashes the previous one), so two mutations can never append concurrently anyway, and a
transaction that holds the lock reads every change committed before it (READ COMMITTED takes a fresh
snapshot per statement): a points redemption checks the balance it spends, so parallel tills never
double-spend and never lose an update. Readers take no lock.
"""

from __future__ import annotations

import os
from datetime import timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.url import URL

KEYRING_SERVICE = "crmcli-postgres"
# Any constant shared by every crmcli process; "crm" in ASCII, so it is recognisable in pg_locks.
WRITER_LOCK = 0x63726D
STATEMENT_LOCK_TIMEOUT_MS = 15_000  # the same patience as SQLite's busy timeout


def is_postgres_url(location: str) -> bool:
    return location.split("://", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def normalize(location: str) -> URL:
    """The SQLAlchemy URL with the psycopg 3 driver (``postgresql://`` and ``postgres://`` accepted)."""
    url = make_url(location.replace("postgres://", "postgresql://", 1) if location.startswith("postgres://") else location)
    if url.drivername in ("postgresql", "postgresql+psycopg"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def keyring_user(url: URL) -> str:
    return url.set(password=None).render_as_string(hide_password=False)


def keyring_password(url: URL) -> str | None:
    """The password kept in the keyring for this URL, only when neither the URL nor libpq has one."""
    if url.password is not None or os.environ.get("PGPASSWORD") or os.environ.get("PGPASSFILE") \
            or os.path.exists(os.path.expanduser("~/.pgpass")):
        return None
    from crmcli.store.keys import _keyring

    kr = _keyring()
    if kr is None:
        return None
    try:
        return kr.get_password(KEYRING_SERVICE, keyring_user(url))  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - a failing keyring backend means "no password there"
        return None


def create_engine(location: str) -> Engine:
    url = normalize(location)
    password = keyring_password(url)
    if password is not None:
        url = url.set(password=password)
    # libpq options given in the URL (e.g. ?options=-csearch_path%3Dbranch2 for a store in its own schema)
    # reach the driver unchanged; the session time zone is set on connect (below).
    engine = sa.create_engine(url)
    # Core executemany INSERTs (imports, audit rows, bulk recomputes) as multi-row VALUES statements of up
    # to 1,000 rows instead of one pipelined statement per row: ~35 % faster on a 10,000-customer import.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    configure(engine)
    return engine


def _naive_utc_loaders() -> tuple[type, type]:
    """timestamptz loaders giving naive UTC datetimes: the models keep timestamps as naive UTC (what the
    SQLite store returns), and the audit chain hashes ``at.isoformat()``, so the form must be the same."""
    from psycopg.types.datetime import TimestamptzBinaryLoader, TimestamptzLoader

    class NaiveUTC(TimestamptzLoader):
        def load(self, data: Any) -> Any:
            value = super().load(data)
            return value.astimezone(timezone.utc).replace(tzinfo=None)

    class NaiveUTCBinary(TimestamptzBinaryLoader):
        def load(self, data: Any) -> Any:
            value = super().load(data)
            return value.astimezone(timezone.utc).replace(tzinfo=None)

    return NaiveUTC, NaiveUTCBinary


def _sqlite_like_numeric_loaders() -> tuple[type, type]:
    """numeric loaders giving int for whole values and float otherwise. The schema has no NUMERIC column
    (money and points are integers), so a numeric only comes from an expression such as SUM over a bigint
    or AVG, where SQLite answers INTEGER or REAL: the same Python types keep JSON output and arithmetic alike
    on both stores (a Decimal would print as "595" in JSON instead of 595)."""
    from psycopg.types.numeric import NumericBinaryLoader, NumericLoader

    def shape(value: Any) -> Any:
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)

    class Text(NumericLoader):
        def load(self, data: Any) -> Any:
            return shape(super().load(data))

    class Binary(NumericBinaryLoader):
        def load(self, data: Any) -> Any:
            return shape(super().load(data))

    return Text, Binary


def configure(engine: Engine) -> None:
    loaders = [*_naive_utc_loaders(), *_sqlite_like_numeric_loaders()]

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: object) -> None:
        for oid_name, loader in zip(("timestamptz", "timestamptz", "numeric", "numeric"), loaders):
            dbapi_conn.adapters.register_loader(oid_name, loader)
        # Timestamps are stored and read in UTC (columns are timestamptz), as the SQLite store keeps them.
        with dbapi_conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            # psycopg prepares a statement it has run five times, and the server may then keep one generic
            # plan for it, costed when the tables were small: an import's per-batch lookups (the same IN
            # query, ever more rows) went from 3 ms to over a second each. A plan per execution follows the
            # tables as they grow; prepared statements still save the parsing.
            cur.execute("SET plan_cache_mode = force_custom_plan")
        dbapi_conn.commit()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("crm_begin") == "IMMEDIATE":
            take_writer_lock(conn)


def take_writer_lock(conn: Connection) -> None:
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {STATEMENT_LOCK_TIMEOUT_MS}")
    # (crm, this schema): stores in different schemas of one database do not wait for each other.
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITER_LOCK}, hashtext(current_schema()))")


def table_names(conn: Connection) -> list[str]:
    """Tables in the connection's schema search path (what SQLAlchemy's inspector calls the default schema)."""
    return sa.inspect(conn).get_table_names()


def reset_sequences(conn: Connection, tables: list[str]) -> None:
    """After rows were inserted with explicit ids (a copy), move each serial sequence past the largest id."""
    for table in tables:
        cols = [c for c in sa.inspect(conn).get_columns(table) if c.get("autoincrement") is True
                or (c.get("default") or "").startswith("nextval(")]
        for col in cols:
            seq = conn.exec_driver_sql("SELECT pg_get_serial_sequence(%s, %s)", (f'"{table}"', col["name"])).scalar()
            if seq:
                conn.exec_driver_sql(
                    f'SELECT setval(%s, COALESCE((SELECT MAX("{col["name"]}") FROM "{table}"), 0) + 1, false)', (seq,))


def advance_sequences(conn: Connection, tables: list[str], column: str = "id") -> None:
    """Bulk paths (imports) assign ids themselves; move each table's id sequence past them so a later
    plain INSERT does not collide. Never backwards: an id once handed out is not handed out again."""
    for table in tables:
        seq = conn.exec_driver_sql("SELECT pg_get_serial_sequence(%s, %s)", (f'"{table}"', column)).scalar()
        if not seq:
            continue
        top = conn.exec_driver_sql(f'SELECT COALESCE(MAX("{column}"), 0) FROM "{table}"').scalar() or 0
        last, called = conn.exec_driver_sql(f"SELECT last_value, is_called FROM {seq}").one()
        if top > (last if called else last - 1):
            conn.exec_driver_sql("SELECT setval(%s, %s, true)", (seq, top))


def refresh_statistics(conn: Connection, tables: list[str]) -> None:
    """ANALYZE ``tables``, inside the caller's transaction (its own new rows count). A bulk load outgrows the
    planner's statistics within seconds, long before autovacuum looks again: with a table still costed as
    empty, an import's per-batch lookup became a nested loop over every contact so far, 3 ms → 1.5 s per
    batch at 5,000 customers (PostgreSQL's own advice for bulk loading: "Run ANALYZE Afterwards")."""
    for table in tables:
        conn.exec_driver_sql(f'ANALYZE "{table}"')


def dump_command(url: URL) -> list[str]:
    """pg_dump arguments for a custom-format dump of this database (the password goes via PGPASSWORD)."""
    args = ["pg_dump", "--format=custom", "--no-owner"]
    if url.host:
        args += ["--host", url.host]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    args += ["--dbname", url.database or ""]
    return args


def server_version(engine: Engine) -> Any:
    return engine.dialect.server_version_info
