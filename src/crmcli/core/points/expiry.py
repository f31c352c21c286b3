"""Expiry (idempotent, cron-safe), upcoming expiries for reminders, and the points liability.

A lot with ``expires_on = D`` can be used through D and is expired from D + 1: ``expire(as_of)`` writes one
``expire`` row per lot with points left and ``expires_on < as_of``, effective on D + 1, under the ledger
key ``expire:<lot id>``. Running it again finds nothing left to expire; even before it runs, expired points
are never spendable (balances and redemptions only count lots that are alive on their date).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import case, func, select
from sqlmodel import Session

from crmcli.core.context import StoreContext
from crmcli.core.money import precision
from crmcli.core.points import ledger
from crmcli.core.points import rules as rules_mod
from crmcli.core.points.ledger import L, _used, chunks
from crmcli.store.models import Customer

C = Customer.__table__


def overdue(session: Session, as_of: date, *, customer_id: int | None = None,
            customer_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Lots with points left whose last valid day is before ``as_of`` (of everyone, one or some customers)."""
    used = _used()
    stmt = (select(L.c.id, L.c.customer_id, L.c.expires_on, (L.c.points - used).label("points"))
            .where(L.c.points > 0, L.c.expires_on < as_of, L.c.points - used > 0).order_by(L.c.expires_on, L.c.id))
    if customer_id is not None:
        customer_ids = [customer_id]
    if customer_ids is None:
        return [dict(r) for r in session.execute(stmt).mappings()]
    found: list[dict[str, Any]] = []
    for part in chunks(sorted(set(customer_ids))):
        found.extend(dict(r) for r in session.execute(stmt.where(L.c.customer_id.in_(list(part)))).mappings())
    return found


def expire(session: Session, as_of: date, *, customer_id: int | None = None,
           customer_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Expire every overdue lot (of everyone, one or some customers); returns what was expired."""
    found = overdue(session, as_of, customer_id=customer_id, customer_ids=customer_ids)
    for part in chunks(found, 1000):
        rows = [{"customer_id": r["customer_id"], "kind": "expire", "points": -int(r["points"]),
                 "effective_on": r["expires_on"] + timedelta(days=1), "ref_id": r["id"], "key": f"expire:{r['id']}"}
                for r in part]
        ledger.append(session, rows, allocations=[[(r["id"], int(r["points"]))] for r in part])
    return found


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
