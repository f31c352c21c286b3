"""`crm db copy --to URL|FILE`: move a whole store between SQLite and PostgreSQL (either direction).

The target must be new: a file that does not exist yet (or is empty), or a PostgreSQL database (schema)
without tables. crmcli creates the schema there with its own migrations, then copies every table in
foreign-key order inside ONE target transaction, reading the source in one consistent snapshot, rows in key
order; a column that points forward in its own table (a customer referred by a later customer) is filled
in a second pass. Before committing, the row count of every table is compared with the source and
the audit hash chain is verified on the target; any difference rolls the whole copy back (and removes a
target file this command created). The source is never changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crmcli.errors import Conflict, CrmError, StoreError
from crmcli.i18n import _
from crmcli.store.engine import Store, is_url, open_store, translate_errors

BATCH = 5_000
NOT_COPIED = {"schema_migration",  # the target's migrations write it; compared, not copied
              # what `crm tier` keeps between runs and its counters (each store's own, seeded by its migration):
              # the target's first run rebuilds the cache
              "class_cache", "class_cache_state"}


@dataclass(frozen=True)
class TableCount:
    table: str
    source: int
    target: int


@dataclass
class CopyResult:
    target: str
    tables: list[TableCount] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.target for t in self.tables)


def _target_is_new(location: str) -> bool:
    """True when nothing would be overwritten at ``location`` (checked before the target is created)."""
    if not is_url(location):
        path = Path(location).expanduser()
        return not path.exists() or (path.is_file() and path.stat().st_size == 0)
    engine = sa.create_engine(location) if not location.startswith(("postgresql", "postgres")) else None
    if engine is None:
        from crmcli.store import postgres

        engine = postgres.create_engine(location)
    try:
        with translate_errors(location), engine.connect() as conn:
            return not sa.inspect(conn).get_table_names()
    finally:
        engine.dispose()


def _tables(conn: Connection) -> list[sa.Table]:
    md = sa.MetaData()
    md.reflect(conn)
    return [t for t in md.sorted_tables if t.name not in NOT_COPIED]


def _self_columns(table: sa.Table) -> list[str]:
    return [fk.parent.name for fk in table.foreign_keys if fk.column.table.name == table.name]


def _copy_table(src: Connection, dst: Connection, s_table: sa.Table, d_table: sa.Table) -> None:
    names = [c.name for c in s_table.columns if c.name in d_table.c]
    later = _self_columns(d_table)
    key = [c.name for c in d_table.primary_key.columns]
    fixups: list[dict[str, Any]] = []
    insert = sa.insert(d_table)
    stmt = sa.select(*[s_table.c[n] for n in names]).order_by(*[s_table.c[k] for k in key if k in s_table.c])
    result = src.execution_options(yield_per=BATCH).execute(stmt)
    single = key[0] if len(key) == 1 else None
    for part in result.partitions():
        rows = [dict(zip(names, r)) for r in part]
        if later:
            for row in rows:
                # Rows come in key order, so a reference to an earlier row is already there; only forward
                # references wait for the second pass (the points ledger's append-only trigger refuses
                # UPDATEs, and its references always point back).
                if any(row[c] is not None and (single is None or not row[c] < row[single]) for c in later):
                    fixups.append({**{f"k_{k}": row[k] for k in key}, **{f"v_{c}": row[c] for c in later}})
                    for c in later:
                        row[c] = None
        dst.execute(insert, rows)
    if fixups:
        update = (sa.update(d_table)
                  .where(*[d_table.c[k] == sa.bindparam(f"k_{k}") for k in key])
                  .values({c: sa.bindparam(f"v_{c}") for c in later}))
        for start in range(0, len(fixups), BATCH):
            dst.execute(update, fixups[start:start + BATCH])


def _migrations(conn: Connection) -> set[str]:
    return {r[0] for r in conn.execute(sa.text("SELECT name FROM schema_migration"))}


def copy_store(source: Store, to: str) -> CopyResult:
    """Copy ``source`` into the new store at ``to`` (a PostgreSQL URL or an SQLite file path)."""
    from crmcli.core import audit

    started = time.monotonic()
    if _same(source, to):
        raise CrmError(_("The copy's target is the store itself ({location}).").format(location=to),
                       hint=_("Give another file name or database URL with --to."))
    if not _target_is_new(to):
        raise Conflict(_("{location} already holds data; crm db copy only fills a new, empty store.").format(
            location=_shown(to)), hint=_("Give a new file name, or an empty PostgreSQL database (createdb NAME)."))
    created_file = None if is_url(to) else Path(to).expanduser().absolute()
    existed = created_file is not None and created_file.exists()
    target = open_store(to, create=True)
    ok = False
    try:
        result = CopyResult(target.location)
        src_engine = source.engine
        if not source.is_sqlite:  # one consistent snapshot of a database others may be writing to
            src_engine = src_engine.execution_options(isolation_level="REPEATABLE READ")
        with translate_errors(source.location), src_engine.connect() as src, src.begin():
            with translate_errors(target.location), target._immediate.connect() as dst, dst.begin():
                if _migrations(src) != _migrations(dst):
                    raise StoreError(_("The source and the target have different schema versions."),
                                     hint=_("Open both with this crmcli version first."))
                s_tables = {t.name: t for t in _tables(src)}
                d_tables = _tables(dst)
                for d_table in reversed(d_tables):  # rows a migration may have seeded: the copy brings its own
                    dst.execute(sa.delete(d_table))
                for d_table in d_tables:
                    s_table = s_tables.get(d_table.name)
                    if s_table is not None:
                        _copy_table(src, dst, s_table, d_table)
                if not target.is_sqlite:
                    from crmcli.store import postgres

                    postgres.reset_sequences(dst, [t.name for t in d_tables])
                for d_table in d_tables:
                    s_table = s_tables.get(d_table.name)
                    n_src = src.execute(sa.select(sa.func.count()).select_from(s_table)).scalar_one() if s_table is not None else 0
                    n_dst = dst.execute(sa.select(sa.func.count()).select_from(d_table)).scalar_one()
                    result.tables.append(TableCount(d_table.name, int(n_src), int(n_dst)))
                missing = sorted(set(s_tables) - {t.name for t in d_tables})
                wrong = [t for t in result.tables if t.source != t.target]
                if missing or wrong:
                    raise StoreError(_("The copy does not match the source ({details}); nothing was kept.").format(
                        details=", ".join([*(f"{t.table}: {t.source} ≠ {t.target}" for t in wrong), *missing])))
                from sqlmodel import Session

                with Session(bind=dst) as session:
                    broken = audit.verify(session)
                if broken is not None:
                    raise StoreError(_("The copied audit trail does not verify (row #{id}); nothing was kept.")
                                     .format(id=broken))
        ok = True
        result.seconds = time.monotonic() - started
        return result
    finally:
        target.dispose()
        if not ok and created_file is not None and not existed:
            for extra in ("", "-wal", "-shm", "-journal"):
                Path(f"{created_file}{extra}").unlink(missing_ok=True)


def _same(source: Store, to: str) -> bool:
    if not is_url(to):
        return source.path is not None and Path(to).expanduser().absolute() == source.path
    if source.path is not None:
        return False
    from crmcli.store.postgres import normalize

    return normalize(to).render_as_string(hide_password=True) == source.engine.url.render_as_string(hide_password=True)


def _shown(location: str) -> str:
    if is_url(location):
        return sa.engine.make_url(location).render_as_string(hide_password=True)
    return location
