"""Earning points on purchases (the purchase hook), referral rewards, backfill and birthday bonuses.

The hook runs in the purchase's own transaction, for one purchase (`crm purchase add`) or thousands (an
import): a few set-based queries for the whole batch and one executemany for the new ledger rows.
Each sale earns at most once (ledger key ``earn:<purchase id>``); each referred customer triggers the
referral reward at most once (keys ``referral:<customer>`` and ``referral-new:<customer>``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, extract, func, select
from sqlmodel import Session

from crmcli.core import hooks
from crmcli.core.context import StoreContext
from crmcli.core.money import precision
from crmcli.core.points import ledger
from crmcli.core.points import rules as rules_mod
from crmcli.core.points.ledger import L, chunks
from crmcli.core.points.rules import Rules
from crmcli.errors import Conflict
from crmcli.i18n import _
from crmcli.store.models import Customer, Purchase

if TYPE_CHECKING:
    from crmcli.store.engine import Store

P = Purchase.__table__
C = Customer.__table__


def on_purchases(session: Session, purchase_ids: Sequence[int], ctx: StoreContext) -> None:
    """hooks.PURCHASE_HOOKS entry: earn on new sales, reverse/return points on new refunds."""
    ids = sorted({int(i) for i in purchase_ids})
    if not ids:
        return
    sales: list[int] = []
    refunded: set[int] = set()
    rules = rules_mod.load(session)
    stmt = select(P.c.id, P.c.kind, P.c.refund_of_id)
    if not rules.enabled:  # then only the refunds among them matter (a sale-only import batch reads nothing)
        stmt = stmt.where(P.c.kind != "sale", P.c.refund_of_id.is_not(None))
    if ids[-1] - ids[0] + 1 == len(ids):  # an import's batch: one id range, not thousands of bound parameters
        parts = [stmt.where(P.c.id.between(ids[0], ids[-1]))]
    else:
        parts = [stmt.where(P.c.id.in_(list(part))) for part in chunks(ids)]
    for part in parts:
        for pid, kind, refund_of in session.execute(part):
            if kind == "sale":
                sales.append(int(pid))
            elif refund_of is not None:
                refunded.add(int(refund_of))
    if rules.enabled and sales:
        earn_sales(session, sales, rules, ctx)
    if refunded:
        from crmcli.core.points.refunds import reconcile

        # Refunds are settled even when earning is switched off: points once earned must come back.
        reconcile(session, sorted(refunded), ctx)


@dataclass
class EarnReport:
    purchases: int = 0
    points: int = 0
    referrals: int = 0
    referral_points: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


def _classifier(session: Session) -> Any:
    if not hooks.CLASSIFICATION:
        return None
    fn = hooks.load(hooks.CLASSIFICATION)
    cache: dict[int, Any] = {}

    def classify(customer_id: int) -> Any:
        if customer_id not in cache:
            cache[customer_id] = fn(session, customer_id)
        return cache[customer_id]
    return classify


def _lot_dates(rules: Rules, start: date) -> dict[str, Any]:
    return {"effective_on": start, "spendable_on": start + timedelta(days=rules.lock_days),
            "expires_on": rules_mod.expiry_date(rules.expiry, start)}


def earn_sales(session: Session, sale_ids: Sequence[int], rules: Rules, ctx: StoreContext, *,
               start: date | None = None) -> EarnReport:
    """Earn points for these sales (those not earned yet) and grant due referral rewards.

    ``start`` (backfill --from-today) starts the lock and expiry clocks on that date instead of the sale's.
    """
    report = EarnReport()
    digits = precision(ctx.currency)
    classify = _classifier(session)
    new_rows: list[dict[str, Any]] = []
    sale_rows: list[Any] = []
    for part in chunks(sorted(set(sale_ids))):
        sale_rows.extend(session.execute(
            select(P.c.id, P.c.customer_id, P.c.amount_minor, P.c.purchased_on, P.c.category, C.c.birthday,
                   C.c.referred_by_id)
            .join(C, C.c.id == P.c.customer_id)
            .where(P.c.id.in_(list(part)), P.c.kind == "sale")).mappings().all())
    done = ledger.existing_keys(session, [f"earn:{r['id']}" for r in sale_rows])
    for r in sale_rows:
        if f"earn:{r['id']}" in done:
            continue
        birthday_month = r["birthday"] is not None and r["birthday"].month == r["purchased_on"].month
        earning = rules_mod.earn_for(rules, amount_minor=r["amount_minor"], currency_digits=digits,
                                     category=r["category"],
                                     classification=classify(r["customer_id"]) if classify else None,
                                     birthday_month=birthday_month)
        if earning.points <= 0:
            continue
        new_rows.append({"customer_id": r["customer_id"], "kind": "earn", "points": earning.points,
                         **_lot_dates(rules, start or r["purchased_on"]), "purchase_id": r["id"],
                         "key": f"earn:{r['id']}", "detail": earning.detail})
        report.purchases += 1
        report.points += earning.points
    referral_rows = _referrals(session, sale_rows, rules, start)
    report.referrals = sum(1 for r in referral_rows if r["key"].startswith("referral:"))
    report.referral_points = sum(int(r["points"]) for r in referral_rows)
    report.rows = new_rows + referral_rows
    ledger.credit_rows(session, report.rows)
    return report


def _referrals(session: Session, sale_rows: list[Any], rules: Rules, start: date | None) -> list[dict[str, Any]]:
    """Rewards for referred customers whose first sale is among ``sale_rows``."""
    if rules.referral_referrer <= 0 and rules.referral_referee <= 0:
        return []
    referred = {int(r["customer_id"]): int(r["referred_by_id"]) for r in sale_rows if r["referred_by_id"]}
    if not referred:
        return []
    in_batch = {int(r["id"]): r for r in sale_rows}
    firsts: dict[int, int] = {}
    for part in chunks(sorted(referred)):
        first_at = (select(P.c.customer_id, func.min(P.c.purchased_at).label("at"))
                    .where(P.c.kind == "sale", P.c.customer_id.in_(list(part))).group_by(P.c.customer_id).subquery())
        stmt = (select(P.c.customer_id, func.min(P.c.id))
                .join(first_at, and_(P.c.customer_id == first_at.c.customer_id, P.c.purchased_at == first_at.c.at))
                .where(P.c.kind == "sale").group_by(P.c.customer_id))
        firsts.update({int(c): int(i) for c, i in session.execute(stmt)})
    due = {cid: sid for cid, sid in firsts.items() if sid in in_batch}
    if not due:
        return []
    live: dict[int, str] = {}
    people = sorted(set(due) | {referred[c] for c in due})
    for part in chunks(people):
        live.update({int(i): code for i, code in session.execute(
            select(C.c.id, C.c.code).where(C.c.id.in_(list(part)), C.c.deleted_at.is_(None), C.c.erased_at.is_(None)))})
    keys = [f"referral:{c}" for c in due] + [f"referral-new:{c}" for c in due]
    done = ledger.existing_keys(session, keys)
    rows: list[dict[str, Any]] = []
    for cid, sid in sorted(due.items()):
        referrer = referred[cid]
        sale = in_batch[sid]
        dates = _lot_dates(rules, start or sale["purchased_on"])
        if rules.referral_referrer > 0 and referrer in live and f"referral:{cid}" not in done:
            rows.append({"customer_id": referrer, "kind": "referral", "points": rules.referral_referrer, **dates,
                         "purchase_id": sid, "key": f"referral:{cid}",
                         "detail": {"role": "referrer", "referred": live.get(cid)}})
        if rules.referral_referee > 0 and cid in live and f"referral-new:{cid}" not in done:
            rows.append({"customer_id": cid, "kind": "referral", "points": rules.referral_referee, **dates,
                         "purchase_id": sid, "key": f"referral-new:{cid}",
                         "detail": {"role": "referred", "referred_by": live.get(referrer)}})
    return rows


def _programme_on(session: Session) -> Rules:
    rules = rules_mod.load(session)
    if not rules.enabled:
        raise Conflict(_("The points programme is switched off, so backfill would earn nothing."),
                       hint=_("Switch it on first: crm points rules set enabled yes"))
    return rules


def pending_sales(session: Session, ctx: StoreContext, *, since: date | None = None) -> list[tuple[int, int]]:
    """(customer id, sale id) of the sales up to today that have not earned yet, by customer, then time."""
    earned = exists(select(L.c.id).where(L.c.purchase_id == P.c.id, L.c.kind == "earn"))
    stmt = select(P.c.customer_id, P.c.id).where(P.c.kind == "sale", ~earned, P.c.purchased_on <= ctx.today)
    if since is not None:
        stmt = stmt.where(P.c.purchased_on >= since)
    return [(int(c), int(i)) for c, i in session.execute(stmt.order_by(P.c.customer_id, P.c.purchased_at, P.c.id))]


def backfill_sales(session: Session, sale_ids: Sequence[int], rules: Rules, ctx: StoreContext, *,
                   from_today: bool = False) -> EarnReport:
    """Earn for these sales (those not earned yet) with their referral rewards, then settle their refunds:
    one complete unit, so a sale never has its points without its refunds' reversals."""
    report = earn_sales(session, sale_ids, rules, ctx, start=ctx.today if from_today else None)
    refunded: list[int] = []
    for part in chunks(list(sale_ids)):
        refunded.extend(int(i) for (i,) in session.execute(
            select(P.c.refund_of_id).distinct().where(P.c.kind == "refund", P.c.refund_of_id.in_(list(part)))))
    if refunded:
        from crmcli.core.points.refunds import reconcile

        reconcile(session, sorted(refunded), ctx)
    return report


def _add(total: EarnReport, report: EarnReport) -> None:
    total.purchases += report.purchases
    total.points += report.points
    total.referrals += report.referrals
    total.referral_points += report.referral_points


def backfill(session: Session, ctx: StoreContext, *, since: date | None = None,
             from_today: bool = False) -> EarnReport:
    """Earn for sales recorded before the rules existed (each at most once) and settle their refunds, all in
    the caller's transaction (the demo store; `crm points backfill` uses backfill_in_steps)."""
    rules = _programme_on(session)
    ids = [sid for _cid, sid in pending_sales(session, ctx, since=since)]
    total = EarnReport()
    for part in chunks(ids, 2000):
        _add(total, backfill_sales(session, part, rules, ctx, from_today=from_today))
    return total


#: How long one step of backfill_in_steps should hold the write lock (its size adapts to reach this).
STEP_SECONDS = 0.25
STEP_SALES = (20, 200, 5000)  # smallest, first and largest step, in sales
#: Pause after each step's COMMIT: longer than a waiting writer's pause between its tries for the lock
#: (store/engine.py begin_writing: at most 4 ms), so a short command waiting for the lock gets it.
HAND_OVER_SECONDS = 0.01


class _DryRun(Exception):
    """Rolls a dry run's step back after computing it."""


def backfill_in_steps(store: Store, ctx: StoreContext, *, since: date | None = None, from_today: bool = False,
                      dry_run: bool = False, total: EarnReport | None = None) -> EarnReport:
    """backfill, committed in short steps, so that other writers get the store between them.

    Each step is its own write transaction holding whole sales (their points, referral rewards, refund
    reversals, allocations and audit rows) and, unless one customer has more sales than the largest step,
    all of a customer's pending sales. Its size adapts so that it holds the lock about STEP_SECONDS. An
    interruption or a crash loses only the step under way; sales earn at most once, so running backfill
    again finishes the rest. ``total`` (given by the caller) holds what the committed steps did so far.
    """
    total = total if total is not None else EarnReport()
    with store.read() as session:
        _programme_on(session)
        pending = pending_sales(session, ctx, since=since)
    smallest, size, largest = STEP_SALES
    pos = 0
    while pos < len(pending):
        end = min(pos + size, len(pending))
        while end < len(pending) and pending[end][0] == pending[end - 1][0] and end - pos < largest:
            end += 1  # keep a customer's sales together: their refunds then see all their new lots
        part = [sid for _cid, sid in pending[pos:end]]
        step = EarnReport()
        try:
            with store.write() as session:
                session.connection()  # BEGIN IMMEDIATE: the time spent waiting for the lock is not ours
                started = time.monotonic()
                # The rules are read in each step, as a purchase recorded now would read them.
                step = backfill_sales(session, part, _programme_on(session), ctx, from_today=from_today)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        held = time.monotonic() - started
        _add(total, step)
        pos = end
        size = max(smallest, min(largest, 2 * size, int(size * STEP_SECONDS / max(held, 0.001))))
        if pos < len(pending):
            time.sleep(HAND_OVER_SECONDS)
    return total


def grant_birthdays(session: Session, ctx: StoreContext) -> list[dict[str, Any]]:
    """The birthday bonus for customers whose birthday month is the as-of month, once per year each."""
    rules = rules_mod.load(session)
    if rules.birthday_bonus <= 0:
        raise Conflict(_("No birthday bonus is configured."),
                       hint=_("Set one first: crm points rules set birthday-bonus 100"))
    day = ctx.today
    ids = [int(i) for (i,) in session.execute(
        select(C.c.id).where(C.c.birthday.is_not(None), extract("month", C.c.birthday) == day.month,
                             C.c.deleted_at.is_(None), C.c.erased_at.is_(None)).order_by(C.c.id))]
    done = ledger.existing_keys(session, [f"birthday:{i}:{day.year}" for i in ids])
    rows = [{"customer_id": i, "kind": "birthday", "points": rules.birthday_bonus, **_lot_dates(rules, day),
             "spendable_on": day, "key": f"birthday:{i}:{day.year}", "detail": {"year": day.year}}
            for i in ids if f"birthday:{i}:{day.year}" not in done]
    ledger.credit_rows(session, rows)
    return rows


def points_earned(session: Session, start: date, end: date) -> Any:
    """hooks.POINTS_EARNED: a select of (customer_id, points) earned on purchases with effective dates from
    ``start`` to ``end`` inclusive, net of the points refunds took back in that period (taken from lots or
    recorded as debt). Manual earnings, bonuses, referrals and adjustments do not count."""
    from sqlalchemy import case, or_

    del session
    from_sales = and_(L.c.kind == "earn", L.c.purchase_id.is_not(None))
    refunds = and_(L.c.kind == "reversal", L.c.key.is_not(None), L.c.key.not_like("reversal:lot:%"))
    amount = case((L.c.kind == "earn", L.c.points), else_=L.c.points - L.c.debt)
    return (select(L.c.customer_id, func.sum(amount).label("points"))
            .where(L.c.effective_on >= start, L.c.effective_on <= end, or_(from_sales, refunds))
            .group_by(L.c.customer_id).order_by(L.c.customer_id))
