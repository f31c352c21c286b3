"""`crm purchase`: sales and refunds."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from crmcli.cli.purchase_filters import (CategoryFilter, ChannelFilter, CustomerFilter, KindFilter, ProductFilter,
                                         SinceFilter, UntilFilter, purchase_query)
from crmcli.cli.common import (AsOfOpt, FormatOpt, LimitOpt, NegativeNumbersCommand, choose_customer, info,
                               state, store_context)
from crmcli.i18n import _

app = typer.Typer(help=_("Purchases and refunds.\n\nExample: crm purchase add C000001 128.50 --product 拿铁 --ref ORD-1001"),
                  no_args_is_help=True)


def columns() -> list:
    from crmcli.cli.output import Column

    return [Column("id", _("ID"), "int"), Column("date", _("Date"), "date"), Column("customer_code", _("Code")),
            Column("customer_name", _("Customer")), Column("kind", _("Kind")),
            Column("amount", _("Amount"), "money", source="amount_minor"), Column("product", _("Product")),
            Column("category", _("Category")), Column("quantity", _("Qty"), "int"), Column("channel", _("Channel")),
            Column("ref", _("Ref")), Column("refund_of", _("Refund of"), "int"),
            Column("purchased_at", _("Time"), "datetime"), Column("note", _("Note"))]


@app.command("add", cls=NegativeNumbersCommand, help=_("Record a purchase. Re-running with the same --ref records nothing twice.\n\n"
                           "Example: crm purchase add 13800138000 99 --at 2024-03-01 --product 'Hair cut' --category salon --ref R-1"))
def add(
    customer: Annotated[str, typer.Argument(help=_("The customer: id, code, phone, e-mail or name."), metavar="CUSTOMER")],
    amount: Annotated[str, typer.Argument(help=_("Amount paid, e.g. 128.50 (in the store's currency)."))],
    at: Annotated[Optional[str], typer.Option("--at", help=_("When (date or date and time; default: now)."))] = None,
    product: Annotated[Optional[str], typer.Option(help=_("Product or service."))] = None,
    category: Annotated[Optional[str], typer.Option(help=_("Product category."))] = None,
    quantity: Annotated[int, typer.Option(help=_("Quantity."))] = 1,
    channel: Annotated[Optional[str], typer.Option(help=_("Sales channel, e.g. store, online, wechat."))] = None,
    ref: Annotated[Optional[str], typer.Option(help=_("Order number; unique, so re-runs do not double-count."))] = None,
    note: Annotated[Optional[str], typer.Option(help=_("Note."))] = None,
    as_of: AsOfOpt = None,
) -> None:
    from crmcli.core import purchases
    from crmcli.core.money import format_money

    data = purchases.PurchaseInput(amount=amount, at=at, product=product, category=category, quantity=quantity,
                                   channel=channel, ref=ref, note=note)
    from crmcli.core import customers

    cid = choose_customer(customer)
    purchases.warm_purchase_hooks()
    with state().store().write() as session:
        ctx = store_context(session, as_of)
        record = customers.get(session, cid)
        result = purchases.add_purchase(session, record, data, ctx)
        pid, minor, code = result.purchase.id, result.purchase.amount_minor, record.code
    if result.created:
        info(_("Recorded purchase #{id}: {amount} for {code}.").format(id=pid, amount=format_money(minor, ctx.currency), code=code))
    else:
        info(_("Order {ref} was already recorded as purchase #{id}; nothing changed.").format(ref=ref, id=pid))
    typer.echo(pid)


@app.command("refund", cls=NegativeNumbersCommand, help=_("Refund a purchase, fully or in part (a new linked record; the sale is kept).\n\n"
                              "Example: crm purchase refund 42 30 --reason 'damaged item'"))
def refund(
    purchase_id: Annotated[int, typer.Argument(help=_("The purchase number."), metavar="PURCHASE")],
    amount: Annotated[Optional[str], typer.Argument(help=_("Amount to refund (default: all that is left)."))] = None,
    reason: Annotated[Optional[str], typer.Option(help=_("Why."))] = None,
    at: Annotated[Optional[str], typer.Option("--at", help=_("When (default: now)."))] = None,
    ref: Annotated[Optional[str], typer.Option(help=_("Refund reference number (unique)."))] = None,
    as_of: AsOfOpt = None,
) -> None:
    from crmcli.core import purchases
    from crmcli.core.money import format_money

    purchases.warm_purchase_hooks()
    with state().store().write() as session:
        ctx = store_context(session, as_of)
        sale = purchases.get_purchase(session, purchase_id)
        row = purchases.refund(session, sale, ctx, amount=amount, at=at, reason=reason, ref=ref)
        rid, minor = row.id, row.amount_minor
    info(_("Refunded {amount} of purchase #{id} (refund #{rid}).").format(
        amount=format_money(minor, ctx.currency), id=purchase_id, rid=rid))
    typer.echo(rid)


@app.command("list", help=_("List purchases and refunds, newest first.\n\nExample: crm purchase list --customer C000001 --since 90d"))
def list_(
    customer: CustomerFilter = None, since: SinceFilter = None, until: UntilFilter = None,
    category: CategoryFilter = None, channel: ChannelFilter = None, product: ProductFilter = None,
    kind: KindFilter = None,
    limit: LimitOpt = None, as_of: AsOfOpt = None, fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.output import Units, choose_format, emit
    from crmcli.core import purchases

    with state().store().read() as session:
        ctx = store_context(session, as_of)
        rows = purchases.list_purchases(session, ctx, **purchase_query(
            session, ctx, customer=customer, since=since, until=until, category=category, channel=channel,
            product=product, kind=kind, limit=limit))
    cols = columns()
    chosen = choose_format(fmt)
    if chosen in ("table", "markdown"):
        cols = [c for c in cols if c.key in ("id", "date", "customer_code", "customer_name", "kind", "amount",
                                             "product", "category", "ref")]
    emit(rows, cols, chosen, Units(ctx.currency, ctx.tz), empty_message=_("No purchases match."))


@app.command("show", help=_("Show one purchase and its refunds.\n\nExample: crm purchase show 42"))
def show(purchase_id: Annotated[int, typer.Argument(help=_("The purchase number."), metavar="PURCHASE")],
         fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Units, emit
    from crmcli.core import purchases

    with state().store().read() as session:
        ctx = store_context(session)
        sale = purchases.get_purchase(session, purchase_id)
        root = sale.refund_of_id or sale.id
        rows = [r for r in purchases.list_purchases(session, ctx, customer_id=sale.customer_id, descending=False)
                if r["id"] == root or r["refund_of"] == root]
    emit(rows, columns(), fmt, Units(ctx.currency, ctx.tz))
