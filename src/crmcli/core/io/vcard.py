"""vCard 3.0 / 4.0 (RFC 2426 / RFC 6350) in and out, through the vobject library.

Reading: the file is cut into cards on BEGIN:VCARD / END:VCARD lines (so a broken card is one rejected row
with its line number, not a failed file) and each card is parsed by vobject into the same field → values
shape the CSV column plan produces. Writing: one card per customer; crmcli-only data travels in X-CRM-*
properties so that an export imported again keeps codes, consent and preferences.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from crmcli.errors import InvalidInput
from crmcli.i18n import _

GENDERS_OUT = {"female": "F", "male": "M", "other": "O"}
GENDERS_IN = {"f": "female", "m": "male", "o": "other", "n": None, "u": None}


def split_cards(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line where the card starts, its text) for every BEGIN:VCARD ... END:VCARD block."""
    start = 0
    buf: list[str] = []
    inside = False
    for number, line in enumerate(lines, 1):
        head = line.strip().upper()
        if head == "BEGIN:VCARD" and not inside:
            inside, start, buf = True, number, [line]
            continue
        if inside:
            buf.append(line)
            if head == "END:VCARD":
                inside = False
                yield start, "".join(buf)
    if inside:
        yield start, "".join(buf)  # unterminated: vobject rejects it with a reason


def card_fields(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    """One card → ({field: value or [values]}, {preference key: value}); InvalidInput when unreadable."""
    import vobject

    try:
        card = vobject.readOne(text, allowQP=True)
    except Exception as e:  # noqa: BLE001 - vobject raises ParseError, ValueError, ... on bad cards
        raise InvalidInput(_("This vCard cannot be read ({error}).").format(error=str(e).strip() or type(e).__name__),
                           field="vcard", value=text.splitlines()[1] if len(text.splitlines()) > 1 else text,
                           hint=_("Check the card's lines (each property as NAME:VALUE).")) from None
    out: dict[str, Any] = {}
    prefs: dict[str, str] = {}

    def values(name: str) -> list[Any]:
        return [c.value for c in card.contents.get(name, [])]

    def first(name: str) -> Any:
        found = values(name)
        return found[0] if found else None

    fn = first("fn")
    name = first("n")
    if isinstance(fn, str) and fn.strip():
        out["name"] = fn.strip()
    elif name is not None:
        given = " ".join(x for x in _parts(getattr(name, "given", "")) if x)
        family = " ".join(x for x in _parts(getattr(name, "family", "")) if x)
        if given:
            out["first_name"] = given
        if family:
            out["last_name"] = family
    phones = [str(v).strip() for v in values("tel") if str(v).strip()]
    if phones:
        out["phone"] = [p[4:] if p.lower().startswith("tel:") else p for p in phones]
    emails = [str(v).strip() for v in values("email") if str(v).strip()]
    if emails:
        out["email"] = emails
    for prop, target in (("bday", "birthday"), ("title", "occupation"), ("note", "notes"),
                         ("x-crm-code", "code"), ("x-crm-source", "source"),
                         ("x-crm-preferred-channel", "preferred_channel"),
                         ("x-crm-preferences-text", "preferences_text"), ("x-crm-follow-up", "next_follow_up"),
                         ("x-crm-referred-by", "referred_by")):
        value = first(prop)
        if isinstance(value, str) and value.strip():
            out[target] = value.strip()
    org = first("org")
    if org:
        out["company"] = "; ".join(x for x in _parts(org) if x)
    gender = first("gender") or first("x-gender")
    if isinstance(gender, str) and gender.strip():
        letter = gender.split(";")[0].strip().lower()
        if letter in GENDERS_IN:
            if GENDERS_IN[letter]:
                out["gender"] = GENDERS_IN[letter]
        else:
            out["gender"] = gender.strip()
    adr = first("adr")
    if adr is not None:
        city = " ".join(_parts(getattr(adr, "city", "")))
        if city:
            out["city"] = city
        street = ", ".join(x for x in (*_parts(getattr(adr, "street", "")), *_parts(getattr(adr, "region", "")),
                                       *_parts(getattr(adr, "code", "")), *_parts(getattr(adr, "country", ""))) if x)
        if street:
            out["address"] = [street]
    tags = [t.strip() for v in values("categories") for t in _parts(v) if t.strip()]
    if tags:
        out["tags"] = tags
    for value in values("x-crm-consent"):  # email=yes
        channel, _sep, answer = str(value).partition("=")
        if channel.strip():
            out[f"consent_{channel.strip().lower()}"] = answer.strip()
    socials = [str(v).strip() for v in values("x-crm-social") if str(v).strip()]
    if socials:
        out["social"] = socials
    raw_prefs = first("x-crm-preferences")
    if isinstance(raw_prefs, str) and raw_prefs.strip():
        out["preferences"] = raw_prefs.strip()
    return out, prefs


def _parts(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value]
    return [str(value).strip()]


def write_cards(customers: Iterable[dict[str, Any]], out: TextIO, *, version: str = "4.0") -> int:
    """One card per customer dict (the exporter's full record); returns how many were written."""
    import vobject

    count = 0
    for c in customers:
        card = vobject.vCard()
        card.add("version").value = version
        card.add("fn").value = c["name"]
        card.add("n").value = vobject.vcard.Name(family="", given=c["name"]) if version == "3.0" else \
            vobject.vcard.Name(family="", given="")
        for phone in c.get("phones") or []:
            tel = card.add("tel")
            tel.value = phone
        for email in c.get("emails") or []:
            card.add("email").value = email
        if c.get("birthday"):
            card.add("bday").value = str(c["birthday"])
        if c.get("gender") and version != "3.0":
            card.add("gender").value = GENDERS_OUT.get(c["gender"], "O")
        if c.get("company"):
            card.add("org").value = [c["company"]]
        if c.get("occupation"):
            card.add("title").value = c["occupation"]
        if c.get("address") or c.get("city"):
            card.add("adr").value = vobject.vcard.Address(street=c.get("address") or "", city=c.get("city") or "")
        if c.get("notes"):
            card.add("note").value = c["notes"]
        if c.get("tags"):
            card.add("categories").value = list(c["tags"])
        card.add("x-crm-code").value = c["code"]
        for key, prop in (("source", "x-crm-source"), ("preferred_channel", "x-crm-preferred-channel"),
                          ("preferences_text", "x-crm-preferences-text"), ("next_follow_up", "x-crm-follow-up"),
                          ("referred_by", "x-crm-referred-by")):
            if c.get(key):
                card.add(prop).value = str(c[key])
        if c.get("gender") and version == "3.0":
            card.add("x-gender").value = GENDERS_OUT.get(c["gender"], "O")
        for channel, granted in sorted((c.get("consent") or {}).items()):
            card.add("x-crm-consent").value = f"{channel}={'yes' if granted else 'no'}"
        for social in c.get("socials") or []:
            card.add("x-crm-social").value = social
        if c.get("preferences"):
            card.add("x-crm-preferences").value = json.dumps(c["preferences"], ensure_ascii=False, sort_keys=True)
        out.write(card.serialize())
        count += 1
    return count
