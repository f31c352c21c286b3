"""Fast bulk inserts: one DBAPI executemany of plain tuples, with the column types' own bind processors.

SQLAlchemy Core ``insert()`` with a list of dicts builds and checks a parameter dict per row, which costs more
than SQLite's insert itself on million-row imports. Values are converted by the same type processors Core uses
(datetimes as stored by SQLAlchemy, dates, booleans), so rows written here read back exactly like rows written
through Core or the ORM.

On PostgreSQL the rows go in with COPY (the server's bulk-load path): psycopg's executemany sends one
INSERT per row down a pipeline, about four times slower for a customer import's contacts and tags.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import Table
from sqlmodel import Session

_MARKS = {"qmark": "?", "numeric": ":{n}", "named": ":p{n}", "format": "%s", "pyformat": "%s"}


def sqlite_datetime(value: datetime) -> str:
    """An aware datetime as SQLAlchemy's UTC datetime type stores it in SQLite ('2024-03-01 06:30:00.000000',
    UTC): for a caller that converts millions of distinct times itself (tests compare it with the type's own
    processor)."""
    utc = value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)
    text = str(utc)[:-6]  # str() is isoformat(" "): '+00:00' at the end, the fraction only when there is one
    return text if utc.microsecond else text + ".000000"


def sqlite_date(value: date) -> str:
    """A date as SQLAlchemy's Date type stores it in SQLite."""
    return value.isoformat()


def insert_rows(session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                ready: Collection[str] = ()) -> None:
    """``ready``: columns whose values the caller already gives in the driver's form (sqlite_datetime ...),
    so no processor runs on them."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    processors = [None if name in ready else table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                  for name in columns]
    style = dialect.paramstyle
    if style not in ("qmark", "format", "pyformat"):  # pragma: no cover - drivers crmcli does not use
        from sqlalchemy import insert

        session.execute(insert(table), [dict(zip(columns, row)) for row in rows])
        return
    if dialect.name == "postgresql":
        copy_rows(connection, table, columns, rows)
        return
    mark = _MARKS[style]
    sql = 'INSERT INTO "{}" ({}) VALUES ({})'.format(
        table.name, ", ".join(f'"{c}"' for c in columns), ", ".join(mark for _ in columns))
    active = [(i, p) for i, p in enumerate(processors) if p is not None]
    if active:
        # The same value (the import's created_at, a business date) is converted once per call.
        caches: list[dict[Any, Any]] = [{} for _ in active]
        converted = []
        for row in rows:
            values = list(row)
            for (i, process), cache in zip(active, caches):
                value = values[i]
                if value is not None:
                    done = cache.get(value)
                    if done is None:
                        done = cache[value] = process(value)
                    values[i] = done
            converted.append(tuple(values))
        rows = converted
    connection.exec_driver_sql(sql, list(rows) if not isinstance(rows, list) else rows)


def copy_rows(connection: Any, table: Table | str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL: COPY ... FROM STDIN on the session's own connection, so the rows belong to its transaction.
    Values go as psycopg adapts them (text format): the same forms its INSERT parameters would take."""
    driver = connection.connection.driver_connection
    name = table if isinstance(table, str) else table.name
    sql = 'COPY "{}" ({}) FROM STDIN'.format(name, ", ".join(f'"{c}"' for c in columns))
    with driver.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)
