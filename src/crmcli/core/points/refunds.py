"""Refunds: take back the points a sale earned, return the points that paid for it — each exactly once.

For a sale of amount A that earned E points, after refunds totalling R (cumulative, R ≤ A):
- earned points taken back so far   = ceil(E × R / A)   (the points kept, E − that, are rounded down);
- points-payments returned so far   = floor(Rd × R / A) for each redemption of Rd points linked to the sale.
Each refund row gets the difference between its cumulative figure and the previous refund's, under the
ledger keys ``reversal:<refund id>`` and ``restore:<refund id>:<redemption id>``, so settling a refund
twice (a re-run, a backfill) changes nothing. A full refund takes back exactly E and returns exactly Rd.

Where taken-back points come from (documented policy):
1. what is left of the sale's own lot (even while it is still locked);
2. points of that lot that already expired unused count as taken back (they left the balance already);
3. the customer's other lots, soonest-expiring first (FEFO);
4. any remainder is recorded as debt (the ``debt`` column), never as a negative balance; any points the
   customer gets later repay the debt first.
A full refund of a referred customer's first purchase also takes back the referral rewards it triggered.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from crmcli.core.context import StoreContext
from crmcli.core.points import ledger
from crmcli.core.points import rules as rules_mod
from crmcli.core.points.ledger import A, L
from crmcli.store.models import Purchase

P = Purchase.__table__


@dataclass
class _Op:
    kind: str  # restore | reversal
    customer_id: int
    points: int
    day: date
    key: str
    refund_id: int
    lot_id: int = 0  # reversal: the lot that granted the points
    redemption: Any = None  # restore: the redemption row
    detail: dict[str, Any] = field(default_factory=dict)


def reconcile(session: Session, sale_ids: Sequence[int], ctx: StoreContext) -> None:
    """Settle the points of every refund of these sales that is not settled yet.

    Set-based for bulk imports: a handful of queries for all the sales, the reversals computed in memory
    against the customers' lots and written with one executemany (restores, which are rare, are written as
    they come, so that the reversals after them see the returned points).
    """
    ops = _plan(session, sorted({int(i) for i in sale_ids}))
    if not ops:
        return
    today = ctx.today
    customers = sorted({op.customer_id for op in ops})
    from crmcli.core.points.expiry import expire

    # Settle lots past their expiry first, so "already expired" is exact and dead lots are not used.
    expire(session, today, customer_ids=customers)
    lots = _lots_of(session, customers)
    own_ids = sorted({op.lot_id for op in ops if op.kind == "reversal"})
    expired_unused, waived = _expired_and_waived(session, own_ids)
    rows: list[dict[str, Any]] = []
    allocations: list[list[tuple[int, int]]] = []
    for op in ops:
        if op.kind == "restore":
            if rows:
                ledger.append(session, rows, allocations=allocations)
                rows, allocations = [], []
            _restore(session, op)
            lots[op.customer_id] = ledger.lots(session, op.customer_id, with_empty=True)
            continue
        mine = lots.get(op.customer_id, [])
        own = next(lot for lot in mine if lot.id == op.lot_id)
        from_own = min(op.points, own.remaining) if own.alive(today) else 0
        taken: list[tuple[ledger.Lot, int]] = [(own, from_own)] if from_own else []
        own.remaining -= from_own
        short = op.points - from_own
        waive = min(short, max(expired_unused.get(op.lot_id, 0) - waived.get(op.lot_id, 0), 0))
        waived[op.lot_id] = waived.get(op.lot_id, 0) + waive
        short -= waive
        more, debt = ledger.take([lot for lot in mine if lot.id != own.id and lot.remaining > 0 and lot.alive(today)],
                                 short)
        taken += more
        rows.append({"customer_id": op.customer_id, "kind": "reversal", "points": -sum(n for _lot, n in taken),
                     "debt": debt, "effective_on": op.day, "purchase_id": op.refund_id, "ref_id": op.lot_id,
                     "key": op.key, "detail": {**op.detail, "reversed": op.points, "from_lot": from_own,
                                               "already_expired": waive,
                                               "from_other_lots": sum(n for _lot, n in more), "debt": debt}})
        allocations.append([(lot.id, n) for lot, n in taken])
    ledger.append(session, rows, allocations=allocations)


def _plan(session: Session, sale_ids: list[int]) -> list[_Op]:
    """What each unsettled refund of these sales owes, in sale and refund order (restores before reversals)."""
    sales: dict[int, Any] = {}
    refunds: dict[int, list[Any]] = {}
    linked: dict[int, list[Any]] = {}
    for part in ledger.chunks(sale_ids):
        ids = list(part)
        sales.update({r.id: r for r in session.execute(
            select(P.c.id, P.c.customer_id, P.c.amount_minor).where(P.c.id.in_(ids), P.c.kind == "sale"))})
        for r in session.execute(select(P.c.id, P.c.refund_of_id, P.c.amount_minor, P.c.purchased_on)
                                 .where(P.c.refund_of_id.in_(ids), P.c.kind == "refund").order_by(P.c.id)):
            refunds.setdefault(r.refund_of_id, []).append(r)
        for r in session.execute(select(L.c.id, L.c.customer_id, L.c.kind, L.c.points, L.c.purchase_id)
                                 .where(L.c.purchase_id.in_(ids), L.c.kind.in_(("earn", "redeem", "referral")))
                                 .order_by(L.c.id)).mappings():
            linked.setdefault(r["purchase_id"], []).append(r)
    wanted: list[_Op] = []
    for sale_id in sale_ids:
        sale = sales.get(sale_id)
        mine = linked.get(sale_id, [])
        if sale is None or not refunds.get(sale_id) or not mine or int(sale.amount_minor) <= 0:
            continue
        amount = int(sale.amount_minor)
        earn = next((r for r in mine if r["kind"] == "earn"), None)
        redeems = [r for r in mine if r["kind"] == "redeem"]
        cumulative = 0
        for refund in refunds[sale_id]:
            before = cumulative
            cumulative = min(amount, cumulative + int(refund.amount_minor))
            day = refund.purchased_on
            for d in redeems:
                paid = -int(d["points"])
                back = paid * cumulative // amount - paid * before // amount
                if back > 0:
                    wanted.append(_Op("restore", int(d["customer_id"]), back, day, f"restore:{refund.id}:{d['id']}",
                                      refund.id, redemption=d))
            if earn is not None:
                earned = int(earn["points"])
                take = -(-earned * cumulative // amount) + (-earned * before // amount)
                if take > 0:
                    wanted.append(_Op("reversal", int(earn["customer_id"]), take, day, f"reversal:{refund.id}",
                                      refund.id, lot_id=int(earn["id"]),
                                      detail={"sale": sale_id, "refunded_minor": int(refund.amount_minor),
                                              "refunded_total_minor": cumulative, "sale_minor": amount}))
        if cumulative >= amount:
            last = refunds[sale_id][-1]
            for r in mine:
                if r["kind"] == "referral":
                    wanted.append(_Op("reversal", int(r["customer_id"]), int(r["points"]), last.purchased_on,
                                      f"reversal:lot:{r['id']}", last.id, lot_id=int(r["id"]),
                                      detail={"sale": sale_id, "referral": True}))
    done = ledger.existing_keys(session, [op.key for op in wanted])
    return [op for op in wanted if op.key not in done]


def _lots_of(session: Session, customer_ids: list[int]) -> dict[int, list[ledger.Lot]]:
    used = ledger._used()
    out: dict[int, list[ledger.Lot]] = {}
    for part in ledger.chunks(customer_ids):
        stmt = (select(L.c.id, L.c.customer_id, L.c.kind, L.c.points, (L.c.points - used).label("remaining"),
                       L.c.effective_on, L.c.expires_on, L.c.spendable_on, L.c.purchase_id)
                .where(L.c.customer_id.in_(list(part)), L.c.points > 0))
        for row in session.execute(stmt).mappings():
            out.setdefault(int(row["customer_id"]), []).append(ledger.Lot(**row))
    for found in out.values():
        found.sort(key=ledger.fefo_key)
    return out


def _expired_and_waived(session: Session, lot_ids: list[int]) -> tuple[dict[int, int], dict[int, int]]:
    """Per lot: points that expired unused, and how many of them earlier reversals already counted."""
    expired: dict[int, int] = {}
    waived: dict[int, int] = {}
    D = L.alias("d")
    for part in ledger.chunks(lot_ids):
        ids = list(part)
        expired.update({int(lot): int(n) for lot, n in session.execute(
            select(A.c.lot_id, func.sum(A.c.points)).select_from(A.join(D, D.c.id == A.c.debit_id))
            .where(A.c.lot_id.in_(ids), D.c.kind == "expire").group_by(A.c.lot_id))})
        for lot, detail in session.execute(select(L.c.ref_id, L.c.detail)
                                           .where(L.c.ref_id.in_(ids), L.c.kind == "reversal")):
            waived[int(lot)] = waived.get(int(lot), 0) + int(json.loads(detail or "{}").get("already_expired", 0))
    return expired, waived


def _restore(session: Session, op: _Op) -> None:
    """Return points of a redemption that paid for a refunded sale, as a new lot.

    The lot expires on the latest expiry date among the lots the redemption used (never, if one of them never
    expires); when that date has passed by the refund date, the points get a fresh expiry as if earned then.
    """
    used = session.execute(select(L.c.expires_on).select_from(A.join(L, L.c.id == A.c.lot_id))
                           .where(A.c.debit_id == op.redemption["id"])).scalars().all()
    expires: date | None = None if (not used or any(d is None for d in used)) else max(used)
    fresh = False
    if expires is not None and expires < op.day:
        expires = rules_mod.expiry_date(rules_mod.load(session).expiry, op.day)
        fresh = True
    ledger.credit_rows(session, [{
        "customer_id": op.customer_id, "kind": "restore", "points": op.points, "effective_on": op.day,
        "expires_on": expires, "spendable_on": op.day, "purchase_id": op.refund_id,
        "ref_id": int(op.redemption["id"]), "key": op.key,
        "detail": {"redemption": int(op.redemption["id"]), "fresh_expiry": fresh}}])
