"""What people do by hand: earn (a bonus), redeem (optionally as payment for a purchase) and adjust."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from crmcli.core.context import StoreContext
from crmcli.core.points import ledger
from crmcli.core.points import rules as rules_mod
from crmcli.core.points.ledger import L
from crmcli.errors import InvalidInput
from crmcli.i18n import _
from crmcli.store.models import Customer, Purchase

MAX_TEXT = 500


def parse_points(text: str, *, signed: bool = False, field: str = "points") -> int:
    """'120', '1,200' (and '+50' / '-50' when ``signed``) → int; zero, junk or the wrong sign → InvalidInput."""
    s = str(text).strip().replace(",", "").replace("_", "")
    pattern = r"^[+-]?\d{1,13}$" if signed else r"^\+?\d{1,13}$"
    if not re.match(pattern, s):
        hint = _("Write a whole number with a sign, e.g. +50 or -20.") if signed else _("Write a whole number, e.g. 100.")
        raise InvalidInput(_("'{value}' is not a number of points for {field}.").format(value=text, field=field),
                           field=field, value=text, hint=hint)
    value = int(s)
    if value == 0:
        raise InvalidInput(_("The number of points for {field} must not be zero.").format(field=field),
                           field=field, value=text)
    if abs(value) > rules_mod.MAX_POINTS:
        raise InvalidInput(_("{value} points is too many.").format(value=text), field=field, value=text)
    return value


def clean_reason(reason: str | None, *, required: bool = False) -> str | None:
    text = (reason or "").strip()
    if not text:
        if required:
            raise InvalidInput(_("A reason is required."), field="reason", value=reason,
                               hint=_("Say why with --reason, e.g. --reason 'goodwill for late delivery'."))
        return None
    if len(text) > MAX_TEXT or any(ord(ch) < 32 for ch in text):
        raise InvalidInput(_("The reason must be one line of at most {n} characters.").format(n=MAX_TEXT),
                           field="reason", value=reason)
    return text


@dataclass
class Entry:
    id: int
    points: int
    summary: ledger.Summary
    lots: list[tuple[int, int]]


def _refuse_deleted(customer: Customer) -> None:
    from crmcli.errors import Conflict

    if customer.deleted_at is not None or customer.erased_at is not None:
        raise Conflict(_("{customer} is deleted.").format(customer=customer.code),
                       hint=_("Restore it first with `crm customer restore {code}`.").format(code=customer.code))


def earn(session: Session, customer: Customer, points: int, ctx: StoreContext, *, reason: str | None = None,
         expires_on: date | None = None, never_expires: bool = False) -> Entry:
    """A manual credit (bonus, campaign): expires by the store's policy from today unless told otherwise."""
    assert customer.id is not None
    _refuse_deleted(customer)
    if points <= 0:
        raise InvalidInput(_("Earn a positive number of points."), field="points", value=points)
    rules = rules_mod.load(session)
    today = ctx.today
    if expires_on is not None and expires_on < today:
        raise InvalidInput(_("The expiry date {date} is in the past.").format(date=expires_on), field="expires",
                           value=expires_on)
    expiry = None if never_expires else (expires_on or rules_mod.expiry_date(rules.expiry, today))
    [new_id] = ledger.credit_rows(session, [{"customer_id": customer.id, "kind": "earn", "points": points,
                                             "effective_on": today, "expires_on": expiry, "spendable_on": today,
                                             "reason": clean_reason(reason)}])
    return Entry(new_id, points, ledger.summary(session, customer.id, today), [])


def _sale_for_payment(session: Session, customer: Customer, purchase_id: int) -> Purchase:
    from crmcli.core.purchases import get_purchase

    sale = get_purchase(session, purchase_id)
    if sale.kind != "sale":
        raise InvalidInput(_("Purchase #{id} is a refund; points pay for sales only.").format(id=purchase_id),
                           field="purchase", value=purchase_id)
    if sale.customer_id != customer.id:
        raise InvalidInput(_("Purchase #{id} belongs to another customer.").format(id=purchase_id),
                           field="purchase", value=purchase_id,
                           hint=_("Check the purchase number with `crm purchase list --customer {code}`.").format(
                               code=customer.code))
    P = Purchase.__table__
    refunds = session.execute(select(func.count()).where(P.c.refund_of_id == purchase_id, P.c.kind == "refund")).scalar()
    if refunds:
        raise InvalidInput(_("Purchase #{id} already has refunds; record a points payment before any refund.").format(
            id=purchase_id), field="purchase", value=purchase_id)
    return sale


def redeem(session: Session, customer: Customer, points: int, ctx: StoreContext, *, reason: str | None = None,
           purchase_id: int | None = None) -> Entry:
    """Spend points (soonest-expiring first); more than the spendable balance is refused, nothing changes."""
    assert customer.id is not None
    _refuse_deleted(customer)
    if points <= 0:
        raise InvalidInput(_("Redeem a positive number of points."), field="points", value=points)
    if purchase_id is not None:
        _sale_for_payment(session, customer, purchase_id)
    today = ctx.today
    found = ledger.lots(session, customer.id)
    state = ledger.summarize(found, today, debt=ledger.balance(session, customer.id)[1])
    if points > state.spendable:
        detail = ""
        if state.locked:
            first = state.unlocks[0]
            detail = " " + _("({locked} more are locked; the first {n} unlock on {date}.)").format(
                locked=state.locked, n=first[1], date=first[0])
        raise InvalidInput(
            _("Cannot redeem {points} points: {code} has {spendable} spendable points.").format(
                points=points, code=customer.code, spendable=state.spendable) + detail,
            field="points", value=points, hint=_("See `crm points balance {code}`.").format(code=customer.code))
    allocations, short = ledger.take([lot for lot in found if lot.spendable(today)], points)
    assert short == 0
    new_id = ledger.debit(session, customer.id, "redeem", allocations, today, reason=clean_reason(reason),
                          purchase_id=purchase_id)
    return Entry(new_id, -points, ledger.summary(session, customer.id, today),
                 [(lot.id, n) for lot, n in allocations])


def adjust(session: Session, customer: Customer, delta: int, ctx: StoreContext, *, reason: str | None) -> Entry:
    """A correction: +N adds a lot (store expiry policy from today); -N takes from the live lots (locked ones
    too) soonest-expiring first and is refused beyond them."""
    assert customer.id is not None
    text = clean_reason(reason, required=True)
    today = ctx.today
    if delta == 0:
        raise InvalidInput(_("The number of points for {field} must not be zero.").format(field="adjust"),
                           field="points", value=delta)
    if delta > 0:
        rules = rules_mod.load(session)
        [new_id] = ledger.credit_rows(session, [{
            "customer_id": customer.id, "kind": "adjust", "points": delta, "effective_on": today,
            "expires_on": rules_mod.expiry_date(rules.expiry, today), "spendable_on": today, "reason": text}])
        return Entry(new_id, delta, ledger.summary(session, customer.id, today), [])
    found = [lot for lot in ledger.lots(session, customer.id) if lot.alive(today)]
    live = sum(lot.remaining for lot in found)
    if -delta > live:
        raise InvalidInput(_("Cannot take {points} points from {code}: only {live} are there.").format(
            points=-delta, code=customer.code, live=live), field="points", value=delta,
            hint=_("See `crm points balance {code}`.").format(code=customer.code))
    allocations, _short = ledger.take(found, -delta)
    new_id = ledger.debit(session, customer.id, "adjust", allocations, today, reason=text)
    return Entry(new_id, delta, ledger.summary(session, customer.id, today), [(lot.id, n) for lot, n in allocations])


def history(session: Session, customer_id: int, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The customer's ledger, oldest first, with the running balance and debt."""
    import json

    P = Purchase.__table__
    stmt = (select(L, P.c.ref.label("purchase_ref")).outerjoin(P, P.c.id == L.c.purchase_id)
            .where(L.c.customer_id == customer_id).order_by(L.c.id))
    out: list[dict[str, Any]] = []
    running = debt = 0
    for r in session.execute(stmt).mappings():
        running += int(r["points"])
        debt += int(r["debt"])
        out.append({"id": r["id"], "date": r["effective_on"], "kind": r["kind"], "points": int(r["points"]),
                    "balance": running, "debt_change": int(r["debt"]), "debt": debt, "expires_on": r["expires_on"],
                    "spendable_on": r["spendable_on"] if int(r["points"]) > 0 else None,
                    "purchase": r["purchase_id"], "purchase_ref": r["purchase_ref"], "ref": r["ref_id"],
                    "reason": r["reason"], "actor": r["actor"], "recorded_at": r["created_at"],
                    "detail": json.loads(r["detail"]) if r["detail"] else None})
    return out[-limit:] if limit else out
