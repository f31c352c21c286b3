"""Importing customers: validation with the same parsers as `crm customer add`, matching (--match code,email,
phone), duplicates within the file and against the store, bulk inserts for new customers and audited edits
(core.customers.edit_customer, one savepoint per row) for updates, each after the customer's before-image
(core/io/before_images.py), so a failed stepped import can put it back."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from crmcli.core import audit, settings
from crmcli.core.clock import utcnow
from crmcli.core.command import current_command
from crmcli.core.context import StoreContext
from crmcli.core.contacts import bulk_normalize_email, bulk_normalize_phone
from crmcli.core.customers import (C, CP, CODE_PATTERN, CONTROL_CHARS, GENDERS, MAX_TEXT, TAG, CustomerEdit,
                                   CustomerInput, _scalar_fields, _validated_contacts, edit_customer, get,
                                   parse_consent, resolve, parse_pref, parse_tag, tag_customer,
                                   unique_ignoring_case)
from crmcli.core.dates import _DMY, parse_date
from crmcli.core.io import before_images, lookups
from crmcli.core.io.importer import Options, Outcome, Row, RowError, batch_audit, next_id
from crmcli.core.io.mapping import Plan
from crmcli.core.io.rowfields import PlannedHandler, shared_cache
from crmcli.errors import CrmError
from crmcli.i18n import _
from crmcli.store.bulk import insert_rows
from crmcli.store.models import Consent, Preference

CONSENT = Consent.__table__
PREF = Preference.__table__
_LIST_SPLIT = re.compile(r"\s*[;,，；、\n]\s*")
_PHONE_SPLIT = re.compile(r"\s*[;,，；/\n]\s*")
_LIST_SEPARATORS = re.compile(r"[;,，；、\n]")  # a cell without any of these is one value (split would say so)
_PHONE_SEPARATORS = re.compile(r"[;,，；/\n]")
_CJK = re.compile(r"[\u3400-\u9fff]")
# The names core.customers gives fields in its errors → this importer's field names.
_ERROR_FIELDS = {"tag": "tags", "preference": "preferences", "consent": "consent_email",
                 "preferred channel": "preferred_channel", "follow-up": "next_follow_up", "referred-by": "referred_by"}
CUSTOMER_COLUMNS = ("id", "code", "name", "gender", "birthday", "occupation", "company", "address", "city", "source",
                    "referred_by_id", "preferred_channel", "preferences_text", "notes", "next_follow_up", "created_at",
                    "updated_at", "deleted_at", "erased_at", "import_id")
_VALUE_COLUMNS = CUSTOMER_COLUMNS[2:15]  # those taken from the prepared values (after id and code)


@dataclass
class Prepared:
    data: CustomerInput | None  # None for a row that passed the quick check (_prepare_plain): built when needed
    values: dict[str, Any]
    phones: list[str]
    emails: list[str]
    socials: list[tuple[str, str]]
    tags: list[str]
    prefs: dict[str, str]
    code_given: bool = False
    consent: dict[str, bool] = field(default_factory=dict)
    referred_by: str | None = None  # resolved against the store when the row is applied (the referrer may be
    # an earlier row of the same file)
    fields: dict[str, Any] | None = None  # the row's fields, for building ``data`` of a quickly checked row


# What a row may have for the quick check; anything else (consent, socials, preferences, referrer ...) takes the
# full path, as does any value the quick check is not sure about.
_PLAIN_FIELDS = frozenset({"name", "first_name", "last_name", "code", "phone", "email", "gender", "birthday",
                           "occupation", "company", "address", "city", "source", "notes", "preferences_text",
                           "tags"})
_PLAIN_TEXT = frozenset({"occupation", "company", "city", "source", "notes", "preferences_text"})
_SKIP = frozenset({"first_name", "last_name", "name"})


def full_name(first: str | None, last: str | None) -> str | None:
    """'Ann' + 'Lee' → 'Ann Lee'; '芳' + '王' → '王芳' (Chinese names: family name first, no space)."""
    parts = [p for p in (first, last) if p]
    if not parts:
        return None
    if first and last and (_CJK.search(first) or _CJK.search(last)):
        return last + first
    return " ".join(parts)


def date_value(raw: str | None, field_name: str, ctx: StoreContext, date_format: str | None, *,
               future: bool = False) -> str | None:
    """A date column as ISO text for CustomerInput. With --date-format the file's form is tried first, then the
    unambiguous forms (ISO, 2024年3月1日 ...), so a column that mixes them still reads; without it, a
    day/month order that could be read both ways is refused with the hint to pass --date-format."""
    if raw is None:
        return None
    try:
        return parse_date(raw, today=ctx.today, field=field_name, date_format=date_format, future=future).isoformat()
    except CrmError as e:
        if date_format is not None:
            try:
                return parse_date(raw, today=ctx.today, field=field_name, future=future).isoformat()
            except CrmError as plain:
                if not _DMY.match(raw.strip()):
                    e = plain  # '2024-02-30': 'no such day' says more than 'does not match %d/%m/%Y'
        error = RowError.of(e, field_name, raw)
        if date_format is None and _DMY.match(raw.strip()):
            error.reason += " " + _("Or give the file's order with --date-format, e.g. --date-format %d/%m/%Y.")
        raise error from None


class CustomerHandler(PlannedHandler):
    def __init__(self, session: Session, ctx: StoreContext, run_id: int, plan: Plan | None, options: Options) -> None:
        super().__init__(session, ctx, run_id, plan, options)
        self.prefix = settings.get(session, "customer.code_prefix")
        self.next_id = next_id(session, C, "customer")
        self.command = current_command.get()
        self._dates: dict[tuple[str, str], str | None | RowError] = {}
        self._birthdays: dict[str, Any] = shared_cache("birthday", ctx.today, options.date_format)

    def column_of(self, field_name: str | None) -> str | None:
        if field_name is None or self.plan is None:
            return field_name
        return self.plan.column_of(_ERROR_FIELDS.get(field_name, field_name)) or field_name

    # ----------------------------------------------------------------------------------- validation
    def prepare(self, row: Row) -> Prepared:
        return self._prepare_plain(row) or self._prepare_full(row)

    def _prepare_full(self, row: Row) -> Prepared:
        data = self._input(row.fields, row.prefs)
        if data.name is None and self.options.mode != "update":
            raise RowError("name", None, _("A customer needs a name.") + " " +
                           _("Add a name column (or first/last name columns), or map one with --map."))
        try:
            values = _scalar_fields(data, self.ctx, self.session, editing=False)
            phones, emails, socials_ok = _validated_contacts(data, self.ctx)
            tags = unique_ignoring_case([parse_tag(t) for t in data.tags])
            parsed_prefs = dict(parse_pref(f"{k}={v}") for k, v in data.preferences.items())
        except CrmError as e:
            raise RowError.of(e) from None
        return Prepared(data, values, phones, emails, socials_ok, tags, parsed_prefs,
                        code_given="code" in values, consent=data.consent, referred_by=row.fields.get("referred_by"))

    def _input(self, f: dict[str, Any], row_prefs: dict[str, str]) -> CustomerInput:
        """A row's fields as `crm customer add` would receive them (dates already read in the file's form)."""
        name = f.get("name") or full_name(f.get("first_name"), f.get("last_name"))
        socials = [s for v in f.get("social", []) for s in _LIST_SPLIT.split(v) if s]
        if f.get("wechat"):
            socials.append(f"wechat:{f['wechat']}")
        consent: dict[str, bool] = {}
        for channel in ("email", "sms", "phone", "wechat"):
            raw = f.get(f"consent_{channel}")
            if raw is not None:
                try:
                    consent.update([parse_consent(f"{channel}={raw}")])
                except CrmError as e:
                    raise RowError.of(e, f"consent_{channel}", raw) from None
        prefs = dict(row_prefs)
        if f.get("preferences"):
            prefs.update(_preferences(f["preferences"]))
        return CustomerInput(
            name=name, code=f.get("code"), gender=f.get("gender"),
            birthday=self._date(f.get("birthday"), "birthday"),
            occupation=f.get("occupation"), company=f.get("company"),
            address=", ".join(f["address"]) if f.get("address") else None, city=f.get("city"),
            source=f.get("source"), referred_by=None, preferred_channel=f.get("preferred_channel"),
            preferences_text=f.get("preferences_text"), notes=f.get("notes"),
            next_follow_up=self._date(f.get("next_follow_up"), "next_follow_up", future=True),
            phones=[p for v in f.get("phone", []) for p in _PHONE_SPLIT.split(v) if p],
            emails=[e for v in f.get("email", []) for e in _LIST_SPLIT.split(v) if e],
            socials=socials, consent=consent, preferences=prefs,
            tags=[t for v in f.get("tags", []) for t in _LIST_SPLIT.split(v) if t])

    def _data(self, p: Prepared) -> CustomerInput:
        if p.data is None:
            assert p.fields is not None
            p.data = self._input(p.fields, {})
        return p.data

    def _prepare_plain(self, row: Row) -> Prepared | None:
        """The full path's answer for a plain row (name, contacts, dates, texts, tags) without building the
        CustomerInput and walking the generic checks, or None when the row has anything else or any value
        the full path might refuse or read differently: then the full path decides, with its messages.
        tests/test_import_fastpath.py compares the two on generated rows."""
        f = row.fields
        if row.prefs or not _PLAIN_FIELDS.issuperset(f):
            return None
        name = f.get("name") or full_name(f.get("first_name"), f.get("last_name"))
        if name is None:
            return None
        name = name.strip()
        if not name or len(name) > 200 or CONTROL_CHARS.search(name):
            return None
        values: dict[str, Any] = {"name": name}
        phones: list[str] = []
        emails: list[str] = []
        tags: list[str] = []
        for key, raw in f.items():
            if key in _SKIP:
                continue
            if key in _PLAIN_TEXT or key == "address":
                text = (", ".join(raw) if key == "address" else raw).strip()
                if len(text) > MAX_TEXT or CONTROL_CHARS.search(text):
                    return None
                values[key] = text or None
            elif key == "phone":
                region = self.ctx.region
                for v in raw:
                    for part in _PHONE_SPLIT.split(v) if _PHONE_SEPARATORS.search(v) else (v,):
                        if part:
                            phone = bulk_normalize_phone(part, region)
                            if phone is None:
                                return None
                            phones.append(phone)
            elif key == "email":
                for v in raw:
                    for part in _LIST_SPLIT.split(v) if _LIST_SEPARATORS.search(v) else (v,):
                        if part:
                            email = bulk_normalize_email(part)
                            if email is None:
                                return None
                            emails.append(email)
            elif key == "tags":
                for v in raw:
                    for part in _LIST_SPLIT.split(v):
                        if part:
                            tag = part.strip()
                            if not tag or len(tag) > 64 or "," in tag or ";" in tag or CONTROL_CHARS.search(tag):
                                return None
                            tags.append(tag)
            elif key == "birthday":
                birthday = self._birthday(raw)
                if birthday is None:
                    return None
                values["birthday"] = birthday
            elif key == "gender":
                text = raw.strip()
                gender = GENDERS.get(text.lower()) if text else None
                if text and gender is None:
                    return None
                values["gender"] = gender
            elif key == "code":
                code = raw.strip()
                if CODE_PATTERN.fullmatch(code) is None:
                    return None
                values["code"] = code
        if len(phones) > 1:
            phones = list(dict.fromkeys(phones))
        if len(emails) > 1:
            unique: dict[str, str] = {}
            for email in emails:
                unique.setdefault(email.lower(), email)
            emails = list(unique.values())
        if len(tags) > 1:
            tags = unique_ignoring_case(tags)
        return Prepared(None, values, phones, emails, [], tags, {}, code_given="code" in values, fields=f)

    def _birthday(self, raw: str) -> Any:
        """The birthday the full path would store for this text (each distinct text read once per import, in
        a cache the handlers of all its steps share), or None: let the full path decide."""
        cache = self._birthdays
        found = cache.get(raw)
        if found is None:
            try:
                text = date_value(raw, "birthday", self.ctx, self.options.date_format)
                assert text is not None
                day = parse_date(text, today=self.ctx.today, field="birthday")
                found = day if day <= self.ctx.today else False
            except (CrmError, RowError):
                found = False
            if len(cache) > 100_000:
                cache.clear()
            cache[raw] = found
        return found or None

    def _date(self, raw: str | None, field_name: str, *, future: bool = False) -> str | None:
        """date_value, each distinct text once (birthdays repeat a lot in a big file); a bounded cache."""
        if raw is None:
            return None
        key = (raw, field_name)
        found = self._dates.get(key)
        if found is None:
            try:
                found = date_value(raw, field_name, self.ctx, self.options.date_format, future=future)
            except RowError as e:
                found = e
            if len(self._dates) > 100_000:
                self._dates.clear()
            self._dates[key] = found  # type: ignore[assignment]
        if isinstance(found, RowError):
            raise RowError(found.field, found.value, found.reason)
        return found

    # ------------------------------------------------------------------------------------ the store
    def apply(self, batch: list[tuple[Row, Prepared]]) -> list[str | RowError]:
        self._load([p for _r, p in batch])
        seen: dict[tuple[str, str], int] = {}  # (kind, value) → line of an earlier row of this batch
        outcomes: list[str | RowError] = []
        creates: list[tuple[Row, Prepared]] = []
        mode = self.options.mode
        new_only = self._new_only()
        for i, (row, p) in enumerate(batch):
            keys = self._keys(p)
            if creates and (p.referred_by or (mode != "create" and any(k in seen for k in keys))):
                # The same customer twice in one batch: write the pending new ones first, so that this row
                # updates it exactly as it would if the two rows were in different batches.
                self._create(creates)
                creates.clear()
                seen.clear()
                self._load([q for _r, q in batch[i:]])  # this row and the rest of the batch, as stored now
                new_only = self._new_only()
            try:
                if new_only and not p.referred_by:
                    for key in keys:
                        if key in seen:
                            raise _seen_before(key, seen)
                    outcome: Any = "create"
                else:
                    self._referrer(p)
                    outcome = self._decide(row, p, keys, seen)
            except RowError as e:
                outcomes.append(e)
                continue
            for key in keys:
                seen[key] = row.line
            if outcome == "create":
                creates.append((row, p))
                outcomes.append(Outcome.CREATED)
            else:
                outcomes.append(outcome)
        self._create(creates)
        return outcomes

    def _new_only(self) -> bool:
        """A create-mode batch in which no code, phone or e-mail is in the store yet (a new shop's import):
        _decide could only answer 'create' or 'already on an earlier line', so apply answers that itself."""
        return self.options.mode == "create" and not (self.codes or self.phones or self.emails)

    def _referrer(self, p: Prepared) -> None:
        if not p.referred_by:
            return
        try:
            referrer = resolve(self.session, p.referred_by, self.ctx)
        except CrmError as e:
            raise RowError.of(e, "referred_by", p.referred_by) from None
        p.values["referred_by_id"] = referrer.id
        self._data(p).referred_by = p.referred_by  # an update resolves it again through edit_customer

    def _load(self, prepared: list[Prepared]) -> None:
        self.codes = lookups.by_code(self.session, [p.values["code"] for p in prepared if "code" in p.values],
                                     live_only=False)
        self.live_codes = lookups.by_code(self.session, list(self.codes))
        self.phones = lookups.by_contact(self.session, "phone", [x for p in prepared for x in p.phones])
        self.emails = lookups.by_contact(self.session, "email", [x.lower() for p in prepared for x in p.emails])

    @staticmethod
    def _keys(p: Prepared) -> list[tuple[str, str]]:
        keys = [("code", p.values["code"])] if "code" in p.values else []
        return keys + [("phone", v) for v in p.phones] + [("email", v.lower()) for v in p.emails]

    def _decide(self, row: Row, p: Prepared, keys: list[tuple[str, str]], seen: dict[tuple[str, str], int]) -> Any:
        codes, live_codes, phones, emails = self.codes, self.live_codes, self.phones, self.emails
        for key in keys if self.options.mode == "create" else ():
            if key in seen:
                raise _seen_before(key, seen)
        matched: int | None = None
        matched_by = None
        for key in self.options.match:
            found: Any = _NONE
            if key == "code" and "code" in p.values and p.values["code"] in live_codes:
                found = {live_codes[p.values["code"]]}
            elif key == "phone":
                found = _owners(phones, p.phones)
            elif key == "email":
                found = _owners(emails, [v.lower() for v in p.emails])
            if len(found) > 1:
                raise RowError(key, None, _("The row's {key} matches {n} customers ({codes}).").format(
                    key=_(key), n=len(found), codes=", ".join(self._codes(found))) + " " +
                    _("Add a code column to say which one."))
            if found:
                matched, matched_by = next(iter(found)), key
                break
        mode = self.options.mode
        if matched is not None:
            if mode == "create":
                raise RowError(matched_by, None, _("This customer already exists as {code} (same {key}).").format(
                    code=self._codes({matched})[0], key=_(str(matched_by))) + " " +
                    _("Use --mode upsert to update existing customers, or --mode create only for new ones."))
            return self._update(matched, p)
        if mode == "update":
            return Outcome.SKIPPED
        if "code" in p.values and p.values["code"] in codes:
            raise RowError("code", p.values["code"], _("The code {code} is already taken.").format(code=p.values["code"]))
        if not self.options.allow_duplicate:
            for kind, values, owners in (("phone", p.phones, phones), ("email", [e.lower() for e in p.emails], emails)):
                for v in values:
                    if owners.get(v):
                        raise RowError(kind, v, _("The {kind} {value} already belongs to {customer}.").format(
                            kind=_(kind), value=v, customer=", ".join(self._codes(owners[v]))) + " " +
                            _("Use --mode upsert to update that customer, or --allow-duplicate to keep both."))
        return "create"

    def _codes(self, ids: set[int]) -> list[str]:
        return [r[0] for r in self.session.execute(select(C.c.code).where(C.c.id.in_(sorted(ids))).order_by(C.c.code))]

    def _update(self, customer_id: int, p: Prepared) -> str:
        data = self._data(p)
        fields = CustomerInput(**{k: v for k, v in vars(data).items()
                                  if k not in ("phones", "emails", "socials", "tags", "code")})
        change = CustomerEdit(fields=fields, add_phones=data.phones, add_emails=data.emails,
                              add_socials=data.socials)
        try:
            with self.session.begin_nested():  # a rejected update leaves nothing half-done
                customer = get(self.session, customer_id)
                if customer.import_id != self.run_id:  # one this import created goes with the import anyway
                    before_images.keep(self.session, self.run_id, customer_id)
                changed = edit_customer(self.session, customer, change, self.ctx,
                                        allow_duplicate=self.options.allow_duplicate)
                tagged = False
                if p.tags:
                    existing = {t.lower() for t in self._tags(customer_id)}
                    tagged = any(t.lower() not in existing for t in p.tags)
                    if tagged:
                        tag_customer(self.session, customer, p.tags, [])
        except CrmError as e:
            raise RowError.of(e) from None
        return Outcome.UPDATED if changed or tagged else Outcome.UNCHANGED

    def _tags(self, customer_id: int) -> list[str]:
        return [r[0] for r in self.session.execute(select(TAG.c.tag).where(TAG.c.customer_id == customer_id))]

    def _create(self, creates: list[tuple[Row, Prepared]]) -> None:
        """Bulk-insert new customers with their contacts, tags, consents and preferences as plain tuples, and one
        audit row for the batch (``import-batch``: the import and the range of new ids, like purchases). A
        per-customer audit row cost more than the rest of the import together at a million rows; each customer
        row carries ``import_id``, and `crm customer history` / `crm customer data` show the batch row for
        every customer it covers (``audit.import_batch_rows``)."""
        if not creates:
            return
        self._assign_codes([p for _r, p in creates])
        now = utcnow()
        run_id, command = self.run_id, self.command
        customers: list[tuple[Any, ...]] = []
        contacts: list[tuple[Any, ...]] = []
        tags: list[tuple[Any, ...]] = []
        consents: list[tuple[Any, ...]] = []
        prefs: list[tuple[Any, ...]] = []
        first = self.next_id
        for _row, p in creates:
            cid = self.next_id
            self.next_id += 1
            customers.append((cid, p.values["code"], *map(p.values.get, _VALUE_COLUMNS), now, now, None, None,
                              run_id))
            position = 0
            for v in p.phones:
                contacts.append((cid, "phone", v, None, position))
                position += 1
            for v in p.emails:
                contacts.append((cid, "email", v, None, position))
                position += 1
            for network, handle in p.socials:
                contacts.append((cid, "social", handle, network, position))
                position += 1
            if p.tags:
                tags += [(cid, t) for t in p.tags]
            if p.consent:
                consents += [(cid, ch, g, now, command) for ch, g in p.consent.items()]
            if p.prefs:
                prefs += [(cid, k, v) for k, v in p.prefs.items()]
        s = self.session
        insert_rows(s, C, CUSTOMER_COLUMNS, customers)
        insert_rows(s, CP, ("customer_id", "kind", "value", "label", "position"), contacts)
        insert_rows(s, TAG, ("customer_id", "tag"), tags)
        insert_rows(s, CONSENT, ("customer_id", "channel", "granted", "changed_at", "source"), consents)
        insert_rows(s, PREF, ("customer_id", "key", "value"), prefs)
        audit.record(s, **batch_audit("customer", run_id, [{"id": i} for i in range(first, self.next_id)]))

    def _assign_codes(self, prepared: list[Prepared]) -> None:
        """Generated codes (prefix + the id-based number, like `crm customer add`), skipping taken ones."""
        wanting = [p for p in prepared if "code" not in p.values]
        n = self.next_id
        while wanting:
            candidates = [f"{self.prefix}{n + i:06d}" for i in range(len(wanting))]
            taken = set(lookups.by_code(self.session, candidates, live_only=False))
            given = {p.values["code"] for p in prepared if p.code_given}
            wanting.reverse()  # popped from the end: in file order
            for code in candidates:
                n += 1
                if code in taken or code in given:
                    continue
                wanting.pop().values["code"] = code
                if not wanting:
                    break
            wanting.reverse()


_NONE: frozenset[int] = frozenset()


def _seen_before(key: tuple[str, str], seen: dict[tuple[str, str], int]) -> RowError:
    return RowError(key[0], key[1], _("Line {line} of this file already has the {kind} {value}.").format(
        line=seen[key], kind=_(key[0]), value=key[1]))


def _owners(owners: dict[str, set[int]], values: list[str]) -> Any:
    """The customers that have any of ``values`` (most rows of a big file: none, without building a set)."""
    found: Any = _NONE
    for v in values:
        hit = owners.get(v)
        if hit:
            found = found | hit
    return found


def _preferences(text: str) -> dict[str, str]:
    """A preferences cell: a JSON object (crmcli's export) or 'key=value; key=value'."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            raise RowError("preferences", text, _("The preferences are not a valid JSON object.")) from None
        if not isinstance(data, dict):
            raise RowError("preferences", text, _("The preferences are not a valid JSON object."))
        return {str(k): "" if v is None else str(v) for k, v in data.items()}
    out: dict[str, str] = {}
    for item in (x for x in re.split(r"\s*;\s*", stripped) if x):
        key, sep, value = item.partition("=")
        if not sep:
            raise RowError("preferences", text, _("'{value}' is not a preference.").format(value=item) + " " +
                           _("Write KEY=VALUE, e.g. size=M or drink=oat latte."))
        out[key.strip()] = value.strip()
    return out
