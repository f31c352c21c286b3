"""Expiry (idempotent, cron-safe), upcoming expiries for reminders, and the points liability.

A lot with ``expires_on = D`` can be used through D and is expired from D + 1: ``expire(as_of)`` writes one
``expire`` row per lot with points left and ``expires_on < as_of``, effective on D + 1, under the ledger
key ``expire:<lot id>``. Running it again finds nothing left to expire; even before it runs, expired points
are never spendable (balances and redemptions only count lots that are alive on their date).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core.clock import utcnow
from crmcli.core.command import current_command
from crmcli.core.context import StoreContext
from crmcli.core.money import precision
from crmcli.core.points import ledger
from crmcli.core.points import rules as rules_mod
from crmcli.core.points.ledger import A, L, _used, chunks
from crmcli.store.bulk import insert_rows
from crmcli.store.models import AuditEntry, Customer

if TYPE_CHECKING:
    from crmcli.store.engine import Store

C = Customer.__table__


def overdue(session: Session, as_of: date, *, customer_id: int | None = None,
            customer_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Lots with points left whose last valid day is before ``as_of`` (of everyone, one or some customers),
    soonest expiry first (per few hundred customers when some are given): [{id, customer_id, expires_on,
    points}]."""
    if customer_id is not None:
        customer_ids = [customer_id]
    if customer_ids is None:
        return _overdue_rows(session, _overdue_stmt(as_of))
    found: list[dict[str, Any]] = []
    for part in chunks(sorted(set(customer_ids))):
        found.extend(_overdue_rows(session, _overdue_stmt(as_of, list(part))))
    return found


def _overdue_stmt(as_of: date, customer_ids: list[int] | None = None) -> Any:
    """One aggregate: the due lots' points minus what their allocations took, with the lots' total use
    summed once per lot (a LEFT JOIN of the grouped allocations, not a correlated sum per lot and per
    condition)."""
    due = select(L.c.id, L.c.customer_id, L.c.expires_on, L.c.points).where(L.c.points > 0, L.c.expires_on < as_of)
    if customer_ids is not None:
        due = due.where(L.c.customer_id.in_(customer_ids))
    due = due.subquery("due")
    used = (select(A.c.lot_id, func.sum(A.c.points).label("used")).where(A.c.lot_id.in_(select(due.c.id)))
            .group_by(A.c.lot_id).subquery("used"))
    left = due.c.points - func.coalesce(used.c.used, 0)
    return (select(due.c.id, due.c.customer_id, due.c.expires_on, left.label("points"))
            .select_from(due.outerjoin(used, used.c.lot_id == due.c.id))
            .where(left > 0).order_by(due.c.expires_on, due.c.id))


def _overdue_rows(session: Session, stmt: Any) -> list[dict[str, Any]]:
    return [{"id": int(i), "customer_id": int(c), "expires_on": d, "points": int(n)}
            for i, c, d, n in session.execute(stmt)]


def fingerprint(session: Session) -> tuple[Any, ...]:
    """What expiry depends on: the ledger's and the allocations' newest ids and row counts. Rows are only
    ever added (or removed whole by `crm import undo`), so an unchanged fingerprint means the same overdue
    lots with the same points left."""
    ledger_mark = session.execute(select(func.max(L.c.id), func.count())).one()
    alloc_mark = session.execute(select(func.max(A.c.id), func.count()).select_from(A)).one()
    return (*ledger_mark, *alloc_mark)


@dataclass
class Plan:
    """The overdue lots and, computed before the write lock is taken, their audit payloads."""

    found: list[dict[str, Any]]
    # Per row: (after JSON, salt, digest, the end of its chain-hash body after the entity id).
    payloads: list[tuple[str, str, str, str]] = field(default_factory=list)


def plan(session: Session, as_of: date, *, customer_id: int | None = None,
         customer_ids: Sequence[int] | None = None) -> Plan:
    found = overdue(session, as_of, customer_id=customer_id, customer_ids=customer_ids)
    payloads = []
    for r in found:
        # audit.dumps(_after(r)) written out (it canonicalises a dict per row, the run's largest cost);
        # checked against it on the first row.
        after = (f'{{"debt": 0, "effective_on": "{r["expires_on"] + timedelta(days=1)}", "expires_on": null, '
                 f'"key": "expire:{r["id"]}", "kind": "expire", "lots": {{"{r["id"]}": {r["points"]}}}, '
                 f'"points": {-r["points"]}, "purchase_id": null, "reason": null, "ref_id": {r["id"]}, '
                 f'"spendable_on": null}}')
        salt = secrets.token_hex(16)
        digest = audit.payload_digest(salt, None, after)
        tail = json.dumps([r["customer_id"], "expire", "sha256:" + digest], ensure_ascii=False)[1:]
        payloads.append((after, salt, digest, tail))
    assert not found or payloads[0][0] == audit.dumps(_after(found[0])), "audit.dumps changed its form"
    return Plan(found, payloads)


def _after(r: dict[str, Any]) -> dict[str, Any]:
    """The audit payload of lot ``r``'s expire row (the fields ledger.append records)."""
    return {"kind": "expire", "points": -r["points"], "debt": 0, "effective_on": r["expires_on"] + timedelta(days=1),
            "expires_on": None, "spendable_on": None, "purchase_id": None, "ref_id": r["id"], "reason": None,
            "key": f"expire:{r['id']}", "lots": {str(r["id"]): r["points"]}}


def expire(session: Session, as_of: date, *, customer_id: int | None = None,
           customer_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Expire every overdue lot (of everyone, one or some customers) in the caller's write transaction;
    returns what was expired."""
    todo = plan(session, as_of, customer_id=customer_id, customer_ids=customer_ids)
    write(session, todo)
    return todo.found


#: SQLite page cache (KiB) while the debits are written: the default 2 MB spills the ledger's six indexes
#: to the WAL and reads them back many times over on a large run (twice the time at 50,000 lots).
WRITE_CACHE_KIB = 128 * 1024


def write(session: Session, todo: Plan) -> None:
    """The ``expire`` debits of ``todo.found``, each taking all that is left of its lot, with their allocations
    and hash-chained audit rows: three tuple executemany calls and one range query, whatever their number."""
    found = todo.found
    if not found:
        return
    connection = session.connection()
    sqlite = connection.dialect.name == "sqlite"
    if sqlite and len(found) > 1000:
        before = connection.exec_driver_sql("PRAGMA cache_size").scalar()
        connection.exec_driver_sql(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")
    try:
        _write(session, todo)
    finally:
        if sqlite and len(found) > 1000:
            connection.exec_driver_sql(f"PRAGMA cache_size = {int(before)}")


def _write(session: Session, todo: Plan) -> None:
    found = todo.found
    now = utcnow()
    who = audit.actor()
    columns = ("customer_id", "kind", "points", "debt", "effective_on", "created_at", "ref_id", "actor", "key")
    day_after: dict[date, date] = {}
    rows = []
    for r in found:
        day = r["expires_on"]
        effective = day_after.get(day) or day_after.setdefault(day, day + timedelta(days=1))
        rows.append((r["customer_id"], "expire", -r["points"], 0, effective, now, r["id"], who, f"expire:{r['id']}"))
    ids = ledger.insert_keyed(session, columns, rows, key_index=8)
    insert_rows(session, A, ("debit_id", "lot_id", "points"),
                [(debit_id, r["id"], r["points"]) for debit_id, r in zip(ids, found)])
    if audit.spool.get() is not None:  # an import collecting its audit entries takes them as entries
        audit.record_many(session, [{"entity": "points_ledger", "entity_id": debit_id, "customer_id": r["customer_id"],
                                     "action": "expire", "after": _after(r)} for debit_id, r in zip(ids, found)])
        return
    # audit.record_many's rows, with the payloads (their JSON, salts and digests) computed before the lock.
    # The chain-hash body of a row is a JSON list that starts with the same four values in every row and
    # ends with values known before the lock: only the entity id is put in between here.
    command = current_command.get()
    prev = audit.head(session)[1]
    head = json.dumps([now.isoformat(), who, command, "points_ledger"], ensure_ascii=False)[:-1] + ", "
    trail = []
    for debit_id, r, (after, salt, digest, tail) in zip(ids, found, todo.payloads, strict=True):
        link = hashlib.sha256(f"{prev}{head}{debit_id}, {tail}".encode()).hexdigest()
        trail.append((now, who, command, "points_ledger", debit_id, r["customer_id"], "expire", None, after, salt,
                      digest, prev, link))
        prev = link
    first = trail[0]
    # The same hash as audit.chain_hash, or the trail would not verify: checked on the first row.
    assert first[-1] == audit.chain_hash(first[-2], at=now, actor=who, command=command, entity="points_ledger",
                                         entity_id=first[4], customer_id=first[5], action="expire",
                                         digest=first[10]), "audit.chain_hash changed its body"
    insert_rows(session, AuditEntry.__table__, _AUDIT_COLUMNS, trail)


_AUDIT_COLUMNS = ("at", "actor", "command", "entity", "entity_id", "customer_id", "action", "before", "after",
                  "payload_salt", "payload_digest", "prev_hash", "hash")


#: How many times expire_in_store computes again outside the lock when the ledger changed meanwhile, before
#: it computes under the lock (a store so busy that the ledger changes during every computation).
ATTEMPTS = 3


def expire_in_store(store: Store, as_of: date, *, dry_run: bool = False,
                    people: Callable[[Session, list[int]], dict[int, Any]] | None = None
                    ) -> tuple[list[dict[str, Any]], dict[int, Any]]:
    """Expire every overdue lot as one all-or-nothing transaction that holds the write lock only to write.

    The overdue lots are found in a read transaction (other commands keep writing meanwhile); the write
    transaction then checks under the lock that the ledger is as it was read (``fingerprint``) and writes
    the debits, else computes again. Returns the expired rows and ``people(session, customer ids)`` (read
    with them, for the report).
    """
    todo = Plan([])
    extra: dict[int, Any] = {}

    def compute(session: Session) -> None:
        nonlocal todo, extra
        todo = plan(session, as_of)
        extra = people(session, sorted({r["customer_id"] for r in todo.found})) if people else {}

    for _attempt in range(ATTEMPTS):
        with store.read() as session:
            mark = fingerprint(session)
            compute(session)
        if dry_run or not todo.found:
            return todo.found, extra
        with store.write() as session:
            session.connection()  # BEGIN IMMEDIATE: take the lock before comparing
            if fingerprint(session) == mark:
                write(session, todo)
                return todo.found, extra
    with store.write() as session:
        compute(session)
        write(session, todo)
    return todo.found, extra


def expiring(session: Session, ctx: StoreContext, within_days: int) -> list[dict[str, Any]]:
    """Who loses how many points when, from today through today + ``within_days`` (live customers only)."""
    from crmcli.core.customers import primary_contacts

    today = ctx.today
    until = today + timedelta(days=within_days)
    used = _used()
    stmt = (select(L.c.customer_id, L.c.expires_on, func.sum(L.c.points - used).label("points"))
            .join(C, C.c.id == L.c.customer_id)
            .where(L.c.points > 0, L.c.expires_on >= today, L.c.expires_on <= until, L.c.points - used > 0,
                   C.c.deleted_at.is_(None), C.c.erased_at.is_(None))
            .group_by(L.c.customer_id, L.c.expires_on).order_by(L.c.expires_on, L.c.customer_id))
    rows = [dict(r) for r in session.execute(stmt).mappings()]
    ids = sorted({r["customer_id"] for r in rows})
    people: dict[int, Any] = {}
    for part in chunks(ids):
        people.update({r.id: r for r in session.execute(
            select(C.c.id, C.c.code, C.c.name).where(C.c.id.in_(list(part))))})
    contacts = primary_contacts(session, ids)
    balances = spendable_many(session, ids, today)
    out = []
    for r in rows:
        person = people[r["customer_id"]]
        out.append({"code": person.code, "name": person.name, "phone": contacts[r["customer_id"]].get("phone"),
                    "email": contacts[r["customer_id"]].get("email"), "expires_on": r["expires_on"],
                    "days_left": (r["expires_on"] - today).days, "points": int(r["points"]),
                    "balance": balances.get(r["customer_id"], 0)})
    return out


def spendable_many(session: Session, customer_ids: list[int], day: date) -> dict[int, int]:
    """{customer_id: live points (spendable + locked)} on ``day``."""
    used = _used()
    out: dict[int, int] = {}
    for part in chunks(customer_ids):
        stmt = (select(L.c.customer_id, func.sum(L.c.points - used))
                .where(L.c.customer_id.in_(list(part)), L.c.points > 0, ledger.alive_condition(day))
                .group_by(L.c.customer_id))
        out.update({int(c): int(n or 0) for c, n in session.execute(stmt)})
    return out


def liability(session: Session, ctx: StoreContext) -> dict[str, Any]:
    """Outstanding points on ``ctx.today`` (live: not expired) and their value at the redemption rate.

    Computed from the ledger as it stood that day (rows effective on or before it), so an as-of date in the
    past gives that day's figure whether or not `crm points expire` had run.
    """
    day = ctx.today
    remaining = ledger.remaining_at(day)
    lots = (select(L.c.customer_id, L.c.spendable_on, L.c.expires_on, remaining.label("remain"))
            .where(L.c.points > 0, L.c.effective_on <= day).subquery())
    is_alive = (lots.c.expires_on.is_(None)) | (lots.c.expires_on >= day)
    unlocked = (lots.c.spendable_on.is_(None)) | (lots.c.spendable_on <= day)
    row = session.execute(select(
        func.coalesce(func.sum(case((is_alive, lots.c.remain), else_=0)), 0).label("outstanding"),
        func.coalesce(func.sum(case((is_alive & unlocked, lots.c.remain), else_=0)), 0).label("spendable"),
        func.coalesce(func.sum(case((is_alive, 0), else_=lots.c.remain)), 0).label("overdue"),
        func.count(func.distinct(case((is_alive & (lots.c.remain > 0), lots.c.customer_id), else_=None))).label("customers"),
        func.coalesce(func.sum(case((is_alive & (lots.c.expires_on <= day + timedelta(days=30)), lots.c.remain),
                                    else_=0)), 0).label("expiring_30d"),
    )).one()
    debt = int(session.execute(select(func.coalesce(func.sum(L.c.debt), 0)).where(L.c.effective_on <= day)).scalar() or 0)
    rules = rules_mod.load(session)
    outstanding = int(row.outstanding)
    value = value_minor(outstanding, rules.redemption_value, ctx.currency)
    return {"as_of": day, "outstanding": outstanding, "spendable": int(row.spendable),
            "locked": outstanding - int(row.spendable), "overdue": int(row.overdue), "customers": int(row.customers),
            "expiring_30d": int(row.expiring_30d), "debt": debt, "value_per_point": str(rules.redemption_value),
            "value_minor": value}


def value_minor(points: int, per_point: Decimal, currency: str) -> int:
    digits = precision(currency)
    return int((Decimal(points) * per_point).scaleb(digits).to_integral_value(rounding=ROUND_HALF_UP))
