"""Removing the records of one import in short steps: `crm import undo` (core/io/undo.py) and the taking back
of a failed or killed stepped import (core/io/rollback.py).

One transaction for all of them held SQLite's write lock for about 9 CPU s at 100,000 customers and past the
others' 15 s busy timeout at a million (issue #10). So each step is its own short write transaction over the
next ``STEP_RECORDS`` records of the run, from the highest id down: a refund, or a customer naming another
imported customer as its referrer, has a higher id than what it points at, so it goes first.

Within its transaction a step looks again whether another command has used or changed one of its records
since the undo began (a purchase for an imported customer, an edit, points redeemed): such a record is kept,
named by an ``import-kept`` audit entry, and the others go with their own parts, their derived rows and the
unused points they earned. The step moves the run's ``undo_cursor`` (migration m0020) below its records in the
same transaction, so a process killed between or inside steps leaves a consistent store, and whoever carries
on starts where it stopped and never keeps a record twice.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, func, select, text, update
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core.customers import C, CP, TAG, chunked
from crmcli.store.models import AuditEntry, Consent, Interaction, Preference, Purchase
from crmcli.store.models_imports import ImportRun

RUN = ImportRun.__table__
A = AuditEntry.__table__
P = Purchase.__table__
I = Interaction.__table__  # noqa: E741
# Records per step. Measured on this 2-core machine: a step of 2,000 imported customers (with their contacts,
# tags, consents and preferences) holds the lock about 0.1 s on SQLite; purchases with points cost about the same.
STEP_RECORDS = 2_000
# Customers an upsert changed, put back from their before-images per step (each is a few statements).
IMAGES_PER_STEP = 500
# Between steps, so that writers waiting for the lock (they retry every few ms, store/engine.py) get it.
HAND_OVER_SECONDS = 0.005
TABLES: dict[str, Table] = {"customers": C, "purchases": P, "interactions": I}
ENTITY = {"customers": "customer", "purchases": "purchase", "interactions": "interaction"}
# A customer's own parts, removed with it.
OWN = {"contact_point", "consent", "preference", "customer_tag"}
# Rows recomputed by their commands (crm tier recompute, crm churn scan/score): not "use".
DERIVED = {"customer_class", "class_history", "churn_risk", "churn_score"}
# What does not count as use of each kind of record (a purchase's own points are handled apart).
NOT_USE = {"customers": OWN | DERIVED, "purchases": {"points_ledger"}, "interactions": set()}


def references(session: Session, target: str) -> list[tuple[str, str]]:
    """(table, column) of every foreign key that points at ``target`` (the database's own schema, so tables that
    other features add later are covered too)."""
    out = []
    if session.get_bind().dialect.name != "sqlite":  # PostgreSQL: the same answer from its catalog
        from sqlalchemy import inspect

        inspector = inspect(session.connection())
        for table in inspector.get_table_names():
            for fk in inspector.get_foreign_keys(table):
                if fk["referred_table"] == target:
                    out.extend((table, c) for c in fk["constrained_columns"])
        return out
    tables = [r[0] for r in session.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))]
    for table in tables:
        for fk in session.execute(text(f'PRAGMA foreign_key_list("{table}")')).mappings():
            if fk["table"] == target:
                out.append((table, fk["from"]))
    return out


def delete_in(session: Session, table: str, column: str, ids: list[int], *, also: str | None = None) -> None:
    """DELETE the rows whose ``column`` is one of ``ids`` (and ``also``, a fixed SQL condition), in chunks,
    last chunk first (refunds and referred customers come after what they point at). The ids are integers
    written into the SQL: binding 5,000 parameters through SQLAlchemy's expanding IN cost more than the delete."""
    extra = f" AND {also}" if also else ""
    for part in reversed(chunked(ids)):
        marks = _marks(part)
        sql(session, f'DELETE FROM "{table}" WHERE "{column}" IN ({marks}){extra}')


@dataclass(frozen=True)
class Schema:
    """The foreign keys a run's removal has to look at, read once per run (PostgreSQL's catalog is slow to ask)."""

    kind: str
    refs: list[tuple[str, str]]  # every (table, column) that points at the run's records
    ledger: bool  # the points tables exist


def schema(session: Session, kind: str) -> Schema:
    refs = references(session, ENTITY[kind])
    ledger = any(t == "points_ledger" for t, _c in references(session, "purchase"))
    return Schema(kind, refs, ledger)


@dataclass
class Step:
    removed: list[int]
    kept: list[int]
    points: int  # points ledger rows removed with purchases
    last: bool  # no record of the run is left to deal with


def step_records() -> int:
    """Records per step: STEP_RECORDS, or CRM_UNDO_STEP_RECORDS (tests make small imports take many steps)."""
    try:
        return max(1, int(os.environ.get("CRM_UNDO_STEP_RECORDS", STEP_RECORDS)))
    except ValueError:
        return STEP_RECORDS


def images_per_step() -> int:
    return min(IMAGES_PER_STEP, step_records())


def pause() -> None:
    time.sleep(HAND_OVER_SECONDS)


def step(session: Session, run_id: int, found: Schema, *, floor: int, trail: bool,
         limit: int | None = None) -> Step:
    """Deal with the next ``limit`` records of the run, inside the caller's write transaction.

    ``floor``: an audit row about a record with an id above it is a change another command made (the import's
    own last audit row for an undo, 0 for a failed import, which has written none). ``trail``: write an
    ``import-undo`` row for the records removed (an undo; a failed import is taken back without a trace)."""
    limit = limit or step_records()
    kind = found.kind
    table = TABLES[kind]
    cursor = session.execute(select(RUN.c.undo_cursor).where(RUN.c.id == run_id)).scalar()
    query = select(table.c.id).where(table.c.import_id == run_id)
    if cursor is not None:
        query = query.where(table.c.id < cursor)
    ids = [int(r[0]) for r in session.execute(query.order_by(table.c.id.desc()).limit(limit))]
    if not ids:
        return Step([], [], 0, True)
    kept = _used(session, ids, found) | _changed(session, ids, ENTITY[kind], floor)
    if kind == "purchases" and found.ledger:
        kept |= points_used(session, ids)
    kept = _with_what_kept_rows_point_at(session, table, ids, kept, found)
    gone = sorted(set(ids) - kept)
    points = 0
    if kind == "customers":
        for t, c in found.refs:
            if t in DERIVED:
                delete_in(session, t, c, gone)
        for child in (CP, TAG, Consent.__table__, Preference.__table__):
            delete_in(session, child.name, "customer_id", gone)
    elif kind == "purchases":
        points = remove_points(session, gone, run_id) if found.ledger else 0
        delete_in(session, table.name, "id", gone, also="kind = 'refund'")  # refunds before their sales
    delete_in(session, table.name, "id", gone)
    entity = ENTITY[kind]
    entries: list[dict[str, Any]] = []
    if trail and gone:
        # Like the import's own `import-batch` rows: one row per step's range of removed records, not one each.
        entries.append({"entity": entity, "entity_id": None, "action": "import-undo",
                        "after": {"import_id": run_id, "first_id": gone[0], "last_id": gone[-1], "removed": len(gone)}})
    entries += kept_entries(entity, run_id, sorted(kept))
    audit.record_many(session, entries)
    session.execute(update(RUN).where(RUN.c.id == run_id).values(
        undo_cursor=min(ids), undo_removed=func.coalesce(RUN.c.undo_removed, 0) + len(gone),
        undo_kept=func.coalesce(RUN.c.undo_kept, 0) + len(kept)))
    return Step(gone, sorted(kept), points, len(ids) < limit)


def kept_entries(entity: str, run_id: int, kept: list[int]) -> list[dict[str, Any]]:
    """The ``import-kept`` audit entries naming records another command used or changed meanwhile."""
    return [{"entity": entity, "entity_id": i, "action": "import-kept", "customer_id": i if entity == "customer" else None,
             "after": {"import_id": run_id}} for i in kept]


def _marks(ids: list[int] | set[int]) -> str:
    return ", ".join(map(str, map(int, ids)))


def sql(session: Session, statement: str) -> Any:
    """Run SQL with the ids written into it as is: text() would scan each 2,000-id statement for bind
    parameters (3 of a 100,000-customer undo's 14 s went to that scan)."""
    return session.connection().exec_driver_sql(statement)


def _used(session: Session, ids: list[int], found: Schema) -> set[int]:
    """Those of ``ids`` a row outside this step refers to. Rows of the run itself count too once they are
    outside the step: they were kept by an earlier step (removed ones are gone), so what they point at stays."""
    skip = NOT_USE[found.kind]
    target = ENTITY[found.kind]
    step_marks = _marks(ids)
    used: set[int] = set()
    for table, column in found.refs:
        if table in skip:
            continue
        where = f'"{column}" IN ({step_marks})'
        if table == target:
            where += f" AND id NOT IN ({step_marks})"
        used |= {int(r[0]) for r in sql(session, f'SELECT DISTINCT "{column}" FROM "{table}" WHERE {where}')}
    return used


def _changed(session: Session, ids: list[int], entity: str, floor: int) -> set[int]:
    """Those of ``ids`` with an audit row after ``floor``: another command changed them (an edit, a tag ...)."""
    return {int(r[0]) for r in session.execute(select(A.c.entity_id).distinct().where(
        A.c.entity == entity, A.c.entity_id.in_(ids), A.c.id > floor))}


def _with_what_kept_rows_point_at(session: Session, table: Table, ids: list[int], kept: set[int],
                                  found: Schema) -> set[int]:
    """A kept record keeps the records of the same step it points at (a kept refund its sale), or removing
    them would break its reference."""
    own = [c for t, c in found.refs if t == table.name]
    step_marks = _marks(ids)
    while own and kept:
        inside = kept & set(ids)
        if not inside:
            break
        more: set[int] = set()
        for column in own:
            more |= {int(r[0]) for r in sql(
                session, f'SELECT "{column}" FROM "{table.name}" WHERE id IN ({_marks(inside)}) AND "{column}" IN ({step_marks})')}
        if more <= kept:
            break
        kept = kept | more
    return kept


# The ledger rows the purchase hooks write for a purchase (its earned points, referral rewards, the reversal or
# restoring of points by a refund): they go with the purchase. Any other row naming a purchase (`points redeem
# --purchase`, an adjustment) is another command's work, so use of that purchase.
HOOK_KINDS = "('earn', 'referral', 'reversal', 'restore')"


def points_used(session: Session, purchase_ids: list[int], run_id: int | None = None) -> set[int]:
    """Purchases whose points another command has since used (redeemed, expired, reversed), or that another
    command's ledger row names (points redeemed to pay for it). Hook rows of these purchases do not count as use
    of each other; with ``run_id``, neither do those of any purchase of that import (the check before an undo,
    over all its purchases at once)."""
    used: set[int] = set()
    for part in chunked(purchase_ids):
        rows = f"SELECT id FROM points_ledger WHERE purchase_id IN ({_marks(part)}) AND kind IN {HOOK_KINDS}"
        ours = rows if run_id is None else (
            f"SELECT l.id FROM points_ledger l JOIN purchase p ON p.id = l.purchase_id WHERE p.import_id = {int(run_id)} "
            f"AND l.kind IN {HOOK_KINDS}")
        used |= {int(r[0]) for r in sql(session, f"SELECT DISTINCT purchase_id FROM points_ledger "
                                                 f"WHERE purchase_id IN ({_marks(part)}) AND kind NOT IN {HOOK_KINDS}")}
        # A debit from elsewhere allocated against one of their lots, or a later row from elsewhere that refers
        # to one of them.
        used |= {int(r[0]) for r in sql(session,
            f"SELECT DISTINCT l.purchase_id FROM points_allocation a JOIN points_ledger l ON l.id = a.lot_id "
            f"WHERE a.lot_id IN ({rows}) AND a.debit_id NOT IN ({ours})")}
        used |= {int(r[0]) for r in sql(session,
            f"SELECT DISTINCT l.purchase_id FROM points_ledger x JOIN points_ledger l ON l.id = x.ref_id "
            f"WHERE x.ref_id IN ({rows}) AND x.id NOT IN ({ours})")}
    return used


def remove_points(session: Session, purchase_ids: list[int], run_id: int) -> int:
    """The ledger rows (and their allocations) the purchase hooks wrote for these purchases; how many rows."""
    if not purchase_ids:
        return 0
    # The ledger is append-only (m0010/m0011) except while the guard row exists: an undone or failed import
    # never happened, so neither did the unused points its purchases earned.
    session.execute(text("INSERT INTO points_ledger_unlock (import_id) VALUES (:id)"), {"id": run_id})
    removed = 0
    for part in chunked(purchase_ids):
        marks = _marks(part)
        own = f"purchase_id IN ({marks}) AND kind IN {HOOK_KINDS}"  # another command's rows made it "used"
        rows = f"SELECT id FROM points_ledger WHERE {own}"
        sql(session, f"DELETE FROM points_allocation WHERE debit_id IN ({rows}) OR lot_id IN ({rows})")
        # Reversing rows (ref_id) first, then the rows they reverse.
        removed += sql(session, f"DELETE FROM points_ledger WHERE {own} AND ref_id IS NOT NULL").rowcount or 0
        removed += sql(session, f"DELETE FROM points_ledger WHERE {own}").rowcount or 0
    session.execute(text("DELETE FROM points_ledger_unlock WHERE import_id = :id"), {"id": run_id})
    return removed


def heartbeat(session: Session, run_id: int, column: str) -> bool:
    """At the start of a step: the run row shows, by the time in ``column``, that the process working on it
    is alive (another host tells a dead one by its age, core/io/rollback.alive). False, and nothing written,
    when the run is no longer this process's: a process on another machine judged it stalled and took it on
    (PostgreSQL); the step must then not run, or both would remove and record the same records."""
    from crmcli.core.io import rollback

    done = session.execute(update(RUN).where(RUN.c.id == run_id, RUN.c.owner == rollback.owner()).values(
        {column: rollback.stamp(session)}))
    return done.rowcount == 1
