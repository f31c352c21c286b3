"""`crm feedback`: complaints, suggestions, praise and service requests, with response deadlines."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from crmcli.cli.common import AsOfOpt, FormatOpt, LimitOpt, info, parse_day, pick_customer, state, store_context
from crmcli.i18n import _

app = typer.Typer(help=_("Complaints, suggestions, praise and service requests: every item gets an answer "
                         "within its deadline.\n\n"
                         "Example: crm feedback add C000001 --kind complaint --text 'Cold coffee' --priority high"),
                  no_args_is_help=True)

def localize(value: Any, tz: Any) -> Any:
    """Aware datetimes in a JSON document → the store's time zone (dates and the rest unchanged)."""
    from datetime import datetime

    if isinstance(value, datetime):
        from crmcli.core.clock import utc_to_local

        return utc_to_local(value, tz)
    if isinstance(value, dict):
        return {k: localize(v, tz) for k, v in value.items()}
    if isinstance(value, list):
        return [localize(v, tz) for v in value]
    return value


IdArg = Annotated[str, typer.Argument(help=_("The feedback number, e.g. 12 or #12."), metavar="ID")]
AtOpt = Annotated[Optional[str], typer.Option("--at", help=_("When it happened (date, or date and time; default: now)."))]
ListAsOf = Annotated[Optional[str], typer.Option(
    "--as-of", help=_("Judge deadlines as of this moment: a date means the end of that day; a date and time, that time."),
    metavar="WHEN")]


@app.command("add", help=_(
    "Record feedback from a customer. The response deadline comes from the policy for its kind and priority "
    "(`crm feedback policy`).\n\n"
    "Example: crm feedback add 13800138000 --kind complaint --text '快递破损' --channel phone --priority high"))
def add(
    customer: Annotated[str, typer.Argument(help=_("The customer: id, code, phone, e-mail or name."), metavar="CUSTOMER")],
    kind: Annotated[str, typer.Option("--kind", "-k", help=_("complaint, suggestion, praise or service."))],
    text: Annotated[str, typer.Option("--text", "-m", help=_("What the customer said or asked for."))],
    priority: Annotated[str, typer.Option("--priority", "-p", help=_("low, normal, high or urgent."))] = "normal",
    channel: Annotated[Optional[str], typer.Option("--channel", "-c", help=_("How it came in: phone, email, sms, wechat, visit, social, survey, review, web, other."))] = None,
    assign: Annotated[Optional[str], typer.Option("--assign", help=_("Who handles it."))] = None,
    at: AtOpt = None, as_of: AsOfOpt = None,
) -> None:
    from crmcli.core import feedback

    with state().store().write() as session:
        ctx = store_context(session, as_of)
        record = pick_customer(session, customer, ctx)
        item = feedback.open_item(session, record, ctx, kind=kind, text=text, priority=priority, channel=channel,
                                  assignee=assign, at=at)
        iid, due, code = item.id, item.due_at, record.code
        tz = ctx.tz
    if due is not None:
        from crmcli.core.clock import utc_to_local

        info(_("Opened feedback #{id} for {code}; answer by {due}.").format(
            id=iid, code=code, due=utc_to_local(due, tz).strftime("%Y-%m-%d %H:%M")))
    else:
        info(_("Opened feedback #{id} for {code} (no deadline).").format(id=iid, code=code))
    typer.echo(iid)


def _columns() -> list:
    from crmcli.cli.output import Column

    return [Column("id", _("ID"), "int"), Column("customer_code", _("Code")), Column("customer_name", _("Customer")),
            Column("kind", _("Kind")), Column("priority", _("Priority")), Column("status", _("Status")),
            Column("opened_at", _("Opened"), "datetime"), Column("due_at", _("Due"), "datetime"),
            Column("hours_left", _("Hours left"), "int"), Column("missed", _("Missed"), "bool"),
            Column("assignee", _("Assignee")), Column("channel", _("Channel")), Column("text", _("Text")),
            Column("resolved_at", _("Resolved"), "datetime"), Column("closed_at", _("Closed"), "datetime"),
            Column("resolution", _("Resolution")), Column("response_id", _("Response"), "int")]


TABLE_KEYS = ("id", "customer_code", "kind", "priority", "status", "due_at", "missed", "assignee", "text")


def _ctx_now(session: Any, as_of: Optional[str]) -> tuple[Any, Any]:
    from crmcli.core import feedback
    from crmcli.core.dates import parse_datetime

    ctx = store_context(session)
    if as_of:
        ctx = ctx.at(parse_datetime(as_of, today=ctx.today, field="--as-of").date())
    return ctx, feedback.reference_time(as_of, ctx)


@app.command("list", help=_(
    "List feedback, open items first by deadline. --overdue lists open items past their deadline: made for cron, "
    "it exits 0 and prints nothing when there are none (json: []).\n\n"
    "Example: crm feedback list --overdue --format tsv"))
def list_(
    open_: Annotated[bool, typer.Option("--open", help=_("Only open items."))] = False,
    overdue: Annotated[bool, typer.Option("--overdue", help=_("Only open items past their deadline."))] = False,
    missed: Annotated[bool, typer.Option("--missed", help=_("Only items whose deadline was missed (overdue ones included)."))] = False,
    kind: Annotated[Optional[list[str]], typer.Option("--kind", "-k", help=_("Only this kind (repeatable)."))] = None,
    priority: Annotated[Optional[list[str]], typer.Option("--priority", "-p", help=_("Only this priority (repeatable)."))] = None,
    status: Annotated[Optional[str], typer.Option("--status", help=_("Only open, resolved or closed items."))] = None,
    customer: Annotated[Optional[str], typer.Option("--customer", help=_("Only this customer's items."))] = None,
    assignee: Annotated[Optional[str], typer.Option("--assignee", help=_("Only items assigned to this person."))] = None,
    since: Annotated[Optional[str], typer.Option("--since", help=_("Opened on or after this date."))] = None,
    until: Annotated[Optional[str], typer.Option("--until", help=_("Opened on or before this date."))] = None,
    as_of: ListAsOf = None, limit: LimitOpt = None, fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.output import Units, choose_format, emit
    from crmcli.core import feedback

    with state().store().read() as session:
        ctx, now = _ctx_now(session, as_of)
        cid = pick_customer(session, customer, ctx, include_deleted=True).id if customer else None
        flt = feedback.ListFilter(open_only=open_, overdue=overdue, missed=missed, kinds=kind, priorities=priority,
                                  status=status, customer_id=cid, assignee=assignee,
                                  since=parse_day(since, ctx, "--since"), until=parse_day(until, ctx, "--until"),
                                  limit=limit)
        rows = feedback.list_items(session, ctx, now, flt)
    chosen = choose_format(fmt)
    columns = _columns()
    if chosen in ("table", "markdown"):
        columns = [c for c in columns if c.key in TABLE_KEYS]
        for r in rows:
            if r["text"] and len(r["text"]) > 40:
                r["text"] = r["text"][:39] + "…"
    if not rows and chosen in ("csv", "tsv"):
        return  # cron-friendly: no output at all when there is nothing to do
    empty = _("No overdue feedback.") if overdue else _("No feedback matches.")
    emit(rows, columns, chosen, Units(ctx.currency, ctx.tz), empty_message=empty)


@app.command("show", help=_("Show one feedback item with its history and the survey response it came from.\n\n"
                            "Example: crm feedback show 12"))
def show(item: IdArg, as_of: ListAsOf = None, fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Column, Units, choose_format, emit, emit_record
    from crmcli.core import feedback

    with state().store().read() as session:
        ctx, now = _ctx_now(session, as_of)
        data = feedback.detail(session, feedback.get_item(session, item), now)
    chosen = choose_format(fmt)
    if chosen in ("json", "jsonl"):
        emit_record(localize(data, ctx.tz), chosen)
        return
    units = Units(ctx.currency, ctx.tz)
    from crmcli.core.clock import utc_to_local

    def local(v: Any) -> Any:
        return utc_to_local(v, ctx.tz).strftime("%Y-%m-%d %H:%M") if v is not None and hasattr(v, "tzinfo") else v

    def plain(k: str) -> Any:
        v = data[k]
        if isinstance(v, bool):
            return _("yes") if v else _("no")
        return local(v) if k.endswith("_at") else v

    fields = [{"field": k, "value": plain(k)}
              for k in ("id", "customer_code", "customer_name", "kind", "priority", "channel", "status", "assignee",
                        "opened_at", "due_at", "hours_left", "missed", "resolved_at", "closed_at", "text", "resolution")]
    if data["response"]:
        r = data["response"]
        fields.append({"field": "response", "value": f"#{r['id']} {r['survey']}: {(r['kind'] or '').upper()} {r['score']}"
                                                     + (f" “{r['comment']}”" if r["comment"] else "")})
    emit(fields, [Column("field", _("Field")), Column("value", _("Value"))], chosen, units)
    if chosen in ("table", "markdown") and data["events"]:
        emit(data["events"], [Column("at", _("When"), "datetime"), Column("action", _("What")),
                              Column("actor", _("Who")), Column("text", _("Text"))], chosen, units, title=_("History"))


@app.command("assign", help=_("Give a feedback item to someone.\n\nExample: crm feedback assign 12 lily"))
def assign(item: IdArg, who: Annotated[str, typer.Argument(help=_("The person who handles it."), metavar="WHO")],
           as_of: AsOfOpt = None) -> None:
    from crmcli.core import feedback

    with state().store().write() as session:
        ctx = store_context(session, as_of)
        record = feedback.get_item(session, item)
        feedback.assign(session, record, who, ctx)
        iid = record.id
    info(_("Feedback #{id} is assigned to {who}.").format(id=iid, who=who.strip()))


@app.command("note", help=_("Add a note to a feedback item (a call made, a promise given).\n\n"
                            "Example: crm feedback note 12 'Called back, sending a replacement'"))
def note(item: IdArg, text: Annotated[str, typer.Argument(help=_("The note."), metavar="TEXT")],
         at: AtOpt = None, as_of: AsOfOpt = None) -> None:
    from crmcli.core import feedback

    with state().store().write() as session:
        ctx = store_context(session, as_of)
        record = feedback.get_item(session, item)
        feedback.add_note(session, record, text, ctx, at=at)
        iid = record.id
    info(_("Added a note to feedback #{id}.").format(id=iid))


@app.command("resolve", help=_("Resolve a feedback item. Resolving after the deadline marks it missed, for good.\n\n"
                               "Example: crm feedback resolve 12 --resolution 'Replacement sent, customer happy'"))
def resolve(item: IdArg,
            resolution: Annotated[str, typer.Option("--resolution", "-r", help=_("What was done."))],
            at: AtOpt = None, as_of: AsOfOpt = None) -> None:
    from crmcli.core import feedback

    with state().store().write() as session:
        ctx = store_context(session, as_of)
        record = feedback.get_item(session, item)
        in_time = feedback.resolve(session, record, resolution, ctx, at=at)
        iid, missed = record.id, record.missed
    if not in_time:
        info(_("Resolved feedback #{id}; its deadline was missed.").format(id=iid))
    elif missed:
        info(_("Resolved feedback #{id} within its deadline (an earlier deadline was missed).").format(id=iid))
    else:
        info(_("Resolved feedback #{id} within its deadline.").format(id=iid))


@app.command("reopen", help=_("Reopen a resolved or closed item; it gets a new deadline (a missed one stays missed).\n\n"
                              "Example: crm feedback reopen 12 --reason 'Replacement also damaged'"))
def reopen(item: IdArg,
           reason: Annotated[Optional[str], typer.Option("--reason", help=_("Why it is reopened."))] = None,
           at: AtOpt = None, as_of: AsOfOpt = None) -> None:
    from crmcli.core import feedback

    with state().store().write() as session:
        ctx = store_context(session, as_of)
        record = feedback.get_item(session, item)
        feedback.reopen(session, record, ctx, reason=reason, at=at)
        iid = record.id
    info(_("Reopened feedback #{id}.").format(id=iid))


@app.command("close", help=_("Close a feedback item (after resolving it, or to drop a duplicate).\n\n"
                             "Example: crm feedback close 12 --note 'Duplicate of #11'"))
def close(item: IdArg,
          note_: Annotated[Optional[str], typer.Option("--note", help=_("Why it is closed."))] = None,
          at: AtOpt = None, as_of: AsOfOpt = None) -> None:
    from crmcli.core import feedback

    with state().store().write() as session:
        ctx = store_context(session, as_of)
        record = feedback.get_item(session, item)
        feedback.close(session, record, ctx, note=note_, at=at)
        iid = record.id
    info(_("Closed feedback #{id}.").format(id=iid))


@app.command("stats", help=_(
    "How well feedback is handled: open and overdue items now, and the share handled within the deadline for items "
    "opened in the period.\n\nExample: crm feedback stats --since 2025-01-01 --until 2025-03-31"))
def stats(
    since: Annotated[Optional[str], typer.Option("--since", help=_("Items opened on or after this date."))] = None,
    until: Annotated[Optional[str], typer.Option("--until", help=_("Items opened on or before this date."))] = None,
    as_of: ListAsOf = None, fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.output import Column, Units, choose_format, emit, emit_record
    from crmcli.core import feedback

    with state().store().read() as session:
        ctx, now = _ctx_now(session, as_of)
        doc = {**feedback.counts(session, now),
               **feedback.handled_in_time(session, parse_day(since, ctx, "--since"), parse_day(until, ctx, "--until"),
                                          now=now)}
    if doc["share"] is not None:
        doc["share"] = round(100 * doc["share"], 1)
    chosen = choose_format(fmt)
    if chosen in ("json", "jsonl"):
        emit_record(doc, chosen)
        return
    labels = {"open": _("Open now"), "overdue": _("Overdue now"), "total": _("Opened in the period"),
              "in_time": _("Handled in time"), "missed": _("Deadline missed"), "pending": _("Open, not yet due"),
              "no_deadline": _("Without a deadline"), "share": _("Share handled in time %")}
    columns = [Column("key", _("Key")), Column("label", _("Measure")), Column("value", _("Value"), "int")]
    if chosen in ("table", "markdown"):
        columns = columns[1:]
    emit([{"key": k, "label": labels[k], "value": v} for k, v in doc.items()], columns, chosen,
         Units(ctx.currency, ctx.tz))


policy_app = typer.Typer(help=_("Response deadlines per kind and priority.\n\nExample: crm feedback policy set complaint high 12h"),
                         invoke_without_command=True)
app.add_typer(policy_app, name="policy")


@policy_app.callback()
def policy_default(ctx: typer.Context, fmt: FormatOpt = None) -> None:
    if ctx.invoked_subcommand is None:
        policy_show(fmt)


@policy_app.command("show", help=_("Show the deadline in hours for every kind and priority.\n\nExample: crm feedback policy show"))
def policy_show(fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Column, Units, emit
    from crmcli.core import feedback

    with state().store().read() as session:
        ctx = store_context(session)
        rows = feedback.policy(session)
    emit(rows, [Column("kind", _("Kind")), Column("priority", _("Priority")), Column("hours", _("Hours"), "int"),
                Column("changed_at", _("Changed"), "datetime")], fmt, Units(ctx.currency, ctx.tz))


@policy_app.command("set", help=_(
    "Set the deadline of one kind and priority, in hours or days (24h, 48, 3d, 1w) or none. Items already open "
    "keep their deadline.\n\nExample: crm feedback policy set complaint urgent 2h"))
def policy_set(kind: Annotated[str, typer.Argument(help=_("complaint, suggestion, praise or service."), metavar="KIND")],
               priority: Annotated[str, typer.Argument(help=_("low, normal, high or urgent."), metavar="PRIORITY")],
               deadline: Annotated[str, typer.Argument(help=_("e.g. 24h, 3d or none."), metavar="DEADLINE")]) -> None:
    from crmcli.core import feedback

    with state().store().write() as session:
        before, after = feedback.set_policy(session, kind, priority, deadline)
    show_ = (lambda h: _("none") if h is None else _("{n} h").format(n=h))
    info(_("Deadline for {kind}/{priority}: {before} → {after}.").format(
        kind=kind.strip().lower(), priority=priority.strip().lower(), before=show_(before), after=show_(after)))
