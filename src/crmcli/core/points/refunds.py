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


def reconcile(session: Session, sale_ids: Sequence[int], ctx: StoreContext) -> None:
    """Settle the points of every refund of these sales that is not settled yet."""
    for sale_id in sale_ids:
        _reconcile_sale(session, int(sale_id), ctx)


def _reconcile_sale(session: Session, sale_id: int, ctx: StoreContext) -> None:
    sale = session.execute(select(P.c.id, P.c.customer_id, P.c.amount_minor).where(P.c.id == sale_id)).one()
    amount = int(sale.amount_minor)
    refunds = session.execute(select(P.c.id, P.c.amount_minor, P.c.purchased_on)
                              .where(P.c.refund_of_id == sale_id, P.c.kind == "refund").order_by(P.c.id)).all()
    if not refunds or amount <= 0:
        return
    linked = session.execute(select(L.c.id, L.c.customer_id, L.c.kind, L.c.points, L.c.key)
                             .where(L.c.purchase_id == sale_id, L.c.kind.in_(("earn", "redeem", "referral")))
                             .order_by(L.c.id)).mappings().all()
    earn = next((r for r in linked if r["kind"] == "earn"), None)
    redeems = [r for r in linked if r["kind"] == "redeem"]
    referrals = [r for r in linked if r["kind"] == "referral"]
    if earn is None and not redeems and not referrals:
        return
    keys = [f"reversal:{r.id}" for r in refunds] + [f"restore:{r.id}:{d['id']}" for r in refunds for d in redeems]
    keys += [f"reversal:lot:{r['id']}" for r in referrals]
    done = ledger.existing_keys(session, keys)
    cumulative = 0
    for refund in refunds:
        before = cumulative
        cumulative = min(amount, cumulative + int(refund.amount_minor))
        day = refund.purchased_on
        for d in redeems:
            paid = -int(d["points"])
            back = paid * cumulative // amount - paid * before // amount
            key = f"restore:{refund.id}:{d['id']}"
            if back > 0 and key not in done:
                _restore(session, d, back, day, refund.id, key, ctx)
        if earn is not None:
            earned = int(earn["points"])
            take = -(-earned * cumulative // amount) + (-earned * before // amount)
            key = f"reversal:{refund.id}"
            if take > 0 and key not in done:
                reverse(session, int(earn["customer_id"]), int(earn["id"]), take, day, ctx, key=key,
                        purchase_id=refund.id, detail={"sale": sale_id, "refunded_minor": int(refund.amount_minor),
                                                       "refunded_total_minor": cumulative, "sale_minor": amount})
    if cumulative >= amount:
        for r in referrals:
            key = f"reversal:lot:{r['id']}"
            if key not in done:
                reverse(session, int(r["customer_id"]), int(r["id"]), int(r["points"]), refunds[-1].purchased_on, ctx,
                        key=key, purchase_id=refunds[-1].id, detail={"sale": sale_id, "referral": True})


def _restore(session: Session, redemption: Any, points: int, day: date, refund_id: int, key: str,
             ctx: StoreContext) -> None:
    """Return ``points`` of a redemption that paid for a refunded sale, as a new lot.

    The lot expires on the latest expiry date among the lots the redemption used (never, if one of them never
    expires); when that date has passed by the refund date, the points get a fresh expiry as if earned then.
    """
    used = session.execute(select(L.c.expires_on).select_from(A.join(L, L.c.id == A.c.lot_id))
                           .where(A.c.debit_id == redemption["id"])).scalars().all()
    expires: date | None = None if (not used or any(d is None for d in used)) else max(used)
    fresh = False
    if expires is not None and expires < day:
        expires = rules_mod.expiry_date(rules_mod.load(session).expiry, day)
        fresh = True
    ledger.credit_rows(session, [{
        "customer_id": int(redemption["customer_id"]), "kind": "restore", "points": points, "effective_on": day,
        "expires_on": expires, "spendable_on": day, "purchase_id": refund_id, "ref_id": int(redemption["id"]),
        "key": key, "detail": {"redemption": int(redemption["id"]), "fresh_expiry": fresh}}])
    del ctx


def reverse(session: Session, customer_id: int, lot_id: int, points: int, day: date, ctx: StoreContext, *,
            key: str, purchase_id: int | None, detail: dict[str, Any]) -> int:
    """Take back ``points`` that lot ``lot_id`` granted (policy in the module docstring); returns the row id."""
    from crmcli.core.points.expiry import expire

    today = ctx.today
    # Settle lots that are past their expiry first, so "already expired" is exact and dead lots are not used.
    expire(session, today, customer_id=customer_id)
    everything = ledger.lots(session, customer_id, with_empty=True)
    own = next(lot for lot in everything if lot.id == lot_id)
    from_own = min(points, own.remaining) if own.alive(today) else 0
    allocations: list[tuple[ledger.Lot, int]] = [(own, from_own)] if from_own else []
    own.remaining -= from_own
    short = points - from_own
    expired_unused = int(session.execute(
        select(func.coalesce(func.sum(A.c.points), 0)).select_from(A.join(L, L.c.id == A.c.debit_id))
        .where(A.c.lot_id == lot_id, L.c.kind == "expire")).scalar() or 0)
    waived_before = sum(int(json.loads(d or "{}").get("already_expired", 0)) for (d,) in session.execute(
        select(L.c.detail).where(L.c.ref_id == lot_id, L.c.kind == "reversal")))
    waived = min(short, max(expired_unused - waived_before, 0))
    short -= waived
    others = [lot for lot in everything if lot.id != lot_id and lot.remaining > 0 and lot.alive(today)]
    more, debt = ledger.take(others, short)
    allocations += more
    info = {**detail, "reversed": points, "from_lot": from_own, "already_expired": waived,
            "from_other_lots": sum(n for _lot, n in more), "debt": debt}
    return ledger.debit(session, customer_id, "reversal", allocations, day, debt=debt, purchase_id=purchase_id,
                        ref_id=lot_id, key=key, detail=info)
