"""The purchase filters shared by `crm purchase list` and `crm export purchases`: one definition of the options
and of the query arguments they give, so an export selects exactly what the list shows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from crmcli.i18n import _

if TYPE_CHECKING:
    from sqlmodel import Session

    from crmcli.core.context import StoreContext

CustomerFilter = Annotated[Optional[str], typer.Option("--customer", "-c", help=_("Only this customer."))]
SinceFilter = Annotated[Optional[str], typer.Option(help=_("On or after this date."))]
UntilFilter = Annotated[Optional[str], typer.Option(help=_("On or before this date."))]
CategoryFilter = Annotated[Optional[str], typer.Option(help=_("Only this category."))]
ChannelFilter = Annotated[Optional[str], typer.Option(help=_("Only this channel."))]
ProductFilter = Annotated[Optional[str], typer.Option(help=_("Product name contains."))]
KindFilter = Annotated[Optional[str], typer.Option(help=_("sale or refund."))]


def purchase_query(session: "Session", ctx: "StoreContext", *, customer: Optional[str], since: Optional[str],
                   until: Optional[str], category: Optional[str], channel: Optional[str], product: Optional[str],
                   kind: Optional[str], limit: Optional[int]) -> dict[str, Any]:
    """Keyword arguments of crmcli.core.purchases.list_purchases for these options (bad values exit 5)."""
    from crmcli.cli.common import parse_day, pick_customer
    from crmcli.errors import InvalidInput

    if kind is not None and kind not in ("sale", "refund"):
        raise InvalidInput(_("'{value}' is not a kind.").format(value=kind), field="kind", value=kind,
                           hint=_("Use sale or refund."))
    cid = pick_customer(session, customer, ctx, include_deleted=True).id if customer else None
    return {"customer_id": cid, "since": parse_day(since, ctx, "--since"), "until": parse_day(until, ctx, "--until"),
            "category": category, "channel": channel, "product": product, "kind": kind, "limit": limit}
