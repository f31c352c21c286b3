"""Customers: add, find, list, edit, tag, soft-delete and restore; every change audited."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, exists, extract, func, insert, or_, select, update
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core.clock import start_of_day_utc, utc_to_local, utcnow
from crmcli.core.contacts import normalize_email, normalize_phone, parse_social, try_normalize_phone
from crmcli.core.context import StoreContext
from crmcli.core.dates import age_on, parse_date
from crmcli.errors import Ambiguous, Conflict, InvalidInput, NotFound
from crmcli.i18n import _
from crmcli.store.models import Consent, ContactPoint, Customer, CustomerTag, Preference, Purchase

GENDERS = {
    "f": "female", "female": "female", "woman": "female", "女": "female", "女性": "female",
    "m": "male", "male": "male", "man": "male", "男": "male", "男性": "male",
    "o": "other", "other": "other", "x": "other", "其他": "other",
}
CHANNELS = ("phone", "email", "sms", "wechat", "visit", "social", "other")
CONSENT_CHANNELS = ("email", "sms", "phone", "wechat")
MAX_TEXT = 10_000

C = Customer.__table__
CP = ContactPoint.__table__
TAG = CustomerTag.__table__
P = Purchase.__table__


@dataclass
class CustomerInput:
    """Raw values as the user typed them; ``None`` means 'not given', '' means 'clear' (in edits)."""

    name: str | None = None
    code: str | None = None
    gender: str | None = None
    birthday: str | None = None
    occupation: str | None = None
    company: str | None = None
    address: str | None = None
    city: str | None = None
    source: str | None = None
    referred_by: str | None = None
    preferred_channel: str | None = None
    preferences_text: str | None = None
    notes: str | None = None
    next_follow_up: str | None = None
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    socials: list[str] = field(default_factory=list)
    consent: dict[str, bool] = field(default_factory=dict)
    preferences: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------- validation

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")  # control characters other than tab and newline
CONTROL_CHARS = _CONTROL
CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}")


def clean_text(value: str, field_name: str, *, max_len: int = MAX_TEXT) -> str:
    text = value.strip()
    if _CONTROL.search(text):
        raise InvalidInput(_("{field} contains control characters.").format(field=field_name), field=field_name,
                           value=value, hint=_("Remove them and try again."))
    if len(text) > max_len:
        raise InvalidInput(_("{field} is too long ({n} characters; at most {max}).").format(
            field=field_name, n=len(text), max=max_len), field=field_name, value=value[:40] + "…")
    return text


def parse_gender(value: str) -> str:
    g = GENDERS.get(value.strip().lower())
    if g is None:
        raise InvalidInput(_("'{value}' is not a gender.").format(value=value), field="gender", value=value,
                           hint=_("Use female, male or other (or f/m, 女/男)."))
    return g


def parse_channel(value: str, field_name: str = "channel") -> str:
    v = value.strip().lower()
    if v not in CHANNELS:
        raise InvalidInput(_("'{value}' is not a channel.").format(value=value), field=field_name, value=value,
                           hint=_("Use one of: {choices}.").format(choices=", ".join(CHANNELS)))
    return v


def parse_tag(value: str) -> str:
    tag = clean_text(value, "tag", max_len=64)
    if not tag or "," in tag or ";" in tag:
        raise InvalidInput(_("'{value}' is not a tag.").format(value=value), field="tag", value=value,
                           hint=_("Tags are short words without commas or semicolons."))
    return tag


def unique_ignoring_case(values: Sequence[str]) -> list[str]:
    """['vip', 'VIP', 'new'] → ['vip', 'new']: the first spelling of each, in order."""
    seen: dict[str, str] = {}
    for value in values:
        seen.setdefault(value.lower(), value)
    return list(seen.values())


def parse_code(value: str) -> str:
    code = value.strip()
    if not CODE_PATTERN.fullmatch(code):
        raise InvalidInput(_("'{value}' is not a customer code.").format(value=value), field="code", value=value,
                           hint=_("Codes are 1-40 letters, digits, '-', '_' or '.', e.g. C000123."))
    return code


def parse_pref(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InvalidInput(_("'{value}' is not a preference.").format(value=text), field="preference", value=text,
                           hint=_("Write KEY=VALUE, e.g. size=M or drink=oat latte."))
    return clean_text(key, "preference", max_len=64), clean_text(value, "preference", max_len=500)


def parse_consent(text: str) -> tuple[str, bool]:
    channel, sep, value = text.partition("=")
    channel = channel.strip().lower()
    answers = {"yes": True, "y": True, "true": True, "1": True, "on": True, "是": True,
               "no": False, "n": False, "false": False, "0": False, "off": False, "否": False}
    if not sep or channel not in CONSENT_CHANNELS or value.strip().lower() not in answers:
        raise InvalidInput(_("'{value}' is not a consent.").format(value=text), field="consent", value=text,
                           hint=_("Write CHANNEL=yes|no with CHANNEL one of {channels}, e.g. email=yes.").format(
                               channels=", ".join(CONSENT_CHANNELS)))
    return channel, answers[value.strip().lower()]


# ------------------------------------------------------------------------------------------- lookups

@dataclass
class CustomerRef:
    id: int
    code: str
    name: str
    phone: str | None
    email: str | None

    def label(self) -> str:
        contact = self.phone or self.email
        return f"{self.code} {self.name}" + (f" ({contact})" if contact else "")


def primary_contacts(session: Session, ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """{customer_id: {'phone': first phone, 'email': first email}} in one query."""
    out: dict[int, dict[str, str]] = {i: {} for i in ids}
    for chunk in chunked(ids):
        rows = session.execute(
            select(CP.c.customer_id, CP.c.kind, CP.c.value)
            .where(CP.c.customer_id.in_(chunk), CP.c.kind.in_(("phone", "email")))
            .order_by(CP.c.customer_id, CP.c.position, CP.c.id))
        for cid, kind, value in rows:
            out[cid].setdefault(kind, value)
    return out


def chunked(ids: Sequence[int], size: int = 5000) -> list[list[int]]:
    """Id lists cut to a size every SQLite build accepts as bound parameters of one IN (...)."""
    values = list(ids)
    return [values[i:i + size] for i in range(0, len(values), size)]


def _refs(session: Session, ids: Sequence[int]) -> list[CustomerRef]:
    if not ids:
        return []
    rows = session.execute(select(C.c.id, C.c.code, C.c.name).where(C.c.id.in_(list(ids))).order_by(C.c.code)).all()
    contacts = primary_contacts(session, [r.id for r in rows])
    return [CustomerRef(r.id, r.code, r.name, contacts[r.id].get("phone"), contacts[r.id].get("email")) for r in rows]


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def find_ids(session: Session, ref: str, ctx: StoreContext, *, include_deleted: bool = False) -> list[int]:
    """Candidates for a customer reference, by the first rule that matches anything:
    exact code, id, e-mail, phone, exact name, then a name/code fragment."""
    text = ref.strip()
    if not text:
        return []
    live = C.c.erased_at.is_(None) if include_deleted else and_(C.c.deleted_at.is_(None), C.c.erased_at.is_(None))

    def ids(stmt: Any) -> list[int]:
        return [r[0] for r in session.execute(stmt.where(live).limit(50))]

    by_code = ids(select(C.c.id).where(func.upper(C.c.code) == text.upper()))
    if by_code:
        return by_code
    if text.isdigit() and len(text) <= 9:
        by_id = ids(select(C.c.id).where(C.c.id == int(text)))
        if by_id:
            return by_id
    if "@" in text:
        try:
            email = normalize_email(text)
        except InvalidInput:
            email = text
        by_email = ids(select(C.c.id).distinct().join(CP, CP.c.customer_id == C.c.id)
                       .where(CP.c.kind == "email", func.lower(CP.c.value) == email.lower()))
        if by_email:
            return by_email
    phone = try_normalize_phone(text, ctx.region) if re.fullmatch(r"[+\d][\d \-().]{5,}", text) else None
    if phone:
        by_phone = ids(select(C.c.id).distinct().join(CP, CP.c.customer_id == C.c.id)
                       .where(CP.c.kind == "phone", CP.c.value == phone))
        if by_phone:
            return by_phone
    by_name = ids(select(C.c.id).where(func.lower(C.c.name) == text.lower()))
    if len(by_name) == 1:
        return by_name
    pattern = _like(text.lower())
    return ids(select(C.c.id).where(or_(func.lower(C.c.name).like(pattern, escape="\\"),
                                        func.lower(C.c.code).like(pattern, escape="\\"))).order_by(C.c.code))


def resolve(session: Session, ref: str, ctx: StoreContext, *, include_deleted: bool = False) -> Customer:
    """The one customer ``ref`` names (id, code, phone, e-mail or name fragment).

    NotFound when nothing matches; Ambiguous (with the candidates) when several do.
    """
    found = find_ids(session, ref, ctx, include_deleted=include_deleted)
    if not found and not include_deleted:
        gone = _refs(session, find_ids(session, ref, ctx, include_deleted=True))
        if len(gone) == 1:
            raise NotFound(_("{customer} is deleted.").format(customer=gone[0].label()),
                           hint=_("Bring it back with `crm customer restore {code}`.").format(code=gone[0].code))
    if not found:
        raise NotFound(_("No customer matches '{ref}'.").format(ref=ref),
                       hint=_("Try `crm customer search {ref}`, or give the code, phone or e-mail.").format(ref=ref))
    if len(found) > 1:
        refs = _refs(session, found)
        raise Ambiguous(_("'{ref}' matches {n} customers: {list}.").format(
            ref=ref, n=len(refs), list="; ".join(r.label() for r in refs[:10]) + ("; …" if len(refs) > 10 else "")),
            [str(r.id) for r in refs], hint=_("Use the code (e.g. {code}) to pick one.").format(code=refs[0].code))
    customer = session.get(Customer, found[0])
    assert customer is not None
    return customer


def candidates(session: Session, ids: Sequence[int]) -> list[CustomerRef]:
    return _refs(session, [int(i) for i in ids])


def get(session: Session, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(_("No customer with id {id}.").format(id=customer_id))
    return customer


def owners_of(session: Session, kind: str, values: Sequence[str], *, exclude_id: int | None = None) -> list[CustomerRef]:
    """Live customers that already have one of these phones/e-mails (e-mails compared ignoring case)."""
    if not values:
        return []
    match = (func.lower(CP.c.value).in_([v.lower() for v in values]) if kind == "email"
             else CP.c.value.in_(list(values)))
    stmt = (select(CP.c.customer_id).distinct().join(C, C.c.id == CP.c.customer_id)
            .where(CP.c.kind == kind, match, C.c.deleted_at.is_(None), C.c.erased_at.is_(None)))
    if exclude_id is not None:
        stmt = stmt.where(CP.c.customer_id != exclude_id)
    return _refs(session, [r[0] for r in session.execute(stmt)])


# -------------------------------------------------------------------------------------------- writes

def snapshot(session: Session, customer_id: int) -> dict[str, Any]:
    """Everything about one customer's record, for the audit trail's before/after."""
    row = session.execute(select(C).where(C.c.id == customer_id)).mappings().one()
    data = {k: v for k, v in row.items() if k not in ("id", "created_at", "updated_at", "import_id")}
    data["contacts"] = [f"{r.kind}:{(r.label + ':') if r.label else ''}{r.value}" for r in session.execute(
        select(CP.c.kind, CP.c.label, CP.c.value).where(CP.c.customer_id == customer_id).order_by(CP.c.position, CP.c.id))]
    data["tags"] = sorted(r[0] for r in session.execute(select(TAG.c.tag).where(TAG.c.customer_id == customer_id)))
    data["preferences"] = {r.key: r.value for r in session.execute(
        select(Preference.__table__).where(Preference.__table__.c.customer_id == customer_id))}
    data["consent"] = {r.channel: r.granted for r in session.execute(
        select(Consent.__table__).where(Consent.__table__.c.customer_id == customer_id))}
    return data


def next_code(session: Session, prefix: str) -> str:
    n = (session.execute(select(func.max(C.c.id))).scalar() or 0) + 1
    while True:
        code = f"{prefix}{n:06d}"
        if not session.execute(select(exists().where(C.c.code == code))).scalar():
            return code
        n += 1


def _validated_contacts(data: CustomerInput, ctx: StoreContext) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    phones = list(dict.fromkeys(normalize_phone(p, ctx.region) for p in data.phones))
    unique: dict[str, str] = {}
    for email in (normalize_email(e) for e in data.emails):
        unique.setdefault(email.lower(), email)  # the first spelling wins
    emails = list(unique.values())
    socials = list(dict.fromkeys(parse_social(s) for s in data.socials))
    return phones, emails, socials


def _check_duplicates(session: Session, phones: list[str], emails: list[str], exclude_id: int | None = None) -> None:
    for kind, values in (("phone", phones), ("email", emails)):
        if not owners_of(session, kind, values, exclude_id=exclude_id):
            continue
        for value in values:  # name the first value that is taken, and by whom
            owners = owners_of(session, kind, [value], exclude_id=exclude_id)
            if owners:
                raise Conflict(_("The {kind} {value} already belongs to {customer}.").format(
                    kind=_(kind), value=value, customer=owners[0].label()),
                    hint=_("Edit that customer instead, or pass --allow-duplicate to keep both."))


def _scalar_fields(data: CustomerInput, ctx: StoreContext, session: Session, *, editing: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in ("occupation", "company", "address", "city", "source", "preferences_text", "notes"):
        raw = getattr(data, name)
        if raw is not None:
            values[name] = clean_text(raw, name) or None
    if data.name is not None:
        name = clean_text(data.name, "name", max_len=200)
        if not name:
            raise InvalidInput(_("The name must not be empty."), field="name", value=data.name)
        values["name"] = name
    if data.gender is not None:
        values["gender"] = parse_gender(data.gender) if data.gender.strip() else None
    if data.birthday is not None:
        if data.birthday.strip():
            birthday = parse_date(data.birthday, today=ctx.today, field="birthday")
            if birthday > ctx.today:
                raise InvalidInput(_("Birthday {value} is in the future.").format(value=birthday), field="birthday",
                                   value=data.birthday)
            values["birthday"] = birthday
        else:
            values["birthday"] = None
    if data.next_follow_up is not None:
        values["next_follow_up"] = (parse_date(data.next_follow_up, today=ctx.today, field="follow-up", future=True)
                                    if data.next_follow_up.strip() else None)
    if data.preferred_channel is not None:
        values["preferred_channel"] = parse_channel(data.preferred_channel, "preferred channel") \
            if data.preferred_channel.strip() else None
    if data.referred_by is not None:
        values["referred_by_id"] = resolve(session, data.referred_by, ctx).id if data.referred_by.strip() else None
    if data.code is not None:
        values["code"] = parse_code(data.code)
    return values


def add_customer(session: Session, data: CustomerInput, ctx: StoreContext, *, allow_duplicate: bool = False) -> Customer:
    """Validate everything first, then write the customer, its contacts, consent, preferences and tags."""
    if data.name is None:
        raise InvalidInput(_("A customer needs a name."), field="name", value=None)
    values = _scalar_fields(data, ctx, session, editing=False)
    phones, emails, socials = _validated_contacts(data, ctx)
    tags = unique_ignoring_case([parse_tag(t) for t in data.tags])
    prefs = {k: v for k, v in (parse_pref(f"{k}={v}") for k, v in data.preferences.items())}
    if not allow_duplicate:
        _check_duplicates(session, phones, emails)
    from crmcli.core import settings

    code = values.pop("code", None) or next_code(session, settings.get(session, "customer.code_prefix"))
    if session.execute(select(exists().where(C.c.code == code))).scalar():
        raise Conflict(_("The code {code} is already taken.").format(code=code), hint=_("Choose another --code."))
    now = utcnow()
    customer = Customer(code=code, created_at=now, updated_at=now, **values)
    session.add(customer)
    session.flush()
    assert customer.id is not None
    _write_contacts(session, customer.id, phones, emails, socials, start=0)
    for channel, granted in data.consent.items():
        _set_consent(session, customer.id, channel, granted, now)
    for key, value in prefs.items():
        session.add(Preference(customer_id=customer.id, key=key, value=value))
    if tags:
        session.execute(insert(TAG), [{"customer_id": customer.id, "tag": t} for t in tags])
    session.flush()
    audit.record(session, entity="customer", entity_id=customer.id, customer_id=customer.id, action="add",
                 after=snapshot(session, customer.id))
    return customer


def _write_contacts(session: Session, customer_id: int, phones: list[str], emails: list[str],
                    socials: list[tuple[str, str]], start: int) -> None:
    rows = ([{"kind": "phone", "value": p, "label": None} for p in phones]
            + [{"kind": "email", "value": e, "label": None} for e in emails]
            + [{"kind": "social", "value": h, "label": n} for n, h in socials])
    if rows:
        session.execute(insert(CP), [{**r, "customer_id": customer_id, "position": start + i} for i, r in enumerate(rows)])


def _set_consent(session: Session, customer_id: int, channel: str, granted: bool, at: datetime,
                 source: str | None = None) -> None:
    """Record consent (or its withdrawal) with the time and, by default, the command that recorded it."""
    if source is None:
        from crmcli.core.command import current_command

        source = current_command.get()
    row = session.get(Consent, (customer_id, channel))
    if row is None:
        session.add(Consent(customer_id=customer_id, channel=channel, granted=granted, changed_at=at, source=source))
    elif row.granted != granted:
        row.granted, row.changed_at, row.source = granted, at, source
        session.add(row)


@dataclass
class CustomerEdit:
    fields: CustomerInput = field(default_factory=CustomerInput)
    add_phones: list[str] = field(default_factory=list)
    remove_phones: list[str] = field(default_factory=list)
    add_emails: list[str] = field(default_factory=list)
    remove_emails: list[str] = field(default_factory=list)
    add_socials: list[str] = field(default_factory=list)
    remove_socials: list[str] = field(default_factory=list)
    unset_preferences: list[str] = field(default_factory=list)


def edit_customer(session: Session, customer: Customer, change: CustomerEdit, ctx: StoreContext, *,
                  allow_duplicate: bool = False) -> bool:
    """Apply an edit; returns False when nothing actually changed (no audit row then)."""
    assert customer.id is not None
    cid = customer.id
    before = snapshot(session, cid)
    values = _scalar_fields(change.fields, ctx, session, editing=True)
    if values.get("referred_by_id") == cid:
        raise InvalidInput(_("A customer cannot refer themselves."), field="referred-by", value=change.fields.referred_by)
    if "code" in values and values["code"] != customer.code and session.execute(
            select(exists().where(C.c.code == values["code"]))).scalar():
        raise Conflict(_("The code {code} is already taken.").format(code=values["code"]))
    add = CustomerInput(phones=change.add_phones, emails=change.add_emails, socials=change.add_socials)
    phones, emails, socials = _validated_contacts(add, ctx)
    if not allow_duplicate:
        _check_duplicates(session, phones, emails, exclude_id=cid)
    # E-mails compare ignoring case (the stored spelling is kept); phones are E.164 already.
    existing = {(r.kind, r.label, r.value.lower() if r.kind == "email" else r.value) for r in session.execute(
        select(CP.c.kind, CP.c.label, CP.c.value).where(CP.c.customer_id == cid))}
    for kind, raw_list, normalizer in (("phone", change.remove_phones, lambda v: normalize_phone(v, ctx.region)),
                                       ("email", change.remove_emails, lambda v: normalize_email(v).lower())):
        for raw in raw_list:
            value = normalizer(raw)
            if (kind, None, value) not in existing:
                raise NotFound(_("{customer} has no {kind} {value}.").format(customer=customer.code, kind=_(kind), value=raw),
                               hint=_("See the record with `crm customer show {code}`.").format(code=customer.code))
            column = func.lower(CP.c.value) if kind == "email" else CP.c.value
            session.execute(delete(CP).where(CP.c.customer_id == cid, CP.c.kind == kind, column == value))
    for raw in change.remove_socials:
        network, handle = parse_social(raw)
        if ("social", network, handle) not in existing:
            raise NotFound(_("{customer} has no {kind} {value}.").format(customer=customer.code, kind=network, value=handle))
        session.execute(delete(CP).where(CP.c.customer_id == cid, CP.c.kind == "social", CP.c.label == network,
                                         CP.c.value == handle))
    phones = [p for p in phones if ("phone", None, p) not in existing]
    emails = [e for e in emails if ("email", None, e.lower()) not in existing]
    socials = [s for s in socials if ("social", s[0], s[1]) not in existing]
    top = session.execute(select(func.max(CP.c.position)).where(CP.c.customer_id == cid)).scalar()
    _write_contacts(session, cid, phones, emails, socials, start=(top if top is not None else -1) + 1)
    now = utcnow()
    for channel, granted in change.fields.consent.items():
        _set_consent(session, cid, channel, granted, now)
    for key, value in (parse_pref(f"{k}={v}") for k, v in change.fields.preferences.items()):
        row = session.get(Preference, (cid, key))
        if row is None:
            session.add(Preference(customer_id=cid, key=key, value=value))
        else:
            row.value = value
            session.add(row)
    for key in change.unset_preferences:
        row = session.get(Preference, (cid, key.strip()))
        if row is None:
            raise NotFound(_("{customer} has no preference '{key}'.").format(customer=customer.code, key=key))
        session.delete(row)
    for name, value in values.items():
        setattr(customer, name, value)
    session.add(customer)
    session.flush()
    after = snapshot(session, cid)
    if after == before:
        return False
    customer.updated_at = now
    session.add(customer)
    audit.record(session, entity="customer", entity_id=cid, customer_id=cid, action="edit",
                 before={k: v for k, v in before.items() if after.get(k) != v},
                 after={k: v for k, v in after.items() if before.get(k) != v})
    return True


def tag_customer(session: Session, customer: Customer, add: Sequence[str], remove: Sequence[str]) -> list[str]:
    assert customer.id is not None
    cid = customer.id
    before = sorted(r[0] for r in session.execute(select(TAG.c.tag).where(TAG.c.customer_id == cid)))
    # Tags compare ignoring case (VIP is vip); a tag keeps the spelling it was first given.
    have = {t.lower(): t for t in before}
    wanted = [parse_tag(t) for t in remove]
    missing = [t for t in wanted if t.lower() not in have]
    if missing:
        raise NotFound(_("{customer} has no tag '{tag}'.").format(customer=customer.code, tag=missing[0]),
                       hint=_("Its tags: {tags}.").format(tags=", ".join(before) or "—"))
    to_remove = unique_ignoring_case([have[t.lower()] for t in wanted])
    removed = {t.lower() for t in to_remove}
    to_add = [t for t in unique_ignoring_case([parse_tag(t) for t in add])
              if t.lower() not in have or t.lower() in removed]
    if to_remove:
        session.execute(delete(TAG).where(TAG.c.customer_id == cid, TAG.c.tag.in_(to_remove)))
    if to_add:
        session.execute(insert(TAG), [{"customer_id": cid, "tag": t} for t in to_add])
    after = sorted((set(before) - set(to_remove)) | set(to_add))
    if after != before:
        customer.updated_at = utcnow()
        session.add(customer)
        audit.record(session, entity="customer", entity_id=cid, customer_id=cid, action="tag",
                     before={"tags": before}, after={"tags": after})
    return after


def remove_customer(session: Session, customer: Customer) -> None:
    assert customer.id is not None
    if customer.deleted_at is not None:
        raise Conflict(_("{customer} is already deleted.").format(customer=customer.code),
                       hint=_("Bring it back with `crm customer restore {code}`.").format(code=customer.code))
    customer.deleted_at = utcnow()
    session.add(customer)
    audit.record(session, entity="customer", entity_id=customer.id, customer_id=customer.id, action="delete",
                 before={"deleted_at": None}, after={"deleted_at": customer.deleted_at})


def restore_customer(session: Session, customer: Customer) -> None:
    assert customer.id is not None
    if customer.deleted_at is None:
        raise Conflict(_("{customer} is not deleted.").format(customer=customer.code))
    before = customer.deleted_at
    customer.deleted_at = None
    customer.updated_at = utcnow()
    session.add(customer)
    audit.record(session, entity="customer", entity_id=customer.id, customer_id=customer.id, action="restore",
                 before={"deleted_at": before}, after={"deleted_at": None})


# --------------------------------------------------------------------------------------------- reads

@dataclass
class ListFilter:
    tags: list[str] = field(default_factory=list)
    city: str | None = None
    source: str | None = None
    created_since: date | None = None
    created_until: date | None = None
    birthday_month: int | None = None
    follow_up_due: bool = False
    include_deleted: bool = False
    ids: list[int] | None = None
    text: str | None = None
    tier: str | None = None  # classification filters (crm tier): as of the last recompute
    segment: str | None = None
    stage: str | None = None
    level: str | None = None
    sort: str = "code"
    descending: bool = False
    limit: int | None = None


SORTS = ("code", "name", "created", "spend", "orders", "last-purchase", "follow-up", "city")


def spend_subquery() -> Any:
    """Per customer: sales count, net spend (sales minus refunds) and last sale time."""
    sale = P.c.kind == "sale"
    return (select(P.c.customer_id.label("cid"),
                   func.sum(case((sale, 1), else_=0)).label("orders"),
                   func.sum(case((sale, P.c.amount_minor), else_=-P.c.amount_minor)).label("net_minor"),
                   func.max(case((sale, P.c.purchased_at), else_=None)).label("last_at"),
                   func.min(case((sale, P.c.purchased_at), else_=None)).label("first_at"))
            .group_by(P.c.customer_id).subquery("spend"))


def list_customers(session: Session, flt: ListFilter, ctx: StoreContext) -> list[dict[str, Any]]:
    """Rows with stable keys (see README 'JSON keys'), aggregates computed in SQL."""
    return list(iter_customers(session, flt, ctx))


def iter_customers(session: Session, flt: ListFilter, ctx: StoreContext, *, chunk: int = 2000) -> Iterator[dict[str, Any]]:
    """``list_customers`` as a stream: rows fetched ``chunk`` at a time (exports of any size in flat memory)."""
    spend = spend_subquery()
    stmt = (select(C.c.id, C.c.code, C.c.name, C.c.gender, C.c.birthday, C.c.city, C.c.source, C.c.created_at,
                   C.c.next_follow_up, C.c.deleted_at,
                   func.coalesce(spend.c.orders, 0).label("orders"),
                   func.coalesce(spend.c.net_minor, 0).label("net_minor"), spend.c.last_at)
            .select_from(C.outerjoin(spend, spend.c.cid == C.c.id))
            .where(C.c.erased_at.is_(None)))
    if not flt.include_deleted:
        stmt = stmt.where(C.c.deleted_at.is_(None))
    for tag in flt.tags:
        stmt = stmt.where(exists().where(TAG.c.customer_id == C.c.id, func.lower(TAG.c.tag) == tag.lower()))
    if flt.city:
        stmt = stmt.where(func.lower(C.c.city) == flt.city.lower())
    if flt.source:
        stmt = stmt.where(func.lower(C.c.source) == flt.source.lower())
    if flt.created_since:
        stmt = stmt.where(C.c.created_at >= start_of_day_utc(flt.created_since, ctx.tz))
    if flt.created_until:
        stmt = stmt.where(C.c.created_at < start_of_day_utc(flt.created_until + timedelta(days=1), ctx.tz))
    if flt.birthday_month:
        stmt = stmt.where(extract("month", C.c.birthday) == flt.birthday_month)
    if flt.follow_up_due:
        stmt = stmt.where(C.c.next_follow_up.is_not(None), C.c.next_follow_up <= ctx.today)
    if flt.ids is not None:
        stmt = stmt.where(C.c.id.in_(flt.ids))
    if flt.text:
        stmt = stmt.where(search_condition(flt.text, ctx))
    if flt.tier or flt.segment or flt.stage or flt.level:
        from crmcli.core.tiers import class_filter

        stmt = stmt.where(class_filter(session, C.c.id, tier=flt.tier, segment=flt.segment, stage=flt.stage,
                                       level=flt.level))
    order = {"code": C.c.code, "name": C.c.name, "created": C.c.created_at, "spend": func.coalesce(spend.c.net_minor, 0),
             "orders": func.coalesce(spend.c.orders, 0), "last-purchase": spend.c.last_at,
             "follow-up": C.c.next_follow_up, "city": C.c.city}[flt.sort]
    if session.get_bind().dialect.name == "sqlite":
        stmt = stmt.order_by(order.desc() if flt.descending else order, C.c.id)
    else:  # SQLite's NULL order everywhere (PostgreSQL puts NULLs last when ascending)
        stmt = stmt.order_by(order.desc().nulls_last() if flt.descending else order.asc().nulls_first(), C.c.id)
    if flt.limit:
        stmt = stmt.limit(flt.limit)
    # yield_per: the ORM session would otherwise buffer every row before returning the first.
    result = session.execute(stmt.execution_options(yield_per=chunk))
    while rows := result.fetchmany(chunk):
        ids = [r.id for r in rows]
        contacts = primary_contacts(session, ids)
        tags = tags_of(session, ids)
        for r in rows:
            yield {
                "id": r.id, "code": r.code, "name": r.name, "gender": r.gender, "birthday": r.birthday,
                "age": age_on(r.birthday, ctx.today) if r.birthday else None,
                "phone": contacts[r.id].get("phone"), "email": contacts[r.id].get("email"), "city": r.city,
                "source": r.source, "tags": tags.get(r.id, []), "orders": int(r.orders),
                "net_spent_minor": int(r.net_minor),
                "last_purchase": utc_to_local(r.last_at, ctx.tz).date() if r.last_at else None,
                "next_follow_up": r.next_follow_up, "created_at": r.created_at, "deleted": r.deleted_at is not None,
            }


def tags_of(session: Session, ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for chunk in chunked(ids):
        for cid, tag in session.execute(select(TAG.c.customer_id, TAG.c.tag)
                                        .where(TAG.c.customer_id.in_(chunk)).order_by(TAG.c.tag)):
            out.setdefault(cid, []).append(tag)
    return out


def search_condition(text: str, ctx: StoreContext) -> Any:
    """Substring match on name, code, notes, and any contact value (phone digits, e-mail, handle)."""
    needle = text.strip().lower()
    pattern = _like(needle)
    contact_patterns = [func.lower(CP.c.value).like(pattern, escape="\\")]
    digits = re.sub(r"\D", "", needle)
    if len(digits) >= 3 and digits != needle:
        contact_patterns.append(CP.c.value.like(_like(digits), escape="\\"))
    phone = try_normalize_phone(text, ctx.region) if re.fullmatch(r"[+\d][\d \-().]{5,}", text.strip()) else None
    if phone:
        contact_patterns.append(CP.c.value == phone)
    return or_(func.lower(C.c.name).like(pattern, escape="\\"), func.lower(C.c.code).like(pattern, escape="\\"),
               func.lower(func.coalesce(C.c.notes, "")).like(pattern, escape="\\"),
               func.lower(func.coalesce(C.c.company, "")).like(pattern, escape="\\"),
               exists().where(CP.c.customer_id == C.c.id, or_(*contact_patterns)))


def mark_follow_up(session: Session, customer: Customer, next_date: date | None, contact_day: date) -> None:
    """After a contact: a given next date becomes the follow-up; a follow-up that was due is done."""
    old = customer.next_follow_up
    if next_date is not None:
        customer.next_follow_up = next_date
    elif old is not None and old <= contact_day:
        customer.next_follow_up = None
    if customer.next_follow_up != old:
        customer.updated_at = utcnow()
        session.add(customer)


def update_many(session: Session, ids: Sequence[int], **values: Any) -> None:
    session.execute(update(C).where(C.c.id.in_(list(ids))).values(**values))
