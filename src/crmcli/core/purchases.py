"""Purchases and refunds. A refund is a new row linked to its sale, never an edit of the sale.

``ref`` (an order number) is unique per store: recording the same order again is a no-op, a different
order under a used ref is a conflict.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from crmcli.core import audit, hooks
from crmcli.core.clock import local_to_utc, start_of_day_utc, utc_to_local, utcnow
from crmcli.core.context import StoreContext
from crmcli.core.customers import clean_text
from crmcli.core.dates import _fail, moment, parse_datetime
from crmcli.core.money import format_money, money_str, parse_amount
from crmcli.errors import Conflict, InvalidInput, NotFound
from crmcli.i18n import _
from crmcli.store.models import Customer, Purchase

P = Purchase.__table__


@dataclass
class PurchaseInput:
    amount: str
    at: str | None = None
    product: str | None = None
    category: str | None = None
    quantity: int = 1
    channel: str | None = None
    ref: str | None = None
    note: str | None = None


@dataclass
class Recorded:
    purchase: Purchase
    created: bool  # False: the same order was already recorded under this ref


def _when(at: str | None, ctx: StoreContext, field: str = "--at") -> tuple[Any, date]:
    """The UTC time and the business date (in the store's zone) of a sale or refund; default: now
    (or noon of the --as-of day)."""
    if at is None or not at.strip():
        now = moment(ctx.today, ctx.tz)
        return now, utc_to_local(now, ctx.tz).date()
    local = parse_datetime(at, today=ctx.today, field=field)
    try:
        when = local_to_utc(local, ctx.tz)
        on = utc_to_local(when, ctx.tz).date()  # an explicit offset (…+08:00) still lands on the store's date
    except OverflowError:  # e.g. 0001-01-01 00:00 east of UTC is before the first representable moment
        raise _fail(at, field, _("out of range")) from None
    if on > ctx.today:
        raise InvalidInput(_("{field} {value} is in the future.").format(field=field, value=at), field=field, value=at,
                           hint=_("Record purchases when they happen, or pass --as-of."))
    return when, on


def add_purchase(session: Session, customer: Customer, data: PurchaseInput, ctx: StoreContext) -> Recorded:
    assert customer.id is not None
    if customer.deleted_at is not None:
        raise Conflict(_("{customer} is deleted.").format(customer=customer.code),
                       hint=_("Restore it first with `crm customer restore {code}`.").format(code=customer.code))
    amount = parse_amount(data.amount, ctx.currency)
    if data.quantity < 1 or data.quantity > 1_000_000:
        raise InvalidInput(_("Quantity {value} is out of range (1 to 1000000).").format(value=data.quantity),
                           field="quantity", value=data.quantity)
    at, on = _when(data.at, ctx)
    ref = clean_text(data.ref, "ref", max_len=100) or None if data.ref is not None else None
    values = dict(customer_id=customer.id, kind="sale", amount_minor=amount, purchased_at=at, purchased_on=on,
                  product=clean_text(data.product, "product", max_len=200) or None if data.product else None,
                  category=clean_text(data.category, "category", max_len=100) or None if data.category else None,
                  quantity=data.quantity,
                  channel=clean_text(data.channel, "channel", max_len=50) or None if data.channel else None,
                  ref=ref, note=clean_text(data.note, "note", max_len=2000) or None if data.note else None)
    if ref is not None:
        existing = session.execute(select(Purchase).where(Purchase.ref == ref)).scalar_one_or_none()
        if existing is not None:
            # The same order again (a re-run command or import): same customer, amount and, where given,
            # date, product, category and channel. Anything else under this ref is another order: refused.
            given = {k: values[k] for k in ("product", "category", "channel") if values[k] is not None}
            same = (existing.customer_id == customer.id and existing.amount_minor == amount and existing.kind == "sale"
                    and (data.at is None or not data.at.strip() or existing.purchased_on == on)
                    and all(getattr(existing, k) == v for k, v in given.items()))
            if same:
                return Recorded(existing, created=False)
            raise Conflict(_("Order ref {ref} is already recorded (purchase #{id} on {date}, {amount}).").format(
                ref=ref, id=existing.id, date=existing.purchased_on,
                amount=format_money(existing.amount_minor, ctx.currency)),
                hint=_("Each --ref is one order; use another ref or leave it out."))
    purchase = Purchase(created_at=utcnow(), **values)
    session.add(purchase)
    session.flush()
    assert purchase.id is not None
    audit.record(session, entity="purchase", entity_id=purchase.id, customer_id=customer.id, action="add",
                 after=_audit_view(purchase))
    run_purchase_hooks(session, [purchase.id], ctx)
    return Recorded(purchase, created=True)


def _audit_view(p: Purchase) -> dict[str, Any]:
    return {k: getattr(p, k) for k in ("kind", "amount_minor", "purchased_at", "product", "category", "quantity",
                                       "channel", "ref", "refund_of_id")}


def warm_purchase_hooks() -> None:
    """Load what the purchase hooks run (points earning asks the tiers for multipliers) before the write lock."""
    hooks.warm([*hooks.PURCHASE_HOOKS, hooks.CLASSIFICATION])


def run_purchase_hooks(session: Session, purchase_ids: list[int], ctx: StoreContext) -> None:
    for spec in hooks.PURCHASE_HOOKS:
        hooks.load(spec)(session, purchase_ids, ctx)


def get_purchase(session: Session, purchase_id: int) -> Purchase:
    purchase = session.get(Purchase, purchase_id)
    if purchase is None:
        raise NotFound(_("No purchase #{id}.").format(id=purchase_id),
                       hint=_("See purchase numbers with `crm purchase list`."))
    return purchase


def refunded_minor(session: Session, purchase_id: int) -> int:
    return int(session.execute(select(func.coalesce(func.sum(P.c.amount_minor), 0))
                               .where(P.c.refund_of_id == purchase_id, P.c.kind == "refund")).scalar() or 0)


def refund(session: Session, purchase: Purchase, ctx: StoreContext, *, amount: str | None = None,
           at: str | None = None, reason: str | None = None, ref: str | None = None) -> Purchase:
    """Full (default) or partial refund; never more than what remains refundable."""
    assert purchase.id is not None
    if purchase.kind != "sale":
        raise InvalidInput(_("Purchase #{id} is itself a refund.").format(id=purchase.id), field="purchase",
                           value=purchase.id, hint=_("Refund the original sale (#{id}).").format(id=purchase.refund_of_id))
    if purchase.amount_minor == 0:
        raise InvalidInput(_("Purchase #{id} was free ({amount}): there is nothing to refund.").format(
            id=purchase.id, amount=format_money(0, ctx.currency)), field="purchase", value=purchase.id)
    remaining = purchase.amount_minor - refunded_minor(session, purchase.id)
    if remaining <= 0:
        raise Conflict(_("Purchase #{id} is already fully refunded.").format(id=purchase.id),
                       hint=_("See it with `crm purchase show {id}`.").format(id=purchase.id))
    minor = remaining if amount is None else parse_amount(amount, ctx.currency, allow_zero=False)
    if minor > remaining:
        raise InvalidInput(_("Refund {amount} is more than the {remaining} left to refund on purchase #{id}.").format(
            amount=format_money(minor, ctx.currency), remaining=format_money(remaining, ctx.currency), id=purchase.id),
            field="amount", value=amount,
            hint=_("Refund at most {remaining}, or leave the amount out to refund all of it.").format(
                remaining=money_str(remaining, ctx.currency)))
    when, on = _when(at, ctx)
    if on < purchase.purchased_on:
        raise InvalidInput(_("The refund date {date} is before the purchase ({purchased}).").format(
            date=on, purchased=purchase.purchased_on), field="at", value=at,
            hint=_("Give a date on or after the purchase with --at."))
    ref = (clean_text(ref, "ref", max_len=100) or None) if ref is not None else None
    if ref is not None and session.execute(select(Purchase.id).where(Purchase.ref == ref)).first():
        raise Conflict(_("Order ref {ref} is already recorded.").format(ref=ref),
                       hint=_("Each --ref is used once; choose another or leave it out."))
    row = Purchase(customer_id=purchase.customer_id, kind="refund", refund_of_id=purchase.id, amount_minor=minor,
                   purchased_at=when, purchased_on=on, product=purchase.product, category=purchase.category,
                   quantity=purchase.quantity if minor == purchase.amount_minor else 1, channel=purchase.channel,
                   ref=ref, note=clean_text(reason, "reason", max_len=2000) if reason else None,
                   created_at=utcnow())
    session.add(row)
    session.flush()
    assert row.id is not None
    audit.record(session, entity="purchase", entity_id=row.id, customer_id=purchase.customer_id, action="refund",
                 after=_audit_view(row))
    run_purchase_hooks(session, [row.id], ctx)
    return row


def list_purchases(session: Session, ctx: StoreContext, *, customer_id: int | None = None, since: date | None = None,
                   until: date | None = None, category: str | None = None, channel: str | None = None,
                   product: str | None = None, kind: str | None = None, limit: int | None = None,
                   descending: bool = True) -> list[dict[str, Any]]:
    return list(iter_purchases(session, ctx, customer_id=customer_id, since=since, until=until, category=category,
                               channel=channel, product=product, kind=kind, limit=limit, descending=descending))


def iter_purchases(session: Session, ctx: StoreContext, *, customer_id: int | None = None, since: date | None = None,
                   until: date | None = None, category: str | None = None, channel: str | None = None,
                   product: str | None = None, kind: str | None = None, limit: int | None = None,
                   descending: bool = True, chunk: int = 2000) -> Iterator[dict[str, Any]]:
    """``list_purchases`` as a stream, ``chunk`` rows at a time (exports of any size in flat memory)."""
    from crmcli.store.models import Customer as Cust

    C = Cust.__table__
    stmt = select(P, C.c.code, C.c.name).join(C, C.c.id == P.c.customer_id)
    if customer_id is not None:
        stmt = stmt.where(P.c.customer_id == customer_id)
    if since:
        stmt = stmt.where(P.c.purchased_on >= since)
    if until:
        stmt = stmt.where(P.c.purchased_on <= until)
    if category:
        stmt = stmt.where(func.lower(P.c.category) == category.lower())
    if channel:
        stmt = stmt.where(func.lower(P.c.channel) == channel.lower())
    if product:
        from crmcli.core.customers import _like

        stmt = stmt.where(func.lower(P.c.product).like(_like(product.lower()), escape="\\"))
    if kind:
        stmt = stmt.where(P.c.kind == kind)
    order = (P.c.purchased_at.desc(), P.c.id.desc()) if descending else (P.c.purchased_at, P.c.id)
    stmt = stmt.order_by(*order)
    if limit:
        stmt = stmt.limit(limit)
    # stream_results: rows come from the driver as they are read (a server-side cursor on PostgreSQL)
    for r in session.execute(stmt.execution_options(stream_results=True, max_row_buffer=chunk)).mappings():
        yield purchase_row(r, ctx)


def purchase_row(r: Any, ctx: StoreContext) -> dict[str, Any]:
    sign = 1 if r["kind"] == "sale" else -1
    return {"id": r["id"], "customer_code": r["code"], "customer_name": r["name"], "kind": r["kind"],
            "amount_minor": sign * r["amount_minor"], "purchased_at": r["purchased_at"],
            "date": r["purchased_on"], "product": r["product"], "category": r["category"],
            "quantity": r["quantity"], "channel": r["channel"], "ref": r["ref"], "refund_of": r["refund_of_id"],
            "note": r["note"]}


def summary(session: Session, customer_id: int) -> dict[str, Any]:
    """Count, net total, average, first and last purchase of one customer (refunds net against spend)."""
    from sqlalchemy import case

    sale = P.c.kind == "sale"
    row = session.execute(select(
        func.coalesce(func.sum(case((sale, 1), else_=0)), 0).label("orders"),
        func.coalesce(func.sum(case((sale, P.c.amount_minor), else_=0)), 0).label("gross"),
        func.coalesce(func.sum(case((sale, 0), else_=P.c.amount_minor)), 0).label("refunded"),
        func.min(case((sale, P.c.purchased_on), else_=None)).label("first"),
        func.max(case((sale, P.c.purchased_on), else_=None)).label("last"),
    ).where(P.c.customer_id == customer_id)).one()
    orders = int(row.orders)
    net = int(row.gross) - int(row.refunded)
    return {"orders": orders, "gross_minor": int(row.gross), "refunded_minor": int(row.refunded), "net_minor": net,
            "average_minor": round(net / orders) if orders else 0, "first": row.first, "last": row.last}


def window_bounds(day: date, days: int) -> tuple[date, date]:
    return day - timedelta(days=days - 1), day


__all__ = ["PurchaseInput", "Recorded", "add_purchase", "refund", "list_purchases", "iter_purchases", "summary", "get_purchase",
           "start_of_day_utc"]
