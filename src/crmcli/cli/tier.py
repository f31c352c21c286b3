"""`crm tier`: A/B/C tiers, RFM segments, lifecycle stages and membership levels."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from crmcli.cli.common import AsOfOpt, FormatOpt, LimitOpt, info, pick_customer, state, store_context
from crmcli.i18n import _

app = typer.Typer(help=_("Classify customers: A/B/C tiers, RFM segments, lifecycle stages, membership levels.\n\n"
                         "Example: crm tier recompute --as-of 2025-06-30"), no_args_is_help=True)
rules_app = typer.Typer(help=_("Show the classification rules kept in the store (or change them with `set`).\n\n"
                               "Example: crm tier rules"), invoke_without_command=True)
levels_app = typer.Typer(help=_("Membership levels: list them (default), add, edit, remove.\n\n"
                                "Example: crm tier levels add gold --threshold 5000 --discount 5 --multiplier 1.5"),
                         invoke_without_command=True)
app.add_typer(rules_app, name="rules")
app.add_typer(levels_app, name="levels")

CustomerArg = Annotated[str, typer.Argument(help=_("The customer: id, code, phone, e-mail or part of the name."),
                                            metavar="CUSTOMER")]
SegmentOpt = Annotated[Optional[str], typer.Option("--segment", help=_("Only this RFM segment, e.g. 'At risk'."))]
StageOpt = Annotated[Optional[str], typer.Option("--stage", help=_("Only this lifecycle stage, e.g. lost."))]
LevelOpt = Annotated[Optional[str], typer.Option("--level", help=_("Only this membership level, e.g. gold."))]
ChartOpt = Annotated[Optional[bool], typer.Option("--chart/--no-chart",
                                                  help=_("Draw the bar chart (default: on a terminal)."))]


def _units(ctx: Any) -> Any:
    from crmcli.cli.output import Units

    return Units(ctx.currency, ctx.tz)


def _tier_text(tier: Optional[str]) -> str:
    return tier or _("none")


# --------------------------------------------------------------------------------------- recompute

@app.command("recompute", help=_("Recompute every customer's tier, RFM segment, lifecycle stage and level; "
                                 "record each change and print how many moved up and down. "
                                 "Running it twice with the same --as-of changes nothing.\n\n"
                                 "Example: crm tier recompute --as-of 2025-06-30 --dry-run"))
def recompute(
    as_of: AsOfOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=_("Compute and report, but save nothing."))] = False,
    changes: Annotated[bool, typer.Option("--changes", help=_("List the customers whose tier or level changes."))] = False,
    limit: LimitOpt = None,
    fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.output import Column, choose_format, emit, emit_record
    from crmcli.core import classify

    store = state().store()
    if dry_run:
        with store.read() as session:
            ctx = store_context(session, as_of)
            result = classify.recompute(session, ctx, dry_run=True, want_changes=changes)
    else:  # computed in a read transaction, saved in a short write transaction (core/classify.py)
        result, ctx = classify.run_two_phase(
            store, lambda session: store_context(session, as_of),
            lambda session, c: classify.recompute(session, c, want_changes=changes, defer=True))
    shown = result.changes[:limit] if limit else result.changes
    labels: dict[int, tuple[str, str]] = {}
    if shown:
        with store.read() as session:
            labels = _customer_labels(session, [c["customer_id"] for c in shown])
    rules = result.rules.tiers
    info(_("Classified {n} customers as of {date} ({method}, {days}-day window): tiers {up} up, {down} down, "
           "{new} newly assigned; levels {lup} up, {ldown} down, {lnew} newly assigned.").format(
        n=result.customers, date=result.as_of, method=_(rules.method), days=rules.window_days, up=result.tier.up,
        down=result.tier.down, new=result.tier.new, lup=result.level.up, ldown=result.level.down,
        lnew=result.level.new))
    if dry_run:
        info(_("Dry run: nothing was saved."))
    elif result.run_id is None:
        info(_("Nothing changed."))
    chosen = choose_format(fmt)
    if changes:
        rows = [{**c, "code": labels.get(c["customer_id"], ("", ""))[0], "name": labels.get(c["customer_id"], ("", ""))[1]}
                for c in shown]
        emit(rows, [Column("code", _("Code")), Column("name", _("Name")), Column("kind", _("What")),
                    Column("from", _("From")), Column("to", _("To")),
                    Column("net_spent", _("Net spend"), "money", source="net_minor"),
                    Column("orders", _("Orders"), "int")], chosen, _units(ctx), empty_message=_("No changes."))
        return
    record = {"as_of": result.as_of, "method": rules.method, "window_days": rules.window_days,
              "customers": result.customers, "changed": result.changed_rows, "tier": result.tier.as_dict(),
              "level": result.level.as_dict(), "tiers": result.tiers, "dry_run": dry_run, "run_id": result.run_id}
    if chosen == "json":
        emit_record(record, chosen)
        return
    rows = [{"what": "tier", **result.tier.as_dict()}, {"what": "level", **result.level.as_dict()}]
    emit(rows, [Column("what", _("What")), Column("up", _("Up"), "int"), Column("down", _("Down"), "int"),
                Column("new", _("New"), "int")], chosen, _units(ctx))


def _customer_labels(session: Any, ids: list[int]) -> dict[int, tuple[str, str]]:
    from sqlalchemy import select

    from crmcli.store.models import Customer

    C = Customer.__table__
    out: dict[int, tuple[str, str]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for r in session.execute(select(C.c.id, C.c.code, C.c.name).where(C.c.id.in_(chunk))):
            out[r.id] = (r.code, r.name)
    return out


# --------------------------------------------------------------------------------------------- rfm

def _segment_columns(with_activity: bool) -> list:
    from crmcli.cli.output import Column

    cols = [Column("segment", _("Segment"), source="segment_key"), Column("name", _("Name")),
            Column("customers", _("Customers"), "int"), Column("customer_share", _("Customers %"), justify="right"),
            Column("revenue", _("Revenue"), "money", source="revenue_minor"),
            Column("revenue_share", _("Revenue %"), justify="right"),
            Column("average", _("Average"), "money", source="average_minor")]
    if with_activity:
        cols += [Column("recency_days", _("Recency (days)"), justify="right"),
                 Column("frequency", _("Frequency"), justify="right")]
    return cols


def _segment_view(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from crmcli.core.rfm import segment_label

    return [{**r, "segment_key": r["segment"],
             "name": segment_label(r["segment"]) if r["segment"] else _("(no purchase in the window)")} for r in rows]


@app.command("rfm", help=_("Score customers by recency, frequency and monetary value (1-5 by quintiles), save "
                           "the scores and named segments, and show the segments (or, with --customers, each "
                           "customer's scores).\n\n"
                           "Example: crm tier rfm --as-of 2025-06-30 --window 365d --customers --segment 'At risk'"))
def rfm(
    as_of: AsOfOpt = None,
    window: Annotated[Optional[str], typer.Option("--window", help=_("Window, e.g. 365d or 6m (default: setting rfm.window)."))] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=_("Compute and show, but save nothing."))] = False,
    customers: Annotated[bool, typer.Option("--customers", help=_("List each scored customer instead of the segments."))] = False,
    segment: SegmentOpt = None,
    limit: LimitOpt = None,
    chart: ChartOpt = None,
    fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.output import choose_format, emit
    from crmcli.core import classify

    store = state().store()
    days = None
    if window is not None:
        from crmcli.core.tiers import PARSERS
        from crmcli.errors import InvalidInput

        try:
            days = PARSERS["days"](window)
        except ValueError as e:
            raise InvalidInput(_("'{value}' is not valid for --window: {reason}.").format(value=window, reason=e),
                               field="--window", value=window) from None
    wanted = None
    if segment:
        from crmcli.core.rfm import parse_segment

        wanted = parse_segment(segment)
    if dry_run:
        with store.read() as session:
            ctx = store_context(session, as_of)
            result = classify.rfm(session, ctx, window_days=days, dry_run=True, want_scores=customers)
    else:  # computed in a read transaction, saved in a short write transaction (core/classify.py)
        result, ctx = classify.run_two_phase(
            store, lambda session: store_context(session, as_of),
            lambda session, c: classify.rfm(session, c, window_days=days, want_scores=customers, defer=True))
    rows = None
    if customers:
        with store.read() as session:
            rows = _score_rows(session, result, wanted, limit)
    window_days = days or result.rules.rfm_window
    scored = sum(r["customers"] for r in result.segments if r["segment"])
    info(_("Scored {n} of {total} customers with a purchase in the {days} days up to {date}; {changed} changed.")
         .format(n=scored, total=result.customers, days=window_days, date=result.as_of, changed=result.changed_rows))
    if dry_run:
        info(_("Dry run: nothing was saved."))
    chosen = choose_format(fmt)
    if customers:
        from crmcli.cli.output import Column

        assert rows is not None
        emit(rows, [Column("code", _("Code")), Column("name", _("Name")),
                    Column("recency_days", _("Recency (days)"), "int"), Column("frequency", _("Frequency"), "int"),
                    Column("monetary", _("Monetary"), "money", source="monetary_minor"),
                    Column("r", _("R"), "int"), Column("f", _("F"), "int"), Column("m", _("M"), "int"),
                    Column("rfm", _("RFM")), Column("segment", _("Segment"), source="segment_key"),
                    Column("segment_name", _("Segment name"))],
             chosen, _units(ctx), empty_message=_("No customer bought anything in the window."))
        return
    view = _segment_view(result.segments)
    if segment:
        view = [r for r in view if r["segment_key"] == wanted]
    emit(view, _segment_columns(True), chosen, _units(ctx))
    _maybe_chart(view, chosen, chart, "name")


def _score_rows(session: Any, result: Any, wanted: Optional[str], limit: Optional[int]) -> list[dict[str, Any]]:
    import numpy as np

    from crmcli.core.rfm import SEGMENT_KEYS, segment_label

    ids, r, f, m, seg, recency, orders, net = result.scores
    mask = seg >= 0
    if wanted:
        mask &= seg == SEGMENT_KEYS.index(wanted)
    idx = np.nonzero(mask)[0]
    # Best first: R+F+M, then M, then R, then the customer id.
    order = np.lexsort((ids[idx], -r[idx], -net[idx], -(r[idx] + f[idx] + m[idx])))
    idx = idx[order]
    if limit:
        idx = idx[:limit]
    labels = _customer_labels(session, ids[idx].tolist())
    out = []
    for i in idx.tolist():
        code, name = labels.get(int(ids[i]), ("", ""))
        key = SEGMENT_KEYS[int(seg[i])]
        out.append({"code": code, "name": name, "recency_days": int(recency[i]), "frequency": int(orders[i]),
                    "monetary_minor": int(net[i]), "r": int(r[i]), "f": int(f[i]), "m": int(m[i]),
                    "rfm": f"{r[i]}{f[i]}{m[i]}", "segment_key": key, "segment_name": segment_label(key)})
    return out


@app.command("segments", help=_("Customers and revenue per RFM segment, as saved by the last `tier recompute` "
                                "or `tier rfm`.\n\nExample: crm tier segments --format json"))
def segments(chart: ChartOpt = None, fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import choose_format, emit
    from crmcli.core import tiers

    with state().store().read() as session:
        ctx = store_context(session)
        rows = _segment_view(tiers.segments_summary(session))
        run = tiers.last_run(session, ("recompute", "rfm"))
    if run is None:
        info(_("No customer has been scored yet: run `crm tier recompute` or `crm tier rfm`."))
    else:
        info(_("As of {date} (crm tier {kind}).").format(date=run["as_of"], kind=run["kind"]))
    chosen = choose_format(fmt)
    emit(rows, _segment_columns(False), chosen, _units(ctx))
    _maybe_chart(rows, chosen, chart, "name")


# ------------------------------------------------------------------------------------- pin / unpin

@app.command("pin", help=_("Give a customer a manual tier that recompute keeps.\n\n"
                           "Example: crm tier pin C000001 A --reason 'key account, contract 2024-17'"))
def pin(customer: CustomerArg,
        tier: Annotated[str, typer.Argument(help=_("A, B or C."), metavar="TIER")],
        reason: Annotated[str, typer.Option("--reason", "-r", help=_("Why (kept in the history)."))],
        as_of: AsOfOpt = None) -> None:
    from crmcli.core import tiers

    with state().store().write() as session:
        ctx = store_context(session, as_of)
        record = pick_customer(session, customer, ctx)
        tiers.pin(session, record, tier, reason, ctx.today)
        label = f"{record.code} {record.name}"
    info(_("Pinned {customer} to tier {tier}.").format(customer=label, tier=tier.strip().upper()))


@app.command("unpin", help=_("Remove a manual tier: the customer gets the tier of the last recompute back.\n\n"
                             "Example: crm tier unpin C000001"))
def unpin(customer: CustomerArg, as_of: AsOfOpt = None) -> None:
    from crmcli.core import tiers

    with state().store().write() as session:
        ctx = store_context(session, as_of)
        record = pick_customer(session, customer, ctx)
        _old, new = tiers.unpin(session, record, ctx.today)
        label = f"{record.code} {record.name}"
    info(_("Unpinned {customer}; tier now {tier}.").format(customer=label, tier=_tier_text(new)))


# ------------------------------------------------------------------------------------- list / history

@app.command("list", help=_("Classified customers, biggest spenders first; optionally one tier only.\n\n"
                            "Example: crm tier list A --limit 20"))
def list_(
    tier: Annotated[Optional[str], typer.Argument(help=_("A, B or C (default: all)."), metavar="[TIER]")] = None,
    pinned: Annotated[bool, typer.Option("--pinned", help=_("Only customers with a manual tier."))] = False,
    segment: SegmentOpt = None, stage: StageOpt = None, level: LevelOpt = None,
    limit: LimitOpt = None, fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.output import Column, choose_format, emit
    from crmcli.core import tiers
    from crmcli.core.lifecycle import stage_label
    from crmcli.core.rfm import segment_label

    with state().store().read() as session:
        ctx = store_context(session)
        rows = tiers.list_classified(session, tier=tier, pinned_only=pinned, segment=segment, stage=stage, level=level,
                                     limit=limit)
    chosen = choose_format(fmt)
    human = chosen in ("table", "markdown")
    for r in rows:
        r["segment_name"] = segment_label(r["segment"]) if r["segment"] else None
        r["stage_name"] = stage_label(r["stage"]) if r["stage"] else None
        if human:
            r["tier_text"] = (r["tier"] or "—") + (" " + _("(pinned)") if r["pinned"] else "")
    cols = [Column("code", _("Code")), Column("name", _("Name"))]
    if human:
        cols += [Column("tier", _("Tier"), source="tier_text"),
                 Column("net_spent", _("Net spend"), "money", source="net_minor"), Column("orders", _("Orders"), "int"),
                 Column("level", _("Level")), Column("rfm", _("RFM")), Column("segment", _("Segment"), source="segment_name"),
                 Column("stage", _("Stage"), source="stage_name")]
    else:
        cols += [Column("id", _("ID"), "int"), Column("tier", _("Tier")), Column("computed_tier", _("Computed tier")),
                 Column("pinned", _("Pinned"), "bool"), Column("pin_reason", _("Pin reason")),
                 Column("net_spent", _("Net spend"), "money", source="net_minor"), Column("orders", _("Orders"), "int"),
                 Column("level", _("Level")), Column("level_since", _("Level since"), "date"),
                 Column("r", _("R"), "int"), Column("f", _("F"), "int"), Column("m", _("M"), "int"),
                 Column("rfm", _("RFM")), Column("segment", _("Segment")), Column("stage", _("Stage"))]
    emit(rows, cols, chosen, _units(ctx),
         empty_message=_("No classified customers match. Run `crm tier recompute` first?"))


@app.command("history", help=_("A customer's tier and level changes, newest first, with the figures behind them.\n\n"
                               "Example: crm tier history C000001"))
def history(customer: CustomerArg, limit: LimitOpt = None, fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Column, choose_format, emit
    from crmcli.core import tiers

    with state().store().read() as session:
        ctx = store_context(session)
        record = pick_customer(session, customer, ctx, include_deleted=True)
        rows = tiers.history(session, record.id, limit=limit)  # type: ignore[arg-type]
    columns = [Column("as_of", _("As of"), "date"), Column("by", _("By")), Column("kind", _("What")),
               Column("from", _("From")), Column("to", _("To")),
               Column("net_spent", _("Net spend"), "money", source="net_minor"), Column("orders", _("Orders"), "int"),
               Column("tenure_days", _("Tenure (days)"), "int"),
               Column("share_before", _("Share before %"), source="share"),
               Column("basis", _("Level basis"), "int", source="basis_minor"), Column("note", _("Note")),
               Column("at", _("Recorded"), "datetime")]
    chosen = choose_format(fmt)
    if chosen in ("table", "markdown"):  # the essentials fit 80 columns; scripts get everything
        columns = [c for c in columns if c.key in ("as_of", "by", "kind", "from", "to", "net_spent", "orders",
                                                   "share_before", "note")]
    emit(rows, columns, chosen, _units(ctx), empty_message=_("No tier or level changes recorded yet."))


@app.command("summary", help=_("Customers, revenue share and average spend per tier, with a bar chart on a terminal.\n\n"
                               "Example: crm tier summary"))
def summary(chart: ChartOpt = None, fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Column, choose_format, emit
    from crmcli.core import tiers

    with state().store().read() as session:
        ctx = store_context(session)
        rows = tiers.summary(session)
        run = tiers.last_run(session)
    if run is None:
        info(_("Tiers have not been computed yet: run `crm tier recompute`."))
    else:
        info(_("As of {date} ({days}-day window).").format(
            date=run["as_of"], days=_window_of(run)))
    for r in rows:
        r["tier_text"] = _tier_text(r["tier"])
    chosen = choose_format(fmt)
    emit(rows, [Column("tier", _("Tier"), source="tier_text" if chosen in ("table", "markdown") else "tier"),
                Column("customers", _("Customers"), "int"),
                Column("customer_share", _("Customers %"), justify="right"),
                Column("revenue", _("Revenue"), "money", source="revenue_minor"),
                Column("revenue_share", _("Revenue %"), justify="right"),
                Column("average", _("Average spend"), "money", source="average_minor")], chosen, _units(ctx))
    _maybe_chart(rows, chosen, chart, "tier_text")


def _window_of(run: dict[str, Any]) -> Any:
    import json

    try:
        return json.loads(run["params"] or "{}").get("window_days", "?")
    except ValueError:
        return "?"


def _maybe_chart(rows: list[dict[str, Any]], chosen: str, chart: Optional[bool], label_key: str) -> None:
    if chosen != "table" or chart is False or (chart is None and not sys.stdout.isatty()):
        return
    from crmcli.render.console import stdout_console

    stdout_console().print(bar_chart(rows, label_key))


def bar_chart(rows: list[dict[str, Any]], label_key: str, width: int = 40) -> Any:
    """Revenue share (and customer share) per row as horizontal bars (a Rich renderable)."""
    from decimal import Decimal

    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(justify="right", no_wrap=True)
    grid.add_row(Text(""), Text(_("revenue") + " █   " + _("customers") + " ░", style="dim"), Text(""))
    for r in rows:
        rev = Decimal(r.get("revenue_share") or 0)
        cust = Decimal(r.get("customer_share") or 0)
        rev_len = int(rev * width / 100 + Decimal("0.5"))
        cust_len = int(cust * width / 100 + Decimal("0.5"))
        grid.add_row(Text(str(r[label_key])), Text("█" * rev_len, style="green"), Text(f"{rev}%"))
        grid.add_row(Text(""), Text("░" * cust_len, style="dim"), Text(f"{cust}%", style="dim"))
    return grid


# ------------------------------------------------------------------------------------------- rules

@rules_app.callback()
def rules_show(ctx: typer.Context, fmt: FormatOpt = None) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from crmcli.cli.output import Column, Units, emit
    from crmcli.core import tiers

    with state().store().read() as session:
        rows = tiers.rules_rows(session)
    emit(rows, [Column("key", _("Setting")), Column("value", _("Value")), Column("help", _("Meaning"))], fmt, Units())


@rules_app.command("set", help=_("Change classification rules; they are checked together and saved only if they fit.\n\n"
                                 "Example: crm tier rules set --method thresholds --a-spend 5000 --a-orders 6 "
                                 "--b-spend 1000"))
def rules_set(
    method: Annotated[Optional[str], typer.Option("--method", help=_("pareto or thresholds."))] = None,
    window: Annotated[Optional[str], typer.Option("--window", help=_("Tier window, e.g. 365d or 12m."))] = None,
    a_share: Annotated[Optional[str], typer.Option("--a-share", help=_("Pareto: % of revenue made by A (default 80)."))] = None,
    b_share: Annotated[Optional[str], typer.Option("--b-share", help=_("Pareto: % of revenue made by B (default 15)."))] = None,
    a_spend: Annotated[Optional[str], typer.Option("--a-spend", help=_("Thresholds: minimum net spend for A ('none' to clear)."))] = None,
    a_orders: Annotated[Optional[str], typer.Option("--a-orders", help=_("Thresholds: minimum purchases for A."))] = None,
    a_tenure: Annotated[Optional[str], typer.Option("--a-tenure", help=_("Thresholds: minimum days since the first purchase for A."))] = None,
    b_spend: Annotated[Optional[str], typer.Option("--b-spend", help=_("Thresholds: minimum net spend for B."))] = None,
    b_orders: Annotated[Optional[str], typer.Option("--b-orders", help=_("Thresholds: minimum purchases for B."))] = None,
    b_tenure: Annotated[Optional[str], typer.Option("--b-tenure", help=_("Thresholds: minimum days since the first purchase for B."))] = None,
    match: Annotated[Optional[str], typer.Option("--match", help=_("Thresholds: all minimums needed (all) or any one (any)."))] = None,
    prospects: Annotated[Optional[str], typer.Option("--prospects", help=_("Tier of customers who never bought: none or C."))] = None,
    rfm_window: Annotated[Optional[str], typer.Option("--rfm-window", help=_("RFM window, e.g. 365d."))] = None,
    new_days: Annotated[Optional[str], typer.Option("--new-days", help=_("Days a one-purchase customer stays new."))] = None,
    min_history: Annotated[Optional[str], typer.Option("--min-history", help=_("Purchase days needed to use a customer's own interval."))] = None,
    at_risk_multiple: Annotated[Optional[str], typer.Option("--at-risk-multiple", help=_("At risk after this many usual intervals."))] = None,
    lost_multiple: Annotated[Optional[str], typer.Option("--lost-multiple", help=_("Lost after this many usual intervals."))] = None,
    at_risk_days: Annotated[Optional[str], typer.Option("--at-risk-days", help=_("At risk after this many days (little history)."))] = None,
    lost_days: Annotated[Optional[str], typer.Option("--lost-days", help=_("Lost after this many days (little history)."))] = None,
    min_days: Annotated[Optional[str], typer.Option("--min-days", help=_("Smallest personal at-risk threshold in days."))] = None,
    level_basis: Annotated[Optional[str], typer.Option("--level-basis", help=_("Levels by spend or points."))] = None,
    level_window: Annotated[Optional[str], typer.Option("--level-window", help=_("Level window, e.g. 365d."))] = None,
    downgrade: Annotated[Optional[str], typer.Option("--downgrade", help=_("Level downgrades: never, or every N days (e.g. 365d)."))] = None,
) -> None:
    from crmcli.core import tiers
    from crmcli.errors import UsageError

    given = {"tier.method": method, "tier.window": window, "tier.pareto.a": a_share, "tier.pareto.b": b_share,
             "tier.a.min_spend": a_spend, "tier.a.min_orders": a_orders, "tier.a.min_tenure": a_tenure,
             "tier.b.min_spend": b_spend, "tier.b.min_orders": b_orders, "tier.b.min_tenure": b_tenure,
             "tier.match": match, "tier.prospects": prospects, "rfm.window": rfm_window,
             "lifecycle.new_days": new_days, "lifecycle.min_history": min_history,
             "lifecycle.at_risk_multiple": at_risk_multiple, "lifecycle.lost_multiple": lost_multiple,
             "lifecycle.at_risk_days": at_risk_days, "lifecycle.lost_days": lost_days, "lifecycle.min_days": min_days,
             "level.basis": level_basis, "level.window": level_window, "level.downgrade": downgrade}
    values = {k: v for k, v in given.items() if v is not None}
    if not values:
        raise UsageError(_("Give at least one rule to change, e.g. --method thresholds."),
                         hint=_("See them with `crm tier rules`."))
    with state().store().write() as session:
        changed = tiers.set_rules(session, values)
    for key, value in changed.items():
        info(_("{key} = {value}").format(key=key, value=value if value is not None else _("none")))
    info(_("Run `crm tier recompute` to apply the new rules."))


# ------------------------------------------------------------------------------------------ levels

def _level_rows(session: Any, ctx: Any) -> list[dict[str, Any]]:
    from crmcli.core import levels

    held = levels.members(session)
    return [{"name": lv.name, "basis": lv.basis, "threshold_minor": lv.threshold if lv.basis == "spend" else None,
             "threshold_points": lv.threshold if lv.basis == "points" else None,
             "discount_pct": lv.discount_pct, "points_multiplier": lv.points_multiplier, "perks": lv.perks,
             "customers": held.get(lv.name, 0)} for lv in levels.list_levels(session)]


@levels_app.callback()
def levels_show(ctx: typer.Context, fmt: FormatOpt = None) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from crmcli.cli.output import Column, choose_format, emit
    from crmcli.core import settings

    with state().store().read() as session:
        sctx = store_context(session)
        rows = _level_rows(session, sctx)
        policy = settings.get(session, "level.downgrade")
        window = settings.get(session, "level.window")
        basis = settings.get(session, "level.basis")
    info(_("Levels by {basis} over {days} days; downgrades: {policy}.").format(
        basis=_(basis), days=window, policy=_("never") if policy == "never" else _("re-evaluated every {n} days").format(n=policy)))
    chosen = choose_format(fmt)
    spend = basis == "spend"
    emit(rows, [Column("name", _("Level")), Column("basis", _("Basis")),
                Column("threshold", _("Threshold"), "money" if spend else "int",
                       source="threshold_minor" if spend else "threshold_points"),
                Column("discount_pct", _("Discount %"), justify="right"),
                Column("points_multiplier", _("Points ×"), justify="right"), Column("perks", _("Perks"), "list"),
                Column("customers", _("Customers"), "int")], chosen, _units(sctx),
         empty_message=_("No membership levels yet. Add one with `crm tier levels add NAME --threshold AMOUNT`."))


PerkOpt = Annotated[Optional[list[str]], typer.Option("--perk", help=_("A privilege in words, e.g. 'free delivery' (repeatable)."))]


@levels_app.command("add", help=_("Define a membership level: entry threshold (spend or points in the level window) "
                                  "and privileges.\n\n"
                                  "Example: crm tier levels add gold --threshold 5000 --discount 5 --multiplier 1.5 "
                                  "--perk 'free delivery'"))
def levels_add(
    name: Annotated[str, typer.Argument(help=_("Level name, e.g. silver, gold, diamond."))],
    threshold: Annotated[str, typer.Option("--threshold", help=_("Entry threshold: net spend (amount) or points."))],
    discount: Annotated[Optional[str], typer.Option("--discount", help=_("Discount in %, e.g. 5."))] = None,
    multiplier: Annotated[Optional[str], typer.Option("--multiplier", help=_("Points multiplier, e.g. 1.5."))] = None,
    perk: PerkOpt = None,
) -> None:
    from crmcli.core import levels

    with state().store().write() as session:
        ctx = store_context(session)
        lvl = levels.add_level(session, ctx, name=name, threshold=threshold, discount=discount, multiplier=multiplier,
                               perks=perk or [])
    info(_("Added level {name}. Run `crm tier recompute` to assign it.").format(name=lvl.name))


@levels_app.command("edit", help=_("Change a level's threshold or privileges.\n\n"
                                   "Example: crm tier levels edit gold --discount 8 --add-perk 'birthday gift'"))
def levels_edit(
    name: Annotated[str, typer.Argument(help=_("The level."))],
    threshold: Annotated[Optional[str], typer.Option("--threshold", help=_("New entry threshold."))] = None,
    discount: Annotated[Optional[str], typer.Option("--discount", help=_("New discount in % (empty: none)."))] = None,
    multiplier: Annotated[Optional[str], typer.Option("--multiplier", help=_("New points multiplier (empty: none)."))] = None,
    perk: PerkOpt = None,
    add_perk: Annotated[Optional[list[str]], typer.Option("--add-perk", help=_("Add a perk (repeatable)."))] = None,
    remove_perk: Annotated[Optional[list[str]], typer.Option("--remove-perk", help=_("Remove a perk (repeatable)."))] = None,
) -> None:
    from crmcli.core import levels

    with state().store().write() as session:
        ctx = store_context(session)
        changed = levels.edit_level(session, ctx, name, threshold=threshold, discount=discount, multiplier=multiplier,
                                    perks=perk, add_perks=add_perk, remove_perks=remove_perk)
    info(_("Updated level {name}.").format(name=name) if changed else _("Nothing to change for level {name}.").format(name=name))


@levels_app.command("rm", help=_("Remove a level; its members are re-assigned by the next recompute.\n\n"
                                 "Example: crm tier levels rm silver --yes"))
def levels_rm(name: Annotated[str, typer.Argument(help=_("The level."))],
              yes: Annotated[bool, typer.Option("--yes", "-y", help=_("Do not ask for confirmation (required when not on a terminal)."))] = False) -> None:
    from crmcli.cli.common import confirm
    from crmcli.core import levels

    with state().store().write() as session:
        lvl = levels.resolve_level(session, name)
        held = levels.members(session).get(lvl.name, 0)
        confirm(_("Remove level {name} ({n} customers hold it)?").format(name=lvl.name, n=held), yes)
        levels.remove_level(session, lvl.name)
    info(_("Removed level {name}. Run `crm tier recompute` to re-assign its members.").format(name=lvl.name))
