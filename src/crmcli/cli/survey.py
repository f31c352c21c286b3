"""`crm survey`: satisfaction surveys — definitions, invitations, responses and results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from crmcli.cli.common import AsOfOpt, FormatOpt, LimitOpt, info, parse_day, pick_customer, state, store_context
from crmcli.i18n import _

app = typer.Typer(help=_("Satisfaction surveys (NPS, CSAT, CES or custom): invitations, responses, results.\n\n"
                         "Example: crm survey create 'NPS 2025' --kind nps"), no_args_is_help=True)

SurveyArg = Annotated[str, typer.Argument(help=_("The survey: its name or number."), metavar="SURVEY")]


@app.command("create", help=_(
    "Create a survey. NPS asks 0-10, CSAT 1-5, CES 1-7; custom surveys take typed questions: "
    "nps, csat, ces, text, scale(LOW-HIGH) or choice(A|B|C), e.g. --question 'scale(1-10):How was the food?'. "
    "For NPS/CSAT/CES, a --question without a type rewords the main question and typed ones are added after it. "
    "The invitation --message may use {name}, {code}, {survey}, {question}, {scale}, {token} and {link}.\n\n"
    "Example: crm survey create 'After purchase' --kind csat --question 'text:What could we do better?'"))
def create(
    name: Annotated[str, typer.Argument(help=_("A unique name, e.g. 'NPS 2025 Q1'."))],
    kind: Annotated[str, typer.Option("--kind", "-k", help=_("nps, csat, ces or custom."))] = "nps",
    question: Annotated[Optional[list[str]], typer.Option("--question", "-q", help=_("A question (repeatable); see above."))] = None,
    message: Annotated[Optional[str], typer.Option("--message", help=_("Invitation message template."))] = None,
    link: Annotated[Optional[str], typer.Option("--link", help=_("Response form URL containing {token}, e.g. https://example.com/s?t={token}."))] = None,
) -> None:
    from crmcli.core import surveys

    with state().store().write() as session:
        survey = surveys.create_survey(session, name, kind, questions=question or [], message=message, link=link)
        sid, sname, skind = survey.id, survey.name, survey.kind
    info(_("Created survey #{id} '{name}' ({kind}).").format(id=sid, name=sname, kind=skind.upper()))
    typer.echo(sid)


def _survey_columns() -> list:
    from crmcli.cli.output import Column

    return [Column("id", _("ID"), "int"), Column("name", _("Name")), Column("kind", _("Kind")),
            Column("status", _("Status")), Column("questions", _("Questions"), "int"),
            Column("invited", _("Invited"), "int"), Column("responses", _("Responses"), "int"),
            Column("response_rate", _("Rate %"), "int"), Column("score", _("Score"), "int"),
            Column("created_at", _("Created"), "datetime"), Column("closed_at", _("Closed"), "datetime")]


@app.command("list", help=_("List surveys with their invitations, responses, response rate and headline score "
                            "(NPS, CSAT % or CES mean).\n\nExample: crm survey list --open"))
def list_(open_only: Annotated[bool, typer.Option("--open", help=_("Only open surveys."))] = False,
          fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Units, emit
    from crmcli.core import surveys

    with state().store().read() as session:
        ctx = store_context(session)
        rows = surveys.list_surveys(session, include_closed=not open_only)
    emit(rows, _survey_columns(), fmt, Units(ctx.currency, ctx.tz), empty_message=_("No surveys yet."))


@app.command("show", help=_("Show a survey: its questions, message template and counts.\n\nExample: crm survey show 'NPS 2025'"))
def show(survey: SurveyArg, fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Column, Units, choose_format, emit, emit_record
    from crmcli.core import surveys

    with state().store().read() as session:
        ctx = store_context(session)
        data = surveys.survey_info(session, surveys.get_survey(session, survey))
    chosen = choose_format(fmt)
    if chosen in ("json", "jsonl"):
        from crmcli.cli.feedback import localize

        emit_record(localize(data, ctx.tz), chosen)
        return
    units = Units(ctx.currency, ctx.tz)
    from crmcli.core.clock import utc_to_local

    for k in ("created_at", "closed_at"):
        if data[k] is not None:
            data[k] = utc_to_local(data[k], ctx.tz).strftime("%Y-%m-%d %H:%M")
    fields = [{"field": k, "value": data[k]} for k in ("id", "name", "kind", "status", "created_at", "closed_at",
                                                      "invited", "answered_invites", "responses", "response_rate",
                                                      "score", "message", "link")]
    emit(fields, [Column("field", _("Field")), Column("value", _("Value"))], chosen, units)
    rows = [{**q, "scale": surveys.scale_text(q)} for q in data["questions"]]
    if chosen in ("table", "markdown"):
        emit(rows, [Column("position", _("No."), "int"), Column("kind", _("Type")), Column("scale", _("Scale or choices")),
                    Column("text", _("Question"))], chosen, units)


def _set_status(survey: str, status: str) -> None:
    from crmcli.core import surveys

    with state().store().write() as session:
        record = surveys.get_survey(session, survey)
        changed = surveys.set_status(session, record, status)
        name = record.name
    if status == "closed":
        info(_("Closed survey '{name}'.").format(name=name) if changed else _("Survey '{name}' was already closed.").format(name=name))
    else:
        info(_("Reopened survey '{name}'.").format(name=name) if changed else _("Survey '{name}' is open.").format(name=name))


@app.command("close", help=_("Close a survey: no more invitations or responses (results stay).\n\nExample: crm survey close 'NPS 2025'"))
def close(survey: SurveyArg) -> None:
    _set_status(survey, "closed")


@app.command("reopen", help=_("Reopen a closed survey.\n\nExample: crm survey reopen 'NPS 2025'"))
def reopen(survey: SurveyArg) -> None:
    _set_status(survey, "open")


def _days(text: Optional[str], field: str) -> Optional[int]:
    if text is None:
        return None
    from crmcli.core.dates import parse_duration_days

    return parse_duration_days(text, field=field)


@app.command("invite", help=_(
    "Invite customers to a survey: write a mail-merge CSV (--out FILE, or - for stdout; columns code, name, "
    "channel, contact, token, link, message) or send e-mails through SMTP (--send). Customers are left out, "
    "and counted, when they were invited to any survey in the last --skip-invited-within days (default 30d), "
    "already surveyed for the same purchase or complaint, lack consent for the channel or have no address for it. "
    "Invitations are recorded, so running the same command again invites nobody twice.\n\n"
    "Example: crm survey invite 'After purchase' --after-purchase 3d --channel sms --out invites.csv"))
def invite(
    survey: SurveyArg,
    channel: Annotated[str, typer.Option("--channel", "-c", help=_("email, sms, phone or wechat (consent is checked for it)."))] = "email",
    out: Annotated[Optional[str], typer.Option("--out", "-o", help=_("Write the mail-merge CSV here (- for stdout)."))] = None,
    send: Annotated[bool, typer.Option("--send", help=_("Send the invitations by e-mail through SMTP (crm config set smtp.host ...)."))] = False,
    tag: Annotated[Optional[list[str]], typer.Option("--tag", "-t", help=_("Only customers with this tag (repeatable: all of them)."))] = None,
    tier: Annotated[Optional[list[str]], typer.Option("--tier", help=_("Only this tier, e.g. A (repeatable: any of them)."))] = None,
    segment: Annotated[Optional[list[str]], typer.Option("--segment", help=_("Only this RFM segment (repeatable: any of them)."))] = None,
    customer: Annotated[Optional[list[str]], typer.Option("--customer", help=_("Only this customer (repeatable)."))] = None,
    purchased_since: Annotated[Optional[str], typer.Option("--purchased-since", help=_("Bought something on or after this date."))] = None,
    purchased_until: Annotated[Optional[str], typer.Option("--purchased-until", help=_("Bought something on or before this date."))] = None,
    after_purchase: Annotated[Optional[str], typer.Option("--after-purchase", help=_("Post-purchase survey: a sale exactly this long ago, e.g. 3d."))] = None,
    grace: Annotated[Optional[str], typer.Option("--grace", help=_("With --after-purchase, also sales up to this much earlier (catch up after missed runs), e.g. 7d."))] = None,
    resolved_within: Annotated[Optional[str], typer.Option("--resolved-within", help=_("Customers whose complaint was resolved in the last N days, e.g. 30d."))] = None,
    skip_invited_within: Annotated[str, typer.Option("--skip-invited-within", help=_("Leave out anyone invited to any survey in the last N days (0: nobody)."))] = "30d",
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", min=1, help=_("Invite at most this many."))] = None,
    message: Annotated[Optional[str], typer.Option("--message", help=_("Message template for this run (default: the survey's)."))] = None,
    subject: Annotated[Optional[str], typer.Option("--subject", help=_("E-mail subject (with --send)."))] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=_("Show who would be invited; record and send nothing."))] = False,
    force: Annotated[bool, typer.Option("--force", help=_("Replace an existing --out file."))] = False,
    as_of: AsOfOpt = None, fmt: FormatOpt = None,
) -> None:
    from crmcli.core import invites, surveys
    from crmcli.errors import UsageError

    if not dry_run and bool(out) == send:
        raise UsageError(_("Choose where the invitations go: --out FILE (a CSV), --send (e-mail) or --dry-run."))
    if send and channel.strip().lower() != "email":
        raise UsageError(_("--send sends e-mail; use --channel email, or --out FILE for {channel}.").format(channel=channel))
    sel_args = dict(channel=channel, tags=tag or [], tiers=tier or [], segments=segment or [],
                    after_purchase_days=_days(after_purchase, "after-purchase"), grace_days=_days(grace, "grace") or 0,
                    resolved_within_days=_days(resolved_within, "resolved-within"),
                    skip_invited_within_days=_days(skip_invited_within, "skip-invited-within") or 0, limit=limit)
    store = state().store()

    def selection(session: Any) -> tuple[Any, Any, Any]:
        ctx = store_context(session, as_of)
        record = surveys.get_survey(session, survey)
        ids = [pick_customer(session, c, ctx).id for c in customer] if customer else None
        sel = invites.Selection(**sel_args, customer_ids=ids,  # type: ignore[arg-type]
                                purchased_since=parse_day(purchased_since, ctx, "--purchased-since"),
                                purchased_until=parse_day(purchased_until, ctx, "--purchased-until"))
        return ctx, record, invites.select_candidates(session, record, sel, ctx)

    if dry_run:
        with store.read() as session:
            ctx, record, result = selection(session)
        _summary(result, channel, invited=None)
        _emit_candidates(result.candidates, fmt, ctx)
        return
    chan = invites.parse_channel(channel)
    if out and out != "-" and Path(out).exists() and not force:
        from crmcli.errors import Conflict

        raise Conflict(_("{path} already exists.").format(path=out),
                       hint=_("Its invitations may not be sent yet: choose another file name, or add --force to replace it."))
    if out:
        with store.write() as session:
            ctx, record, result = selection(session)
            made = invites.create_invites(session, record, result.candidates, ctx, channel=chan, method="csv",
                                          status="sent", message=message)
            if out == "-":
                import sys

                invites.write_csv(made, chan, sys.stdout)
            elif made:
                invites.write_csv_file(Path(out), made, chan)
        _summary(result, chan, invited=len(made))
        if out != "-":
            info(_("Wrote {n} invitations to {path}.").format(n=len(made), path=out) if made
                 else _("Nobody to invite; no file written."))
            _emit_summary(result, len(made), 0, fmt)
        return
    _send(store, survey, selection, chan, message, subject, fmt)


def _emit_summary(result: Any, invited: int, failed: int, fmt: Optional[str]) -> None:
    """With --format json: the counts, for scripts and cron."""
    if fmt and fmt.lower() == "json":
        from crmcli.cli.output import emit_record

        emit_record({"matched": result.matched, "invited": invited, "failed": failed,
                     "excluded": result.excluded, "over_limit": result.over_limit}, "json")


def _send(store: Any, survey: str, selection: Any, channel: str, message: Optional[str], subject: Optional[str],
          fmt: Optional[str]) -> None:
    import smtplib

    from crmcli.core import invites, mailer, surveys

    with store.read() as session:  # check everything that can be wrong before connecting
        cfg = mailer.load_config(session)
        record = surveys.get_survey(session, survey)
        invites.template_for(record, message)
        title = invites.subject_for(record, subject)
    password = mailer.get_password(cfg) if cfg.user else None
    with mailer.Mailer(cfg, password) as smtp:  # connect and log in first: nothing is recorded if that fails
        with store.write() as session:
            ctx, record, result = selection(session)
            made = invites.create_invites(session, record, result.candidates, ctx, channel=channel, method="email",
                                          status="pending", message=message)
        outcomes: list[tuple[int, Optional[str]]] = []
        try:
            for inv in made:
                try:
                    smtp.send(inv.candidate.contact or "", title, inv.message)
                    outcomes.append((inv.id, None))
                except (smtplib.SMTPException, OSError, ValueError) as e:
                    outcomes.append((inv.id, str(e) or type(e).__name__))
        finally:
            if outcomes:
                with store.write() as session:
                    invites.mark_sent(session, outcomes)
    failed = [(i, e) for i, e in outcomes if e]
    _summary(result, channel, invited=len(made) - len(failed))
    _emit_summary(result, len(made) - len(failed), len(failed), fmt)
    if failed:
        from crmcli.cli.common import warn

        warn(_("{n} e-mails were refused, e.g. {error}; they can be invited again.").format(n=len(failed), error=failed[0][1]))
        raise typer.Exit(1)


def _summary(result: Any, channel: str, invited: Optional[int]) -> None:
    ex = result.excluded
    parts = [text.format(n=n, channel=channel) for text, n in (
        (_("{n} without consent for {channel}"), ex["no_consent"]),
        (_("{n} invited recently"), ex["recently_invited"]),
        (_("{n} without an address for {channel}"), ex["no_contact"]),
        (_("{n} already surveyed for that purchase or complaint"), ex["already_surveyed"]),
        (_("{n} over the limit"), result.over_limit)) if n]
    if invited is None:
        head = _("Would invite {n} of {matched} matching customers").format(n=len(result.candidates), matched=result.matched)
    else:
        head = _("Invited {n} of {matched} matching customers").format(n=invited, matched=result.matched)
    info(head + ("; " + _("left out: {list}.").format(list=", ".join(parts)) if parts else "."))


def _emit_candidates(candidates: list, fmt: Optional[str], ctx: Any) -> None:
    from crmcli.cli.output import Column, Units, emit

    rows = [{"code": c.code, "name": c.name, "contact": c.contact, "purchase_id": c.purchase_id,
             "feedback_id": c.feedback_id} for c in candidates]
    emit(rows, [Column("code", _("Code")), Column("name", _("Name")), Column("contact", _("Contact"), "contact"),
                Column("purchase_id", _("Purchase"), "int"), Column("feedback_id", _("Feedback"), "int")],
         fmt, Units(ctx.currency, ctx.tz), empty_message=_("Nobody to invite."))


def _looks_like_token(text: str) -> bool:
    from crmcli.core.invites import TOKEN_ALPHABET, TOKEN_LENGTH

    t = text.strip().upper()
    return len(t) == TOKEN_LENGTH and all(ch in TOKEN_ALPHABET for ch in t)


@app.command("record", help=_(
    "Record one response: the answer to question 1 (the score of an NPS/CSAT/CES survey), other answers with "
    "--answer N=ANSWER, and a comment. CUSTOMER may also be the response token of an invitation. A detractor "
    "(NPS 0-6, CSAT 1-2) opens a follow-up feedback item automatically.\n\n"
    "Example: crm survey record 'NPS 2025' 13800138000 9 --comment 'Friendly staff' --channel phone"))
def record(
    survey: SurveyArg,
    customer: Annotated[str, typer.Argument(help=_("The customer (id, code, phone, e-mail, name) or a response token."), metavar="CUSTOMER")],
    score: Annotated[Optional[str], typer.Argument(help=_("The answer to question 1, e.g. the score."), metavar="SCORE")] = None,
    comment: Annotated[Optional[str], typer.Option("--comment", "-m", help=_("What the customer said."))] = None,
    answer: Annotated[Optional[list[str]], typer.Option("--answer", "-a", help=_("Answer to question N as N=ANSWER (repeatable)."))] = None,
    channel: Annotated[Optional[str], typer.Option("--channel", help=_("How the answer came: phone, email, sms, wechat, visit, web, ..."))] = None,
    at: Annotated[Optional[str], typer.Option("--at", help=_("When they answered (default: now)."))] = None,
    as_of: AsOfOpt = None,
) -> None:
    from crmcli.core import surveys

    answers = dict(surveys.parse_answer_option(a) for a in answer or [])
    with state().store().write() as session:
        ctx = store_context(session, as_of)
        rec = surveys.get_survey(session, survey)
        token = None
        who = None
        if _looks_like_token(customer):
            from sqlalchemy import func, select

            from crmcli.store.models_feedback import SurveyInvite

            t = SurveyInvite.__table__
            if session.execute(select(t.c.id).where(func.upper(t.c.token) == customer.strip().upper(),
                                                    t.c.survey_id == rec.id)).first():
                token = customer
        if token is None:
            who = pick_customer(session, customer, ctx)
        data = surveys.ResponseInput(score=score, answers=answers, comment=comment, channel=channel, at=at, token=token)
        result = surveys.record_response(session, rec, who, data, ctx)
        from crmcli.store.models import Customer

        code = session.get(Customer, result.customer_id).code  # type: ignore[union-attr]
    label = result.kind.upper() if result.kind in surveys.SCALES else _("score")  # not inside the f-string: Babel would miss it
    shown = f"{label} {result.score}" if result.score is not None else _("answers")
    info(_("Recorded response #{id} from {code}: {what}.").format(id=result.response_id, code=code, what=shown))
    if result.followup_id:
        info(_("Opened follow-up feedback #{id} for this low score.").format(id=result.followup_id))
    typer.echo(result.response_id)


@app.command("import", help=_(
    "Import responses collected elsewhere from a CSV/TSV file (- for stdin). Columns: token, code, phone or email "
    "(to find the customer, tried in that order), score, comment, date, channel, and q2, q3, ... (or the question "
    "text) for other answers; Chinese headers work too (分数, 评论, 手机, 邮箱, 日期). Every bad row is reported with "
    "its line, column, value and reason; then nothing is written (exit 5) unless --partial. Rows already "
    "imported count as unchanged, so re-running an import is harmless.\n\n"
    "Example: crm survey import 'NPS 2025' answers.csv --rejects bad.csv"))
def import_(
    survey: SurveyArg,
    file: Annotated[str, typer.Argument(help=_("The CSV/TSV file, or - for stdin."), metavar="FILE")],
    partial: Annotated[bool, typer.Option("--partial", help=_("Write the good rows even when some are rejected (still exits 5)."))] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=_("Check every row; write nothing."))] = False,
    rejects: Annotated[Optional[Path], typer.Option("--rejects", help=_("Write rejected rows here, with a reason column."), dir_okay=False)] = None,
    encoding: Annotated[Optional[str], typer.Option("--encoding", help=_("File encoding (default: UTF-8, else GB18030)."))] = None,
    delimiter: Annotated[Optional[str], typer.Option("--delimiter", help=_("Column separator (default: sniffed: comma, semicolon or tab)."))] = None,
    date_format: Annotated[Optional[str], typer.Option("--date-format", help=_("strptime format of the date column, e.g. %d/%m/%Y."))] = None,
    as_of: AsOfOpt = None, fmt: FormatOpt = None,
) -> None:
    from crmcli.core import surveys
    from crmcli.errors import ExitCode

    if delimiter is not None:
        delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
    headers, rows = surveys.read_rows(file, encoding=encoding, delimiter=delimiter)
    with state().store().write() as session:
        ctx = store_context(session, as_of)
        rec = surveys.get_survey(session, survey)
        # Writes nothing itself when a row is rejected (unless --partial) or with --dry-run.
        result = surveys.import_responses(session, rec, headers, rows, ctx, partial=partial, dry_run=dry_run,
                                          date_format=date_format)
    for r in result.rejects[:50]:
        where = _("line {line}").format(line=r.line)
        if r.column:
            where += ", " + _("column {column}").format(column=r.column)
        if r.value not in (None, ""):
            where += ", " + _("value '{value}'").format(value=r.value)
        typer.echo(_("Rejected {where}: {reason}.").format(where=where, reason=r.reason), err=True)
    if len(result.rejects) > 50:
        typer.echo(_("... and {n} more rejected rows.").format(n=len(result.rejects) - 50), err=True)
    if rejects is not None and result.rejects:
        import csv

        with open(rejects, "w", encoding="utf-8-sig", newline="") as f:
            w = csv.writer(f)
            w.writerow([*result.headers, "reason"])
            for r in result.rejects:
                cells = list(r.row) + [""] * (len(result.headers) - len(r.row))
                w.writerow([*cells, f"line {r.line}: " + (f"{r.column}: " if r.column else "") + r.reason])
        info(_("Wrote {n} rejected rows to {path}.").format(n=len(result.rejects), path=rejects))
    if result.ignored_columns:
        info(_("Ignored columns: {list}.").format(list=", ".join(result.ignored_columns)))
    if result.written:
        head = _("Imported {created} responses").format(created=result.created)
    elif dry_run:
        head = _("Dry run: would import {created} responses").format(created=result.created)
    else:
        head = _("Nothing imported: {rejected} rows rejected (fix them, or use --partial)").format(rejected=result.rejected)
    info(head + "; " + _("{read} rows read, {unchanged} already imported, {rejected} rejected, {followups} follow-ups opened.").format(
        read=result.read, unchanged=result.unchanged, rejected=result.rejected, followups=result.followups))
    if fmt and fmt.lower() == "json":
        from crmcli.cli.output import emit_record

        emit_record({"read": result.read, "created": result.created if result.written else 0,
                     "would_create": 0 if result.written else result.created, "unchanged": result.unchanged,
                     "rejected": result.rejected, "followups": result.followups, "written": result.written,
                     "rejects": [{"line": r.line, "column": r.column, "value": r.value, "reason": r.reason}
                                 for r in result.rejects]}, "json")
    if result.rejected:
        raise typer.Exit(int(ExitCode.REJECTED))


def _result_columns(kind: str) -> list:
    from crmcli.cli.output import Column

    common = [Column("group", _("Group")), Column("n", _("Responses"), "int"), Column("invited", _("Invited"), "int"),
              Column("response_rate", _("Rate %"), "int")]
    extra = {
        "nps": [Column("nps", _("NPS"), "int"), Column("ci_low", _("95% low"), "int"), Column("ci_high", _("95% high"), "int"),
                Column("promoters", _("Promoters"), "int"), Column("passives", _("Passives"), "int"),
                Column("detractors", _("Detractors"), "int"), Column("mean", _("Mean"), "int")],
        "csat": [Column("csat", _("CSAT %"), "int"), Column("ci_low", _("95% low"), "int"), Column("ci_high", _("95% high"), "int"),
                 Column("satisfied", _("Satisfied (4-5)"), "int"), Column("mean", _("Mean"), "int")],
        "ces": [Column("mean", _("CES mean"), "int"), Column("ci_low", _("95% low"), "int"), Column("ci_high", _("95% high"), "int"),
                Column("sd", _("SD"), "int"), Column("easy_share", _("Easy (5-7) %"), "int")],
    }
    return common + extra.get(kind, [Column("mean", _("Mean"), "int"), Column("ci_low", _("95% low"), "int"),
                                     Column("ci_high", _("95% high"), "int"), Column("sd", _("SD"), "int")])


@app.command("results", help=_(
    "Survey results: invitations, responses and response rate; NPS with its 95% confidence interval, CSAT % "
    "(share of 4-5), CES mean and distribution; per group with --by tier, segment, month or channel; a monthly "
    "trend chart on a terminal; the latest comments. The formulas are in docs/surveys.md.\n\n"
    "Example: crm survey results 'NPS 2025' --by month --since 2025-01-01"))
def results(
    survey: SurveyArg,
    by: Annotated[Optional[str], typer.Option("--by", help=_("Group by tier, segment, month or channel."))] = None,
    since: Annotated[Optional[str], typer.Option("--since", help=_("Only responses (and invitations) on or after this date."))] = None,
    until: Annotated[Optional[str], typer.Option("--until", help=_("Only responses (and invitations) on or before this date."))] = None,
    comments: Annotated[int, typer.Option("--comments", min=0, help=_("How many of the latest comments to list."))] = 10,
    chart: Annotated[Optional[bool], typer.Option("--chart/--no-chart", help=_("Draw the trend chart (default: on a terminal)."))] = None,
    as_of: AsOfOpt = None, fmt: FormatOpt = None,
) -> None:
    import sys

    from crmcli.cli.output import Units, choose_format, emit, emit_record
    from crmcli.core import surveys

    with state().store().read() as session:
        ctx = store_context(session, as_of)
        rec = surveys.get_survey(session, survey)
        doc = surveys.results(session, rec, ctx, by=by.strip().lower() if by else None,
                              since=parse_day(since, ctx, "--since"), until=parse_day(until, ctx, "--until"),
                              comments=comments)
    chosen = choose_format(fmt)
    if chosen in ("json", "jsonl"):
        from crmcli.cli.feedback import localize

        emit_record(localize(doc, ctx.tz), chosen)
        return
    metric = doc["metric"]
    kind = metric["kind"] if metric else "scale"
    overall = [{"group": "all", "invited": doc["invited"], "response_rate": doc["response_rate"], **(metric or {"n": 0})}]
    rows = overall + doc["groups"]
    units = Units(ctx.currency, ctx.tz)
    if chosen != "table":
        emit(rows, _result_columns(kind), chosen, units)
        return
    from crmcli.render.console import stdout_console

    console = stdout_console()
    _render_results(console, doc, rows, kind, units, chart if chart is not None else sys.stdout.isatty())


def _render_results(console: Any, doc: dict, rows: list, kind: str, units: Any, chart: bool) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from crmcli.cli.output import Column, emit

    head = Text.assemble((doc["survey"], "bold"), f"  {doc['kind'].upper()} · {_(doc['status'])}")
    console.print(head)
    rate = f"{doc['response_rate']:.1f} %" if doc["response_rate"] is not None else "—"
    console.print(_("{responses} responses · {invited} invited · response rate {rate}").format(
        responses=doc["responses"], invited=doc["invited"], rate=rate))
    m = doc["metric"]
    if m:
        console.print(Text(_metric_line(m), style=_metric_style(m) or ""))
        dist = m.get("distribution") or {}
        if dist:
            top = max(dist.values()) or 1
            grid = Table.grid(padding=(0, 1))
            grid.add_column(justify="right", style="dim")
            grid.add_column()
            grid.add_column(justify="right")
            for score, n in dist.items():
                grid.add_row(score, Text("█" * round(20 * n / top), style=_score_colour(m["kind"], int(score))), str(n))
            console.print(grid)
    for q in doc["questions"]:
        if m and q["position"] == m["question"]:
            continue
        s = q["summary"]
        if q["kind"] == "choice":
            detail = ", ".join(f"{c}: {n}" for c, n in s["counts"].items())
        elif q["kind"] == "text":
            detail = _("{n} answers").format(n=s["n"])
        else:
            detail = _metric_line({**s, "kind": q["kind"]})
        console.print(Text.assemble((f"Q{q['position']} ", "bold"), q["text"], "  ", (detail, "cyan")))
    if doc["groups"]:
        emit(rows, _result_columns(kind), "table", units)
    if chart and doc["trend"]:
        table = Table(title=_("Trend by month"), box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column(_("Month"), no_wrap=True)
        table.add_column(_("Responses"), justify="right")
        table.add_column(_("Value"), justify="right")
        table.add_column("", no_wrap=True)
        if kind == "nps":
            lo, hi = -100, 100
        elif kind == "csat":
            lo, hi = 0, 100
        else:
            keys = [int(k) for k in (m.get("distribution") or {"0": 0, "10": 0})]
            lo, hi = min(keys), max(keys)
        for t in doc["trend"]:
            v = t["value"]
            width = 0 if v is None else round(30 * (v - lo) / ((hi - lo) or 1))
            style = _metric_style({"kind": kind, "nps": v, "csat": v, "mean": v}) or ""
            table.add_row(t["month"], str(t["n"]), "—" if v is None else f"{v:.1f}", Text("█" * max(width, 0), style=style))
        console.print(table)
    if doc["comments"]:
        emit([{**c} for c in doc["comments"]],
             [Column("at", _("When"), "datetime"), Column("customer_code", _("Code")), Column("customer_name", _("Customer")),
              Column("score", _("Score"), "int"), Column("comment", _("Comment"))], "table", units, title=_("Latest comments"))


def _metric_line(m: dict) -> str:
    def f(v: Any, d: int = 1) -> str:
        return "—" if v is None else f"{v:.{d}f}"

    if m["kind"] == "nps":
        if not m["n"]:
            return _("NPS: no answers yet")
        return _("NPS {nps} (95% CI {low} to {high}) · promoters {p} · passives {pa} · detractors {d}").format(
            nps=f"{m['nps']:+.1f}", low=f(m["ci_low"]), high=f(m["ci_high"]), p=m["promoters"], pa=m["passives"],
            d=m["detractors"])
    if m["kind"] == "csat":
        if not m["n"]:
            return _("CSAT: no answers yet")
        return _("CSAT {csat} % satisfied (95% CI {low} to {high}) · mean {mean} of 5").format(
            csat=f(m["csat"]), low=f(m["ci_low"]), high=f(m["ci_high"]), mean=f(m["mean"], 2))
    if not m["n"]:
        return _("No answers yet")
    label = "CES" if m["kind"] == "ces" else _("Mean")
    return _("{label} {mean} (95% CI {low} to {high}) · n {n}").format(
        label=label, mean=f(m["mean"], 2), low=f(m["ci_low"], 2), high=f(m["ci_high"], 2), n=m["n"])


def _metric_style(m: dict) -> Optional[str]:
    kind = m.get("kind")
    if kind == "nps" and m.get("nps") is not None:
        return "green" if m["nps"] >= 30 else "yellow" if m["nps"] >= 0 else "red"
    if kind == "csat" and m.get("csat") is not None:
        return "green" if m["csat"] >= 80 else "yellow" if m["csat"] >= 60 else "red"
    if kind == "ces" and m.get("mean") is not None:
        return "green" if m["mean"] >= 5 else "yellow" if m["mean"] >= 4 else "red"
    return None


def _score_colour(kind: str, score: int) -> str:
    from crmcli.core.surveys import score_style

    return {"good": "green", "warn": "yellow", "bad": "red"}.get(score_style(kind, score) or "", "cyan")


@app.command("responses", help=_("List a survey's responses with their answers, comments and follow-ups.\n\n"
                                 "Example: crm survey responses 'NPS 2025' --detractors --format csv"))
def responses(
    survey: SurveyArg,
    since: Annotated[Optional[str], typer.Option("--since", help=_("Answered on or after this date."))] = None,
    until: Annotated[Optional[str], typer.Option("--until", help=_("Answered on or before this date."))] = None,
    detractors: Annotated[bool, typer.Option("--detractors", help=_("Only NPS 0-6 and CSAT 1-2."))] = False,
    limit: LimitOpt = None, fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.output import Column, Units, choose_format, emit
    from crmcli.core import surveys

    with state().store().read() as session:
        ctx = store_context(session)
        rec = surveys.get_survey(session, survey)
        rows = surveys.responses(session, rec, ctx, since=parse_day(since, ctx, "--since"),
                                 until=parse_day(until, ctx, "--until"), detractors=detractors, limit=limit)
        custom = rec.kind == "custom"
    for r in rows:
        r["answers_text"] = "; ".join(f"{k}={v}" for k, v in r["answers"].items())
    chosen = choose_format(fmt)
    columns = [Column("id", _("ID"), "int"), Column("at", _("When"), "datetime"), Column("customer_code", _("Code")),
               Column("customer_name", _("Customer")), Column("kind", _("Kind")), Column("score", _("Score"), "int"),
               Column("comment", _("Comment")), Column("channel", _("Channel")), Column("source", _("Source")),
               Column("token", _("Token")),
               Column("answers", _("Answers"), source="answers" if chosen in ("json", "jsonl") else "answers_text"),
               Column("followup", _("Follow-up"), "int")]
    if chosen in ("table", "markdown"):
        hidden = {"kind", "source", "token"} | (set() if custom else {"answers"})
        columns = [c for c in columns if c.key not in hidden]
    emit(rows, columns, chosen, Units(ctx.currency, ctx.tz), empty_message=_("No responses yet."))


@app.command("smtp-password", help=_(
    "Store the SMTP password in the system keyring (never in the store). Asks for it on a terminal; otherwise "
    "reads one line from stdin.\n\nExample: crm survey smtp-password"))
def smtp_password(delete: Annotated[bool, typer.Option("--delete", help=_("Remove the stored password."))] = False) -> None:
    import sys

    from crmcli.cli.common import is_interactive
    from crmcli.core import mailer
    from crmcli.errors import InvalidInput

    with state().store().read() as session:
        cfg = mailer.load_config(session, need_sender=False)
    if not cfg.user:
        raise InvalidInput(_("No SMTP user is set, so no password is needed."), field="smtp.user",
                           hint=_("Set it first: crm config set smtp.user shop@example.com"))
    if delete:
        removed = mailer.delete_password(cfg)
        info(_("Removed the password of {account}.").format(account=cfg.account) if removed
             else _("No password was stored for {account}.").format(account=cfg.account))
        return
    if is_interactive():
        password = typer.prompt(_("Password for {account}").format(account=cfg.account), hide_input=True, err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise InvalidInput(_("The password is empty."), field="password", hint=_("Give the password on stdin or at the prompt."))
    mailer.set_password(cfg, password)
    info(_("Stored the password of {account} in the keyring.").format(account=cfg.account))
