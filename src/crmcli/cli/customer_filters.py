"""The customer filters shared by `crm customer list` and `crm export customers`: one definition of the options
and of the filter they build, so an export selects exactly what the list shows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from crmcli.i18n import _

if TYPE_CHECKING:
    from crmcli.core.context import StoreContext
    from crmcli.core.customers import ListFilter

TagFilter = Annotated[Optional[list[str]], typer.Option(
    "--tag", "-t", help=_("Only customers with this tag (repeatable: all of them)."))]
CityFilter = Annotated[Optional[str], typer.Option(help=_("Only this city."))]
SourceFilter = Annotated[Optional[str], typer.Option(help=_("Only this acquisition source."))]
CreatedSinceFilter = Annotated[Optional[str], typer.Option("--created-since", help=_("Created on or after this date."))]
CreatedUntilFilter = Annotated[Optional[str], typer.Option("--created-until", help=_("Created on or before this date."))]
BirthdayMonthFilter = Annotated[Optional[int], typer.Option(
    "--birthday-month", min=1, max=12, help=_("Birthday in this month (1-12)."))]
DueFilter = Annotated[bool, typer.Option("--due", help=_("Only customers whose follow-up is due (today or earlier)."))]
DeletedFilter = Annotated[bool, typer.Option("--deleted", help=_("Include deleted customers."))]
TierFilter = Annotated[Optional[str], typer.Option(
    "--tier", help=_("Only this tier: A, B or C (as of the last `crm tier recompute`)."))]
SegmentFilter = Annotated[Optional[str], typer.Option("--segment", help=_("Only this RFM segment, e.g. 'At risk'."))]
StageFilter = Annotated[Optional[str], typer.Option(
    "--stage", help=_("Only this lifecycle stage: prospect, new, repeat, loyal, at risk, lost."))]
LevelFilter = Annotated[Optional[str], typer.Option("--level", help=_("Only this membership level, e.g. gold."))]
SortOpt = Annotated[str, typer.Option(
    help=_("Sort by code, name, created, spend, orders, last-purchase, follow-up or city."))]
DescOpt = Annotated[bool, typer.Option("--desc", help=_("Sort in descending order."))]


def build_filter(ctx: "StoreContext", *, tag: Optional[list[str]] = None, city: Optional[str] = None,
                 source: Optional[str] = None, created_since: Optional[str] = None,
                 created_until: Optional[str] = None, birthday_month: Optional[int] = None, due: bool = False,
                 deleted: bool = False, sort: str = "code", desc: bool = False, limit: Optional[int] = None,
                 text: Optional[str] = None, tier: Optional[str] = None, segment: Optional[str] = None,
                 stage: Optional[str] = None, level: Optional[str] = None) -> "ListFilter":
    """The ListFilter of these options; an unknown sort key is a usage error (exit 2)."""
    from crmcli.cli.common import parse_day
    from crmcli.core import customers
    from crmcli.errors import UsageError

    if sort not in customers.SORTS:
        raise UsageError(_("'{value}' is not a sort key.").format(value=sort),
                         hint=_("Use one of: {choices}.").format(choices=", ".join(customers.SORTS)))
    return customers.ListFilter(tags=tag or [], city=city, source=source,
                                created_since=parse_day(created_since, ctx, "--created-since"),
                                created_until=parse_day(created_until, ctx, "--created-until"),
                                birthday_month=birthday_month, follow_up_due=due, include_deleted=deleted,
                                text=text, sort=sort, descending=desc, limit=limit,
                                tier=tier, segment=segment, stage=stage, level=level)


__all__: list[Any] = ["build_filter"]
