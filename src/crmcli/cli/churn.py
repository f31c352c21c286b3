"""`crm churn`: churn warnings (rules), win-back lists, BG/NBD + Gamma-Gamma models, CLV, next purchases."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from crmcli.cli.common import AsOfOpt, FormatOpt, LimitOpt, info, masking, pick_customer, state, store_context, warn
from crmcli.i18n import _, shown

app = typer.Typer(help=_("Churn warnings, win-back lists, customer lifetime value and repurchase prediction.\n\n"
                         "Example: crm churn scan --as-of 2025-06-30"), no_args_is_help=True)
rules_app = typer.Typer(help=_("Show the churn warning thresholds kept in the store (or change them with `set`).\n\n"
                               "Example: crm churn rules"), invoke_without_command=True)
app.add_typer(rules_app, name="rules")

PeriodOpt = Annotated[str, typer.Option("--period", help=_("Time unit of the models: day or week."), metavar="PERIOD")]
MinRiskOpt = Annotated[Optional[str], typer.Option("--min-risk", help=_("Only customers at this risk level or higher: "
                                                                       "low, medium or high."), metavar="LEVEL")]


def _units(ctx: Any, session: Any = None) -> Any:
    from crmcli.cli.output import Units

    return Units(ctx.currency, ctx.tz, masking(session) if session is not None else False)


def _days_option(text: Optional[str], field: str, default: int) -> int:
    from crmcli.core.dates import parse_duration_days
    from crmcli.errors import InvalidInput

    if text is None:
        return default
    days = parse_duration_days(text, field=field)
    if days < 1:
        raise InvalidInput(_("{field} must be at least one day.").format(field=field), field=field, value=text,
                           hint=_("For example {field} 90d.").format(field=field))
    return days


# ---------------------------------------------------------------------------------------------- scan

@app.command("scan", help=_("Assess every customer with purchases against the warning rules, save each one's risk "
                            "level (none, low, medium, high) with the reasons and their figures, and print how many "
                            "are at each level.\n\n"
                            "Example: crm churn scan --as-of 2025-06-30"))
def scan_cmd(
    as_of: AsOfOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=_("Assess and report, but save nothing."))] = False,
    fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.output import Column, choose_format, emit, emit_record
    from crmcli.core.churn import rules as rules_mod
    from crmcli.core.churn import scan

    store = state().store()
    with (store.read() if dry_run else store.write()) as session:
        ctx = store_context(session, as_of)
        rules = rules_mod.load(session)
        a = scan.assess(session, ctx, rules)
        run_id = None if dry_run else scan.store_scan(session, a, rules)
    counts = a.counts()
    note = scan.skipped_text(a.skipped)
    if note:
        warn(note)
    info(_("Assessed {n} customers with purchases as of {date}: {high} high, {medium} medium, {low} low risk.").format(
        n=len(a.ids), date=a.as_of, high=counts["high"], medium=counts["medium"], low=counts["low"]))
    if dry_run:
        info(_("Dry run: nothing was saved."))
    chosen = choose_format(fmt)
    if chosen == "json":
        emit_record({"as_of": a.as_of, "customers": len(a.ids), "counts": counts, "skipped_rules": a.skipped,
                     "run_id": run_id, "dry_run": dry_run}, chosen)
        return
    rows = [{"risk": level, "customers": counts[level]} for level in ("high", "medium", "low", "none")]
    emit(rows, [Column("risk", _("Risk"), "message"), Column("customers", _("Customers"), "int")], chosen, _units(ctx))


# ---------------------------------------------------------------------------------------------- list

_BY = ("risk", "clv", "p-alive", "expected")


@app.command("list", help=_("Customers with their saved risk (from `crm churn scan`) and scores (from `crm churn "
                            "score`), for cron jobs and mail merge. --by sorts: risk (highest first), clv (highest "
                            "first), p-alive (lowest first) or expected (most purchases first).\n\n"
                            "Example: crm churn list --min-risk medium --tier A --format csv"))
def list_cmd(
    min_risk: MinRiskOpt = None,
    tier: Annotated[Optional[str], typer.Option("--tier", help=_("Only this tier (A, B or C), through the "
                                                                "classification feature."))] = None,
    by: Annotated[str, typer.Option("--by", help=_("Sort by risk, clv, p-alive or expected."))] = "risk",
    limit: LimitOpt = None,
    fmt: FormatOpt = None,
) -> None:
    from sqlalchemy import and_, or_, select

    from crmcli.cli.output import Column, choose_format, emit
    from crmcli.core.churn import scan
    from crmcli.core.churn.modeling import SCORE, last_score_run
    from crmcli.core.churn.rules import parse_level
    from crmcli.core.churn.winback import tiers_of
    from crmcli.core.customers import primary_contacts
    from crmcli.errors import InvalidInput
    from crmcli.store.models import Customer

    key = by.strip().lower().replace("_", "-")
    if key not in _BY:
        raise InvalidInput(_("'{value}' is not a sort order.").format(value=by), field="--by", value=by,
                           hint=_("Use one of: {choices}.").format(choices=", ".join(_BY)))
    wanted_tier = None
    if tier is not None:
        wanted_tier = tier.strip().upper()
        if wanted_tier not in ("A", "B", "C"):
            raise InvalidInput(_("'{value}' is not a tier.").format(value=tier), field="--tier", value=tier,
                               hint=_("Use A, B or C."))
    min_rank = None
    if min_risk is not None:
        from crmcli.core.churn.rules import LEVELS

        min_rank = LEVELS.index(parse_level(min_risk))
    R, C = scan.RISK, Customer.__table__
    with state().store().read() as session:
        ctx = store_context(session)
        cols = [C.c.id, C.c.code, C.c.name, R.c.risk, R.c.rank, R.c.reasons, R.c.as_of, SCORE.c.p_alive,
                SCORE.c.expected_purchases, SCORE.c.clv_minor, SCORE.c.order_value_minor]
        stmt = (select(*cols).select_from(C.outerjoin(R, R.c.customer_id == C.c.id)
                                          .outerjoin(SCORE, SCORE.c.customer_id == C.c.id))
                .where(C.c.deleted_at.is_(None), C.c.erased_at.is_(None),
                       or_(R.c.customer_id.is_not(None), SCORE.c.customer_id.is_not(None))))
        if min_rank is not None:
            stmt = stmt.where(and_(R.c.rank.is_not(None), R.c.rank >= min_rank))
        order = {
            "risk": [R.c.rank.is_(None), R.c.rank.desc(), SCORE.c.clv_minor.is_(None), SCORE.c.clv_minor.desc()],
            "clv": [SCORE.c.clv_minor.is_(None), SCORE.c.clv_minor.desc()],
            "p-alive": [SCORE.c.p_alive.is_(None), SCORE.c.p_alive.asc()],
            "expected": [SCORE.c.expected_purchases.is_(None), SCORE.c.expected_purchases.desc()],
        }[key]
        stmt = stmt.order_by(*order, C.c.code)
        if limit and wanted_tier is None:
            stmt = stmt.limit(limit)
        rows = [dict(r) for r in session.execute(stmt).mappings()]
        tiers = tiers_of(session, [r["id"] for r in rows])
        if wanted_tier is not None:
            rows = [r for r in rows if (tiers.get(r["id"]) or "").upper() == wanted_tier]
            rows = rows[:limit] if limit else rows
        contacts = primary_contacts(session, [r["id"] for r in rows])
        run = scan.last_scan(session)
        scored = last_score_run(session)
        units = _units(ctx, session)
    if run is None and not rows:
        info(_("Nothing to list yet: run `crm churn scan` (rules), or `crm churn fit` and `crm churn score` (models)."))
    elif run is not None:
        info(_("Risk as of {date} (last `crm churn scan`).").format(date=run["as_of"]))
    import json

    out = []
    for r in rows:
        reasons = json.loads(r["reasons"]) if r["reasons"] else []
        out.append({"code": r["code"], "name": r["name"], "tier": tiers.get(r["id"]), "risk": r["risk"],
                    "reasons": [scan.reason_text(x, ctx.currency) for x in reasons],
                    "p_alive": round(r["p_alive"], 4) if r["p_alive"] is not None else None,
                    "expected_purchases": round(r["expected_purchases"], 3) if r["expected_purchases"] is not None else None,
                    "clv_minor": r["clv_minor"], "order_value_minor": r["order_value_minor"],
                    "phone": contacts.get(r["id"], {}).get("phone"), "email": contacts.get(r["id"], {}).get("email"),
                    "risk_as_of": r["as_of"],
                    "scored_as_of": scored["as_of"] if scored and r["p_alive"] is not None else None})
    columns = [Column("code", _("Code")), Column("name", _("Name")), Column("tier", _("Tier")),
               Column("risk", _("Risk"), "message"), Column("reasons", _("Reasons"), "list"),
               Column("p_alive", _("P(alive)"), justify="right"),
               Column("expected_purchases", _("Expected"), justify="right"),
               Column("clv", _("CLV"), "money", source="clv_minor")]
    chosen = choose_format(fmt)
    if chosen not in ("table", "markdown"):  # machine formats: everything a mail merge or a script needs
        columns += [Column("order_value", _("Order value"), "money", source="order_value_minor"),
                    Column("phone", _("Phone"), "contact"), Column("email", _("E-mail"), "contact"),
                    Column("risk_as_of", _("Risk as of"), "date"), Column("scored_as_of", _("Scored as of"), "date")]
    emit(out, columns, chosen, units, empty_message=_("No customer matches."))


# ---------------------------------------------------------------------------------------------- show

@app.command("show", help=_("One customer's churn picture: risk and every reason with its figures, P(alive), "
                            "expected purchases, CLV, expected next purchase and likely next products.\n\n"
                            "Example: crm churn show C000001 --as-of 2025-06-30"))
def show_cmd(
    customer: Annotated[str, typer.Argument(help=_("The customer: id, code, phone, e-mail or part of the name."),
                                            metavar="CUSTOMER")],
    as_of: AsOfOpt = None,
    fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.output import choose_format, emit_record
    from crmcli.core.churn.card import customer_view
    from crmcli.core.churn.nextbuy import likely_text
    from crmcli.core.churn.rules import level_label
    from crmcli.core.churn.scan import skipped_text
    from crmcli.core.money import format_money

    with state().store().read() as session:
        ctx = store_context(session, as_of)
        c = pick_customer(session, customer, ctx)
        view = customer_view(session, c.id, ctx)  # type: ignore[arg-type]
    chosen = choose_format(fmt)
    if chosen in ("json", "jsonl"):
        payload = {"code": c.code, "name": c.name, "as_of": ctx.today, **(view or {})}
        payload.pop("clv_minor", None)
        emit_record(payload, chosen)
        return
    lines = [f"{c.code} {c.name} — " + _("as of {date}").format(date=ctx.today)]
    if view is None:
        lines.append(_("No purchases yet: nothing to assess."))
    else:
        if view["risk"] is not None:
            lines.append(_("Risk: {level}").format(level=level_label(view["risk"])))
            for r in view["reasons"]:
                lines.append(f"  - [{level_label(r['level'])}] {shown(r['text'])}")
            note = skipped_text(view["skipped_rules"])
            if note:
                lines.append("  " + note)
        if view["p_alive"] is not None:
            lines.append(_("P(alive) {pct} %, expected purchases in {days} days: {n:.2f} (scored as of {date})").format(
                pct=round(view["p_alive"] * 100, 1), days=view["horizon_days"], n=view["expected_purchases"],
                date=view["scored_as_of"]))
        if view["clv_minor"] is not None:
            lines.append(_("CLV over {months} months: {clv}").format(months=view["clv_months"],
                                                                    clv=format_money(view["clv_minor"], ctx.currency)))
        if view["next_purchase"] is not None:
            lines.append(_("Next purchase expected around {date} (usual interval {days} days)").format(
                date=view["next_purchase"], days=view["usual_interval_days"]))
            if view["likely_products"]:
                likely = [(p["product"], p["score"]) for p in view["likely_products"]]
                lines.append(_("Likely next products: {products}").format(products=likely_text(likely)))
    typer.echo("\n".join(lines))


# --------------------------------------------------------------------------------------------- rules

@rules_app.callback()
def rules_show(ctx: typer.Context, fmt: FormatOpt = None) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from crmcli.cli.output import Column, Units, emit
    from crmcli.core import settings
    from crmcli.core.churn import rules as rules_mod
    from crmcli.core.churn.scan import feedback_tables, skipped_text

    with state().store().read() as session:
        values = {k: settings.get(session, k) for k in rules_mod.setting_keys()}
        missing = feedback_tables(session) is None
    if missing:
        warn(skipped_text(list(rules_mod.FEEDBACK_RULES)) or "")
    rows = [{"key": k, "value": v, "shown": rules_mod.describe(v), "help": _(settings.SPECS[k].help),
             "default": rules_mod.describe(settings.SPECS[k].default)} for k, v in values.items()]
    emit(rows, [Column("key", _("Setting")), Column("value", _("Value"), source="shown"),
                Column("default", _("Default")), Column("help", _("Meaning"))], fmt, Units())


@rules_app.command("set", help=_("Change churn warning thresholds: three values LOW,MEDIUM,HIGH per rule ('-' leaves a "
                                 "level out, 'off' the whole rule). Each change is validated and audited.\n\n"
                                 "Example: crm churn rules set --interval 1.5,2,3 --spend-drop 30,50,80 --no-contact off"))
def rules_set(
    interval: Annotated[Optional[str], typer.Option("--interval", help=_("Multiples of the usual interval, e.g. 1.5,2,3."))] = None,
    min_history: Annotated[Optional[str], typer.Option("--min-history", help=_("Purchase days before the usual interval is used."))] = None,
    recency: Annotated[Optional[str], typer.Option("--recency", help=_("Days without a purchase (short history), e.g. 60,90,180."))] = None,
    spend_window: Annotated[Optional[str], typer.Option("--spend-window", help=_("Days of each spend window, e.g. 90."))] = None,
    spend_drop: Annotated[Optional[str], typer.Option("--spend-drop", help=_("Spend drop in %, e.g. 30,50,80."))] = None,
    nps: Annotated[Optional[str], typer.Option("--nps", help=_("Latest NPS at most, e.g. -,6,3."))] = None,
    csat: Annotated[Optional[str], typer.Option("--csat", help=_("Latest CSAT at most, e.g. -,2,1."))] = None,
    satisfaction_days: Annotated[Optional[str], typer.Option("--satisfaction-days", help=_("Answers older than this many days do not count."))] = None,
    complaints: Annotated[Optional[str], typer.Option("--complaints", help=_("Open complaints at least, e.g. -,1,2."))] = None,
    no_contact: Annotated[Optional[str], typer.Option("--no-contact", help=_("Days without an interaction, e.g. 120,240,-."))] = None,
    reset: Annotated[bool, typer.Option("--reset", help=_("Restore every churn threshold to its default."))] = False,
) -> None:
    from crmcli.core import settings
    from crmcli.core.churn import rules as rules_mod
    from crmcli.errors import UsageError

    given = {"churn.interval": interval, "churn.min_history": min_history, "churn.recency": recency,
             "churn.spend_window": spend_window, "churn.spend_drop": spend_drop, "churn.nps": nps, "churn.csat": csat,
             "churn.satisfaction_days": satisfaction_days, "churn.complaints": complaints,
             "churn.no_contact": no_contact}
    values = {k: v for k, v in given.items() if v is not None}
    if reset:
        if values:
            raise UsageError(_("--reset cannot be combined with other options."))
        values = {k: rules_mod.describe(settings.SPECS[k].default) for k in rules_mod.setting_keys()}
    if not values:
        raise UsageError(_("Nothing to change."), hint=_("Give at least one option, e.g. --interval 1.5,2,3 "
                                                          "(see `crm churn rules set --help`)."))
    with state().store().write() as session:
        for key, text in values.items():
            parsed = settings.set_value(session, key, text)
            info(_("{key} = {value}").format(key=key, value=rules_mod.describe(parsed)))


# ------------------------------------------------------------------------------------------- winback

@app.command("winback", help=_("An action list for customers at risk: contact, reasons, and a suggested action by "
                               "tier and reason (call for A, message for B, coupon for C; complaints and low scores "
                               "first). Only customers who consented to the channel are listed; the others are "
                               "counted. --log records a follow-up interaction for each.\n\n"
                               "Example: crm churn winback --min-risk high --out winback.csv --log"))
def winback_cmd(
    min_risk: Annotated[str, typer.Option("--min-risk", help=_("Lowest risk level to include: low, medium or high."),
                                          metavar="LEVEL")] = "high",
    out: Annotated[Optional[str], typer.Option("--out", "-o", help=_("Write the list to this file (CSV unless "
                                                                     "--format says otherwise)."), metavar="FILE")] = None,
    log: Annotated[bool, typer.Option("--log", help=_("Log a follow-up interaction for each listed customer."))] = False,
    next_date: Annotated[Optional[str], typer.Option("--next", help=_("With --log: the follow-up date (default: in 7 days)."),
                                                     metavar="DATE")] = None,
    skip_logged_within: Annotated[Optional[str], typer.Option(
        "--skip-logged-within", help=_("With --log: leave out customers logged for win-back in the last N days "
                                       "(default 14d; 0 turns it off)."), metavar="DAYS")] = None,
    message: Annotated[Optional[str], typer.Option("--message", help=_("Message template for messages and coupons; "
                                                                       "placeholders {name}, {code}, {days}."))] = None,
    as_of: AsOfOpt = None,
    limit: LimitOpt = None,
    fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.output import Column, emit
    from crmcli.core.churn.rules import LEVELS, parse_level
    from crmcli.core.churn.scan import skipped_text
    from crmcli.core.churn.winback import winback
    from crmcli.core.dates import parse_duration_days
    from crmcli.errors import UsageError

    min_rank = LEVELS.index(parse_level(min_risk))
    if min_rank == 0:
        raise UsageError(_("--min-risk none would list every customer."), hint=_("Use low, medium or high."))
    if (next_date is not None or skip_logged_within is not None) and not log:
        raise UsageError(_("--next and --skip-logged-within only apply with --log."))
    skip = 14 if skip_logged_within is None else parse_duration_days(skip_logged_within, field="--skip-logged-within")
    path = None
    if out is not None:
        from pathlib import Path

        path = Path(out).expanduser()
        if path.is_dir():
            raise UsageError(_("{path} is a directory.").format(path=path), hint=_("Give a file name, e.g. --out winback.csv."))
        if not path.parent.is_dir():
            raise UsageError(_("The directory {dir} does not exist.").format(dir=path.parent))
    store = state().store()
    with (store.write() if log else store.read()) as session:
        ctx = store_context(session, as_of)
        result = winback(session, ctx, min_rank=min_rank, log=log, next_text=next_date, skip_days=skip,
                         message=message, limit=limit)
        units = _units(ctx, session)
    c = result.counts
    note = skipped_text(result.skipped_rules)
    if note:
        warn(note)
    info(_("{n} customers at {level} risk or higher as of {date}; {listed} listed, left out: {nc} without consent, "
           "{nt} without a contact address, {al} already logged recently.").format(
        n=c["at_risk"], level=LEVELS[min_rank], date=result.as_of, listed=c["listed"], nc=c["no_consent"],
        nt=c["no_contact"], al=c["already_logged"]))
    if log:
        if result.next_date:
            info(_("Logged {n} follow-up interactions (next follow-up {date}).").format(n=c["logged"], date=result.next_date))
        else:
            info(_("Nothing was logged."))
    if c["over_limit"]:
        info(_("{n} more left out by --limit.").format(n=c["over_limit"]))
    rows = result.rows
    columns = [Column("code", _("Code")), Column("name", _("Name")), Column("tier", _("Tier")),
               Column("risk", _("Risk"), "message"), Column("reasons", _("Reasons"), "list"), Column("action", _("Action")),
               Column("action_text", _("Suggested action")), Column("channel", _("Channel")),
               Column("contact", _("Contact"), "contact"), Column("message", _("Message")),
               Column("clv", _("CLV"), "money", source="clv_minor")]
    if path is not None:
        from crmcli.core.files import private_file

        with private_file(path, newline="") as stream:
            emit(rows, columns, (fmt or "csv").lower(), units, out=stream)
        info(_("Wrote {n} rows to {path}.").format(n=len(rows), path=path))
        return
    emit(rows, columns, fmt, units, empty_message=_("Nobody to contact."))


# ----------------------------------------------------------------------------------------------- fit

def _fit_rows(rec: dict[str, Any]) -> list[dict[str, Any]]:
    se = rec.get("se") or {}
    rows = []
    for model, names in (("BG/NBD", ("r", "alpha", "a", "b")), ("Gamma-Gamma", ("p", "q", "gamma"))):
        for name in names:
            value = rec.get(name)
            rows.append({"model": model, "parameter": name,
                         "value": f"{value:.6g}" if value is not None else None,
                         "se": f"{se[name]:.3g}" if name in se and value is not None else None})
    return rows


@app.command("fit", help=_("Fit the BG/NBD (purchase and dropout) and Gamma-Gamma (spend per order) models by maximum "
                           "likelihood on every customer's purchases up to the calibration end, store the "
                           "parameters and print them (r, alpha, a, b; p, q, gamma), the log-likelihood and the "
                           "number of customers.\n\n"
                           "Example: crm churn fit --as-of 2025-06-30 --period week --format json"))
def fit_cmd(
    as_of: AsOfOpt = None,
    calibration_end: Annotated[Optional[str], typer.Option("--calibration-end", help=_("Use purchases up to this date "
                                                                                      "(the same as --as-of)."),
                                                           metavar="DATE")] = None,
    period: PeriodOpt = "week",
    fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.common import parse_day
    from crmcli.cli.output import Column, choose_format, emit, emit_record
    from crmcli.core.churn import modeling
    from crmcli.errors import UsageError

    per = modeling.parse_period(period)
    store = state().store()
    # Fitted on a read snapshot; the write transaction only stores the fit (see score_cmd).
    with store.read() as session:
        ctx = store_context(session, as_of)
        end = ctx.today
        if calibration_end is not None:
            cal = parse_day(calibration_end, ctx, "--calibration-end")
            assert cal is not None
            if as_of is not None and cal != ctx.today:
                raise UsageError(_("--as-of and --calibration-end give different dates ({a} and {b})."
                                   ).format(a=ctx.today, b=cal), hint=_("Give one of them."))
            end = cal
        outcome = modeling.fit_models(session, ctx.at(end), end=end, period=per, store=False)
    with store.write() as session:
        outcome.fit_id = modeling.store_fit(session, ctx.at(end), outcome)
        rec = modeling.fit_record(modeling.get_fit(session, outcome.fit_id))
    if outcome.gg_error:
        warn(_("The Gamma-Gamma spend model was not fitted: {reason} Expected order values and CLV need it.")
             .format(reason=outcome.gg_error))
    for w in rec["warnings"]:
        warn(w)
    info(_("Fitted on {n} customers with purchases up to {date} (period: {period}); BG/NBD log-likelihood {ll:.2f}.")
         .format(n=rec["n_customers"], date=rec["date"], period=_(rec["period"]), ll=rec["log_likelihood"]))
    if rec["gg_customers"]:
        info(_("Gamma-Gamma on {n} repeat buyers, log-likelihood {ll:.2f}; gamma is in {currency}.").format(
            n=rec["gg_customers"], ll=rec["gg_log_likelihood"], currency=rec["currency"]))
        corr = rec.get("corr_frequency_monetary")
        if corr is not None and abs(corr) > 0.3:
            warn(_("Frequency and spend per order are correlated ({corr:.2f}); the Gamma-Gamma model assumes they "
                   "are independent, so treat CLV with care.").format(corr=corr))
    chosen = choose_format(fmt)
    if chosen in ("json", "jsonl"):
        emit_record(rec, chosen)
        return
    emit(_fit_rows(rec), [Column("model", _("Model")), Column("parameter", _("Parameter")),
                          Column("value", _("Value"), justify="right"), Column("se", _("Std. error"), justify="right")],
         chosen, _units(ctx))


# --------------------------------------------------------------------------------------------- score

@app.command("score", help=_("Score every customer with the newest fit: P(alive), expected purchases in the horizon, "
                             "expected order value and CLV over --clv-months with a monthly --discount rate; the "
                             "scores are saved (replacing the previous ones) and shown on the card and in `crm churn "
                             "list`.\n\n"
                             "Example: crm churn score --horizon 90d --clv-months 12 --discount 0.01"))
def score_cmd(
    horizon: Annotated[str, typer.Option("--horizon", help=_("Horizon of the expected purchases, e.g. 90d, 12w, 6m."))] = "90d",
    clv_months: Annotated[int, typer.Option("--clv-months", help=_("CLV horizon in months (a month is 30.4375 days)."))] = 12,
    discount: Annotated[str, typer.Option("--discount", help=_("Monthly discount rate, e.g. 0.01 or 1%."))] = "0.01",
    as_of: AsOfOpt = None,
    fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.output import choose_format, emit_record
    from crmcli.core.churn import modeling
    from crmcli.core.money import format_money
    from crmcli.errors import InvalidInput

    days = _days_option(horizon, "--horizon", 90)
    text = discount.strip()
    try:
        rate = float(text.rstrip("%").strip()) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise InvalidInput(_("'{value}' is not a discount rate.").format(value=discount), field="--discount",
                           value=discount, hint=_("Write it as 0.01 or 1% (per month).")) from None
    import math

    if not math.isfinite(rate):
        raise InvalidInput(_("'{value}' is not a discount rate.").format(value=discount), field="--discount",
                           value=discount, hint=_("Write it as 0.01 or 1% (per month)."))
    store = state().store()
    # Computed from a read snapshot; only the writing of the scores holds the write lock (a few seconds for a
    # million customers), so other commands are not kept waiting for the whole run.
    with store.read() as session:
        ctx = store_context(session, as_of)
        prepared = modeling.prepare_scores(session, ctx, horizon_days=days, clv_months=clv_months, discount=rate)
    with store.write() as session:
        o = modeling.save_scores(session, prepared)
    info(_("Scored {n} customers as of {date} with fit #{fit}: mean P(alive) {p} %, {e:.1f} purchases expected in "
           "{days} days.").format(n=o.customers, date=o.as_of, fit=o.fit_id, p=round(o.totals["p_alive_mean"] * 100, 1),
                                  e=o.totals["expected_purchases"], days=o.horizon_days))
    if o.with_clv:
        info(_("Total CLV over {months} months: {total}.").format(
            months=o.clv_months, total=format_money(int(o.totals["clv_minor"]), ctx.currency)))
    else:
        warn(_("The newest fit has no Gamma-Gamma parameters: no expected order values or CLV were computed."))
    record = {"fit_id": o.fit_id, "as_of": o.as_of, "customers": o.customers, "horizon_days": o.horizon_days,
              "clv_months": o.clv_months, "discount": o.discount, "with_clv": o.with_clv,
              "p_alive_mean": o.totals["p_alive_mean"], "expected_purchases": o.totals["expected_purchases"],
              "clv_total": (modeling_money(int(o.totals["clv_minor"]), ctx.currency) if o.with_clv else None),
              "seconds": {k: round(v, 3) for k, v in o.timings.items()}}
    chosen = choose_format(fmt)
    if chosen in ("json", "jsonl"):
        emit_record(record, chosen)
    else:
        typer.echo(_("{n} customers scored.").format(n=o.customers))


def modeling_money(minor: int, currency: str) -> str:
    from crmcli.core.money import money_str

    return money_str(minor, currency)


# ------------------------------------------------------------------------------------------- holdout

@app.command("holdout", help=_("Check the model on your own data: fit on the purchases up to --calibration-end and "
                               "compare the predicted with the actual repeat purchases after it (up to --as-of), per "
                               "number of repeat purchases in the calibration period and in total.\n\n"
                               "Example: crm churn holdout --calibration-end 2025-01-01 --as-of 2025-06-30"))
def holdout_cmd(
    calibration_end: Annotated[str, typer.Option("--calibration-end", help=_("Last day of the calibration period."),
                                                 metavar="DATE")],
    as_of: AsOfOpt = None,
    period: PeriodOpt = "week",
    fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.common import parse_day
    from crmcli.cli.output import Column, choose_format, emit, emit_record
    from crmcli.core.churn import modeling

    per = modeling.parse_period(period)
    with state().store().read() as session:
        ctx = store_context(session, as_of)
        cal = parse_day(calibration_end, ctx, "--calibration-end")
        assert cal is not None
        h = modeling.holdout(session, ctx, calibration_end=cal, end=ctx.today, period=per)
    info(_("Fitted on {n} customers up to {cal}; holdout {start} to {end} ({t:.2f} {period}s).").format(
        n=h.fit.n_customers, cal=h.calibration_end, start=h.calibration_end.fromordinal(h.calibration_end.toordinal() + 1),
        end=h.end, t=h.holdout_periods, period=_(h.period)))
    t = h.total
    if t["error_pct"] is not None:
        info(_("Repeat purchases in the holdout: {actual:.0f} actual, {predicted:.1f} predicted ({err:+.1f} %).").format(
            actual=t["actual_total"], predicted=t["predicted_total"], err=t["error_pct"]))
    chosen = choose_format(fmt)
    if chosen in ("json", "jsonl"):
        emit_record({"calibration_end": h.calibration_end, "end": h.end, "period": h.period,
                     "holdout_periods": h.holdout_periods, "params": h.fit.params.as_dict(),
                     "log_likelihood": h.fit.log_likelihood, "n_customers": h.fit.n_customers,
                     "groups": h.groups, "total": t}, chosen)
        return

    def fmt_num(v: Any, places: int) -> Any:
        return None if v is None else f"{v:.{places}f}"

    rows = [{**g, "actual_mean": fmt_num(g["actual"], 3), "predicted_mean": fmt_num(g["predicted"], 3),
             "actual_sum": fmt_num(g["actual_total"], 0), "predicted_sum": fmt_num(g["predicted_total"], 1)}
            for g in [*h.groups, t]]
    emit(rows, [Column("frequency", _("Repeat purchases (calibration)")), Column("customers", _("Customers"), "int"),
                Column("actual", _("Actual (mean)"), source="actual_mean", justify="right"),
                Column("predicted", _("Predicted (mean)"), source="predicted_mean", justify="right"),
                Column("actual_total", _("Actual (total)"), source="actual_sum", justify="right"),
                Column("predicted_total", _("Predicted (total)"), source="predicted_sum", justify="right")],
         chosen, _units(ctx))


# ---------------------------------------------------------------------------------------------- next

@app.command("next", help=_("Customers expected to buy again soon (from their own purchase intervals), with the "
                            "products they are likely to buy next (what customers bought on their following "
                            "purchase day after the same products), for cross-selling.\n\n"
                            "Example: crm churn next --within 14d --overdue --format csv"))
def next_cmd(
    within: Annotated[str, typer.Option("--within", help=_("Expected within this many days from today, e.g. 14d."))] = "14d",
    overdue: Annotated[bool, typer.Option("--overdue", help=_("Also list customers whose expected date has passed."))] = False,
    as_of: AsOfOpt = None,
    limit: LimitOpt = None,
    fmt: FormatOpt = None,
) -> None:
    from sqlalchemy import select

    from crmcli.cli.output import Column, emit
    from crmcli.core.churn import nextbuy
    from crmcli.core.churn.modeling import SCORE
    from crmcli.core.dates import parse_duration_days
    from crmcli.store.models import Customer

    days = parse_duration_days(within, field="--within")
    C = Customer.__table__
    with state().store().read() as session:
        ctx = store_context(session, as_of)
        rows = nextbuy.upcoming(session, ctx.today, within_days=days, overdue=overdue)
        rows = rows[:limit] if limit else rows
        ids = [r["customer_id"] for r in rows]
        names: dict[int, tuple[str, str]] = {}
        alive: dict[int, float] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            names.update({r.id: (r.code, r.name) for r in session.execute(select(C.c.id, C.c.code, C.c.name)
                                                                            .where(C.c.id.in_(chunk)))})
            alive.update({cid: p for cid, p in session.execute(select(SCORE.c.customer_id, SCORE.c.p_alive)
                                                                .where(SCORE.c.customer_id.in_(chunk)))})
        units = _units(ctx, session)
    out = [{**r, "code": names[r["customer_id"]][0], "name": names[r["customer_id"]][1],
            "p_alive": round(alive[r["customer_id"]], 4) if r["customer_id"] in alive else None,
            "likely_products": [p for p, _s in r["likely"]],
            "likely_scores": [round(s * 100) for _p, s in r["likely"]]} for r in rows]
    emit(out, [Column("code", _("Code")), Column("name", _("Name")),
               Column("last_purchase", _("Last purchase"), "date"),
               Column("usual_days", _("Usual interval (days)"), justify="right"),
               Column("expected", _("Expected next"), "date"), Column("in_days", _("In days"), "int"),
               Column("p_alive", _("P(alive)"), justify="right"),
               Column("likely_products", _("Likely next products"), "list"),
               Column("likely_scores", _("Likelihood (%)"), "list")],
         fmt, units, empty_message=_("Nobody is expected to buy within {days} days.").format(days=days))
