"""`crm import undo ID`: remove the records one import created, in one transaction, or refuse and say why.

Refused when any of those records has since been changed (an audit row about it after the import's last
one) or used: a purchase, interaction, refund, survey invitation, greeting, points entry ... that points at
it. Derived rows that commands recompute (tier classes, churn scores) do not count as use and are removed
with the records. Points earned by imported purchases are removed with them unless those points were spent,
expired or otherwise used by a later ledger row. Updates an upsert made to existing customers are not
reverted (their before/after is in the audit trail).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text, update
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core.clock import utcnow
from crmcli.core.customers import C, CP, TAG, chunked
from crmcli.errors import Conflict, NotFound
from crmcli.i18n import _
from crmcli.store.models import AuditEntry, Consent, Interaction, Preference, Purchase
from crmcli.store.models_imports import ImportRun

RUN = ImportRun.__table__
A = AuditEntry.__table__
P = Purchase.__table__
I = Interaction.__table__  # noqa: E741
# A customer's own parts, removed with it.
OWN = {"contact_point", "consent", "preference", "customer_tag"}
# Rows recomputed by their commands (crm tier recompute, crm churn scan/score): not "use".
DERIVED = {"customer_class", "class_history", "churn_risk", "churn_score"}
UNDO_AUDIT_RANGE = 10_000  # removed customers per `import-undo` audit row


def references(session: Session, target: str) -> list[tuple[str, str]]:
    """(table, column) of every foreign key that points at ``target`` (SQLite's own schema, so tables that
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
            found += [(table, int(r[0])) for r in session.execute(text(sql))]
            if first and found:
                return found
    return found


def undo(session: Session, run_id: int) -> dict[str, Any]:
    run = session.execute(select(RUN).where(RUN.c.id == run_id)).mappings().first()
    if run is None or run["status"] == "running":
        raise NotFound(_("No import #{id}.").format(id=run_id), hint=_("See them with `crm import history`."))
    if run["status"] == "undone":
        raise Conflict(_("Import #{id} was already undone on {at}.").format(
            id=run_id, at=f"{run['undone_at']:%Y-%m-%d %H:%M} UTC"))
    table = {"customers": C, "purchases": P, "interactions": I}[run["kind"]]
    ids = [r[0] for r in session.execute(select(table.c.id).where(table.c.import_id == run_id).order_by(table.c.id))]
    if ids:
        _check_changed(session, run, ids)
        removed_points = 0
        if run["kind"] == "customers":
            _refuse_if_used(session, ids, "customer", OWN | DERIVED, run_id)
            _delete_derived(session, ids)
            for child in (CP, TAG, Consent.__table__, Preference.__table__):
                delete_in(session, child.name, "customer_id", ids)
        elif run["kind"] == "purchases":
            removed_points = _remove_points(session, ids, run_id)
            _refuse_if_used(session, ids, "purchase", set(), run_id)
        else:
            _refuse_if_used(session, ids, "interaction", set(), run_id)
        entity = {"customers": "customer", "purchases": "purchase", "interactions": "interaction"}[run["kind"]]
        # Refunds before their sales (a refund row points at its sale).
        if run["kind"] == "purchases":
            delete_in(session, "purchase", "id", ids, also="kind = 'refund'")
        delete_in(session, table.name, "id", ids)
        if entity == "customer":
            # Like the import's own `import-batch` rows: one row per range of removed customers, not one per
            # customer (100,000 hashed rows were most of an undo's time, under the write lock).
            audit.record_many(session, [{"entity": entity, "entity_id": None, "action": "import-undo",
                                         "after": {"import_id": run_id, "first_id": part[0], "last_id": part[-1],
                                                   "removed": len(part)}} for part in chunked(ids, UNDO_AUDIT_RANGE)])
    else:
        removed_points = 0
    now = utcnow()
    session.execute(update(RUN).where(RUN.c.id == run_id).values(status="undone", undone_at=now))
    audit.record(session, entity="import", entity_id=run_id, action="undo",
                 before={"status": run["status"]}, after={"status": "undone", "removed": len(ids)})
    return {"import_id": run_id, "kind": run["kind"], "removed": len(ids), "points_entries_removed": removed_points}


def _check_changed(session: Session, run: Any, ids: list[int]) -> None:
    entity = {"customers": "customer", "purchases": "purchase", "interactions": "interaction"}[run["kind"]]
    last = run["last_audit_id"] or 0
    for part in chunked(ids):
        row = session.execute(select(A.c.entity_id, A.c.action, A.c.command).where(
            A.c.entity == entity, A.c.entity_id.in_(part), A.c.id > last).order_by(A.c.id).limit(1)).first()
        if row is not None:
            raise Conflict(_("Import #{id} cannot be undone: {what} was changed after it ({action}, by `{command}`).")
                           .format(id=run["id"], what=_label(session, entity, int(row[0])), action=row[1],
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


def delete_in(session: Session, table: str, column: str, ids: list[int], *, also: str | None = None) -> None:
    """DELETE the rows whose ``column`` is one of ``ids`` (and ``also``, a fixed SQL condition), in chunks,
    last chunk first (refunds and referred customers come after what they point at). The ids are integers
    written into the SQL: binding 5,000 parameters through SQLAlchemy's expanding IN cost more than the delete."""
    extra = f" AND {also}" if also else ""
    for part in reversed(chunked(ids)):
        marks = ", ".join(str(int(i)) for i in part)
        session.execute(text(f'DELETE FROM "{table}" WHERE "{column}" IN ({marks}){extra}'))


def _delete_derived(session: Session, ids: list[int]) -> None:
    for table, column in references(session, "customer"):
        if table in DERIVED:
            delete_in(session, table, column, ids)


def _remove_points(session: Session, ids: list[int], run_id: int) -> int:
    """Ledger rows the purchase hook wrote for these purchases, if nothing used them since."""
    if session.get_bind().dialect.name == "sqlite":
        tables = {r[0] for r in session.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))}
    else:
        from sqlalchemy import inspect

        tables = set(inspect(session.connection()).get_table_names())
    if "points_ledger" not in tables:
        return 0
    ledger: list[int] = []
    for part in chunked(ids):
        marks = ", ".join(str(int(i)) for i in part)
        ledger += [int(r[0]) for r in session.execute(text(f"SELECT id FROM points_ledger WHERE purchase_id IN ({marks})"))]
    if not ledger:
        return 0
    for part in chunked(ledger):
        marks = ", ".join(str(int(i)) for i in part)
        used = session.execute(text(
            f"SELECT 1 FROM points_allocation WHERE (lot_id IN ({marks}) OR debit_id IN ({marks})) LIMIT 1")).first()
        later = session.execute(text(
            f"SELECT 1 FROM points_ledger WHERE ref_id IN ({marks}) AND id NOT IN ({marks}) LIMIT 1")).first()
        if used or later:
            raise Conflict(_("Import #{id} cannot be undone: points earned on its purchases have been used.").format(
                id=run_id), hint=_("See them with `crm points history`; undo is only for imports nothing used yet."))
    # The ledger is append-only (triggers, migration m0010) except while the unlock row exists: an undone
    # import never happened, so neither did the unused points its purchases earned.
    session.execute(text("INSERT INTO points_ledger_unlock (import_id) VALUES (:id)"), {"id": run_id})
    for part in chunked(ledger):
        marks = ", ".join(str(int(i)) for i in part)
        session.execute(text(f"DELETE FROM points_ledger WHERE id IN ({marks})"))
    session.execute(text("DELETE FROM points_ledger_unlock WHERE import_id = :id"), {"id": run_id})
    return len(ledger)



