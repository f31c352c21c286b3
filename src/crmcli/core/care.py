"""Customer care: message templates, the holiday calendar, greetings (birthday, holiday, win-back) and the
daily agenda (crmcli.core.agenda). See docs/reports.md.

Rules that matter:
- A birthday on 29 February is celebrated on 28 February in years without a 29th (and on the 29th in leap
  years); the same holds for first-purchase anniversaries.
- A greeting is sent at most once per customer and occasion: ``birthday:YEAR`` (the year it is celebrated),
  ``holiday:NAME:DATE``, ``winback:DATE-OF-LAST-PURCHASE``. The unique row in ``care_send`` is written in the
  same transaction as the interaction it logs, so running `crm care send` from cron every day is safe.
- Consent is opt-in per channel: a customer without a granted consent for the channel is left out (counted).
- Templates use placeholders {name} {code} {tier} {points} {coupon} {holiday} {date} {age}; nothing else (no
  attribute access, no format specs), checked when a template is saved.
"""

from __future__ import annotations

import calendar
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, or_, select
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core.clock import utcnow
from crmcli.core.context import StoreContext
from crmcli.errors import Conflict, InvalidInput, NotFound, UsageError
from crmcli.i18n import N_, _
from crmcli.store.models import Consent, ContactPoint, Customer, Interaction, Purchase
from crmcli.store.models_care import CareHoliday, CareSend, CareTemplate

C = Customer.__table__
P = Purchase.__table__
I = Interaction.__table__  # noqa: E741
T = CareTemplate.__table__
H = CareHoliday.__table__
S = CareSend.__table__
CP = ContactPoint.__table__
CONSENT = Consent.__table__

KINDS = ("birthday", "holiday", "winback", "custom")
PLACEHOLDERS = ("name", "code", "tier", "points", "coupon", "holiday", "date", "age")
CHANNELS = ("email", "sms", "wechat", "phone")
VIAS = ("csv", "email")

# name: (kind, subject, body) — translated when they are first written into the store.
BUILTIN_TEMPLATES: dict[str, tuple[str, str, str]] = {
    "birthday": ("birthday", N_("Happy birthday, {name}!"),
                 N_("Dear {name}, happy birthday from all of us! We hope to see you soon for a little treat.")),
    "holiday": ("holiday", N_("Happy {holiday}!"),
                N_("Dear {name}, we wish you and your family a happy {holiday}!")),
    "winback": ("winback", N_("We miss you, {name}"),
                N_("Dear {name}, it has been a while since your last visit. We would love to see you again soon.")),
}

# Lunar holidays move every year: one row per year (dates from the Chinese calendar); fixed-date holidays
# repeat (recurring). Editable with `crm care holidays add/rm`.
DEFAULT_HOLIDAYS: list[tuple[str, str, bool, list[str]]] = [
    ("new-year", N_("New Year's Day"), True, ["2025-01-01"]),
    ("spring-festival", N_("Spring Festival"), False,
     ["2024-02-10", "2025-01-29", "2026-02-17", "2027-02-06", "2028-01-26", "2029-02-13", "2030-02-03"]),
    ("lantern-festival", N_("Lantern Festival"), False,
     ["2024-02-24", "2025-02-12", "2026-03-03", "2027-02-20", "2028-02-09", "2029-02-27", "2030-02-17"]),
    ("labour-day", N_("Labour Day"), True, ["2025-05-01"]),
    ("dragon-boat", N_("Dragon Boat Festival"), False,
     ["2024-06-10", "2025-05-31", "2026-06-19", "2027-06-09", "2028-05-28", "2029-06-16", "2030-06-05"]),
    ("mid-autumn", N_("Mid-Autumn Festival"), False,
     ["2024-09-17", "2025-10-06", "2026-09-25", "2027-09-15", "2028-10-03", "2029-09-22", "2030-09-12"]),
    ("national-day", N_("National Day"), True, ["2025-10-01"]),
]


# ------------------------------------------------------------------------------------------- dates

def celebrated_on(born: date, year: int) -> date:
    """The day a birthday (or anniversary) falls on in ``year``: 29 February → 28 February in common years."""
    if born.month == 2 and born.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return born.replace(year=year)


def month_day_condition(column: Any, start: date, end: date) -> Any:
    """SQL: the month and day of ``column`` fall on a day from ``start`` to ``end`` (at most a year apart),
    with 29 February matching 28 February in common years."""
    md = _md(column)
    parts = []
    year_start = start
    while year_start <= end:
        year_end = min(end, date(year_start.year, 12, 31))
        a, b = year_start.month * 100 + year_start.day, year_end.month * 100 + year_end.day
        cond = md.between(a, b)
        feb28 = date(year_start.year, 2, 28)
        if not calendar.isleap(year_start.year) and year_start <= feb28 <= year_end:
            cond = or_(cond, md == 229)
        parts.append(cond)
        year_start = date(year_start.year + 1, 1, 1)
    return or_(*parts) if parts else False


def _md(column: Any) -> Any:
    from sqlalchemy import Integer, cast, extract

    return cast(extract("month", column), Integer) * 100 + cast(extract("day", column), Integer)


def occurrence_in(born: date, start: date, end: date) -> date | None:
    """The first day from ``start`` to ``end`` on which this birthday/anniversary is celebrated."""
    for year in range(start.year, end.year + 1):
        day = celebrated_on(born, year)
        if start <= day <= end:
            return day
    return None


# ------------------------------------------------------------------------------------------ defaults

def ensure_defaults(session: Session) -> bool:
    """Write the built-in templates (and, the first time, the holiday calendar) into the store.
    Returns True when something was written. Built-in templates cannot be removed, so a store without
    them has never been seeded."""
    present = {n for (n,) in session.execute(select(T.c.name).where(T.c.builtin.is_(True)))}
    missing = [n for n in BUILTIN_TEMPLATES if n not in present]
    if not missing:
        return False
    now = utcnow()
    session.execute(insert(T), [{"name": n, "kind": BUILTIN_TEMPLATES[n][0], "subject": _(BUILTIN_TEMPLATES[n][1]),
                                 "body": _(BUILTIN_TEMPLATES[n][2]), "builtin": True, "updated_at": now}
                                for n in missing])
    seeded_holidays = 0
    if not present:
        rows = [{"name": name, "title": _(title), "day": date.fromisoformat(d), "recurring": recurring,
                 "created_at": now}
                for name, title, recurring, days in DEFAULT_HOLIDAYS for d in days]
        session.execute(insert(H), rows)
        seeded_holidays = len(rows)
    audit.record(session, entity="care_template", entity_id=None, action="seed",
                 after={"templates": missing, "holiday_dates": seeded_holidays})
    return True


# ----------------------------------------------------------------------------------------- templates

def check_template(text: str, field_name: str = "body") -> list[str]:
    """The placeholders a template uses; refuses unknown names, attribute/index access and format specs."""
    used: list[str] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        raise InvalidInput(_("The template {field} is not valid ({error}).").format(field=field_name, error=e),
                           field=field_name, value=text[:60],
                           hint=_("Write placeholders as {{name}}; write a literal brace twice: {{{{ or }}}}.")) from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            shown = "{" + name + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
            raise InvalidInput(_("Unknown placeholder {placeholder} in the template {field}.").format(
                placeholder=shown, field=field_name), field=field_name, value=shown,
                hint=_("Use any of: {names}.").format(names=", ".join("{" + p + "}" for p in PLACEHOLDERS)))
        used.append(name)
    return used


def render(text: str, values: dict[str, Any]) -> str:
    out = []
    for literal, name, _spec, _conv in string.Formatter().parse(text):
        out.append(literal)
        if name is not None:
            value = values.get(name)
            out.append("" if value is None else str(value))
    return "".join(out)


def _template_row(r: Any) -> dict[str, Any]:
    text = (r.subject or "") + " " + r.body
    return {"name": r.name, "kind": r.kind, "subject": r.subject, "body": r.body, "builtin": bool(r.builtin),
            "placeholders": sorted(set(check_template(text))), "updated_at": r.updated_at}


def list_templates(session: Session) -> list[dict[str, Any]]:
    return [_template_row(r) for r in session.execute(select(T).order_by(T.c.builtin.desc(), T.c.name))]


def get_template(session: Session, name: str) -> dict[str, Any]:
    row = session.execute(select(T).where(T.c.name == name.strip().lower())).first()
    if row is None:
        raise NotFound(_("No template named '{name}'.").format(name=name),
                       hint=_("See the templates with `crm care templates list`."))
    return _template_row(row)


def _template_name(name: str) -> str:
    value = name.strip().lower()
    if not value or len(value) > 40 or not all(ch.isalnum() or ch in "-_" for ch in value):
        raise InvalidInput(_("'{value}' is not a template name.").format(value=name), field="name", value=name,
                           hint=_("Use 1-40 letters, digits, '-' or '_', e.g. vip-thanks."))
    return value


def set_template(session: Session, name: str, *, body: str | None = None, subject: str | None = None,
                 kind: str | None = None) -> dict[str, Any]:
    """Create a template (custom, or the kind given) or change an existing one's body/subject."""
    from crmcli.core.customers import clean_text

    key = _template_name(name)
    if kind is not None and kind not in KINDS:
        raise InvalidInput(_("'{value}' is not a template kind.").format(value=kind), field="kind", value=kind,
                           hint=_("Use one of: {choices}.").format(choices=", ".join(KINDS)))
    values: dict[str, Any] = {}
    if body is not None:
        text = clean_text(body, "body", max_len=5000)
        if not text:
            raise InvalidInput(_("The template body must not be empty."), field="body", value=body)
        check_template(text, "body")
        values["body"] = text
    if subject is not None:
        text = clean_text(subject, "subject", max_len=200)
        check_template(text, "subject")
        values["subject"] = text or None
    existing = session.execute(select(T).where(T.c.name == key)).first()
    now = utcnow()
    if existing is None:
        if "body" not in values:
            raise InvalidInput(_("A new template needs a body."), field="body", value=None,
                               hint=_("Give it with --body 'Dear {{name}}, ...'."))
        session.execute(insert(T).values(name=key, kind=kind or "custom", subject=values.get("subject"),
                                         body=values["body"], builtin=False, updated_at=now))
        audit.record(session, entity="care_template", entity_id=None, action="add",
                     after={"name": key, "kind": kind or "custom", **values})
    else:
        if kind is not None and existing.builtin and kind != existing.kind:
            raise Conflict(_("The built-in template '{name}' keeps its kind ({kind}).").format(name=key, kind=existing.kind))
        if kind is not None:
            values["kind"] = kind
        if not values:
            raise UsageError(_("Nothing to change."), hint=_("Give --body, --subject or --kind."))
        session.execute(T.update().where(T.c.name == key).values(updated_at=now, **values))
        audit.record(session, entity="care_template", entity_id=None, action="edit",
                     before={k: getattr(existing, k) for k in values}, after={"name": key, **values})
    return get_template(session, key)


def reset_template(session: Session, name: str) -> dict[str, Any]:
    key = name.strip().lower()
    if key not in BUILTIN_TEMPLATES:
        raise InvalidInput(_("'{name}' is not a built-in template.").format(name=name), field="name", value=name,
                           hint=_("Built-in templates: {names}.").format(names=", ".join(BUILTIN_TEMPLATES)))
    kind, subject, body = BUILTIN_TEMPLATES[key]
    before = get_template(session, key)
    session.execute(T.update().where(T.c.name == key).values(subject=_(subject), body=_(body), updated_at=utcnow()))
    audit.record(session, entity="care_template", entity_id=None, action="reset",
                 before={"subject": before["subject"], "body": before["body"]}, after={"name": key})
    return get_template(session, key)


def remove_template(session: Session, name: str) -> None:
    found = get_template(session, name)
    if found["builtin"]:
        raise Conflict(_("The built-in template '{name}' cannot be removed.").format(name=found["name"]),
                       hint=_("Change it with `crm care templates set {name} --body ...` or restore it with "
                              "`crm care templates reset {name}`.").format(name=found["name"]))
    session.execute(delete(T).where(T.c.name == found["name"]))
    audit.record(session, entity="care_template", entity_id=None, action="remove", before=found)


# ------------------------------------------------------------------------------------------ holidays

def _holiday_name(name: str) -> str:
    value = name.strip().lower()
    if not value or len(value) > 40 or not all(ch.isalnum() or ch in "-_" for ch in value):
        raise InvalidInput(_("'{value}' is not a holiday name.").format(value=name), field="name", value=name,
                           hint=_("Use 1-40 letters, digits, '-' or '_', e.g. mid-autumn."))
    return value


def seeded(session: Session) -> bool:
    """Whether the defaults were ever written (built-in templates cannot be removed)."""
    return bool(session.execute(select(exists().where(T.c.builtin.is_(True)))).scalar())


def _default_rows() -> list[Any]:
    from types import SimpleNamespace

    return [SimpleNamespace(name=name, title=_(title), day=date.fromisoformat(d), recurring=recurring)
            for name, title, recurring, days in DEFAULT_HOLIDAYS for d in days]


def occurrences(session: Session, start: date, end: date, *, name: str | None = None) -> list[dict[str, Any]]:
    """Holiday dates from ``start`` to ``end`` (recurring holidays expanded), sorted by date. A store whose
    calendar was never written (read-only commands before any `crm care` write) uses the default calendar."""
    if seeded(session):
        stmt = select(H)
        if name is not None:
            stmt = stmt.where(H.c.name == name)
        stmt = stmt.where(or_(H.c.recurring.is_(True), and_(H.c.day >= start, H.c.day <= end)))
        found: list[Any] = list(session.execute(stmt))
    else:
        found = [r for r in _default_rows() if name is None or r.name == name]
    out = []
    for r in found:
        if not r.recurring and not start <= r.day <= end:
            continue
        if r.recurring:
            day = occurrence_in(r.day, start, end)
            while day is not None:
                out.append({"name": r.name, "title": r.title, "date": day, "recurring": True})
                nxt = day + timedelta(days=1)
                day = occurrence_in(r.day, nxt, end) if nxt <= end else None
        else:
            out.append({"name": r.name, "title": r.title, "date": r.day, "recurring": False})
    out.sort(key=lambda h: (h["date"], h["name"]))
    return out


def list_holidays(session: Session, *, year: int | None = None) -> list[dict[str, Any]]:
    """Every stored date (recurring ones as their month and day), or the holidays of one year."""
    if year is not None:
        return occurrences(session, date(year, 1, 1), date(year, 12, 31))
    rows = session.execute(select(H).order_by(H.c.recurring.desc(), H.c.day, H.c.name)).all()
    return [{"name": r.name, "title": r.title, "date": r.day, "recurring": bool(r.recurring)} for r in rows]


def add_holiday(session: Session, name: str, day: date, *, title: str | None = None, recurring: bool = False) -> dict[str, Any]:
    from crmcli.core.customers import clean_text

    key = _holiday_name(name)
    known = session.execute(select(H.c.title).where(H.c.name == key).limit(1)).scalar()
    shown = clean_text(title, "title", max_len=100) if title else (known or key.replace("-", " ").title())
    if session.execute(select(exists().where(H.c.name == key, H.c.day == day))).scalar():
        raise Conflict(_("{name} on {date} is already in the calendar.").format(name=key, date=day))
    session.execute(insert(H).values(name=key, title=shown, day=day, recurring=recurring, created_at=utcnow()))
    if title and known and known != shown:
        session.execute(H.update().where(H.c.name == key).values(title=shown))
    audit.record(session, entity="care_holiday", entity_id=None, action="add",
                 after={"name": key, "title": shown, "day": day, "recurring": recurring})
    return {"name": key, "title": shown, "date": day, "recurring": recurring}


def remove_holiday(session: Session, name: str, day: date | None = None) -> int:
    key = _holiday_name(name)
    cond = [H.c.name == key] + ([H.c.day == day] if day else [])
    n = session.execute(select(func.count()).where(*cond)).scalar_one()
    if not n:
        raise NotFound(_("No holiday {name}{on} in the calendar.").format(name=key, on=f" {day}" if day else ""),
                       hint=_("See the calendar with `crm care holidays`."))
    session.execute(delete(H).where(*cond))
    audit.record(session, entity="care_holiday", entity_id=None, action="remove",
                 before={"name": key, "day": day, "dates": int(n)})
    return int(n)


def holiday_due(session: Session, name: str, today: date, *, before: int = 30, after: int = 7) -> dict[str, Any]:
    """The occurrence of a holiday to greet for: the nearest one from ``after`` days ago to ``before`` days
    ahead (a greeting may go out some days early, or a few days late)."""
    key = _holiday_name(name)
    if not session.execute(select(exists().where(H.c.name == key))).scalar():
        raise NotFound(_("No holiday named '{name}'.").format(name=name),
                       hint=_("See the calendar with `crm care holidays`, or add it: "
                              "crm care holidays add {name} YYYY-MM-DD --title '...'").format(name=key))
    found = occurrences(session, today - timedelta(days=after), today + timedelta(days=before), name=key)
    if not found:
        raise NotFound(_("{name} has no date in the calendar from {start} to {end}.").format(
            name=key, start=today - timedelta(days=after), end=today + timedelta(days=before)),
            hint=_("Add this year's date: crm care holidays add {name} YYYY-MM-DD").format(name=key))
    return min(found, key=lambda h: abs((h["date"] - today).days))


# ------------------------------------------------------------------------------------ consent, contacts

def consenting(session: Session, customer_ids: Sequence[int], channel: str) -> tuple[list[int], int]:
    """(ids that granted consent for the channel, how many did not): the data-safety feature's rule when it
    is installed (crmcli.core.consent.consenting), else the consent table (opt-in: no row means no)."""
    try:
        from crmcli.core.consent import consenting as shared  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        shared = None
    if shared is not None:
        allowed, excluded = shared(session, list(customer_ids), channel)
        return list(allowed), int(excluded)
    from crmcli.core.customers import chunked

    granted: set[int] = set()
    for part in chunked(list(customer_ids)):
        granted.update(int(i) for (i,) in session.execute(select(CONSENT.c.customer_id).where(
            CONSENT.c.customer_id.in_(part), CONSENT.c.channel == channel, CONSENT.c.granted.is_(True))))
    allowed = [i for i in customer_ids if i in granted]
    return allowed, len(customer_ids) - len(allowed)


def addresses(session: Session, ids: Sequence[int], channel: str) -> dict[int, str]:
    """The first address of each customer for the channel: e-mail, phone (sms, phone) or WeChat ID."""
    from crmcli.core.customers import chunked

    kind, label = {"email": ("email", None), "sms": ("phone", None), "phone": ("phone", None),
                   "wechat": ("social", "wechat")}[channel]
    out: dict[int, str] = {}
    for part in chunked(list(ids)):
        stmt = (select(CP.c.customer_id, CP.c.value).where(CP.c.customer_id.in_(part), CP.c.kind == kind)
                .order_by(CP.c.customer_id, CP.c.position, CP.c.id))
        if label:
            stmt = stmt.where(CP.c.label == label)
        for cid, value in session.execute(stmt):
            out.setdefault(int(cid), value)
    return out


# ---------------------------------------------------------------------------------------- greetings

@dataclass
class Greeting:
    customer_id: int
    code: str
    name: str
    occasion: str
    day: date  # the day celebrated (birthday, holiday) or the last purchase (win-back)
    address: str = ""
    subject: str = ""
    message: str = ""
    coupon: str | None = None
    points: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SendPlan:
    kind: str
    template: str
    channel: str
    via: str
    label: str  # what is celebrated: a holiday's title, 'birthday', 'win-back'
    due: int = 0  # customers due before any exclusion
    already_sent: int = 0
    no_consent: int = 0
    no_address: int = 0
    greetings: list[Greeting] = field(default_factory=list)
    failed: list[tuple[Greeting, str]] = field(default_factory=list)
    granted_points: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "template": self.template, "channel": self.channel, "via": self.via,
                "occasion_label": self.label, "due": self.due, "already_sent": self.already_sent,
                "no_consent": self.no_consent, "no_address": self.no_address,
                "sent": len(self.greetings), "failed": len(self.failed), "points_granted": self.granted_points}


def _alive() -> Any:
    return and_(C.c.deleted_at.is_(None), C.c.erased_at.is_(None))


def birthdays_due(session: Session, start: date, end: date) -> list[Greeting]:
    rows = session.execute(select(C.c.id, C.c.code, C.c.name, C.c.birthday)
                           .where(_alive(), C.c.birthday.is_not(None), month_day_condition(C.c.birthday, start, end))
                           .order_by(C.c.code)).all()
    out = []
    for r in rows:
        day = occurrence_in(r.birthday, start, end)
        if day is not None:
            out.append(Greeting(r.id, r.code, r.name, f"birthday:{day.year}", day,
                                extra={"age": day.year - r.birthday.year, "born": r.birthday}))
    return out


def winback_due(session: Session, today: date, after_days: int) -> list[Greeting]:
    """Customers whose last purchase day is ``after_days`` or more days ago (one greeting per lapse)."""
    last = (select(P.c.customer_id.label("cid"), func.max(P.c.purchased_on).label("last_on"))
            .where(P.c.kind == "sale", P.c.purchased_on <= today).group_by(P.c.customer_id).subquery("last"))
    rows = session.execute(select(C.c.id, C.c.code, C.c.name, last.c.last_on)
                           .select_from(C.join(last, last.c.cid == C.c.id))
                           .where(_alive(), last.c.last_on <= today - timedelta(days=after_days))
                           .order_by(C.c.code)).all()
    return [Greeting(r.id, r.code, r.name, f"winback:{r.last_on.isoformat()}", r.last_on,
                     extra={"days": (today - r.last_on).days}) for r in rows]


def holiday_recipients(session: Session, holiday: dict[str, Any]) -> list[Greeting]:
    occasion = f"holiday:{holiday['name']}:{holiday['date'].isoformat()}"
    rows = session.execute(select(C.c.id, C.c.code, C.c.name).where(_alive()).order_by(C.c.code)).all()
    return [Greeting(r.id, r.code, r.name, occasion, holiday["date"]) for r in rows]


def _tiers(session: Session, ids: Sequence[int]) -> dict[int, str]:
    from crmcli.core import hooks

    if not hooks.CLASSIFICATION:
        return {}
    try:
        classify = hooks.load(hooks.CLASSIFICATION)
    except (ImportError, AttributeError):
        return {}
    out = {}
    for cid in ids:
        tier = (classify(session, cid) or {}).get("tier")
        if tier:
            out[cid] = str(tier)
    return out


def _points(session: Session, ids: Sequence[int], today: date) -> dict[int, int] | None:
    try:
        from crmcli.core.points.expiry import spendable_many
    except ImportError:
        return None
    return spendable_many(session, list(ids), today)


def prepare(session: Session, ctx: StoreContext, plan: SendPlan, candidates: list[Greeting], *,
            coupon: str | None = None) -> None:
    """Drop those already greeted for the occasion, without consent for the channel or without an address;
    render the rest. Fills ``plan`` (counts and greetings)."""
    row = session.execute(select(T).where(T.c.name == plan.template)).first()
    if row is None:
        raise NotFound(_("No template named '{name}'.").format(name=plan.template),
                       hint=_("See the templates with `crm care templates list`."))
    used = set(check_template((row.subject or "") + " " + row.body))
    if "coupon" in used and not coupon:
        raise UsageError(_("The template '{name}' uses {{coupon}}: give a coupon code.").format(name=plan.template),
                         hint=_("Add --coupon CODE (placeholders work in it, e.g. --coupon 'BDAY-{{code}}')."))
    if coupon:
        check_template(coupon, "--coupon")
    plan.due = len(candidates)
    sent = sent_occasions(session, [g.customer_id for g in candidates], sorted({g.occasion for g in candidates}))
    fresh = [g for g in candidates if (g.customer_id, g.occasion) not in sent]
    plan.already_sent = plan.due - len(fresh)
    allowed, plan.no_consent = consenting(session, [g.customer_id for g in fresh], plan.channel)
    allowed_set = set(allowed)
    fresh = [g for g in fresh if g.customer_id in allowed_set]
    found = addresses(session, [g.customer_id for g in fresh], plan.channel)
    plan.no_address = sum(1 for g in fresh if g.customer_id not in found)
    fresh = [g for g in fresh if g.customer_id in found]
    ids = [g.customer_id for g in fresh]
    tiers = _tiers(session, ids) if "tier" in used else {}
    points = _points(session, ids, ctx.today) if "points" in used else {}
    if points is None:
        raise UsageError(_("The template '{name}' uses {{points}}, but loyalty points are not available.").format(
            name=plan.template), hint=_("Remove {{points}} from the template."))
    for g in fresh:
        values = {"name": g.name, "code": g.code, "tier": tiers.get(g.customer_id, ""),
                  "points": points.get(g.customer_id, 0), "holiday": plan.label, "date": g.day.isoformat(),
                  "age": g.extra.get("age", "")}
        g.coupon = render(coupon, values) if coupon else None
        values["coupon"] = g.coupon or ""
        g.address = found[g.customer_id]
        g.subject = render(row.subject or "", values)
        g.message = render(row.body, values)
    plan.greetings = fresh


def preview(session: Session, ctx: StoreContext, template: str, customer_id: int, *, coupon: str | None = None,
            holiday: str = "") -> dict[str, str]:
    """A template rendered for one customer (nothing recorded; consent is not checked)."""
    row = session.execute(select(T).where(T.c.name == template)).first()
    if row is None:
        raise NotFound(_("No template named '{name}'.").format(name=template),
                       hint=_("See the templates with `crm care templates list`."))
    c = session.execute(select(C.c.id, C.c.code, C.c.name, C.c.birthday).where(C.c.id == customer_id)).one()
    used = set(check_template((row.subject or "") + " " + row.body))
    points = _points(session, [c.id], ctx.today) if "points" in used else {}
    if coupon:
        check_template(coupon, "--coupon")
    values: dict[str, Any] = {"name": c.name, "code": c.code, "tier": _tiers(session, [c.id]).get(c.id, "") if "tier" in used else "",
                              "points": (points or {}).get(c.id, 0), "holiday": holiday, "date": ctx.today.isoformat(),
                              "age": (ctx.today.year - c.birthday.year) if c.birthday else ""}
    values["coupon"] = render(coupon, values) if coupon else ""
    return {"subject": render(row.subject or "", values), "body": render(row.body, values)}


def grant_birthday_points(session: Session, ctx: StoreContext, greetings: list[Greeting], points: int) -> int:
    """Birthday points for these customers, once per customer and year: the points feature's ledger with its
    own idempotency key ``birthday:<customer>:<year>`` (the key `crm points birthday` uses), so a bonus
    already granted this year by either command is not granted again. Returns how many were granted."""
    if points <= 0 or not greetings:
        return 0
    try:
        from crmcli.core.points import ledger
        from crmcli.core.points import rules as rules_mod
    except ImportError:
        raise UsageError(_("Loyalty points are not available in this crmcli, so --grant-points cannot be used.")) from None
    rules = rules_mod.load(session)
    keys = {g.customer_id: f"birthday:{g.customer_id}:{g.day.year}" for g in greetings}
    done = ledger.existing_keys(session, list(keys.values()))
    today = ctx.today
    rows = [{"customer_id": g.customer_id, "kind": "birthday", "points": points, "effective_on": today,
             "spendable_on": today + timedelta(days=rules.lock_days),
             "expires_on": rules_mod.expiry_date(rules.expiry, today), "key": keys[g.customer_id],
             "reason": _("Birthday greeting"), "detail": {"year": g.day.year, "via": "care send"}}
            for g in greetings if keys[g.customer_id] not in done]
    ledger.credit_rows(session, rows)
    granted = {r["customer_id"] for r in rows}
    for g in greetings:
        if g.customer_id in granted:
            g.points = points
    return len(rows)


INTERACTION_SUMMARY = {"birthday": N_("Birthday greeting sent"), "holiday": N_("{holiday} greeting sent"),
                       "winback": N_("Win-back message sent"), "custom": N_("Message sent")}


def claim(session: Session, ctx: StoreContext, plan: SendPlan, greetings: list[Greeting]) -> None:
    """Reserve each (customer, occasion) before e-mails go out, in a short transaction of its own, so the
    store is not locked while the SMTP server works and no concurrent run can send the same greeting: the
    rows exist (unique) but have no interaction yet. ``record_sent`` confirms the ones sent, ``release``
    frees the others. A crash in between leaves the claim: that greeting is then never sent (at most once)."""
    if not greetings:
        return
    now = utcnow()
    rows = [{"customer_id": g.customer_id, "occasion": g.occasion, "kind": plan.kind, "template": plan.template,
             "via": plan.via, "channel": plan.channel, "sent_on": ctx.today, "sent_at": now, "message": g.message,
             "coupon": g.coupon, "points": None, "interaction_id": None} for g in greetings]
    ids = [int(r[0]) for r in session.execute(insert(S).returning(S.c.id, sort_by_parameter_order=True), rows)]
    for g, sid in zip(greetings, ids):
        g.extra["send_id"] = sid
    audit.record_many(session, [{"entity": "care_send", "entity_id": sid, "customer_id": g.customer_id,
                                 "action": "claim", "after": {"occasion": g.occasion, "via": plan.via}}
                                for g, sid in zip(greetings, ids)])


def release(session: Session, greetings: list[Greeting]) -> None:
    """Free the claims of greetings that were not sent, so the next run tries them again."""
    claimed = [g for g in greetings if g.extra.get("send_id")]
    if not claimed:
        return
    session.execute(delete(S).where(S.c.id.in_([g.extra["send_id"] for g in claimed])))
    audit.record_many(session, [{"entity": "care_send", "entity_id": g.extra["send_id"], "customer_id": g.customer_id,
                                 "action": "release", "before": {"occasion": g.occasion}} for g in claimed])


def record_sent(session: Session, ctx: StoreContext, plan: SendPlan, greetings: list[Greeting]) -> None:
    """One interaction and one care_send row per greeting (bulk inserts; claimed rows are completed),
    audited; the unique (customer, occasion) makes a second send of the same greeting impossible."""
    if not greetings:
        return
    from sqlalchemy import bindparam

    from crmcli.core.dates import moment

    when = moment(ctx.today, ctx.tz)
    now = utcnow()
    who = audit.actor()
    summary = _(INTERACTION_SUMMARY[plan.kind]).format(holiday=plan.label)
    channel = plan.channel
    inter_rows = [{"customer_id": g.customer_id, "channel": channel,
                   "summary": f"{summary} ({plan.via}): {g.subject}" if g.subject else f"{summary} ({plan.via})",
                   "outcome": "sent" if plan.via == "email" else "exported", "occurred_at": when, "next_date": None,
                   "actor": who, "created_at": now} for g in greetings]
    inter_ids = [int(r[0]) for r in session.execute(insert(I).returning(I.c.id, sort_by_parameter_order=True),
                                                    inter_rows)]
    fresh = [(g, iid) for g, iid in zip(greetings, inter_ids) if not g.extra.get("send_id")]
    claimed = [(g, iid) for g, iid in zip(greetings, inter_ids) if g.extra.get("send_id")]
    send_rows = [{"customer_id": g.customer_id, "occasion": g.occasion, "kind": plan.kind, "template": plan.template,
                  "via": plan.via, "channel": channel, "sent_on": ctx.today, "sent_at": now, "message": g.message,
                  "coupon": g.coupon, "points": g.points, "interaction_id": iid}
                 for g, iid in fresh]
    if send_rows:
        ids = [int(r[0]) for r in session.execute(insert(S).returning(S.c.id, sort_by_parameter_order=True),
                                                  send_rows)]
        for (g, _iid), sid in zip(fresh, ids):
            g.extra["send_id"] = sid
    if claimed:
        session.connection().execute(
            S.update().where(S.c.id == bindparam("sid")).values(interaction_id=bindparam("iid"),
                                                                 points=bindparam("pts"), sent_at=bindparam("at")),
            [{"sid": g.extra["send_id"], "iid": iid, "pts": g.points, "at": now} for g, iid in claimed])
    audit.record_many(session, [
        {"entity": "care_send", "entity_id": g.extra["send_id"], "customer_id": g.customer_id, "action": "send",
         "after": {"occasion": g.occasion, "template": plan.template, "via": plan.via, "channel": channel,
                   "coupon": g.coupon, "points": g.points, "interaction_id": iid}}
        for g, iid in zip(greetings, inter_ids)])


def sent_occasions(session: Session, ids: Sequence[int], occasions: Sequence[str]) -> set[tuple[int, str]]:
    from crmcli.core.customers import chunked

    found: set[tuple[int, str]] = set()
    for part in chunked(list(ids)):
        found.update((int(c), o) for c, o in session.execute(
            select(S.c.customer_id, S.c.occasion).where(S.c.customer_id.in_(part), S.c.occasion.in_(list(occasions)))))
    return found


def history(session: Session, *, customer_id: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    stmt = (select(S.c.id, S.c.occasion, S.c.kind, S.c.template, S.c.via, S.c.channel, S.c.sent_on, S.c.coupon,
                   S.c.points, C.c.code, C.c.name).join(C, C.c.id == S.c.customer_id)
            .order_by(S.c.sent_at.desc(), S.c.id.desc()))
    if customer_id is not None:
        stmt = stmt.where(S.c.customer_id == customer_id)
    if limit:
        stmt = stmt.limit(limit)
    return [dict(r) for r in session.execute(stmt).mappings()]


# -------------------------------------------------------------------------------------- privacy hooks

def customer_data(session: Session, customer_id: int) -> tuple[str, Any]:
    """Greetings sent to the customer, for privacy exports."""
    rows = session.execute(select(S.c.occasion, S.c.template, S.c.via, S.c.channel, S.c.sent_on, S.c.message,
                                  S.c.coupon, S.c.points).where(S.c.customer_id == customer_id)
                           .order_by(S.c.sent_on, S.c.id)).mappings()
    return "greetings", [{k: (v.isoformat() if isinstance(v, date) else v) for k, v in r.items()} for r in rows]


def erase_customer(session: Session, customer_id: int) -> None:
    """Forget the rendered messages (they contain the name); the rows stay so nothing is sent twice."""
    session.execute(S.update().where(S.c.customer_id == customer_id).values(message=None))
