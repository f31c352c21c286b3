"""`crm points`: the loyalty programme — balances, history, earning rules, redemption, expiry, liability."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from crmcli.cli.common import (AsOfOpt, FormatOpt, LimitOpt, NegativeNumbersCommand, choose_customer, info, parse_day,
                               pick_customer, state, store_context)
from crmcli.i18n import _

if TYPE_CHECKING:
    from sqlmodel import Session

app = typer.Typer(help=_("Loyalty points: balances, earning rules, redemption, expiry and liability.\n\n"
                         "Example: crm points balance C000001"), no_args_is_help=True)
rules_app = typer.Typer(help=_("Show or change the earning rules (with no subcommand: show them).\n\n"
                               "Example: crm points rules set rate 1"))
app.add_typer(rules_app, name="rules")

CustomerArg = Annotated[str, typer.Argument(help=_("The customer: id, code, phone, e-mail or name."), metavar="CUSTOMER")]
ReasonOpt = Annotated[Optional[str], typer.Option("--reason", "-r", help=_("Why (kept in the ledger)."))]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help=_("Show what would change; change nothing."))]


class _Rollback(Exception):
    """Raised inside a write transaction to undo it (dry runs compute the real effect, then discard it)."""


@contextmanager
def _write(dry_run: bool = False) -> Iterator["Session"]:
    try:
        with state().store().write() as session:
            yield session
            if dry_run:
                raise _Rollback
    except _Rollback:
        pass


def _people(session: "Session", ids: list[int]) -> dict[int, Any]:
    """{customer id: (id, code, name)} for many customers, in chunks (SQLite limits bound parameters)."""
    from sqlalchemy import select

    from crmcli.core.points.ledger import chunks
    from crmcli.store.models import Customer

    C = Customer.__table__
    found: dict[int, Any] = {}
    for part in chunks(sorted(set(ids))):
        found.update({r.id: r for r in session.execute(select(C.c.id, C.c.code, C.c.name).where(C.c.id.in_(list(part))))})
    return found


def _pts(n: int) -> str:
    return f"{n:,}"


def _summary_line(code: str, s: Any) -> str:
    line = _("{code}: {spendable} spendable").format(code=code, spendable=_pts(s.spendable))
    if s.locked:
        line += ", " + _("{locked} locked").format(locked=_pts(s.locked))
    if s.debt:
        line += ", " + _("owes {debt}").format(debt=_pts(s.debt))
    return line + "."


# ------------------------------------------------------------------------------------------- balance

@app.command("balance", help=_("Show a customer's points: spendable, locked, debt, and every upcoming expiry.\n\n"
                               "Example: crm points balance C000001 --format json"))
def balance(customer: CustomerArg, as_of: AsOfOpt = None, fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Column, Units, choose_format, emit, emit_record
    from crmcli.core.points import ledger
    from crmcli.core.points import rules as rules_mod
    from crmcli.core.points.expiry import value_minor

    with state().store().read() as session:
        ctx = store_context(session, as_of)
        record = pick_customer(session, customer, ctx, include_deleted=True)
        assert record.id is not None
        s = ledger.summary(session, record.id, ctx.today)
        rules = rules_mod.load(session)
    live = s.spendable + s.locked
    value = value_minor(live, rules.redemption_value, ctx.currency)
    chosen = choose_format(fmt)
    if chosen in ("json", "jsonl"):
        from crmcli.core.money import money_str

        emit_record({"customer": record.code, "name": record.name, "as_of": ctx.today, **s.as_dict(),
                     "live": live, "value": money_str(value, ctx.currency)}, chosen)
        return
    rows: list[dict[str, Any]] = [
        {"field": "spendable", "label": _("Spendable"), "value": _pts(s.spendable)},
        {"field": "locked", "label": _("Locked"), "value": _pts(s.locked)},
        {"field": "debt", "label": _("Debt"), "value": _pts(s.debt)},
        {"field": "overdue", "label": _("Expired, not yet removed"), "value": _pts(s.overdue)},
        {"field": "balance", "label": _("Ledger balance"), "value": _pts(s.balance)},
    ]
    from crmcli.core.money import format_money

    rows.append({"field": "value", "label": _("Value"), "value": format_money(value, ctx.currency)})
    for day, n in s.unlocks:
        rows.append({"field": f"unlocks.{day.isoformat()}", "label": _("Unlocks {date}").format(date=day),
                     "value": _pts(n)})
    for day, n in s.expiries:
        rows.append({"field": f"expires.{day.isoformat()}", "label": _("Expires {date}").format(date=day),
                     "value": _pts(n)})
    label_key = "label" if chosen in ("table", "markdown") else "field"
    emit(rows, [Column("field", _("Field"), source=label_key), Column("value", _("Points"), justify="right")], chosen,
         Units(ctx.currency, ctx.tz), title=f"{record.code} {record.name}")


# ------------------------------------------------------------------------------------------- history

def _history_columns() -> list:
    from crmcli.cli.output import Column

    return [Column("id", _("ID"), "int"), Column("date", _("Date"), "date"), Column("kind", _("Kind")),
            Column("points", _("Points"), "int"), Column("balance", _("Balance"), "int"),
            Column("debt_change", _("Debt change"), "int"), Column("debt", _("Debt"), "int"),
            Column("expires_on", _("Expires"), "date"), Column("spendable_on", _("Spendable from"), "date"),
            Column("purchase", _("Purchase"), "int"), Column("purchase_ref", _("Order ref")),
            Column("ref", _("Linked entry"), "int"), Column("reason", _("Reason")), Column("actor", _("By")),
            Column("recorded_at", _("Recorded"), "datetime")]


@app.command("history", help=_("Show a customer's points ledger, oldest first, with the running balance.\n\n"
                               "Example: crm points history C000001 --limit 20"))
def history(customer: CustomerArg, limit: LimitOpt = None, fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Units, choose_format, emit
    from crmcli.core.points import operations

    with state().store().read() as session:
        ctx = store_context(session)
        record = pick_customer(session, customer, ctx, include_deleted=True)
        assert record.id is not None
        rows = operations.history(session, record.id, limit=limit)
    cols = _history_columns()
    chosen = choose_format(fmt)
    if chosen in ("table", "markdown"):
        cols = [c for c in cols if c.key in ("id", "date", "kind", "points", "balance", "debt", "expires_on",
                                             "purchase", "reason")]
        for row in rows:
            if not row["reason"] and row["detail"]:
                row["reason"] = _describe(row["detail"])
            elif not row["reason"] and row["kind"] == "expire":
                row["reason"] = _("points of entry #{id} expired").format(id=row["ref"])
            elif not row["reason"] and row["kind"] == "repay":
                row["reason"] = _("repays the debt from entry #{id}").format(id=row["ref"])
            row["kind"] = _kind(row["kind"])
    emit(rows, cols, chosen, Units(ctx.currency, ctx.tz), empty_message=_("No points yet."))


def _kind(kind: str) -> str:
    names = {"earn": _("earn"), "redeem": _("redeem"), "expire": _("expire"), "reversal": _("refund reversal"),
             "adjust": _("adjust"), "referral": _("referral"), "birthday": _("birthday"), "restore": _("restore"),
             "repay": _("debt repaid")}
    return names.get(kind, kind)


def _describe(detail: dict[str, Any]) -> str | None:
    if "reversed" in detail:
        parts = [_("reversed {n}").format(n=detail["reversed"])]
        if detail.get("already_expired"):
            parts.append(_("{n} had expired").format(n=detail["already_expired"]))
        if detail.get("from_other_lots"):
            parts.append(_("{n} from other points").format(n=detail["from_other_lots"]))
        if detail.get("debt"):
            parts.append(_("{n} owed").format(n=detail["debt"]))
        return ", ".join(parts)
    if detail.get("role") == "referrer":
        return _("referred {code}").format(code=detail.get("referred"))
    if detail.get("role") == "referred":
        return _("referred by {code}").format(code=detail.get("referred_by"))
    if "redemption" in detail:
        return _("points payment #{id} returned").format(id=detail["redemption"])
    if "rate" in detail:
        factors = [f"×{detail[k]}" for k in ("tier_multiplier", "category_multiplier", "birthday_multiplier")
                   if detail.get(k) not in (None, "1")]
        return " ".join([_("{amount} at {rate}/unit").format(amount=detail["amount"], rate=detail["rate"]), *factors])
    return None


# ------------------------------------------------------------------------------ earn / redeem / adjust

def _report(entry: Any, code: str, verb: str) -> None:
    info(verb + " " + _summary_line(code, entry.summary))
    typer.echo(entry.id)


@app.command("earn", cls=NegativeNumbersCommand, help=_("Give a customer points by hand (a bonus or campaign); they expire by the store's policy.\n\n"
                            "Example: crm points earn C000001 200 --reason 'opening week bonus'"))
def earn(customer: CustomerArg,
         points: Annotated[str, typer.Argument(help=_("How many points (a whole number)."), metavar="N")],
         reason: ReasonOpt = None,
         expires: Annotated[Optional[str], typer.Option("--expires", help=_("Expiry date instead of the store's policy."))] = None,
         never: Annotated[bool, typer.Option("--never-expires", help=_("These points never expire."))] = False,
         as_of: AsOfOpt = None) -> None:
    from crmcli.core import customers
    from crmcli.core.points import operations

    n = operations.parse_points(points, field="earn")  # "... for earn", not "... for points"
    if expires is not None and never:
        from crmcli.errors import UsageError

        raise UsageError(_("--expires and --never-expires contradict each other."), hint=_("Give one of them."))
    cid = choose_customer(customer)
    with state().store().write() as session:
        ctx = store_context(session, as_of)
        record = customers.get(session, cid)
        entry = operations.earn(session, record, n, ctx, reason=reason, expires_on=parse_day(expires, ctx, "--expires"),
                                never_expires=never)
    _report(entry, record.code, _("Added {n} points.").format(n=_pts(n)))


@app.command("redeem", cls=NegativeNumbersCommand, help=_("Spend a customer's points (soonest-expiring first). More than the spendable balance is "
                              "refused and nothing changes. With --purchase, the points paid for that purchase, and a "
                              "refund of it returns them.\n\n"
                              "Example: crm points redeem C000001 500 --reason 'coffee voucher' --purchase 42"))
def redeem(customer: CustomerArg,
           points: Annotated[str, typer.Argument(help=_("How many points (a whole number)."), metavar="N")],
           reason: ReasonOpt = None,
           purchase: Annotated[Optional[int], typer.Option("--purchase", help=_("The purchase these points paid for."),
                                                           metavar="PURCHASE")] = None,
           as_of: AsOfOpt = None) -> None:
    from crmcli.core import customers
    from crmcli.core.points import operations

    n = operations.parse_points(points, field="redeem")
    cid = choose_customer(customer)
    with state().store().write() as session:
        ctx = store_context(session, as_of)
        record = customers.get(session, cid)
        entry = operations.redeem(session, record, n, ctx, reason=reason, purchase_id=purchase)
    _report(entry, record.code, _("Redeemed {n} points.").format(n=_pts(n)))


@app.command("adjust", cls=NegativeNumbersCommand,
             help=_("Correct a customer's points: +N adds, -N takes away (never below zero). A reason is required.\n\n"
                    "Example: crm points adjust C000001 -50 --reason 'double-counted order'"))
def adjust(customer: CustomerArg,
           points: Annotated[str, typer.Argument(help=_("+N or -N."), metavar="±N")],
           reason: ReasonOpt = None, as_of: AsOfOpt = None) -> None:
    from crmcli.core import customers
    from crmcli.core.points import operations

    n = operations.parse_points(points, signed=True, field="adjust")
    operations.clean_reason(reason, required=True)
    cid = choose_customer(customer)
    with state().store().write() as session:
        ctx = store_context(session, as_of)
        record = customers.get(session, cid)
        entry = operations.adjust(session, record, n, ctx, reason=reason)
    _report(entry, record.code, _("Adjusted by {n} points.").format(n=f"{n:+,}"))


# -------------------------------------------------------------------------------------------- expiry

@app.command("expire", help=_("Remove points past their expiry date. Idempotent: safe to run from cron every hour.\n\n"
                              "Example: crm points expire --as-of 2025-01-01 --dry-run"))
def expire(as_of: AsOfOpt = None, dry_run: DryRunOpt = False, fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Column, Units, emit
    from crmcli.core.points import expiry

    store = state().store()
    with store.read() as session:
        ctx = store_context(session, as_of)
    # Found in a read transaction; the write lock is held only while the debits are written.
    done, people = expiry.expire_in_store(store, ctx.today, dry_run=dry_run, people=_people)
    ids = sorted({r["customer_id"] for r in done})
    rows = [{"code": people[r["customer_id"]].code, "name": people[r["customer_id"]].name, "lot": r["id"],
             "points": r["points"], "expired_on": r["expires_on"]} for r in done]
    total = sum(r["points"] for r in rows)
    message = _("Would expire {points} points in {lots} lots of {customers} customers (dry run; nothing changed).") \
        if dry_run else _("Expired {points} points in {lots} lots of {customers} customers.")
    info(message.format(points=_pts(total), lots=len(rows), customers=len(ids)))
    if rows or fmt:
        emit(rows, [Column("code", _("Code")), Column("name", _("Customer")), Column("lot", _("Lot"), "int"),
                    Column("points", _("Points"), "int"), Column("expired_on", _("Last valid day"), "date")],
             fmt, Units(ctx.currency, ctx.tz))


@app.command("expiring", help=_("Who will lose how many points when: for reminder messages (--format csv for mail merge).\n\n"
                                "Example: crm points expiring --within 30d --format csv > reminders.csv"))
def expiring(within: Annotated[str, typer.Option("--within", help=_("How far ahead: 30d, 8w, 3m..."))] = "30d",
             as_of: AsOfOpt = None, fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Column, Units, emit
    from crmcli.core.dates import parse_duration_days
    from crmcli.core.points import expiry

    days = parse_duration_days(within, field="--within")
    with state().store().read() as session:
        ctx = store_context(session, as_of)
        rows = expiry.expiring(session, ctx, days)
    emit(rows, [Column("code", _("Code")), Column("name", _("Customer")), Column("phone", _("Phone"), "contact"),
                Column("email", _("E-mail"), "contact"), Column("expires_on", _("Expires"), "date"),
                Column("days_left", _("Days left"), "int"), Column("points", _("Points"), "int"),
                Column("balance", _("Balance"), "int")],
         fmt, Units(ctx.currency, ctx.tz), empty_message=_("No points expire in that time."))


@app.command("liability", help=_("Outstanding points and what they are worth at the redemption value.\n\n"
                                 "Example: crm points liability --as-of 2024-12-31"))
def liability(as_of: AsOfOpt = None, fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Column, Units, choose_format, emit, emit_record
    from crmcli.core.money import format_money, money_str
    from crmcli.core.points import expiry

    with state().store().read() as session:
        ctx = store_context(session, as_of)
        data = expiry.liability(session, ctx)
    chosen = choose_format(fmt)
    value = data.pop("value_minor")
    if chosen in ("json", "jsonl"):
        emit_record({**data, "value": money_str(value, ctx.currency), "currency": ctx.currency}, chosen)
        return
    labels = {"as_of": _("As of"), "outstanding": _("Outstanding points"), "spendable": _("Spendable"),
              "locked": _("Locked"), "overdue": _("Expired, not yet removed"), "customers": _("Customers with points"),
              "expiring_30d": _("Expiring within 30 days"), "debt": _("Points owed (debt)"),
              "value_per_point": _("Value per point")}
    rows = [{"field": k, "label": labels[k], "value": str(v)} for k, v in data.items()]
    rows.append({"field": "value", "label": _("Liability"),
                 "value": format_money(value, ctx.currency) if chosen in ("table", "markdown") else money_str(value, ctx.currency)})
    label_key = "label" if chosen in ("table", "markdown") else "field"
    emit(rows, [Column("field", _("Field"), source=label_key), Column("value", _("Value"), justify="right")], chosen,
         Units(ctx.currency, ctx.tz))


# ------------------------------------------------------------------------------------ backfill, bonus

@app.command("backfill", help=_("Earn points for sales recorded before the rules existed (each sale earns once), "
                                "including referral rewards, and settle their refunds.\n\n"
                                "Example: crm points backfill --since 2024-01-01 --dry-run"))
def backfill(since: Annotated[Optional[str], typer.Option("--since", help=_("Only sales on or after this date."))] = None,
             from_today: Annotated[bool, typer.Option("--from-today", help=_("Start the lock and expiry clocks today instead of on each sale's date."))] = False,
             dry_run: DryRunOpt = False, as_of: AsOfOpt = None) -> None:
    from crmcli.core.points import earning
    from crmcli.errors import ExitCode

    store = state().store()
    with store.read() as session:
        ctx = store_context(session, as_of)
        first_day = parse_day(since, ctx, "--since")
    report = earning.EarnReport()

    def message() -> str:
        return _("{points} points on {n} purchases, {referrals} referral rewards ({rpoints} points).").format(
            points=_pts(report.points), n=report.purchases, referrals=report.referrals,
            rpoints=_pts(report.referral_points))
    try:
        # Committed in short steps, so that sales and redemptions at the till are not kept waiting.
        earning.backfill_in_steps(store, ctx, since=first_day, from_today=from_today, dry_run=dry_run, total=report)
    except KeyboardInterrupt:
        if dry_run:
            typer.echo(_("Interrupted; nothing changed (dry run)."), err=True)
        else:
            typer.echo(_("Interrupted after earning {what} Those are kept; run `crm points backfill` again to "
                         "earn for the rest.").format(what=message()), err=True)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    info((_("Would earn {what} (dry run; nothing changed)") if dry_run else _("Earned {what}")).format(what=message()))
    typer.echo(report.purchases)


@app.command("birthday", help=_("Give the birthday bonus to customers whose birthday month it is (once a year each; "
                                "safe to run from cron daily).\n\nExample: crm points birthday --as-of 2024-05-01"))
def birthday(as_of: AsOfOpt = None, dry_run: DryRunOpt = False, fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Column, Units, emit
    from crmcli.core.points import earning

    with _write(dry_run) as session:
        ctx = store_context(session, as_of)
        granted = earning.grant_birthdays(session, ctx)
        people = _people(session, [r["customer_id"] for r in granted])
    rows = [{"code": people[r["customer_id"]].code, "name": people[r["customer_id"]].name, "points": r["points"]}
            for r in granted]
    info((_("Would give {n} birthday bonuses (dry run; nothing changed).") if dry_run
          else _("Gave {n} birthday bonuses.")).format(n=len(rows)))
    if rows or fmt:
        emit(rows, [Column("code", _("Code")), Column("name", _("Customer")), Column("points", _("Points"), "int")],
             fmt, Units(ctx.currency, ctx.tz))


# ---------------------------------------------------------------------------------------------- rules

RULE_KEYS = {
    "enabled": "points.enabled", "rate": "points.rate", "rounding": "points.rounding",
    "min-purchase": "points.min_purchase", "lock-days": "points.lock_days", "expiry": "points.expiry",
    "birthday-multiplier": "points.multiplier.birthday", "birthday-bonus": "points.birthday_bonus",
    "referral-referrer": "points.referral.referrer", "referral-referee": "points.referral.referee",
    "redemption-value": "points.redemption_value", "category": "points.multiplier.category",
    "level": "points.multiplier.level",
}


@rules_app.callback(invoke_without_command=True)
def rules_default(ctx: typer.Context, fmt: FormatOpt = None) -> None:
    if ctx.invoked_subcommand is None:
        _show_rules(fmt)


@rules_app.command("show", help=_("Show the earning rules, expiry policy and rewards.\n\nExample: crm points rules show --format json"))
def rules_show(fmt: FormatOpt = None) -> None:
    _show_rules(fmt)


def _show_rules(fmt: Optional[str]) -> None:
    from crmcli.cli.output import Column, Units, choose_format, emit, emit_record
    from crmcli.core import settings
    from crmcli.core.points import rules as rules_mod

    with state().store().read() as session:
        ctx = store_context(session)
        rules = rules_mod.load(session)
    chosen = choose_format(fmt)
    data = rules.as_dict()
    if chosen in ("json", "jsonl"):
        emit_record(data, chosen)
        return
    rows = []
    for name, key in RULE_KEYS.items():
        value = data[{"min-purchase": "min_purchase", "lock-days": "lock_days", "birthday-multiplier": "birthday_multiplier",
                      "birthday-bonus": "birthday_bonus", "referral-referrer": "referral_referrer",
                      "referral-referee": "referral_referee", "redemption-value": "redemption_value",
                      "category": "category_multipliers", "level": "level_multipliers"}.get(name, name)]
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, bool):
            value = _("yes") if value else _("no")
        if name == "expiry" and chosen in ("table", "markdown"):
            value = f"{value} ({rules_mod.describe_expiry(rules.expiry)})"
        rows.append({"rule": name, "value": value, "meaning": _(settings.SPECS[key].help)})
    emit(rows, [Column("rule", _("Rule")), Column("value", _("Value")), Column("meaning", _("Meaning"))], chosen,
         Units(ctx.currency, ctx.tz))


@rules_app.command("set", cls=NegativeNumbersCommand, help=_("Change one rule: enabled, rate, rounding, min-purchase, lock-days, expiry, "
                                 "birthday-multiplier, birthday-bonus, referral-referrer, referral-referee, "
                                 "redemption-value, category.NAME or level.NAME (a multiplier; 'none' removes it).\n\n"
                                 "Example: crm points rules set category.coffee 2"))
def rules_set(rule: Annotated[str, typer.Argument(help=_("The rule's name."), metavar="RULE")],
              value: Annotated[str, typer.Argument(help=_("The new value."))]) -> None:
    import json

    from crmcli.core import settings
    from crmcli.core.points import rules as rules_mod
    from crmcli.errors import InvalidInput

    name = rule.strip().lower().replace("_", "-")
    entry: Optional[str] = None
    if "." in name and not name.startswith("points."):
        group, _sep, entry = rule.strip().partition(".")
        name = group.lower()
        if name not in ("category", "level") or not entry.strip():
            raise InvalidInput(_("Unknown rule '{rule}'.").format(rule=rule), field="rule", value=rule,
                               hint=_("Use one of: {choices}.").format(choices=", ".join(RULE_KEYS) + ", category.NAME, level.NAME"))
    key = RULE_KEYS.get(name) or (rule.strip() if rule.strip() in RULE_KEYS.values() else None)
    if key is None:
        raise InvalidInput(_("Unknown rule '{rule}'.").format(rule=rule), field="rule", value=rule,
                           hint=_("Use one of: {choices}.").format(choices=", ".join(RULE_KEYS) + ", category.NAME, level.NAME"))
    with state().store().write() as session:
        if entry is not None:
            current = dict(settings.get(session, key) or {})
            if value.strip().lower() in ("none", "", "-"):
                if entry.strip() not in current:
                    raise InvalidInput(_("There is no multiplier for '{name}'.").format(name=entry.strip()),
                                       field="rule", value=rule)
                current.pop(entry.strip())
            else:
                try:
                    current[entry.strip()] = rules_mod.multiplier(value)
                except ValueError as e:
                    raise InvalidInput(_("'{value}' is not valid for {key}: {reason}.").format(
                        value=value, key=rule, reason=e), field=rule, value=value) from None
            parsed = settings.set_value(session, key, json.dumps(current))
        else:
            parsed = settings.set_value(session, key, value)
    # the value as the rules table shows it (coffee=1.5, yes), not Python's repr ({'coffee': '1.5'}, True)
    shown = (", ".join(f"{k}={v}" for k, v in parsed.items()) or "—") if isinstance(parsed, dict) else (
        (_("yes") if parsed else _("no")) if isinstance(parsed, bool) else parsed)
    info(_("{key} = {value}").format(key=key, value=shown))
    if key == "points.enabled" and parsed:
        info(_("Purchases recorded from now on earn points; run `crm points backfill` for earlier ones."))
