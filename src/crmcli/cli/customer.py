"""`crm customer`: records, tags, interactions and history."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from crmcli.cli.customer_filters import (BirthdayMonthFilter, CityFilter, CreatedSinceFilter, CreatedUntilFilter,
                                         DeletedFilter, DescOpt, DueFilter, LevelFilter, SegmentFilter, SortOpt,
                                         SourceFilter, StageFilter, TagFilter, TierFilter)
from crmcli.cli.common import (AsOfOpt, FormatOpt, LimitOpt, YesOpt, choose_customer, confirm, info, masking,
                               pick_customer, state, store_context)
from crmcli.i18n import _

app = typer.Typer(help=_("Customer records: add, find, list, edit, tag, log contacts, see history.\n\n"
                         "Example: crm customer list --tag vip"), no_args_is_help=True)

CustomerArg = Annotated[str, typer.Argument(help=_("The customer: id, code, phone, e-mail or part of the name."),
                                            metavar="CUSTOMER")]
Phones = Annotated[Optional[list[str]], typer.Option("--phone", "-p", help=_("Phone number (repeatable)."))]
Emails = Annotated[Optional[list[str]], typer.Option("--email", "-e", help=_("E-mail address (repeatable)."))]
Socials = Annotated[Optional[list[str]], typer.Option("--social", help=_("Social handle NETWORK:HANDLE, e.g. wechat:ann (repeatable)."))]
Wechat = Annotated[Optional[str], typer.Option("--wechat", help=_("WeChat ID (same as --social wechat:ID)."))]
Consents = Annotated[Optional[list[str]], typer.Option("--consent", help=_("Marketing consent CHANNEL=yes|no for email, sms, phone, wechat (repeatable)."))]
Prefs = Annotated[Optional[list[str]], typer.Option("--pref", help=_("Preference KEY=VALUE, e.g. size=M (repeatable)."))]
Tags = Annotated[Optional[list[str]], typer.Option("--tag", "-t", help=_("Tag (repeatable)."))]
AllowDup = Annotated[bool, typer.Option("--allow-duplicate", help=_("Allow a phone or e-mail that another customer already has."))]


def _common_fields(**kw: Optional[str]) -> dict[str, Optional[str]]:
    return {k: v for k, v in kw.items()}


def _consents(values: Optional[list[str]]) -> dict[str, bool]:
    from crmcli.core.customers import parse_consent

    return dict(parse_consent(v) for v in values or [])


def _prefs(values: Optional[list[str]]) -> dict[str, str]:
    from crmcli.core.customers import parse_pref

    return dict(parse_pref(v) for v in values or [])


@app.command("add", help=_("Add a customer.\n\nExample: crm customer add '王芳' --phone 13800138000 --email fang@example.com "
                           "--city 上海 --tag vip --consent sms=yes"))
def add(
    name: Annotated[str, typer.Argument(help=_("Full name."))],
    phone: Phones = None, email: Emails = None, social: Socials = None, wechat: Wechat = None,
    code: Annotated[Optional[str], typer.Option(help=_("Customer code (default: generated, e.g. C000123)."))] = None,
    gender: Annotated[Optional[str], typer.Option(help=_("female, male or other."))] = None,
    birthday: Annotated[Optional[str], typer.Option(help=_("Date of birth, e.g. 1990-05-17."))] = None,
    occupation: Annotated[Optional[str], typer.Option(help=_("Occupation."))] = None,
    company: Annotated[Optional[str], typer.Option(help=_("Company."))] = None,
    address: Annotated[Optional[str], typer.Option(help=_("Postal address."))] = None,
    city: Annotated[Optional[str], typer.Option(help=_("City."))] = None,
    source: Annotated[Optional[str], typer.Option(help=_("Acquisition source or channel, e.g. walk-in, referral, douyin."))] = None,
    referred_by: Annotated[Optional[str], typer.Option("--referred-by", help=_("The customer who referred them."))] = None,
    preferred_channel: Annotated[Optional[str], typer.Option("--preferred-channel", help=_("How they like to be contacted: phone, email, sms, wechat, visit, social, other."))] = None,
    consent: Consents = None, pref: Prefs = None,
    preferences: Annotated[Optional[str], typer.Option("--preferences", help=_("Preferences in free text."))] = None,
    tag: Tags = None,
    notes: Annotated[Optional[str], typer.Option(help=_("Notes."))] = None,
    follow_up: Annotated[Optional[str], typer.Option("--follow-up", help=_("Next follow-up date."))] = None,
    allow_duplicate: AllowDup = False,
    as_of: AsOfOpt = None,
) -> None:
    from crmcli.core import customers

    data = customers.CustomerInput(
        name=name, code=code, gender=gender, birthday=birthday, occupation=occupation, company=company,
        address=address, city=city, source=source, referred_by=referred_by, preferred_channel=preferred_channel,
        preferences_text=preferences, notes=notes, next_follow_up=follow_up, phones=phone or [], emails=email or [],
        socials=(social or []) + ([f"wechat:{wechat}"] if wechat else []), consent=_consents(consent),
        preferences=_prefs(pref), tags=tag or [])
    with state().store().write() as session:
        ctx = store_context(session, as_of)
        customer = customers.add_customer(session, data, ctx, allow_duplicate=allow_duplicate)
        code_, cid = customer.code, customer.id
    info(_("Added {code} {name}.").format(code=code_, name=name.strip()))
    typer.echo(code_)
    del cid


@app.command("show", help=_("Show everything on one customer's record.\n\nExample: crm customer show C000001 --format json"))
def show(customer: CustomerArg, fmt: FormatOpt = None, as_of: AsOfOpt = None,
         deleted: Annotated[bool, typer.Option("--deleted", help=_("Also find deleted customers."))] = False) -> None:
    from crmcli.cli.output import choose_format, emit_record
    from crmcli.core import card as card_core

    with state().store().read() as session:
        ctx = store_context(session, as_of)
        record = pick_customer(session, customer, ctx, include_deleted=deleted)
        data = card_core.card_json(card_core.build_card(session, record, ctx))
        if masking(session):
            card_core.mask_card_json(data)
    chosen = choose_format(fmt)
    if chosen == "json" or chosen == "jsonl":
        emit_record(data, chosen)
        return
    from crmcli.cli.output import Column, Units, emit

    rows = [{"field": k, "value": v} for k, v in _flatten(data)]
    emit(rows, [Column("field", _("Field")), Column("value", _("Value"))], chosen, Units(ctx.currency, ctx.tz))


def _flatten(data: dict, prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "preferences":
            out.extend(_flatten(value, name + "."))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for i, item in enumerate(value):
                out.extend(_flatten(item, f"{name}.{i}."))
        else:
            out.append((name, value if not isinstance(value, dict) else "; ".join(f"{k}={v}" for k, v in value.items())))
    return out


def list_columns() -> list:
    from crmcli.cli.output import Column

    return [Column("id", _("ID"), "int"), Column("code", _("Code")), Column("name", _("Name")),
            Column("phone", _("Phone"), "contact"), Column("email", _("E-mail"), "contact"), Column("city", _("City")),
            Column("tags", _("Tags"), "list"), Column("orders", _("Orders"), "int"),
            Column("net_spent", _("Spent"), "money", source="net_spent_minor"),
            Column("last_purchase", _("Last purchase"), "date"),
            Column("next_follow_up", _("Follow-up"), "date"),
            Column("gender", _("Gender")), Column("birthday", _("Birthday"), "date"), Column("age", _("Age"), "int"),
            Column("source", _("Source")), Column("created_at", _("Created"), "datetime"),
            Column("deleted", _("Deleted"), "bool")]


TABLE_KEYS = ("code", "name", "phone", "city", "tags", "orders", "net_spent", "last_purchase", "next_follow_up")


@app.command("list", help=_("List customers, with filters and sorting.\n\n"
                            "Example: crm customer list --tag vip --city 上海 --sort spend --desc --limit 20"))
def list_(
    tag: TagFilter = None, city: CityFilter = None, source: SourceFilter = None,
    created_since: CreatedSinceFilter = None, created_until: CreatedUntilFilter = None,
    birthday_month: BirthdayMonthFilter = None, due: DueFilter = False, deleted: DeletedFilter = False,
    tier: TierFilter = None, segment: SegmentFilter = None, stage: StageFilter = None, level: LevelFilter = None,
    sort: SortOpt = "code", desc: DescOpt = False,
    limit: LimitOpt = None, as_of: AsOfOpt = None, fmt: FormatOpt = None,
) -> None:
    _list(tag=tag, city=city, source=source, created_since=created_since, created_until=created_until,
          birthday_month=birthday_month, due=due, deleted=deleted, sort=sort, desc=desc, limit=limit,
          as_of=as_of, fmt=fmt, text=None, tier=tier, segment=segment, stage=stage, level=level)


def _list(*, text: Optional[str], tag: Optional[list[str]] = None, city: Optional[str] = None,
          source: Optional[str] = None, created_since: Optional[str] = None, created_until: Optional[str] = None,
          birthday_month: Optional[int] = None, due: bool = False, deleted: bool = False, sort: str = "code",
          desc: bool = False, limit: Optional[int] = None, as_of: Optional[str] = None, fmt: Optional[str] = None,
          tier: Optional[str] = None, segment: Optional[str] = None, stage: Optional[str] = None,
          level: Optional[str] = None) -> None:
    from crmcli.cli.customer_filters import build_filter
    from crmcli.cli.output import Units, choose_format, emit
    from crmcli.core import customers

    with state().store().read() as session:
        ctx = store_context(session, as_of)
        flt = build_filter(ctx, tag=tag, city=city, source=source, created_since=created_since,
                           created_until=created_until, birthday_month=birthday_month, due=due, deleted=deleted,
                           text=text, sort=sort, desc=desc, limit=limit, tier=tier, segment=segment, stage=stage,
                           level=level)
        rows = customers.list_customers(session, flt, ctx)
        mask = masking(session)
    columns = list_columns()
    chosen = choose_format(fmt)
    if chosen in ("table", "markdown"):
        columns = [c for c in columns if c.key in TABLE_KEYS]
    emit(rows, columns, chosen, Units(ctx.currency, ctx.tz, mask), empty_message=_("No customers match."))


@app.command("search", help=_("Find customers by part of a name, phone, e-mail, code, company or notes.\n\n"
                              "Example: crm customer search 5678"))
def search(text: Annotated[str, typer.Argument(help=_("Text to look for (Chinese works too)."))],
           limit: LimitOpt = None, deleted: Annotated[bool, typer.Option("--deleted", help=_("Include deleted customers."))] = False,
           fmt: FormatOpt = None) -> None:
    from crmcli.errors import InvalidInput

    if not text.strip():
        raise InvalidInput(_("The search text is empty."), field="text", value=text, hint=_("Give part of a name, phone or e-mail."))
    _list(text=text, limit=limit, deleted=deleted, fmt=fmt)


@app.command("edit", help=_("Change a customer's record; an empty value clears a field.\n\n"
                            "Example: crm customer edit C000001 --city 北京 --add-phone 13900139000 --consent email=no"))
def edit(
    customer: CustomerArg,
    name: Annotated[Optional[str], typer.Option(help=_("New name."))] = None,
    code: Annotated[Optional[str], typer.Option(help=_("New code."))] = None,
    gender: Annotated[Optional[str], typer.Option(help=_("female, male or other."))] = None,
    birthday: Annotated[Optional[str], typer.Option(help=_("Date of birth."))] = None,
    occupation: Annotated[Optional[str], typer.Option(help=_("Occupation."))] = None,
    company: Annotated[Optional[str], typer.Option(help=_("Company."))] = None,
    address: Annotated[Optional[str], typer.Option(help=_("Postal address."))] = None,
    city: Annotated[Optional[str], typer.Option(help=_("City."))] = None,
    source: Annotated[Optional[str], typer.Option(help=_("Acquisition source."))] = None,
    referred_by: Annotated[Optional[str], typer.Option("--referred-by", help=_("The customer who referred them."))] = None,
    preferred_channel: Annotated[Optional[str], typer.Option("--preferred-channel", help=_("Preferred contact channel."))] = None,
    preferences: Annotated[Optional[str], typer.Option("--preferences", help=_("Preferences in free text."))] = None,
    notes: Annotated[Optional[str], typer.Option(help=_("Notes (replaces them)."))] = None,
    follow_up: Annotated[Optional[str], typer.Option("--follow-up", help=_("Next follow-up date."))] = None,
    add_phone: Annotated[Optional[list[str]], typer.Option("--add-phone", help=_("Add a phone (repeatable)."))] = None,
    remove_phone: Annotated[Optional[list[str]], typer.Option("--remove-phone", help=_("Remove a phone (repeatable)."))] = None,
    add_email: Annotated[Optional[list[str]], typer.Option("--add-email", help=_("Add an e-mail (repeatable)."))] = None,
    remove_email: Annotated[Optional[list[str]], typer.Option("--remove-email", help=_("Remove an e-mail (repeatable)."))] = None,
    add_social: Annotated[Optional[list[str]], typer.Option("--add-social", help=_("Add NETWORK:HANDLE (repeatable)."))] = None,
    remove_social: Annotated[Optional[list[str]], typer.Option("--remove-social", help=_("Remove NETWORK:HANDLE (repeatable)."))] = None,
    consent: Consents = None, pref: Prefs = None,
    unset_pref: Annotated[Optional[list[str]], typer.Option("--unset-pref", help=_("Remove a preference by key (repeatable)."))] = None,
    allow_duplicate: AllowDup = False,
    as_of: AsOfOpt = None,
) -> None:
    from crmcli.core import customers

    fields = customers.CustomerInput(
        name=name, code=code, gender=gender, birthday=birthday, occupation=occupation, company=company,
        address=address, city=city, source=source, referred_by=referred_by, preferred_channel=preferred_channel,
        preferences_text=preferences, notes=notes, next_follow_up=follow_up, consent=_consents(consent),
        preferences=_prefs(pref))
    change = customers.CustomerEdit(fields=fields, add_phones=add_phone or [], remove_phones=remove_phone or [],
                                    add_emails=add_email or [], remove_emails=remove_email or [],
                                    add_socials=add_social or [], remove_socials=remove_social or [],
                                    unset_preferences=unset_pref or [])
    cid = choose_customer(customer)
    with state().store().write() as session:
        ctx = store_context(session, as_of)
        record = customers.get(session, cid)
        changed = customers.edit_customer(session, record, change, ctx, allow_duplicate=allow_duplicate)
        label = f"{record.code} {record.name}"
    info(_("Updated {customer}.").format(customer=label) if changed else _("Nothing to change for {customer}.").format(customer=label))


@app.command("tag", help=_("Add or remove tags.\n\nExample: crm customer tag C000001 vip wine-lover --remove newcomer"))
def tag(customer: CustomerArg,
        tags: Annotated[Optional[list[str]], typer.Argument(help=_("Tags to add."))] = None,
        remove: Annotated[Optional[list[str]], typer.Option("--remove", "-r", help=_("Tag to remove (repeatable)."))] = None) -> None:
    from crmcli.core import customers
    from crmcli.errors import UsageError

    if not tags and not remove:
        raise UsageError(_("Give tags to add, or --remove TAG."))
    cid = choose_customer(customer)
    with state().store().write() as session:
        record = customers.get(session, cid)
        after = customers.tag_customer(session, record, tags or [], remove or [])
        code = record.code
    info(_("{code} tags: {tags}").format(code=code, tags=", ".join(after) or "—"))


@app.command("rm", help=_("Delete a customer (soft: `crm customer restore` brings it back).\n\nExample: crm customer rm C000001 --yes"))
def rm(customer: CustomerArg, yes: YesOpt = False) -> None:
    from crmcli.core import customers

    cid = choose_customer(customer)
    with state().store().read() as session:
        record = customers.get(session, cid)
        label = f"{record.code} {record.name}"
    confirm(_("Delete {customer}?").format(customer=label), yes)  # asked before the store is locked for writing
    with state().store().write() as session:
        customers.remove_customer(session, customers.get(session, cid))
    info(_("Deleted {customer}. Undo with `crm customer restore {code}`.").format(customer=label, code=label.split()[0]))


@app.command("restore", help=_("Bring back a deleted customer.\n\nExample: crm customer restore C000001"))
def restore(customer: CustomerArg) -> None:
    from crmcli.core import customers

    cid = choose_customer(customer, include_deleted=True)
    with state().store().write() as session:
        record = customers.get(session, cid)
        customers.restore_customer(session, record)
        label = f"{record.code} {record.name}"
    info(_("Restored {customer}.").format(customer=label))


@app.command("log", help=_("Record an interaction (call, visit, message) and move the next follow-up.\n\n"
                           "Example: crm customer log C000001 --channel phone --summary '回访：满意' --next '2 weeks'"))
def log(
    customer: CustomerArg,
    channel: Annotated[str, typer.Option("--channel", "-c", help=_("phone, email, sms, wechat, visit, social or other."))],
    summary: Annotated[str, typer.Option("--summary", "-s", help=_("What happened."))],
    outcome: Annotated[Optional[str], typer.Option(help=_("The result, e.g. booked, no answer."))] = None,
    next_: Annotated[Optional[str], typer.Option("--next", help=_("Next follow-up date, e.g. 2025-01-15 or 'in 2 weeks'."))] = None,
    at: Annotated[Optional[str], typer.Option("--at", help=_("When it happened (default: now)."))] = None,
    as_of: AsOfOpt = None,
) -> None:
    from crmcli.core import interactions

    from crmcli.core import customers

    cid = choose_customer(customer)
    with state().store().write() as session:
        ctx = store_context(session, as_of)
        record = customers.get(session, cid)
        row = interactions.log_interaction(session, record, ctx, channel=channel, summary=summary, outcome=outcome,
                                           next_date=next_, at=at)
        code, follow, iid = record.code, record.next_follow_up, row.id
    info(_("Logged interaction #{id} for {code}; next follow-up: {date}.").format(id=iid, code=code, date=follow or "—"))


@app.command("history", help=_("The customer's timeline: purchases, refunds, interactions and record changes.\n\n"
                               "Example: crm customer history C000001 --limit 20"))
def history(customer: CustomerArg, limit: LimitOpt = None, fmt: FormatOpt = None,
            deleted: Annotated[bool, typer.Option("--deleted", help=_("Also find deleted customers."))] = False) -> None:
    from crmcli.cli.output import Column, Units, emit
    from crmcli.core import interactions

    with state().store().read() as session:
        ctx = store_context(session)
        record = pick_customer(session, customer, ctx, include_deleted=deleted)
        rows = interactions.timeline(session, record.id, ctx, limit=limit)  # type: ignore[arg-type]
    emit(rows, [Column("at", _("When"), "datetime"), Column("type", _("What")), Column("id", _("ID"), "int"),
                Column("summary", _("Details"), "message"), Column("amount", _("Amount"), "money", source="amount_minor")],
         fmt, Units(ctx.currency, ctx.tz), empty_message=_("No history yet."))


from crmcli.cli import privacy as _privacy  # noqa: E402 - privacy requests live in their own module

app.command("data", help=_privacy.DATA_HELP)(_privacy.data)
app.command("forget", help=_privacy.FORGET_HELP)(_privacy.forget)
