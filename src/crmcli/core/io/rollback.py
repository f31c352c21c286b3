"""Taking back an import that committed some steps and then failed, or whose process died.

A stepped import (core/io/importer.py) commits its rows in steps, each row carrying its ``import_id``, and
writes its audit entries only with its last step. Until then its ``import_run`` row says ``running`` and names
its process (``owner``). ``discard`` removes everything such a run wrote — its records with their own parts,
the points its purchases earned — puts back the customers an upsert changed (core/io/before_images.py), and
removes the run row itself, so the store is as it was before the import.

Between two steps other crm commands may already have used a record of the running import (a purchase for a
customer imported a second earlier, points earned by an imported sale redeemed). Such a record is kept,
because removing it would take the other command's work with it: the run row then stays, marked ``failed``,
and an ``import-kept`` audit entry names each kept record.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core.clock import utcnow
from crmcli.core.customers import C, CP, TAG, chunked
from crmcli.core.io import before_images
from crmcli.core.io.undo import delete_in
from crmcli.store.engine import process_alive
from crmcli.store.models import Consent, Interaction, Preference, Purchase
from crmcli.store.models_imports import ImportRun

RUN = ImportRun.__table__
P = Purchase.__table__
I = Interaction.__table__  # noqa: E741
OWN = {"contact_point", "consent", "preference", "customer_tag"}
DERIVED = {"customer_class", "class_history", "churn_risk", "churn_score"}
# A run on another machine (PostgreSQL) counts as dead when its row has not moved for this long; a step
# updates it about every second.
STALE_AFTER = timedelta(minutes=10)


@dataclass
class Discarded:
    run_id: int
    kind: str
    removed: int = 0
    restored: int = 0  # existing customers an upsert had changed, put back as they were
    kept: list[int] = field(default_factory=list)


def owner() -> str:
    """This process, as "host:pid:start" (the start time tells a reused pid from the original process)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}"


def _started(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # Field 22 (starttime) comes after the parenthesised command name, which may contain spaces.
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "?"


def alive(run: Any) -> bool:
    """Whether the process that runs ``run`` (an import_run row) is still at work."""
    host, _, rest = (run.owner or "").partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        finished = run.finished_at
        if finished is not None and finished.tzinfo is None:
            from datetime import timezone

            finished = finished.replace(tzinfo=timezone.utc)
        return finished is not None and utcnow() - finished < STALE_AFTER
    pid = int(pid_text)
    if not process_alive(pid):
        return False
    return start == "?" or _started(pid) in (start, "?")  # not a later process that got the same pid


def interrupted(session: Session) -> list[Any]:
    """Running imports whose process is gone."""
    return [r for r in session.execute(select(RUN).where(RUN.c.status == "running")) if not alive(r)]


def recover(store: Any) -> list[Discarded]:
    """Take back every import whose process died (one quick read when there is none)."""
    with store.read() as session:
        if not interrupted(session):
            return []
    with store.write() as session:  # look again under the lock: another process may have been quicker
        return [discard(session, run.id) for run in interrupted(session)]


def discard(session: Session, run_id: int) -> Discarded:
    """Remove what the run wrote (inside the caller's write transaction); see the module docstring."""
    run = session.execute(select(RUN).where(RUN.c.id == run_id)).first()
    if run is None:
        return Discarded(run_id, "")
    table = {"customers": C, "purchases": P, "interactions": I}[run.kind]
    ids = [r[0] for r in session.execute(select(table.c.id).where(table.c.import_id == run_id))]
    out = Discarded(run_id, run.kind)
    if run.kind == "customers":
        restored, changed_meanwhile = before_images.put_back(session, run_id)  # an upsert's updates
        out.restored = len(restored)
        kept = _referenced(session, ids, "customer", OWN | DERIVED, run_id) | set(changed_meanwhile)
        gone = [i for i in ids if i not in kept]
        for t, c in _references(session, "customer"):
            if t in DERIVED:
                delete_in(session, t, c, gone)
        for child in (CP, TAG, Consent.__table__, Preference.__table__):
            delete_in(session, child.name, "customer_id", gone)
        entity = "customer"
    elif run.kind == "purchases":
        kept = _referenced(session, ids, "purchase", {"points_ledger"}, run_id) | _points_used(session, ids)
        gone = [i for i in ids if i not in kept]
        _remove_points(session, gone, run_id)
        delete_in(session, "purchase", "id", gone, also="kind = 'refund'")  # refunds before their sales
        entity = "purchase"
    else:
        kept = _referenced(session, ids, "interaction", set(), run_id)
        gone = [i for i in ids if i not in kept]
        entity = "interaction"
    delete_in(session, table.name, "id", gone)
    out.removed, out.kept = len(gone), sorted(kept)
    if kept:
        session.execute(update(RUN).where(RUN.c.id == run_id).values(status="failed", owner=None,
                                                                      finished_at=utcnow()))
        audit.record_many(session, [{"entity": entity, "entity_id": i, "action": "import-kept",
                                     "customer_id": i if entity == "customer" else None,
                                     "after": {"import_id": run_id}} for i in out.kept])
    else:
        session.execute(delete(RUN).where(RUN.c.id == run_id))
    return out


def _references(session: Session, target: str) -> list[tuple[str, str]]:
    from crmcli.core.io.undo import references

    return references(session, target)


def _referenced(session: Session, ids: list[int], target: str, skip: set[str], run_id: int) -> set[int]:
    """Those of ``ids`` that a row outside the import refers to (tables in ``skip`` do not count)."""
    from crmcli.core.io.undo import referrers

    return {ref for _table, ref in referrers(session, ids, target, skip, run_id)}


def _points_used(session: Session, purchase_ids: list[int]) -> set[int]:
    """Imported purchases whose points another command has since used (redeemed, expired, reversed)."""
    used: set[int] = set()
    if not purchase_ids or not _has_ledger(session):
        return used
    for part in chunked(purchase_ids):
        marks = ", ".join(str(int(i)) for i in part)
        rows = f"SELECT id FROM points_ledger WHERE purchase_id IN ({marks})"
        # A debit outside these purchases' rows allocated against one of their lots, or a later row that
        # refers to one of them.
        used |= {int(r[0]) for r in session.execute(text(
            f"SELECT DISTINCT l.purchase_id FROM points_allocation a JOIN points_ledger l ON l.id = a.lot_id "
            f"WHERE a.lot_id IN ({rows}) AND a.debit_id NOT IN ({rows})"))}
        used |= {int(r[0]) for r in session.execute(text(
            f"SELECT DISTINCT l.purchase_id FROM points_ledger x JOIN points_ledger l ON l.id = x.ref_id "
            f"WHERE x.ref_id IN ({rows}) AND x.id NOT IN ({rows})"))}
    return used


def _has_ledger(session: Session) -> bool:
    return any(t == "points_ledger" for t, _c in _references(session, "purchase"))


def _remove_points(session: Session, purchase_ids: list[int], run_id: int) -> None:
    if not purchase_ids or not _has_ledger(session):
        return
    # The ledger is append-only (m0010/m0011) except while the guard row exists: a failed import never
    # happened, so neither did the points its purchases earned.
    session.execute(text("INSERT INTO points_ledger_unlock (import_id) VALUES (:id)"), {"id": run_id})
    for part in chunked(purchase_ids):
        marks = ", ".join(str(int(i)) for i in part)
        rows = f"SELECT id FROM points_ledger WHERE purchase_id IN ({marks})"
        session.execute(text(f"DELETE FROM points_allocation WHERE debit_id IN ({rows}) OR lot_id IN ({rows})"))
        # Reversing rows (ref_id) first, then the rows they reverse.
        session.execute(text(f"DELETE FROM points_ledger WHERE purchase_id IN ({marks}) AND ref_id IS NOT NULL"))
        session.execute(text(f"DELETE FROM points_ledger WHERE purchase_id IN ({marks})"))
    session.execute(text("DELETE FROM points_ledger_unlock WHERE import_id = :id"), {"id": run_id})

