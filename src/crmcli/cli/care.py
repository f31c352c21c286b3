"""`crm care`: the daily agenda, message templates, the holiday calendar and greetings (birthday, holiday,
win-back) that respect consent and are never sent twice for the same occasion."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from crmcli.cli.common import AsOfOpt, FormatOpt, LimitOpt, YesOpt, confirm, info, state, store_context
from crmcli.errors import UsageError
from crmcli.i18n import N_, _, shown

if TYPE_CHECKING:
    from crmcli.cli.output import Units
    from crmcli.core.context import StoreContext

app = typer.Typer(help=_("Customer care: the daily agenda, greeting templates, the holiday calendar and greetings.\n\n"
                         "Example: crm care agenda --days 7"), no_args_is_help=True)
templates_app = typer.Typer(help=_("Message templates with placeholders {name}, {code}, {tier}, {points}, {coupon}, "
                                   "{holiday}, {date}, {age}. Without a command: the list.\n\n"
                                   "Example: crm care templates set birthday --body 'Happy birthday {name}! {coupon}'"),
                            invoke_without_command=True)
holidays_app = typer.Typer(help=_("The holiday calendar used for holiday greetings and the agenda (lunar holidays such as "
                                  "Spring Festival and Mid-Autumn have one date per year). Without a command: the list.\n\n"
                                  "Example: crm care holidays add mid-autumn 2031-10-01"),
                           invoke_without_command=True)
app.add_typer(templates_app, name="templates")
app.add_typer(holidays_app, name="holidays")

SvgOpt = Annotated[Optional[str], typer.Option("--svg", help=_("Also save the agenda as an SVG picture."), metavar="FILE")]
HtmlOpt = Annotated[Optional[str], typer.Option("--html", help=_("Also save the agenda as an HTML page."), metavar="FILE")]


def _units(ctx: "StoreContext") -> "Units":
    from crmcli.cli.output import Units

    return Units(ctx.currency, ctx.tz)


# -------------------------------------------------------------------------------------------- agenda

@app.command("agenda", help=_("What to do today and in the next days: follow-ups (overdue first), birthdays (29 February "
                              "celebrated on the 28th in common years), first-purchase anniversaries, holidays, and where "
                              "those features are in use: overdue feedback, tier A customers at high churn risk, points expiring and "
                              "surveys due (resolved complaints not yet asked about). Grouped on a terminal; "
                              "one row per item for json/csv.\n\n"
                              "Example: crm care agenda --days 7 --format csv > agenda.csv"))
def agenda(
    as_of: AsOfOpt = None, fmt: FormatOpt = None,
    days: Annotated[int, typer.Option("--days", help=_("How many days to look at, today included."), min=1, max=366)] = 7,
    section: Annotated[Optional[list[str]], typer.Option("--section", help=_("Only this section (repeatable): follow_up, "
                                                                              "feedback_overdue, churn_risk, birthday, "
                                                                              "anniversary, holiday, points_expiring, "
                                                                              "survey_due."))] = None,
    svg: SvgOpt = None, html: HtmlOpt = None,
) -> None:
    from crmcli.core import agenda as agenda_mod

    wanted = [s.strip().lower().replace("-", "_") for s in section or []]
    unknown = [s for s in wanted if s not in agenda_mod.SECTIONS]
    if unknown:
        raise UsageError(_("Unknown section '{value}'.").format(value=unknown[0]),
                         hint=_("Use one of: {choices}.").format(choices=", ".join(agenda_mod.SECTIONS)))
    with state().store().read() as session:
        ctx = store_context(session, as_of)
        rows = agenda_mod.agenda(session, ctx, days, sections=wanted or None)
    from datetime import timedelta

    end = ctx.today + timedelta(days=days - 1)
    title = (_("Agenda for {date}").format(date=ctx.today.isoformat()) if days == 1 else
             _("Agenda {since} – {until}").format(since=ctx.today.isoformat(), until=end.isoformat()))
    from crmcli.cli.output import Column

    columns = [Column("section", _("Section")), Column("date", _("Date"), "date"), Column("in_days", _("In days"), "int"),
               Column("code", _("Code")), Column("name", _("Name")), Column("detail", _("Detail")),
               Column("contact", _("Contact"), "contact"), Column("status", _("Status")),
               Column("customer_id", _("Customer id"), "int")]

    def when(day: Any, in_days: Any) -> str:
        if day is None:
            return ""
        if in_days == 0:
            return _("today")
        if in_days == 1:
            return _("tomorrow")
        if in_days < 0:
            return _("{n} days ago").format(n=-in_days)
        ahead = _("in {n} days").format(n=in_days)  # not inside the f-string: Babel would miss it
        return f"{day:%m-%d} ({ahead})"

    def view() -> Any:
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        from crmcli.core.contacts import mask_email, mask_phone

        parts: list[Any] = [Text(title, style="bold")]
        from crmcli.cli.common import masking_now

        mask = masking_now()
        for key, label in agenda_mod.SECTIONS.items():
            items = [r for r in rows if r["section"] == key]
            if not items:
                continue
            table = Table(title=f"{_(label)} ({len(items)})", title_justify="left", title_style="bold cyan",
                          box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, show_header=False)
            table.add_column(no_wrap=True)
            table.add_column(overflow="fold")
            table.add_column(overflow="fold", ratio=1)
            table.add_column(no_wrap=True)
            for r in items:
                who = " ".join(x for x in (r["code"], r["name"]) if x)
                contact = r["contact"] or ""
                if contact and mask:
                    contact = mask_email(contact) if "@" in contact else mask_phone(contact)
                style = "red" if r["status"] == "overdue" else "dim" if r["status"] == "sent" else ""
                detail = shown(r["detail"]) + (f" [{_(r['status'])}]" if r["status"] else "")
                table.add_row(Text(when(r["date"], r["in_days"]), style=style), Text(who or detail),
                              Text(detail if who else ""), Text(contact))
            parts.append(table)
        if len(parts) == 1:
            parts.append(Text(_("Nothing due. Enjoy your day."), style="dim"))
        return Group(*parts)

    def machine(chosen: str) -> None:
        from crmcli.cli.output import emit

        emit(rows, columns, chosen, _units(ctx), title=title)

    from crmcli.cli.report import show

    show(view, fmt, svg, html, machine, title=title)


STATUS_WORDS = (N_("overdue"), N_("sent"), N_("due"), N_("logged"))  # agenda statuses, translated where shown


# ----------------------------------------------------------------------------------------- templates

def _template_columns() -> list[Any]:
    from crmcli.cli.output import Column

    return [Column("name", _("Name")), Column("kind", _("Kind")), Column("builtin", _("Built-in"), "bool"),
            Column("subject", _("Subject")), Column("body", _("Body")),
            Column("placeholders", _("Placeholders"), "list")]


@templates_app.callback()
def templates_default(ctx: typer.Context, fmt: FormatOpt = None) -> None:
    if ctx.invoked_subcommand is None:
        templates_list(fmt)


@templates_app.command("list", help=_("List the templates (the built-in birthday, holiday and win-back ones are written the "
                                      "first time).\n\nExample: crm care templates list"))
def templates_list(fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import emit
    from crmcli.core import care

    with state().store().write() as session:
        care.ensure_defaults(session)
        ctx = store_context(session)
        rows = care.list_templates(session)
    emit(rows, _template_columns(), fmt, _units(ctx))


@templates_app.command("show", help=_("Show one template.\n\nExample: crm care templates show birthday"))
def templates_show(name: Annotated[str, typer.Argument(help=_("Template name."))], fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import emit
    from crmcli.core import care

    with state().store().write() as session:
        care.ensure_defaults(session)
        ctx = store_context(session)
        row = care.get_template(session, name)
    emit([row], _template_columns(), fmt, _units(ctx))


@templates_app.command("set", help=_("Create a template or change one. Placeholders: {name} {code} {tier} {points} {coupon} "
                                     "{holiday} {date} {age}.\n\n"
                                     "Example: crm care templates set vip-thanks --kind custom --subject 'Thank you, {name}' "
                                     "--body 'Dear {name}, as a tier {tier} member you have {points} points.'"))
def templates_set(
    name: Annotated[str, typer.Argument(help=_("Template name, e.g. birthday or vip-thanks."))],
    body: Annotated[Optional[str], typer.Option("--body", help=_("The message text."))] = None,
    subject: Annotated[Optional[str], typer.Option("--subject", help=_("The e-mail subject (empty to clear)."))] = None,
    kind: Annotated[Optional[str], typer.Option("--kind", help=_("birthday, holiday, winback or custom (new templates)."))] = None,
) -> None:
    from crmcli.core import care

    with state().store().write() as session:
        care.ensure_defaults(session)
        row = care.set_template(session, name, body=body, subject=subject, kind=kind.lower() if kind else None)
    info(_("Saved the template {name}.").format(name=row["name"]))


@templates_app.command("reset", help=_("Restore a built-in template's original text.\n\nExample: crm care templates reset birthday"))
def templates_reset(name: Annotated[str, typer.Argument(help=_("birthday, holiday or winback."))]) -> None:
    from crmcli.core import care

    with state().store().write() as session:
        care.ensure_defaults(session)
        row = care.reset_template(session, name)
    info(_("Restored the template {name}.").format(name=row["name"]))


@templates_app.command("rm", help=_("Remove a template of your own (built-in ones can only be reset).\n\n"
                                    "Example: crm care templates rm vip-thanks --yes"))
def templates_rm(name: Annotated[str, typer.Argument(help=_("Template name."))], yes: YesOpt = False) -> None:
    from crmcli.core import care

    with state().store().read() as session:
        found = care.get_template(session, name)
    confirm(_("Remove the template {name}?").format(name=found["name"]), yes)
    with state().store().write() as session:
        care.remove_template(session, name)
    info(_("Removed the template {name}.").format(name=found["name"]))


@templates_app.command("preview", help=_("Render a template for one customer without sending anything.\n\n"
                                         "Example: crm care templates preview birthday 王芳 --coupon BDAY-{code}"))
def templates_preview(
    name: Annotated[str, typer.Argument(help=_("Template name."))],
    customer: Annotated[str, typer.Argument(help=_("The customer: id, code, phone, e-mail or part of the name."))],
    coupon: Annotated[Optional[str], typer.Option("--coupon", help=_("Coupon code for {coupon} (placeholders work in it)."))] = None,
    holiday: Annotated[Optional[str], typer.Option("--holiday", help=_("Holiday name for {holiday}."))] = None,
    as_of: AsOfOpt = None,
) -> None:
    from crmcli.cli.common import choose_customer
    from crmcli.core import care

    customer_id = choose_customer(customer)
    with state().store().write() as session:
        care.ensure_defaults(session)
        ctx = store_context(session, as_of)
        tpl = care.get_template(session, name)
        label = ""
        if holiday:
            label = care.holiday_due(session, holiday, ctx.today)["title"]
        text = care.preview(session, ctx, tpl["name"], customer_id, coupon=coupon, holiday=label)
    if text["subject"]:
        typer.echo(text["subject"])
        typer.echo("")
    typer.echo(text["body"])


# ------------------------------------------------------------------------------------------ holidays

def _holiday_columns() -> list[Any]:
    from crmcli.cli.output import Column

    return [Column("date", _("Date"), "date"), Column("name", _("Name")), Column("title", _("Title")),
            Column("recurring", _("Every year"), "bool")]


@holidays_app.callback()
def holidays_default(ctx: typer.Context, fmt: FormatOpt = None) -> None:
    if ctx.invoked_subcommand is None:
        holidays_list(None, fmt)


@holidays_app.command("list", help=_("List the calendar: every stored date, or the holidays of one year.\n\n"
                                     "Example: crm care holidays list --year 2026"))
def holidays_list(
    year: Annotated[Optional[int], typer.Option("--year", help=_("Only the holidays of this year."), min=1900, max=2200)] = None,
    fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.output import emit
    from crmcli.core import care

    with state().store().write() as session:
        care.ensure_defaults(session)
        ctx = store_context(session)
        rows = care.list_holidays(session, year=year)
    emit(rows, _holiday_columns(), fmt, _units(ctx))


@holidays_app.command("add", help=_("Add a holiday date (lunar holidays need each year's date; --recurring repeats it every "
                                    "year on the same day).\n\n"
                                    "Example: crm care holidays add spring-festival 2031-01-23 --title 春节"))
def holidays_add(
    name: Annotated[str, typer.Argument(help=_("Holiday key, e.g. spring-festival or shop-anniversary."))],
    day: Annotated[str, typer.Argument(help=_("The date, e.g. 2031-01-23."), metavar="DATE")],
    title: Annotated[Optional[str], typer.Option("--title", help=_("The name used in messages ({holiday})."))] = None,
    recurring: Annotated[bool, typer.Option("--recurring", help=_("Every year on the same month and day."))] = False,
) -> None:
    from crmcli.cli.common import parse_day
    from crmcli.core import care

    with state().store().write() as session:
        care.ensure_defaults(session)
        ctx = store_context(session)
        when = parse_day(day, ctx, "date")
        assert when is not None
        row = care.add_holiday(session, name, when, title=title, recurring=recurring)
    info(_("Added {title} on {date}.").format(title=row["title"], date=row["date"]))


@holidays_app.command("rm", help=_("Remove a holiday (one date, or every date of it).\n\n"
                                   "Example: crm care holidays rm labour-day --yes"))
def holidays_rm(
    name: Annotated[str, typer.Argument(help=_("Holiday key."))],
    day: Annotated[Optional[str], typer.Argument(help=_("Only this date."), metavar="[DATE]")] = None,
    yes: YesOpt = False,
) -> None:
    from crmcli.cli.common import parse_day
    from crmcli.core import care

    with state().store().read() as session:
        ctx = store_context(session)
        when = parse_day(day, ctx, "date")
    confirm(_("Remove {name} from the calendar?").format(name=name), yes)
    with state().store().write() as session:
        care.ensure_defaults(session)
        n = care.remove_holiday(session, name, when)
    info(_("Removed {n} date(s) of {name}.").format(n=n, name=name))


# ---------------------------------------------------------------------------------------------- send

SEND_COLUMNS = ("code", "name", "channel", "contact", "occasion", "date", "subject", "message", "coupon", "points")


@app.command("send", help=_("Greet the customers due: `birthday` (celebrated today, or in the last --catch-up days), "
                            "`holiday NAME` (the nearest date of that holiday, up to 30 days ahead or 7 days late) or "
                            "`winback` (last purchase --after-days or more ago). Only customers with consent for the "
                            "channel, never twice for the same occasion (safe to run daily from cron); each greeting is "
                            "logged as an interaction. --via csv writes the messages for your SMS/WeChat tool (to --out "
                            "or stdout); --via email sends them with the store's SMTP settings.\n\n"
                            "Example: crm care send birthday --via csv --channel sms --out greetings.csv --grant-points 100"))
def send(
    kind: Annotated[str, typer.Argument(help=_("birthday, holiday or winback."), metavar="KIND")],
    name: Annotated[Optional[str], typer.Argument(help=_("The holiday (for KIND holiday), e.g. mid-autumn."), metavar="[HOLIDAY]")] = None,
    as_of: AsOfOpt = None,
    via: Annotated[str, typer.Option("--via", help=_("csv (write the messages) or email (send them)."))] = "csv",
    channel: Annotated[Optional[str], typer.Option("--channel", help=_("Consent channel and address: email, sms, wechat or "
                                                                        "phone (default: email with --via email, else sms)."))] = None,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help=_("CSV file to write (default: stdout)."), metavar="FILE")] = None,
    template: Annotated[Optional[str], typer.Option("--template", help=_("Template to use (default: the one named like KIND)."))] = None,
    coupon: Annotated[Optional[str], typer.Option("--coupon", help=_("Coupon code for {coupon}; placeholders work in it, e.g. "
                                                                      "BDAY-{code}."))] = None,
    grant_points: Annotated[int, typer.Option("--grant-points", help=_("Birthday points for each customer greeted, once per "
                                                                         "year (needs loyalty points)."), min=0)] = 0,
    catch_up: Annotated[int, typer.Option("--catch-up", help=_("Birthdays: also greet those of the last N days not yet "
                                                                "greeted (if cron missed a day)."), min=0, max=60)] = 0,
    after_days: Annotated[Optional[int], typer.Option("--after-days", help=_("Win-back: days since the last purchase "
                                                                               "(default: lifecycle.at_risk_days or 90)."), min=1)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=_("Show who would be greeted; send and record nothing."))] = False,
    fmt: FormatOpt = None,
) -> None:
    from crmcli.core import care

    kind = kind.strip().lower()
    via = via.strip().lower()
    if kind not in ("birthday", "holiday", "winback"):
        raise UsageError(_("Unknown greeting '{value}'.").format(value=kind), hint=_("Use birthday, holiday NAME or winback."))
    if kind == "holiday" and not name:
        raise UsageError(_("Which holiday? Give its name, e.g. crm care send holiday mid-autumn."),
                         hint=_("See the calendar with `crm care holidays`."))
    if kind != "holiday" and name:
        raise UsageError(_("Only holiday greetings take a name ('{value}').").format(value=name))
    if via not in care.VIAS:
        raise UsageError(_("Unknown --via '{value}'.").format(value=via), hint=_("Use csv or email."))
    chan = (channel or ("email" if via == "email" else "sms")).strip().lower()
    if chan not in care.CHANNELS:
        raise UsageError(_("Unknown channel '{value}'.").format(value=chan),
                         hint=_("Use one of: {choices}.").format(choices=", ".join(care.CHANNELS)))
    if via == "email" and chan != "email":
        raise UsageError(_("--via email sends e-mails: use --channel email (or leave it out)."))
    if grant_points and kind != "birthday":
        raise UsageError(_("--grant-points is for birthday greetings."))
    if out and via != "csv":
        raise UsageError(_("--out is for --via csv."))

    _send_run(state().store(), kind=kind, name=name, as_of=as_of, via=via, chan=chan, out=out, template=template,
              coupon=coupon, grant_points=grant_points, catch_up=catch_up, after_days=after_days, dry_run=dry_run,
              fmt=fmt)


def _connect(store: Any) -> Any:
    from crmcli.core import mailer

    with store.read() as session:
        cfg = mailer.load_config(session)
    password = mailer.get_password(cfg) if cfg.user else None
    return mailer.Mailer(cfg, password).__enter__()


def _send_run(store: Any, *, kind: str, name: Optional[str], as_of: Optional[str], via: str, chan: str,
              out: Optional[str], template: Optional[str], coupon: Optional[str], grant_points: int, catch_up: int,
              after_days: Optional[int], dry_run: bool, fmt: Optional[str]) -> None:
    from datetime import timedelta

    from crmcli.core import care

    with store.write() as session:
        ctx = store_context(session, as_of)
        care.ensure_defaults(session)
        plan = care.SendPlan(kind=kind, template=(template or kind).strip().lower(), channel=chan, via=via,
                             label=_("birthday") if kind == "birthday" else _("win-back"))
        if kind == "birthday":
            candidates = care.birthdays_due(session, ctx.today - timedelta(days=catch_up), ctx.today)
        elif kind == "holiday":
            assert name is not None
            holiday = care.holiday_due(session, name, ctx.today)
            plan.label = holiday["title"]
            candidates = care.holiday_recipients(session, holiday)
        else:
            from crmcli.core.reports.summary import setting_int

            days = after_days or setting_int(session, "lifecycle.at_risk_days", 90)
            candidates = care.winback_due(session, ctx.today, days)
        care.prepare(session, ctx, plan, candidates, coupon=coupon)
        if dry_run:
            _show_plan(plan, fmt, ctx)
            _summary(plan, dry_run=True)
            return
        if via == "csv":
            _write_csv(plan.greetings, plan, out)
            if grant_points:
                plan.granted_points = care.grant_birthday_points(session, ctx, plan.greetings, grant_points)
            care.record_sent(session, ctx, plan, plan.greetings)
            _summary(plan, dry_run=False, out=out)
            return
        care.claim(session, ctx, plan, plan.greetings)
    if not plan.greetings:
        _summary(plan, dry_run=False)
        return
    # E-mail: sent without holding the store's write lock (claimed above, confirmed or released below). If the
    # server cannot be reached or refuses the login, every claim is released and nothing is recorded.
    sent: list[Any] = []
    smtp = None
    try:
        smtp = _connect(store)
        sent = _send_email(smtp, plan)
    finally:
        if smtp is not None:
            smtp.__exit__(None, None, None)
        done = {id(g) for g in sent}
        with store.write() as session:
            care.release(session, [g for g in plan.greetings if id(g) not in done])
            if grant_points and sent:
                plan.granted_points = care.grant_birthday_points(session, ctx, sent, grant_points)
            care.record_sent(session, ctx, plan, sent)
    plan.greetings = sent
    _summary(plan, dry_run=False, out=out)


def _rows(plan: Any) -> list[dict[str, Any]]:
    return [{"code": g.code, "name": g.name, "channel": plan.channel, "contact": g.address, "occasion": g.occasion,
             "date": g.day, "subject": g.subject, "message": g.message, "coupon": g.coupon, "points": g.points}
            for g in plan.greetings]


def _show_plan(plan: Any, fmt: str | None, ctx: "StoreContext") -> None:
    from crmcli.cli.output import Column, emit

    columns = [Column("code", _("Code")), Column("name", _("Name")), Column("contact", _("Contact"), "contact"),
               Column("occasion", _("Occasion")), Column("message", _("Message"))]
    emit(_rows(plan), columns, fmt, _units(ctx), empty_message=_("Nobody to greet."))


def _write_csv(greetings: list[Any], plan: Any, out: str | None) -> None:
    """The messages as CSV (UTF-8 with BOM for spreadsheets when written to a file); a file is written to a
    temporary name and renamed, so a failure leaves no half file and nothing recorded."""
    import csv
    import os
    import sys
    import tempfile

    rows = _rows(plan)

    def write(stream: Any) -> None:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(SEND_COLUMNS)
        for r in rows:
            writer.writerow(["" if r[k] is None else (r[k].isoformat() if hasattr(r[k], "isoformat") else r[k])
                             for k in SEND_COLUMNS])

    if not out or out == "-":
        write(sys.stdout)
        return
    target = os.path.abspath(out)
    fd, tmp = tempfile.mkstemp(prefix=".crm-greetings-", suffix=".csv", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as stream:
            write(stream)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _send_email(smtp: Any, plan: Any) -> list[Any]:
    """Send each greeting through the store's SMTP server (the surveys' mailer). A message the server refuses
    is reported and not recorded, so the next run tries it again. Appends to the list as it goes, so that an
    interruption still confirms what was sent."""
    import smtplib

    sent: list[Any] = []
    for g in plan.greetings:
        try:
            smtp.send(g.address, g.subject or plan.label, g.message)
        except (smtplib.SMTPException, OSError, ValueError) as e:
            plan.failed.append((g, str(e) or type(e).__name__))
            continue
        sent.append(g)
    return sent


def _summary(plan: Any, *, dry_run: bool, out: str | None = None) -> None:
    n = len(plan.greetings)
    if dry_run:
        info(_("Would greet {n} customer(s) ({label}, {channel}).").format(n=n, label=plan.label, channel=plan.channel))
    elif plan.via == "email":
        info(_("Sent {n} e-mail(s) ({label}).").format(n=n, label=plan.label))
    else:
        info(_("Wrote {n} message(s) ({label}, {channel}){where}; send them with your {channel} tool.").format(
            n=n, label=plan.label, channel=plan.channel, where=_(" to {path}").format(path=out) if out else ""))
    skipped = []
    if plan.already_sent:
        skipped.append(_("{n} already greeted").format(n=plan.already_sent))
    if plan.no_consent:
        skipped.append(_("{n} without {channel} consent").format(n=plan.no_consent, channel=plan.channel))
    if plan.no_address:
        skipped.append(_("{n} without an address for {channel}").format(n=plan.no_address, channel=plan.channel))
    if skipped:
        info(_("Left out: {list}.").format(list=", ".join(skipped)))
    if plan.granted_points:
        info(_("Granted birthday points to {n} customer(s).").format(n=plan.granted_points))
    for g, error in plan.failed:
        info(_("Not sent to {code} {name} <{address}>: {error} (will be tried again next run).").format(
            code=g.code, name=g.name, address=g.address, error=error))


# ------------------------------------------------------------------------------------------- history

@app.command("history", help=_("Greetings sent (newest first), for everyone or one customer.\n\n"
                               "Example: crm care history 王芳"))
def history(
    customer: Annotated[Optional[str], typer.Argument(help=_("The customer (default: everyone)."), metavar="[CUSTOMER]")] = None,
    limit: LimitOpt = None, fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.common import pick_customer
    from crmcli.cli.output import Column, emit
    from crmcli.core import care

    with state().store().read() as session:
        ctx = store_context(session)
        cid = pick_customer(session, customer, ctx).id if customer else None
        rows = care.history(session, customer_id=cid, limit=limit)
    columns = [Column("sent_on", _("Date"), "date"), Column("code", _("Code")), Column("name", _("Name")),
               Column("occasion", _("Occasion")), Column("template", _("Template")), Column("via", _("Via")),
               Column("channel", _("Channel")), Column("coupon", _("Coupon")), Column("points", _("Points"), "int")]
    emit(rows, columns, fmt, _units(ctx), empty_message=_("No greeting has been sent yet."))
