"""`crm report`: read-only analyses for people (Rich tables and charts, SVG/HTML files) and for scripts
(json, csv, ...). The numbers come from crmcli.core.reports (SQL aggregates); this module only renders."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from crmcli.cli.common import AsOfOpt, FormatOpt, LimitOpt, state, store_context
from crmcli.errors import UsageError
from crmcli.i18n import N_, _

if TYPE_CHECKING:
    from rich.console import RenderableType

    from crmcli.cli.output import Column, Units
    from crmcli.core.context import StoreContext
    from crmcli.core.reports.periods import Range

app = typer.Typer(help=_("Reports: dashboard, sales, cohorts, repeat purchases, products and the other features' summaries.\n\n"
                         "Example: crm report sales --by month --since 2025-01-01"), no_args_is_help=True)

SinceOpt = Annotated[Optional[str], typer.Option("--since", help=_("First business date of the report (default depends on the report)."),
                                                 metavar="DATE")]
UntilOpt = Annotated[Optional[str], typer.Option("--until", help=_("Last business date of the report (default: the as-of date)."),
                                                 metavar="DATE")]
SvgOpt = Annotated[Optional[str], typer.Option("--svg", help=_("Also save the report as an SVG picture (as it looks in the terminal)."),
                                               metavar="FILE")]
HtmlOpt = Annotated[Optional[str], typer.Option("--html", help=_("Also save the report as an HTML page (as it looks in the terminal)."),
                                                metavar="FILE")]
BY_CHOICES = ("day", "week", "month", "quarter")
PERIOD_NAMES = {"day": N_("day"), "week": N_("week"), "month": N_("month"), "quarter": N_("quarter")}


# ------------------------------------------------------------------------------------------ plumbing

def _range(session: Any, as_of: str | None, since: str | None, until: str | None, *, by: str | None = None,
           days: int | None = None) -> tuple["StoreContext", "Range"]:
    from crmcli.cli.common import parse_day
    from crmcli.core.reports.periods import resolve

    ctx = store_context(session, as_of)
    rng = resolve(ctx.today, parse_day(since, ctx, "--since"), parse_day(until, ctx, "--until"), by=by, days=days)
    return ctx, rng


def _units(ctx: "StoreContext") -> "Units":
    from crmcli.cli.output import Units

    return Units(ctx.currency, ctx.tz)


def _money(ctx: "StoreContext") -> Callable[[int], str]:
    from crmcli.core.money import format_money

    return lambda minor: format_money(int(minor), ctx.currency)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def _num(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:g}{unit}"


def _span(rng: "Range") -> str:
    return _("{since} – {until}").format(since=rng.since.isoformat(), until=rng.until.isoformat())


def show(view: Callable[[], "RenderableType"], fmt: str | None, svg: str | None, html: str | None,
         machine: Callable[[str], None], *, title: str) -> None:
    """Print the Rich view (table format) or the machine output, and save the view as SVG/HTML if asked."""
    import io
    import os

    from crmcli.cli.output import choose_format
    from crmcli.render.console import stdout_console

    chosen = choose_format(fmt)
    recorder = None
    if chosen == "table":
        console = stdout_console(record=bool(svg or html))
        console.print(view())
        recorder = console
    else:
        machine(chosen)
        if svg or html:
            from rich.console import Console

            width = int(os.environ.get("COLUMNS", "0") or 0) or 100
            recorder = Console(file=io.StringIO(), record=True, width=width, highlight=False,
                               no_color="NO_COLOR" in os.environ or None)
            recorder.print(view())
    if recorder is not None:
        from crmcli.cli.common import info
        from crmcli.core.files import write_private_text

        if svg:
            write_private_text(svg, recorder.export_svg(title=title, clear=False))
            info(_("Saved {path}.").format(path=svg))
        if html:
            write_private_text(html, recorder.export_html(clear=False))
            info(_("Saved {path}.").format(path=html))


def _markdown_sections(sections: list[tuple[str, list[dict[str, Any]], list["Column"]]], units: "Units") -> None:
    import sys

    from crmcli.cli.output import emit

    for i, (title, rows, columns) in enumerate(sections):
        if i:
            sys.stdout.write("\n")
        emit(rows, columns, "markdown", units, title=title)


def _record(data: dict[str, Any], fmt: str) -> None:
    from crmcli.cli.output import emit_record

    emit_record(data, fmt)


# ------------------------------------------------------------------------------------------- summary

@app.command("summary", help=_("A one-screen dashboard: customers, sales against the previous period, top customers, "
                               "and tiers, NPS, points and feedback where those features are in use. JSON gives every "
                               "figure; csv/tsv/markdown give one metric per row.\n\n"
                               "Example: crm report summary --since 30d --svg dashboard.svg"))
def summary(
    since: SinceOpt = None, until: UntilOpt = None, as_of: AsOfOpt = None, fmt: FormatOpt = None,
    svg: SvgOpt = None, html: HtmlOpt = None,
    top: Annotated[int, typer.Option("--top", help=_("How many top customers to show."), min=1, max=50)] = 5,
) -> None:
    from crmcli.core.reports import summary as summary_mod

    with state().store().read() as session:
        ctx, rng = _range(session, as_of, since, until, days=30)
        data = summary_mod.summary(session, ctx, rng, top=top)
    money = _money(ctx)

    def view() -> "RenderableType":
        from rich.table import Table
        from rich.text import Text

        from crmcli.render.charts import change_text
        from crmcli.render.dashboard import dashboard, panel, table_panel

        cust, sales = data["customers"], data["sales"]
        cur, chg = sales["current"], sales["change"]
        from crmcli.core.reports.periods import change_percent

        panels = [
            panel(_("Customers"), [
                (_("Total"), str(cust["total"]), None),
                (_("New"), str(cust["new"]), change_text(change_percent(cust["new"], cust["new_previous"]))),
                (_("Active (bought)"), str(cust["active"]),
                 change_text(change_percent(cust["active"], cust["active_previous"]))),
                (_("At risk ({days}+ days)").format(days=cust["at_risk_days"]), str(cust["at_risk"]), None),
                (_("Lost ({days}+ days)").format(days=cust["lost_days"]), str(cust["lost"]), None),
            ]),
            panel(_("Sales"), [
                (_("Revenue"), money(cur["revenue"]), change_text(chg["revenue"])),
                (_("Orders"), str(cur["orders"]), change_text(chg["orders"])),
                (_("Average order"), money(cur["aov"]), change_text(chg["aov"])),
                (_("Refunds"), money(cur["refunds"]), change_text(chg["refunds"], good_when_up=False)),
                (_("Net revenue"), money(cur["net"]), change_text(chg["net"])),
            ]),
        ]
        top_table = Table.grid(padding=(0, 1), expand=True)
        top_table.add_column(justify="right", no_wrap=True)
        top_table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        top_table.add_column(justify="right", no_wrap=True)
        for row in data["top_customers"]:
            top_table.add_row(str(row["rank"]), Text(row["name"]), money(row["net"]))
        if not data["top_customers"]:
            top_table.add_row("", _("no sales in this period"), "")
        panels.append(table_panel(_("Top customers"), top_table))
        panels.extend(_feature_panels(data, money))
        heading = _("Dashboard as of {date}").format(date=data["as_of"])
        sub = _("Period {period}, compared with {previous}").format(
            period=_("{since} – {until}").format(**data["period"]),
            previous=_("{since} – {until}").format(**data["previous"]))
        return dashboard(heading, sub, panels)

    def machine(chosen: str) -> None:
        if chosen in ("json", "jsonl"):
            _record(_summary_json(data, ctx), chosen)
            return
        from crmcli.cli.output import Column, emit

        rows = _summary_metrics(data)
        columns = [Column("section", _("Section")), Column("metric", _("Metric")), Column("value", _("Value")),
                   Column("previous", _("Previous")), Column("change_percent", _("Change %"))]
        emit(rows, columns, chosen, _units(ctx), title=_("Dashboard as of {date}").format(date=data["as_of"]))

    show(view, fmt, svg, html, machine, title=_("crm report summary"))


def _feature_panels(data: dict[str, Any], money: Callable[[int], str]) -> list[Any]:
    """Panels for the sections other features provide (only those present in ``data``)."""
    from rich.text import Text

    from crmcli.render.charts import bar
    from crmcli.render.dashboard import panel

    panels = []
    if "tiers" in data:
        counts = data["tiers"]["counts"]
        biggest = max(counts.values(), default=0)
        panels.append(panel(_("Tier mix"), [(name, str(n), bar(n, biggest, 12)) for name, n in counts.items()]))
    if "nps" in data:
        nps = data["nps"]
        lines = [(_("NPS"), Text(_num(nps.get("nps"))), None),
                 (_("Responses"), str(nps.get("responses", 0)), None)]
        for key, label in (("promoters", _("Promoters")), ("passives", _("Passives")), ("detractors", _("Detractors"))):
            if key in nps:
                lines.append((label, str(nps[key]), None))
        panels.append(panel(_("Satisfaction"), lines))
    if "points" in data:
        pts = data["points"]
        lines = [(_("Points outstanding"), str(pts["outstanding"]), None)]
        if pts.get("value_minor") is not None:
            lines.append((_("Liability"), money(pts["value_minor"]), None))
        if pts.get("expiring_30d") is not None:
            lines.append((_("Expiring in 30 days"), str(pts["expiring_30d"]), None))
        panels.append(panel(_("Points"), lines))
    if "feedback" in data:
        fb = data["feedback"]
        panels.append(panel(_("Feedback"), [(_("Open"), str(fb["open"]), None),
                                            (_("Overdue"), Text(str(fb["overdue"]), style="red" if fb["overdue"] else ""), None)]))
    if "churn" in data:
        from crmcli.core.churn.rules import level_label

        ch = data["churn"]
        lines: list[Any] = [(level_label(level), Text(str(n), style="red" if level == "high" and n else ""), None)
                            for level, n in ch.get("counts", {}).items()]
        if ch.get("scanned_as_of"):
            lines.append((_("Scanned"), str(ch["scanned_as_of"]), None))
        if ch.get("clv_total") is not None:
            lines.append((_("Predicted CLV"), money(ch["clv_total"]), None))
        panels.append(panel(_("Churn risk"), lines))
    return panels


def _summary_json(data: dict[str, Any], ctx: "StoreContext") -> dict[str, Any]:
    """Money as decimal strings, like every other JSON output."""
    from crmcli.core.money import money_str

    def conv(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: conv(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [conv(v, key) for v in value]
        if key in MONEY_KEYS and isinstance(value, int) and not isinstance(value, bool):
            return money_str(value, ctx.currency)
        return value

    out = conv(data)
    for block in ("current", "previous"):
        out["sales"][block] = {k: (money_str(v, ctx.currency) if k in MONEY_KEYS else v)
                               for k, v in data["sales"][block].items()}
    return out


MONEY_KEYS = {"revenue", "refunds", "net", "aov", "value_minor", "clv_total"}


def _summary_metrics(data: dict[str, Any]) -> list[dict[str, Any]]:
    from crmcli.core.money import money_str

    cur = data["currency"]
    rows: list[dict[str, Any]] = []
    cust = data["customers"]
    from crmcli.core.reports.periods import change_percent

    for key in ("total", "new", "active", "at_risk", "lost"):
        prev = cust.get(f"{key}_previous")
        rows.append({"section": "customers", "metric": key, "value": cust[key], "previous": prev,
                     "change_percent": change_percent(cust[key], prev) if prev is not None else None})
    sales = data["sales"]
    for key in ("orders", "customers", "revenue", "refunds", "net", "aov"):
        value, prev = sales["current"][key], sales["previous"][key]
        if key in MONEY_KEYS:
            value, prev = money_str(value, cur), money_str(prev, cur)
        rows.append({"section": "sales", "metric": key, "value": value, "previous": prev,
                     "change_percent": sales["change"][key]})
    for row in data["top_customers"]:
        rows.append({"section": "top_customers", "metric": f"{row['rank']}. {row['code']} {row['name']}",
                     "value": money_str(row["net"], cur), "previous": None, "change_percent": None})
    for section in ("tiers", "nps", "points", "feedback", "churn"):
        if section not in data:
            continue
        block = data[section]
        flat = block.get("counts", block) if section == "tiers" else block
        if section == "churn":
            flat = {**block.get("counts", {}), **{k: v for k, v in block.items() if k != "counts"}}
        for key, value in flat.items():
            if isinstance(value, (dict, list)):
                continue
            if key in MONEY_KEYS and isinstance(value, int):
                value = money_str(value, cur)
            rows.append({"section": section, "metric": str(key), "value": value, "previous": None,
                         "change_percent": None})
    return rows


# --------------------------------------------------------------------------------------------- sales

@app.command("sales", help=_("Orders, customers, units, revenue, refunds, net revenue and average order value by day, week, "
                             "month or quarter, optionally split by channel or category; bars and a sparkline on a "
                             "terminal. With --by-channel/--by-category and no --by: one row per channel/category.\n\n"
                             "Example: crm report sales --by week --since 2025-01-01 --by-channel"))
def sales(
    by: Annotated[Optional[str], typer.Option("--by", help=_("Period: day, week, month or quarter (default: month)."),
                                              metavar="PERIOD")] = None,
    by_channel: Annotated[bool, typer.Option("--by-channel", help=_("Split by sales channel."))] = False,
    by_category: Annotated[bool, typer.Option("--by-category", help=_("Split by product category."))] = False,
    since: SinceOpt = None, until: UntilOpt = None, as_of: AsOfOpt = None, fmt: FormatOpt = None,
    svg: SvgOpt = None, html: HtmlOpt = None,
) -> None:
    from crmcli.core.reports import sales as sales_mod

    if by is not None and by.lower() not in BY_CHOICES:
        raise UsageError(_("Unknown period '{value}'.").format(value=by),
                         hint=_("Use one of: {choices}.").format(choices=", ".join(BY_CHOICES)))
    if by_channel and by_category:
        raise UsageError(_("Choose --by-channel or --by-category, not both."))
    dimension = "channel" if by_channel else "category" if by_category else None
    period = by.lower() if by else (None if dimension else "month")
    with state().store().read() as session:
        ctx, rng = _range(session, as_of, since, until, by=period or "month")
        report = sales_mod.sales(session, rng, by=period, dimension=dimension)
    money = _money(ctx)
    dim_label = {"channel": _("Channel"), "category": _("Category")}.get(dimension or "", "")
    title = (_("Sales by {period}, {span}").format(period=_(PERIOD_NAMES[period]), span=_span(rng)) if period
             else _("Sales by {dimension}, {span}").format(dimension=dim_label.lower(), span=_span(rng)))

    from crmcli.cli.output import Column

    columns = ([Column("period", _("Period"))] if period else []) + \
        ([Column(dimension, dim_label)] if dimension else []) + [
        Column("start", _("From"), "date"), Column("end", _("To"), "date"),
        Column("orders", _("Orders"), "int"), Column("customers", _("Customers"), "int"),
        Column("units", _("Units"), "int"), Column("revenue", _("Revenue"), "money"),
        Column("refunds", _("Refunds"), "money"), Column("net", _("Net"), "money"),
        Column("aov", _("Avg order"), "money")]

    def view() -> "RenderableType":
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        from crmcli.render.charts import bar, sparkline

        table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, show_footer=True)
        total = report.total
        first = _("Total")
        if period:
            table.add_column(_("Period"), footer=first, no_wrap=True)
            first = ""
        if dimension:
            table.add_column(dim_label, footer=first, overflow="fold")
        table.add_column(_("Orders"), justify="right", footer=str(total["orders"]), no_wrap=True)
        table.add_column(_("Revenue"), justify="right", footer=money(total["revenue"]), no_wrap=True)
        table.add_column(_("Refunds"), justify="right", footer=money(total["refunds"]), no_wrap=True)
        table.add_column(_("Net"), justify="right", footer=money(total["net"]), no_wrap=True)
        table.add_column(_("Avg order"), justify="right", footer=money(total["aov"]), no_wrap=True)
        table.add_column("", no_wrap=True, overflow="crop", min_width=6, ratio=1)
        biggest = max((r["net"] for r in report.rows), default=0)
        for r in report.rows:
            cells = ([r["period"]] if period else []) + ([Text(str(r[dimension]))] if dimension else [])
            table.add_row(*cells, str(r["orders"]), money(r["revenue"]), money(r["refunds"]) if r["refunds"] else "",
                          money(r["net"]), money(r["aov"]) if r["orders"] else "", bar(r["net"], biggest, 16))
        parts: list[Any] = [table]
        if period and not dimension and len(report.rows) > 1:
            parts.append(Text(_("Net revenue trend: {spark}").format(spark=sparkline([r["net"] for r in report.rows])),
                              style="cyan"))
        if not report.rows:
            parts.append(Text(_("No sales in this period."), style="dim"))
        return Group(*parts)

    def machine(chosen: str) -> None:
        from crmcli.cli.output import emit

        emit(report.rows, columns, chosen, _units(ctx), title=title)

    show(view, fmt, svg, html, machine, title=title)


# -------------------------------------------------------------------------------------------- cohort

@app.command("cohort", help=_("Retention by acquisition cohort: customers grouped by the month (or quarter) of their first "
                              "purchase, and the share of each cohort that bought in each later period (heat-coloured "
                              "on a terminal). Columns m0, m1, ... (q0, q1, ... by quarter) are percentages.\n\n"
                              "Example: crm report cohort --since 2024-01-01 --by month"))
def cohort(
    by: Annotated[str, typer.Option("--by", help=_("Cohort period: month or quarter."), metavar="PERIOD")] = "month",
    since: SinceOpt = None, until: UntilOpt = None, as_of: AsOfOpt = None, fmt: FormatOpt = None,
    svg: SvgOpt = None, html: HtmlOpt = None,
    counts: Annotated[bool, typer.Option("--counts", help=_("Show customer counts instead of percentages."))] = False,
) -> None:
    from crmcli.core.reports import cohort as cohort_mod

    by = by.lower()
    if by not in cohort_mod.COHORT_BYS:
        raise UsageError(_("Unknown period '{value}'.").format(value=by),
                         hint=_("Use one of: {choices}.").format(choices=", ".join(cohort_mod.COHORT_BYS)))
    with state().store().read() as session:
        ctx, rng = _range(session, as_of, since, until, by=by)
        report = cohort_mod.cohorts(session, rng, by=by)
    prefix = "m" if by == "month" else "q"
    title = _("Retention by {period} of first purchase, {span}").format(period=_(PERIOD_NAMES[by]), span=_span(rng))

    def view() -> "RenderableType":
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        from crmcli.render.charts import heat_cell

        table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0))
        table.add_column(_("Cohort"), no_wrap=True)
        table.add_column(_("Size"), justify="right", no_wrap=True)
        for k in range(report.width):
            table.add_column(f" {prefix}{k}", justify="right", no_wrap=True)
        for r in report.rows:
            cells: list[Any] = [r["cohort"] + " ", str(r["size"])]
            for k in range(report.width):
                if k < len(r["retention"]) and r["size"]:
                    pct = r["retention"][k]
                    cells.append(heat_cell(pct, f" {r['customers'][k]}" if counts else f" {pct:.0f}%"))
                else:
                    cells.append("")
            table.add_row(*cells)
        return Group(table, Text(_("{prefix}0 is the month of the first purchase; {prefix}1 the next; and so on.").format(
            prefix=prefix) if by == "month" else _("{prefix}0 is the quarter of the first purchase; {prefix}1 the next; "
                                                   "and so on.").format(prefix=prefix), style="dim"))

    def machine(chosen: str) -> None:
        from crmcli.cli.output import Column, emit

        if chosen in ("json", "jsonl"):
            import json
            import sys

            records = [{"cohort": r["cohort"], "start": r["start"].isoformat(), "size": r["size"],
                        "customers": r["customers"], "retention": r["retention"]} for r in report.rows]
            if chosen == "json":
                sys.stdout.write(json.dumps({"by": by, **rng.as_dict(), "cohorts": records}, ensure_ascii=False,
                                            indent=2) + "\n")
            else:
                for rec in records:
                    sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")
            return
        columns = [Column("cohort", _("Cohort")), Column("size", _("Size"), "int")] + [
            Column(f"{prefix}{k}", f"{prefix}{k}", "text", justify="right") for k in range(report.width)]
        rows = []
        for r in report.rows:
            row: dict[str, Any] = {"cohort": r["cohort"], "size": r["size"]}
            for k in range(report.width):
                observed = k < len(r["retention"])
                value = (r["customers"][k] if counts else r["retention"][k]) if observed else None
                if value is None:
                    row[f"{prefix}{k}"] = None
                elif chosen == "markdown" and not counts:
                    row[f"{prefix}{k}"] = f"{value:.1f}%"
                else:
                    row[f"{prefix}{k}"] = value
            rows.append(row)
        emit(rows, columns, chosen, _units(ctx), title=title)

    show(view, fmt, svg, html, machine, title=title)


# -------------------------------------------------------------------------------------------- repeat

@app.command("repeat", help=_("Repeat purchasing: repeat-purchase rate, average interval between purchase days, purchases "
                              "per customer, and how many new customers came back for a second purchase (overall and "
                              "within 30/60/90 days).\n\n"
                              "Example: crm report repeat --since 2024-01-01 --until 2024-12-31"))
def repeat(
    since: SinceOpt = None, until: UntilOpt = None, as_of: AsOfOpt = None, fmt: FormatOpt = None,
    svg: SvgOpt = None, html: HtmlOpt = None,
) -> None:
    from crmcli.core.reports import repeat as repeat_mod

    with state().store().read() as session:
        ctx, rng = _range(session, as_of, since, until, days=365)
        report = repeat_mod.repeat(session, rng)
    title = _("Repeat purchases, {span}").format(span=_span(rng))
    metrics = [
        ("customers", _("Customers who bought"), report.customers, str(report.customers)),
        ("repeat_customers", _("Bought on 2+ days"), report.repeaters, str(report.repeaters)),
        ("repeat_rate", _("Repeat-purchase rate"), report.repeat_rate, _pct(report.repeat_rate)),
        ("orders_per_customer", _("Orders per customer"), report.orders_per_customer, _num(report.orders_per_customer)),
        ("avg_interval_days", _("Average interval (days)"), report.avg_interval_days, _num(report.avg_interval_days)),
        ("avg_customer_interval_days", _("Average of customers' own intervals"), report.avg_customer_interval_days,
         _num(report.avg_customer_interval_days)),
        ("new_customers", _("New customers (first purchase)"), report.new_customers, str(report.new_customers)),
        ("second_purchase_converted", _("Came back for a second purchase"), report.converted, str(report.converted)),
        ("second_purchase_rate", _("Second-purchase conversion"), report.conversion_rate, _pct(report.conversion_rate)),
        ("avg_days_to_second", _("Average days to second purchase"), report.avg_days_to_second,
         _num(report.avg_days_to_second)),
    ]
    for w in report.within:
        metrics.append((f"second_within_{w['days']}d", _("Second purchase within {days} days ({converted} of {eligible})").format(
            days=w["days"], converted=w["converted"], eligible=w["eligible"]), w["rate"], _pct(w["rate"])))

    def view() -> "RenderableType":
        from rich import box
        from rich.console import Group
        from rich.table import Table

        from crmcli.render.charts import bar

        table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column(_("Metric"), overflow="fold")
        table.add_column(_("Value"), justify="right", no_wrap=True)
        for _key, label, _value, text in metrics:
            table.add_row(label, text)
        dist = Table(title=_("Customers by number of purchase days"), box=box.SIMPLE_HEAD, show_edge=False,
                     pad_edge=False)
        dist.add_column(_("Purchase days"), no_wrap=True)
        dist.add_column(_("Customers"), justify="right", no_wrap=True)
        dist.add_column(_("Share"), justify="right", no_wrap=True)
        dist.add_column("", no_wrap=True, overflow="crop", min_width=6, ratio=1)
        biggest = max((d["customers"] for d in report.distribution), default=0)
        for d in report.distribution:
            dist.add_row(d["purchase_days"], str(d["customers"]), _pct(d["share"]), bar(d["customers"], biggest, 20))
        return Group(table, dist)

    def machine(chosen: str) -> None:
        if chosen in ("json", "jsonl"):
            _record(report.as_dict(), chosen)
            return
        from crmcli.cli.output import Column, emit

        rows = [{"metric": key, "label": label, "value": value} for key, label, value, _text in metrics]
        if chosen == "markdown":
            _markdown_sections([
                (title, [{"label": label, "value": text} for _k, label, _v, text in metrics],
                 [Column("label", _("Metric")), Column("value", _("Value"), justify="right")]),
                (_("Customers by number of purchase days"),
                 [{**d, "share": _pct(d["share"])} for d in report.distribution],
                 [Column("purchase_days", _("Purchase days")), Column("customers", _("Customers"), "int"),
                  Column("share", _("Share"), justify="right")])], _units(ctx))
            return
        emit(rows, [Column("metric", _("Metric")), Column("label", _("Label")), Column("value", _("Value"))], chosen,
             _units(ctx), title=title)

    show(view, fmt, svg, html, machine, title=title)


# ------------------------------------------------------------------------------------------ products

@app.command("products", help=_("Best sellers, and pairs of products bought together with support, confidence and lift. A "
                                "basket is one customer's purchases on one business day. csv/tsv/jsonl list the best "
                                "sellers, or the pairs with --pairs.\n\n"
                                "Example: crm report products --since 90d --min-count 3"))
def products(
    since: SinceOpt = None, until: UntilOpt = None, as_of: AsOfOpt = None, fmt: FormatOpt = None,
    svg: SvgOpt = None, html: HtmlOpt = None, limit: LimitOpt = None,
    sort: Annotated[str, typer.Option("--sort", help=_("Best sellers by net, revenue, units, orders or customers."),
                                      metavar="KEY")] = "net",
    min_count: Annotated[int, typer.Option("--min-count", help=_("Leave out pairs found in fewer baskets than this."),
                                           min=1)] = 2,
    pair_sort: Annotated[str, typer.Option("--pair-sort", help=_("Pairs by count, lift or confidence."),
                                           metavar="KEY")] = "count",
    pairs_only: Annotated[bool, typer.Option("--pairs", help=_("Only the pairs (for csv/tsv/jsonl, the pairs instead of the best sellers)."))] = False,
) -> None:
    from crmcli.core.reports import products as products_mod

    sort, pair_sort = sort.lower(), pair_sort.lower()
    if sort not in products_mod.SORTS:
        raise UsageError(_("Unknown sort '{value}'.").format(value=sort),
                         hint=_("Use one of: {choices}.").format(choices=", ".join(products_mod.SORTS)))
    if pair_sort not in products_mod.PAIR_SORTS:
        raise UsageError(_("Unknown sort '{value}'.").format(value=pair_sort),
                         hint=_("Use one of: {choices}.").format(choices=", ".join(products_mod.PAIR_SORTS)))
    with state().store().read() as session:
        ctx, rng = _range(session, as_of, since, until, days=90)
        report = products_mod.products(session, rng, sort=sort, limit=limit or 10, min_count=min_count,
                                       pair_sort=pair_sort)
    money = _money(ctx)
    title = _("Best sellers, {span}").format(span=_span(rng))
    pair_title = _("Bought together ({baskets} baskets; pairs in at least {n})").format(baskets=report.baskets,
                                                                                          n=min_count)
    from crmcli.cli.output import Column

    best_columns = [Column("rank", "#", "int"), Column("product", _("Product")), Column("orders", _("Orders"), "int"),
                    Column("units", _("Units"), "int"), Column("customers", _("Customers"), "int"),
                    Column("revenue", _("Revenue"), "money"), Column("refunds", _("Refunds"), "money"),
                    Column("net", _("Net"), "money"), Column("share", _("Share %"), "text", justify="right")]
    pair_columns = [Column("product_a", _("Product A")), Column("product_b", _("Product B")),
                    Column("baskets", _("Baskets"), "int"), Column("support", _("Support %"), justify="right"),
                    Column("confidence_ab", _("Conf. A→B %"), justify="right"),
                    Column("confidence_ba", _("Conf. B→A %"), justify="right"),
                    Column("lift", _("Lift"), justify="right")]

    def view() -> "RenderableType":
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        from crmcli.render.charts import bar

        parts: list[Any] = []
        if not pairs_only:
            table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
            table.add_column("#", justify="right", no_wrap=True)
            table.add_column(_("Product"), overflow="fold")
            table.add_column(_("Units"), justify="right", no_wrap=True)
            table.add_column(_("Customers"), justify="right", no_wrap=True)
            table.add_column(_("Net"), justify="right", no_wrap=True)
            table.add_column(_("Share"), justify="right", no_wrap=True)
            table.add_column("", no_wrap=True, overflow="crop", min_width=4, ratio=1)
            biggest = max((r["net"] for r in report.best), default=0)
            for r in report.best:
                table.add_row(str(r["rank"]), Text(r["product"]), str(r["units"]), str(r["customers"]), money(r["net"]),
                              _pct(r["share"]), bar(r["net"], biggest, 12))
            parts.append(table)
            if not report.best:
                parts.append(Text(_("No sales in this period."), style="dim"))
            parts.append(Text(""))
        pt = Table(title=pair_title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        pt.add_column(_("Product A"), overflow="fold")
        pt.add_column(_("Product B"), overflow="fold")
        pt.add_column(_("Baskets"), justify="right", no_wrap=True)
        pt.add_column(_("Support"), justify="right", no_wrap=True)
        pt.add_column(_("A→B"), justify="right", no_wrap=True)
        pt.add_column(_("B→A"), justify="right", no_wrap=True)
        pt.add_column(_("Lift"), justify="right", no_wrap=True)
        for r in report.pairs:
            pt.add_row(Text(r["product_a"]), Text(r["product_b"]), str(r["baskets"]), _pct(r["support"]), _pct(r["confidence_ab"]),
                       _pct(r["confidence_ba"]), Text(f"{r['lift']:.2f}", style="green" if r["lift"] > 1 else ""))
        parts.append(pt)
        if not report.pairs:
            parts.append(Text(_("No pair of products was bought together in {n} or more baskets.").format(n=min_count),
                              style="dim"))
        parts.append(Text(_("Support: share of baskets with both; confidence A→B: share of baskets with A that also "
                            "have B; lift > 1: bought together more often than by chance."), style="dim"))
        return Group(*parts)

    def machine(chosen: str) -> None:
        from crmcli.cli.output import emit

        units = _units(ctx)
        if chosen == "json":
            from crmcli.core.money import money_str

            best = [{**r, **{k: money_str(r[k], ctx.currency) for k in ("revenue", "refunds", "net")}}
                    for r in report.best]
            _record({**rng.as_dict(), "baskets": report.baskets, "min_count": min_count,
                     **({} if pairs_only else {"best_sellers": best}), "pairs": report.pairs}, chosen)
        elif chosen == "markdown":
            sections = [] if pairs_only else [(title, report.best, best_columns)]
            _markdown_sections([*sections, (pair_title, report.pairs, pair_columns)], units)
        elif pairs_only:
            emit(report.pairs, pair_columns, chosen, units)
        else:
            emit(report.best, best_columns, chosen, units)

    show(view, fmt, svg, html, machine, title=title)


# ------------------------------------------------------------------------ the other features' reports

def _simple_table(title: str, columns: list["Column"], rows: list[dict[str, Any]], units: "Units", *,
                  bar_key: str | None = None, note: str | None = None) -> "RenderableType":
    """A Rich table of rows (same cell text as the machine formats' human form), with an optional bar."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from crmcli.cli.output import text_value
    from crmcli.render.charts import bar

    from rich.cells import cell_len

    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for c in columns:
        numeric = c.kind in ("money", "int") or c.justify == "right"
        widest = max((cell_len(text_value(r.get(c.source or c.key), c, units)) for r in rows), default=0)
        table.add_column(c.label, justify="right" if numeric else "left", no_wrap=numeric, overflow="fold",
                         min_width=None if numeric else min(max(widest, cell_len(c.label)), 16))
    if bar_key:
        table.add_column("", no_wrap=True, overflow="crop", width=10)
    biggest = max((float(r.get(bar_key) or 0) for r in rows), default=0) if bar_key else 0
    for r in rows:
        cells: list[Any] = [Text(text_value(r.get(c.source or c.key), c, units)) for c in columns]
        if bar_key:
            cells.append(bar(float(r.get(bar_key) or 0), biggest, 10))
        table.add_row(*cells)
    parts: list[Any] = [table]
    if not rows:
        parts.append(Text(_("Nothing to show."), style="dim"))
    if note:
        parts.append(Text(note, style="dim"))
    return Group(*parts)


def _run_note(run: dict[str, Any] | None) -> str:
    if not run:
        return _("Not computed yet: run `crm tier recompute`.")
    return _("As of the last recompute ({date}).").format(date=run.get("as_of") or run.get("ran_at") or "?")


@app.command("tiers", help=_("Customers, revenue share and average spend per A/B/C tier (the tiers feature's summary, as of "
                             "its last recompute).\n\nExample: crm report tiers --svg tiers.svg"))
def tiers(fmt: FormatOpt = None, svg: SvgOpt = None, html: HtmlOpt = None) -> None:
    from crmcli.cli.output import Column, emit
    from crmcli.core.reports import features

    with state().store().read() as session:
        ctx = store_context(session)
        data = features.tiers(session)
    rows = [{**r, "tier": r["tier"] or "—", "customer_share": float(r["customer_share"]),
             "revenue_share": float(r["revenue_share"])} for r in data["tiers"]]
    columns = [Column("tier", _("Tier")), Column("customers", _("Customers"), "int"),
               Column("customer_share", _("Share %"), justify="right"),
               Column("revenue", _("Revenue"), "money", source="revenue_minor"),
               Column("revenue_share", _("Revenue %"), justify="right"),
               Column("average", _("Average"), "money", source="average_minor")]
    title = _("Tiers")
    show(lambda: _simple_table(title, columns, rows, _units(ctx), bar_key="revenue_minor", note=_run_note(data["last_run"])),
         fmt, svg, html, lambda chosen: emit(rows, columns, chosen, _units(ctx), title=title), title=title)


@app.command("segments", help=_("Customers and revenue per RFM segment (the tiers feature's segments, as of its last "
                                "recompute).\n\nExample: crm report segments --format markdown"))
def segments(fmt: FormatOpt = None, svg: SvgOpt = None, html: HtmlOpt = None) -> None:
    from crmcli.cli.output import Column, emit
    from crmcli.core.reports import features
    from crmcli.core.rfm import segment_label

    with state().store().read() as session:
        ctx = store_context(session)
        data = features.segments(session)
    rows = [{**r, "label": segment_label(r["segment"]) if r["segment"] else "—",
             "customer_share": float(r["customer_share"]), "revenue_share": float(r["revenue_share"])}
            for r in data["segments"]]
    columns = [Column("segment", _("Segment key")), Column("label", _("Segment")),
               Column("customers", _("Customers"), "int"),
               Column("customer_share", _("Share %"), justify="right"),
               Column("revenue", _("Revenue"), "money", source="revenue_minor"),
               Column("revenue_share", _("Revenue %"), justify="right"),
               Column("average", _("Average"), "money", source="average_minor")]
    title = _("RFM segments")
    show(lambda: _simple_table(title, columns[1:], rows, _units(ctx), note=_run_note(data["last_run"])),
         fmt, svg, html, lambda chosen: emit(rows, columns, chosen, _units(ctx), title=title), title=title)


@app.command("nps", help=_("Net Promoter Score of every NPS survey in the period, with its 95% interval, promoters, "
                           "passives, detractors and response rate (the surveys feature's results).\n\n"
                           "Example: crm report nps --since 2025-01-01"))
def nps(
    since: SinceOpt = None, until: UntilOpt = None, as_of: AsOfOpt = None, fmt: FormatOpt = None,
    svg: SvgOpt = None, html: HtmlOpt = None,
) -> None:
    from crmcli.cli.output import Column, emit
    from crmcli.core.reports import features

    with state().store().read() as session:
        ctx, rng = _range(session, as_of, since, until, days=365)
        rows = features.nps(session, ctx, rng)
    for r in rows:
        for key in ("nps", "ci_low", "ci_high"):
            r[key] = round(r[key], 1) if r[key] is not None else None
        r["trend_line"] = " ".join(f"{t['month']}:{t['value']}" for t in r["trend"])
    columns = [Column("survey", _("Survey")), Column("nps", _("NPS"), justify="right"),
               Column("ci_low", _("95% low"), justify="right"), Column("ci_high", _("95% high"), justify="right"),
               Column("responses", _("Responses"), "int"), Column("promoters", _("Promoters"), "int"),
               Column("passives", _("Passives"), "int"), Column("detractors", _("Detractors"), "int"),
               Column("invited", _("Invited"), "int"), Column("response_rate", _("Response %"), justify="right")]
    title = _("Net Promoter Score, {span}").format(span=_span(rng))

    def view() -> "RenderableType":
        from rich.console import Group
        from rich.text import Text

        from crmcli.render.charts import sparkline

        shown = [{**r, "ci": "" if r["ci_low"] is None else f"{r['ci_low']:.1f} – {r['ci_high']:.1f}"} for r in rows]
        view_columns = [columns[0], columns[1], Column("ci", _("95% interval"), justify="right"), *columns[4:8]]
        parts: list[Any] = [_simple_table(title, view_columns, shown, _units(ctx))]
        for r in rows:
            values = [t["value"] for t in r["trend"]]
            if len(values) > 1:
                parts.append(Text(_("{survey}: NPS by month {spark} ({first} → {last})").format(
                    survey=r["survey"], spark=sparkline(values), first=r["trend"][0]["month"],
                    last=r["trend"][-1]["month"]), style="cyan"))
        return Group(*parts)

    def machine(chosen: str) -> None:
        if chosen == "json":
            _record({**rng.as_dict(), "surveys": [{k: v for k, v in r.items() if k != "trend_line"} for r in rows]},
                    chosen)
            return
        emit(rows, columns, chosen, _units(ctx), title=title)

    show(view, fmt, svg, html, machine, title=title)


@app.command("points", help=_("Loyalty points outstanding on the as-of date, what they are worth, what expires within 30 "
                              "days and who owes points (the points feature's liability).\n\n"
                              "Example: crm report points --as-of 2025-12-31"))
def points(as_of: AsOfOpt = None, fmt: FormatOpt = None, svg: SvgOpt = None, html: HtmlOpt = None) -> None:
    from crmcli.core.reports import features

    with state().store().read() as session:
        ctx = store_context(session, as_of)
        data = features.points(session, ctx)
    money = _money(ctx)
    metrics = [("outstanding", _("Points outstanding"), data["outstanding"], str(data["outstanding"])),
               ("spendable", _("Spendable now"), data["spendable"], str(data["spendable"])),
               ("locked", _("Locked (return window)"), data["locked"], str(data["locked"])),
               ("expiring_30d", _("Expiring within 30 days"), data["expiring_30d"], str(data["expiring_30d"])),
               ("overdue", _("Past expiry, not yet expired"), data["overdue"], str(data["overdue"])),
               ("customers", _("Customers holding points"), data["customers"], str(data["customers"])),
               ("debt", _("Points owed by customers"), data["debt"], str(data["debt"])),
               ("value_per_point", _("Value of one point"), data["value_per_point"], data["value_per_point"]),
               ("value", _("Liability"), data["value_minor"], money(data["value_minor"]))]
    title = _("Points liability as of {date}").format(date=ctx.today.isoformat())
    _metric_report(title, metrics, fmt, svg, html, ctx, record={**data, "value": _money_str(ctx, data["value_minor"])})


@app.command("feedback", help=_("Open and overdue feedback now, and the share handled within its deadline among items "
                                "opened in the period (the feedback feature's definitions).\n\n"
                                "Example: crm report feedback --since 90d"))
def feedback(
    since: SinceOpt = None, until: UntilOpt = None, as_of: AsOfOpt = None, fmt: FormatOpt = None,
    svg: SvgOpt = None, html: HtmlOpt = None,
) -> None:
    from crmcli.core.reports import features

    with state().store().read() as session:
        ctx, rng = _range(session, as_of, since, until, days=90)
        data = features.feedback(session, ctx, rng)
    metrics = [("open", _("Open now"), data["open"], str(data["open"])),
               ("overdue", _("Overdue now"), data["overdue"], str(data["overdue"])),
               ("opened", _("Opened in the period"), data["opened"], str(data["opened"])),
               ("handled_in_time", _("Handled in time"), data["handled_in_time"], str(data["handled_in_time"])),
               ("missed", _("Missed the deadline"), data["missed"], str(data["missed"])),
               ("pending", _("Open, not yet due"), data["pending"], str(data["pending"])),
               ("no_deadline", _("Without a deadline"), data["no_deadline"], str(data["no_deadline"])),
               ("in_time_share", _("Share handled within deadline"), data["in_time_share"], _pct(data["in_time_share"]))]
    title = _("Feedback, {span}").format(span=_span(rng))
    _metric_report(title, metrics, fmt, svg, html, ctx, record={**rng.as_dict(), **data})


@app.command("clv", help=_("Customer value: the distribution (ten groups of customers, highest first, with their share "
                           "of all value) and the top customers, by historical net spend and by the predicted CLV of "
                           "the last `crm churn score` (when the churn models were fitted and scored). Historical "
                           "value counts purchases from --since (default: all history) to --until.\n\n"
                           "Example: crm report clv --top 20 --format markdown"))
def clv(
    since: SinceOpt = None, until: UntilOpt = None, as_of: AsOfOpt = None, fmt: FormatOpt = None,
    svg: SvgOpt = None, html: HtmlOpt = None,
    top: Annotated[int, typer.Option("--top", help=_("How many top customers to show."), min=1, max=1000)] = 10,
) -> None:
    from crmcli.cli.common import parse_day
    from crmcli.cli.output import Column, emit
    from crmcli.core.reports.value import clv_report

    with state().store().read() as session:
        ctx = store_context(session, as_of)
        first = parse_day(since, ctx, "--since")
        last = parse_day(until, ctx, "--until") or ctx.today
        if first is not None and first > last:
            raise UsageError(_("--since {since} is after --until {until}.").format(since=first, until=last))
        data = clv_report(session, ctx, since=first, until=last, top=top)
    units = _units(ctx)
    money = _money(ctx)
    top_columns = [Column("rank", _("#"), "int"), Column("code", _("Code")), Column("name", _("Name")),
                   Column("historical", _("Historical"), "money"), Column("predicted", _("Predicted CLV"), "money"),
                   Column("p_alive", _("P(alive)"), justify="right"),
                   Column("expected_purchases", _("Expected"), justify="right"),
                   Column("order_value", _("Order value"), "money")]
    dist_columns = [Column("decile", _("Group"), "int"), Column("customers", _("Customers"), "int"),
                    Column("total", _("Value"), "money"), Column("share", _("Share %"), justify="right"),
                    Column("min", _("From"), "money"), Column("max", _("To"), "money")]
    span = (_("{since} – {until}").format(since=first.isoformat(), until=last.isoformat()) if first
            else _("up to {until}").format(until=last.isoformat()))
    title = _("Customer value, {span}").format(span=span)
    if data["predicted"] is None:
        note = _("No predicted CLV yet: run `crm churn fit` and `crm churn score`.")
    else:
        note = _("Predicted CLV over {months} months from the scores of {date}.").format(
            months=data["clv_months"], date=data["scored_as_of"])

    def stats_line(label: str, st: dict[str, Any]) -> str:
        if not st["customers"]:
            return _("{label}: no customers.").format(label=label)
        return _("{label}: {n} customers, total {total}, mean {mean}, median {median}, top 20 % hold {share}").format(
            label=label, n=st["customers"], total=money(st["total"]), mean=money(st["mean"]), median=money(st["median"]),
            share=_pct(st["top20_share"]))

    def view() -> "RenderableType":
        from rich.console import Group
        from rich.text import Text

        parts: list[Any] = [Text(title, style="bold"), Text(stats_line(_("Historical"), data["historical"]))]
        if data["predicted"] is not None:
            parts.append(Text(stats_line(_("Predicted CLV"), data["predicted"])))
        parts.append(_simple_table(_("Historical value by group of customers"), dist_columns,
                                   data["distribution"]["historical"], units, bar_key="total"))
        if data["distribution"]["predicted"]:
            parts.append(_simple_table(_("Predicted CLV by group of customers"), dist_columns,
                                       data["distribution"]["predicted"], units, bar_key="total"))
        parts.append(_simple_table(_("Top customers"), top_columns, data["top_customers"], units, note=note))
        return Group(*parts)

    def machine(chosen: str) -> None:
        from crmcli.core.money import money_str

        if chosen == "json":
            def conv(st: dict[str, Any] | None) -> dict[str, Any] | None:
                if st is None:
                    return None
                return {k: (money_str(v, ctx.currency) if k in ("total", "mean", "median", "p90", "max", "min")
                            and v is not None else v) for k, v in st.items()}

            dist = data["distribution"]
            _record({**data, "historical": conv(data["historical"]), "predicted": conv(data["predicted"]),
                     "distribution": {"historical": [conv(d) for d in dist["historical"]],
                                      "predicted": [conv(d) for d in dist["predicted"]] if dist["predicted"] else None},
                     "top_customers": [{k: (money_str(v, ctx.currency) if k in ("historical", "predicted", "order_value")
                                            and v is not None else v) for k, v in r.items()}
                                       for r in data["top_customers"]]}, chosen)
            return
        if chosen == "markdown":
            sections = [(_("Historical value by group of customers"), data["distribution"]["historical"], dist_columns)]
            if data["distribution"]["predicted"]:
                sections.append((_("Predicted CLV by group of customers"), data["distribution"]["predicted"],
                                 dist_columns))
            sections.append((_("Top customers"), data["top_customers"], top_columns))
            _markdown_sections(sections, units)
            return
        emit(data["top_customers"], top_columns, chosen, units, title=title)

    show(view, fmt, svg, html, machine, title=title)


@app.command("churn", help=_("Churn risk of every customer with purchases, assessed as of --as-of with the `crm churn "
                             "scan` rules (nothing is saved): customers per risk level, per tier, and how often each "
                             "warning rule fired; plus the totals of the last `crm churn score` (mean P(alive), "
                             "expected purchases, CLV).\n\n"
                             "Example: crm report churn --as-of 2025-06-30 --svg churn.svg"))
def churn(as_of: AsOfOpt = None, fmt: FormatOpt = None, svg: SvgOpt = None, html: HtmlOpt = None) -> None:
    from crmcli.cli.output import Column, emit
    from crmcli.core.churn.rules import LEVELS, level_label
    from crmcli.core.churn.scan import skipped_text
    from crmcli.core.reports.value import churn_report

    with state().store().read() as session:
        ctx = store_context(session, as_of)
        data = churn_report(session, ctx)
    units = _units(ctx)
    money = _money(ctx)
    title = _("Churn risk as of {date}").format(date=ctx.today.isoformat())
    level_rows = [{"risk": level, "label": level_label(level), "customers": data["counts"][level],
                   "share": data["shares"][level]} for level in reversed(LEVELS)]
    tier_columns = [Column("tier", _("Tier"))] + [Column(level, level_label(level), "int") for level in reversed(LEVELS)] \
        + [Column("total", _("Total"), "int")]
    rule_names = {"complaints": _("complaints open"), "nps": _("low NPS"), "csat": _("low CSAT"),
                  "interval": _("overdue against their usual interval"), "recency": _("days without a purchase"),
                  "spend_drop": _("spend dropped"), "no_contact": _("no contact")}
    reason_rows = [{**r, "label": rule_names.get(r["rule"], r["rule"])} for r in data["reasons"]]
    notes = [skipped_text(data["skipped_rules"]) or ""]
    sc = data["scores"]
    if sc is None:
        notes.append(_("No model scores yet: run `crm churn fit` and `crm churn score`."))
    else:
        text = _("Scores of {date}: {n} customers, mean P(alive) {p} %, {e} purchases expected in {days} days").format(
            date=sc["as_of"], n=sc["customers"], p=round(sc["p_alive_mean"] * 100, 1), e=sc["expected_purchases"],
            days=sc["horizon_days"])
        if sc["clv_total"] is not None:
            text += _(", CLV over {months} months {total}").format(months=sc["clv_months"], total=money(sc["clv_total"]))
        notes.append(text + ".")

    def view() -> "RenderableType":
        from rich.console import Group
        from rich.text import Text

        parts: list[Any] = [
            _simple_table(title, [Column("label", _("Risk")), Column("customers", _("Customers"), "int"),
                                  Column("share", _("Share %"), justify="right")], level_rows, units,
                          bar_key="customers"),
            _simple_table(_("By tier"), tier_columns, data["by_tier"], units),
            _simple_table(_("Warnings that fired"), [Column("label", _("Rule")), Column("customers", _("Customers"), "int"),
                                                     Column("high", _("At high level"), "int")], reason_rows, units)]
        parts.extend(Text(n, style="dim") for n in notes if n)
        return Group(*parts)

    def machine(chosen: str) -> None:
        from crmcli.core.money import money_str

        if chosen == "json":
            scores = None if sc is None else {**sc, "clv_total": money_str(sc["clv_total"], ctx.currency)
                                              if sc["clv_total"] is not None else None}
            _record({**data, "scores": scores}, chosen)
            return
        if chosen == "markdown":
            _markdown_sections([(title, level_rows, [Column("risk", _("Risk"), "message"), Column("customers", _("Customers"), "int"),
                                                     Column("share", _("Share %"), justify="right")]),
                                (_("By tier"), data["by_tier"], tier_columns)], units)
            return
        emit(data["by_tier"], [Column("tier", _("Tier"))] + [Column(level, level, "int") for level in reversed(LEVELS)]
             + [Column("total", _("Total"), "int")], chosen, units, title=title)

    show(view, fmt, svg, html, machine, title=title)


def _money_str(ctx: "StoreContext", minor: int) -> str:
    from crmcli.core.money import money_str

    return money_str(minor, ctx.currency)


def _metric_report(title: str, metrics: list[tuple[str, str, Any, str]], fmt: str | None, svg: str | None,
                   html: str | None, ctx: "StoreContext", *, record: dict[str, Any]) -> None:
    """A two-column report (metric, value): a table for people, one JSON document, or metric rows."""

    def view() -> "RenderableType":
        from rich import box
        from rich.table import Table

        table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column(_("Metric"), overflow="fold")
        table.add_column(_("Value"), justify="right", no_wrap=True)
        for _key, label, _value, text in metrics:
            table.add_row(label, text)
        return table

    def machine(chosen: str) -> None:
        from crmcli.cli.output import Column, emit

        if chosen in ("json", "jsonl"):
            _record(record, chosen)
            return
        if chosen == "markdown":
            emit([{"label": label, "value": text} for _k, label, _v, text in metrics],
                 [Column("label", _("Metric")), Column("value", _("Value"), justify="right")], chosen, _units(ctx),
                 title=title)
            return
        emit([{"metric": key, "value": value} for key, _l, value, _t in metrics],
             [Column("metric", _("Metric")), Column("value", _("Value"))], chosen, _units(ctx), title=title)

    show(view, fmt, svg, html, machine, title=title)
