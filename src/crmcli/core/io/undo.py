"""`crm import undo ID`: remove the records one import created, in short steps, or refuse and say why.

Refused when any of those records has since been changed (an audit row about it after the import's last
one) or used: a purchase, interaction, refund, survey invitation, greeting, points entry ... that points at
it. Derived rows that commands recompute (tier classes, churn scores) do not count as use and are removed
with the records. Points earned by imported purchases are removed with them unless those points were spent,
expired or otherwise used by a later ledger row. Updates an upsert made to existing customers are not
reverted (their before/after is in the audit trail).

How it runs (issue #10: a long operation must not hold up short commands):

1. the checks above, in a read transaction (other commands go on writing);
2. one short write transaction marks the run ``undoing`` and names this process as its owner (audit row
   ``undo-start``);
3. the records go in steps of a few thousand, each its own short write transaction (core/io/removal.py); a
   record another command used or changed after step 1 is kept and named by an ``import-kept`` audit entry;
4. the last step marks the run ``undone`` (audit row ``undo``).

A run is ``undoing`` only while an undo is on its way. One whose process was killed or interrupted is finished
by the next crm command (core/io/rollback.recover, the same check that takes back a dead import) or by running
`crm import undo ID` again; the steps already done are not repeated.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core.customers import C, chunked
from crmcli.core.io import removal, rollback
from crmcli.core.io.removal import DERIVED, OWN, references
from crmcli.errors import Conflict, CrmError, NotFound
from crmcli.i18n import _
from crmcli.store.models import AuditEntry, Interaction, Purchase
from crmcli.store.models_imports import ImportRun

RUN = ImportRun.__table__
A = AuditEntry.__table__
P = Purchase.__table__
I = Interaction.__table__  # noqa: E741


def referrers(session: Session, ids: list[int], target: str, skip: set[str], run_id: int, *,
              first: bool = False) -> list[tuple[str, int]]:
    """(table, referenced id) for the rows outside import ``run_id`` that refer to one of ``ids`` (rows of the
    tables in ``skip`` do not count); with ``first``, only the first one found."""
    found: list[tuple[str, int]] = []
    for table, column in references(session, target):
        if table in skip:
            continue
        for part in chunked(ids):
            marks = ", ".join(str(int(i)) for i in part)
            where = f'"{column}" IN ({marks})'
            if table == target:  # a customer referring another / a refund of a sale: only outside the import
                where += f" AND (import_id IS NULL OR import_id != {int(run_id)})"
            sql = f'SELECT DISTINCT "{column}" FROM "{table}" WHERE {where}' + (" LIMIT 1" if first else "")
            found += [(table, int(r[0])) for r in removal.sql(session, sql)]
            if first and found:
                return found
    return found


def undo(store: Any, run_id: int) -> dict[str, Any]:
    """Undo import ``run_id`` (or finish an undo of it that was interrupted); see the module docstring."""
    with store.read() as session:
        run = _undoable(session, run_id)
        if run.status != "undoing":
            _refuse_if_used_or_changed(session, run)
    with store.write() as session:
        run = _undoable(session, run_id)  # again under the lock: another undo may have been quicker
        if run.status == "undoing":
            if rollback.alive(run, rollback.db_now(session)) and run.owner != rollback.owner():
                raise Conflict(_("Import #{id} is being undone by another crm process right now.").format(id=run_id),
                               hint=_("Wait for it to finish; `crm import history` shows its state."))
            session.execute(update(RUN).where(RUN.c.id == run_id).values(owner=rollback.owner(),
                                                                          undone_at=rollback.stamp(session)))
        else:
            session.execute(update(RUN).where(RUN.c.id == run_id).values(
                status="undoing", owner=rollback.owner(), undone_at=rollback.stamp(session), undo_cursor=None,
                undo_removed=0,
                undo_kept=0))
            audit.record(session, entity="import", entity_id=run_id, action="undo-start",
                         before={"status": run.status}, after={"status": "undoing"})
    done = finish(store, run_id)
    if done is None:
        raise CrmError(_("The undo of import #{id} was taken on by another crm command while it ran (it looked "
                         "stalled for more than {minutes} minutes); that command finishes it.").format(
                             id=run_id, minutes=int(rollback.STALE_AFTER.total_seconds() // 60)),
                       hint=_("See its state with `crm import history`."))
    return done


def resume(store: Any, run_id: int) -> dict[str, Any] | None:
    """Finish the undo of a run whose undoing process died; None when another process has taken it on."""
    with store.write() as session:
        run = session.execute(select(RUN).where(RUN.c.id == run_id)).first()
        if run is None or run.status != "undoing" or rollback.alive(run, rollback.db_now(session)):
            return None
        session.execute(update(RUN).where(RUN.c.id == run_id).values(owner=rollback.owner(),
                                                                      undone_at=rollback.stamp(session)))
    return finish(store, run_id)


def finish(store: Any, run_id: int) -> dict[str, Any] | None:
    """The steps of an ``undoing`` run this process owns, up to the end; None when another process took it on
    meanwhile (it looked stalled), which then finishes it."""
    with store.read() as session:
        run = session.execute(select(RUN).where(RUN.c.id == run_id)).one()
        found = removal.schema(session, run.kind)
    kept: list[int] = []
    points = 0
    while True:
        removal.pause()
        with store.write() as session:
            if not removal.heartbeat(session, run_id, "undone_at"):
                return None
            step = removal.step(session, run_id, found, floor=run.last_audit_id or 0, trail=True)
            if step.last:
                done = session.execute(select(RUN.c.undo_removed, RUN.c.undo_kept).where(RUN.c.id == run_id)).one()
                session.execute(update(RUN).where(RUN.c.id == run_id).values(
                    status="undone", undone_at=rollback.stamp(session), owner=None))
                audit.record(session, entity="import", entity_id=run_id, action="undo",
                             before={"status": "undoing"},
                             after={"status": "undone", "removed": done[0] or 0, "kept": done[1] or 0})
        kept += step.kept
        points += step.points
        if step.last:
            break
    return {"import_id": run_id, "kind": run.kind, "removed": int(done[0] or 0), "kept": sorted(kept),
            "points_entries_removed": points}


def _undoable(session: Session, run_id: int) -> Any:
    run = session.execute(select(RUN).where(RUN.c.id == run_id)).first()
    if run is None or run.status == "running":
        raise NotFound(_("No import #{id}.").format(id=run_id), hint=_("See them with `crm import history`."))
    if run.status == "undone":
        raise Conflict(_("Import #{id} was already undone on {at}.").format(
            id=run_id, at=f"{run.undone_at:%Y-%m-%d %H:%M} UTC"))
    return run


def _refuse_if_used_or_changed(session: Session, run: Any) -> None:
    table = removal.TABLES[run.kind]
    run_id = run.id
    ids = [r[0] for r in session.execute(select(table.c.id).where(table.c.import_id == run_id).order_by(table.c.id))]
    if not ids:
        return
    _check_changed(session, run, ids)
    if run.kind == "customers":
        _refuse_if_used(session, ids, "customer", OWN | DERIVED, run_id)
    elif run.kind == "purchases":
        _refuse_if_points_used(session, ids, run_id)
        _refuse_if_used(session, ids, "purchase", {"points_ledger"}, run_id)
    else:
        _refuse_if_used(session, ids, "interaction", set(), run_id)


def _check_changed(session: Session, run: Any, ids: list[int]) -> None:
    entity = removal.ENTITY[run.kind]
    last = run.last_audit_id or 0
    for part in chunked(ids):
        row = session.execute(select(A.c.entity_id, A.c.action, A.c.command).where(
            A.c.entity == entity, A.c.entity_id.in_(part), A.c.id > last).order_by(A.c.id).limit(1)).first()
        if row is not None:
            raise Conflict(_("Import #{id} cannot be undone: {what} was changed after it ({action}, by `{command}`).")
                           .format(id=run.id, what=_label(session, entity, int(row[0])), action=row[1],
                                   command=row[2]),
                           hint=_("Undo is only for imports whose records nobody has touched since; change or "
                                  "remove those records with the usual commands instead."))


def _refuse_if_used(session: Session, ids: list[int], target: str, skip: set[str], run_id: int) -> None:
    found = referrers(session, ids, target, skip, run_id, first=True)
    if found:
        table, ref = found[0]
        raise Conflict(_("Import #{id} cannot be undone: {what} is used by {table}.").format(
            id=run_id, what=_label(session, target, ref), table=table),
            hint=_("Undo is only for imports whose records nothing else refers to yet."))


def _label(session: Session, entity: str, entity_id: int) -> str:
    if entity == "customer":
        code = session.execute(select(C.c.code).where(C.c.id == entity_id)).scalar()
        return _("customer {code}").format(code=code or entity_id)
    return _("{entity} #{id}").format(entity=_(entity), id=entity_id)


def _refuse_if_points_used(session: Session, ids: list[int], run_id: int) -> None:
    """Points the purchase hooks wrote for these purchases may go with them only if no other command used them
    since (a redemption, an expiry ...), and none names them (points redeemed to pay for one). A refund in the
    same import reversing its sale's points is not such a use: both go."""
    if not any(t == "points_ledger" for t, _c in references(session, "purchase")):
        return
    used = removal.points_used(session, ids, run_id)
    if used:
        raise Conflict(_("Import #{id} cannot be undone: points earned on its purchases have been used, or points "
                         "were redeemed to pay for them (purchase #{purchase}).").format(id=run_id, purchase=min(used)),
                       hint=_("See them with `crm points history`; undo is only for imports nothing used yet."))
