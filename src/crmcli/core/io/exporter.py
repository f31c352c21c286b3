"""Exports: full customer records, purchases and interactions as CSV (or vCard), ready to be imported again.

Cells that a spreadsheet would run as a formula (starting with = + - @, a tab or a carriage return) get a
leading apostrophe, which spreadsheets hide and crmcli's importer removes. Two kinds of cells are left
alone because they cannot carry a formula and the apostrophe would only get in the way: an E.164 phone
number (``+8613800138000``: a plus and digits only; also a list of them, ``+86...; +86...``) and a plain
signed number (``-12.50``, a refund).
"""

from __future__ import annotations

import csv
import json
import re
from itertools import islice
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TextIO

from sqlalchemy import func, select
from sqlmodel import Session

from crmcli.core.clock import start_of_day_utc, utc_to_local
from crmcli.core.context import StoreContext
from crmcli.core.contacts import mask_email, mask_phone
from crmcli.core.customers import C, CP, ListFilter, chunked, iter_customers
from crmcli.core.money import money_str
from crmcli.store.models import Consent, Interaction, Preference, Purchase

CUSTOMER_COLUMNS = ("code", "name", "phone", "email", "gender", "birthday", "occupation", "company", "address",
                    "city", "source", "referred_by", "preferred_channel", "tags", "social", "consent_email",
                    "consent_sms", "consent_phone", "consent_wechat", "preferences", "preferences_text", "notes",
                    "next_follow_up", "created_at", "orders", "net_spent", "last_purchase")
PURCHASE_COLUMNS = ("id", "date", "customer_code", "customer_name", "kind", "amount", "product", "category",
                    "quantity", "channel", "ref", "refund_of", "refund_of_ref", "purchased_at", "note")
INTERACTION_COLUMNS = ("id", "customer_code", "customer_name", "channel", "summary", "outcome", "occurred_at",
                       "next_date", "actor")

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")
_SAFE = re.compile(r"^(?:\+\d{6,15}(?:; \+\d{6,15})*|[+-]?\d+(?:\.\d+)?)$")


def neutralize(value: str) -> str:
    """Spreadsheet formula injection: prefix an apostrophe to a cell a spreadsheet could run as a formula.
    A leading apostrophe is escaped too, so that the importer's un-escaping is exact."""
    if value and value.startswith(_TRIGGERS) and not _SAFE.match(value):
        return "'" + value
    return value


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return neutralize(str(value))


@dataclass
class Target:
    encoding: str = "utf-8"
    bom: bool = False
    delimiter: str = ","


def write_csv(out: TextIO, columns: Iterable[str], rows: Iterable[dict[str, Any]], delimiter: str = ",") -> int:
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    cols = list(columns)
    writer.writerow(cols)
    count = 0
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in cols])
        count += 1
    return count


# ------------------------------------------------------------------------------------------ customers

def customer_records(session: Session, flt: ListFilter, ctx: StoreContext, *, mask: bool = False,
                     chunk: int = 2000) -> Iterator[dict[str, Any]]:
    """Full records of the customers ``crm customer list`` would show with the same filters, in its order:
    every phone, e-mail and handle, consent, preferences and tags."""
    stream = iter_customers(session, flt, ctx, chunk=chunk)
    while part := list(islice(stream, chunk)):
        ids = [r["id"] for r in part]
        details = _details(session, ids)
        for r in part:
            d = details[r["id"]]
            phones = [mask_phone(p) for p in d["phones"]] if mask else d["phones"]
            emails = [mask_email(e) for e in d["emails"]] if mask else d["emails"]
            consent = d["consent"]
            yield {
                "id": r["id"], "code": r["code"], "name": r["name"], "phone": "; ".join(phones) or None,
                "email": "; ".join(emails) or None, "phones": phones, "emails": emails, "gender": r["gender"],
                "birthday": r["birthday"], "occupation": d["occupation"], "company": d["company"],
                "address": d["address"], "city": r["city"], "source": r["source"], "referred_by": d["referred_by"],
                "preferred_channel": d["preferred_channel"], "tags": "; ".join(r["tags"]) or None,
                "tag_list": r["tags"], "social": "; ".join(d["socials"]) or None, "socials": d["socials"],
                **{f"consent_{ch}": ("yes" if consent[ch] else "no") if ch in consent else None
                   for ch in ("email", "sms", "phone", "wechat")},
                "consent": consent,
                "preferences": json.dumps(d["preferences"], ensure_ascii=False, sort_keys=True) if d["preferences"] else None,
                "preference_map": d["preferences"], "preferences_text": d["preferences_text"], "notes": d["notes"],
                "next_follow_up": r["next_follow_up"],
                "created_at": utc_to_local(r["created_at"], ctx.tz).isoformat(timespec="seconds") if r["created_at"] else None,
                "orders": r["orders"], "net_spent": money_str(r["net_spent_minor"], ctx.currency),
                "last_purchase": r["last_purchase"],
            }


def _details(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {i: {"phones": [], "emails": [], "socials": [], "consent": {}, "preferences": {}}
                                      for i in ids}
    referrer = C.alias("referrer")
    for r in session.execute(select(C.c.id, C.c.occupation, C.c.company, C.c.address, C.c.preferred_channel,
                                    C.c.preferences_text, C.c.notes, referrer.c.code.label("referred_by"))
                             .outerjoin(referrer, referrer.c.id == C.c.referred_by_id).where(C.c.id.in_(ids))):
        out[r.id].update(occupation=r.occupation, company=r.company, address=r.address,
                         preferred_channel=r.preferred_channel, preferences_text=r.preferences_text, notes=r.notes,
                         referred_by=r.referred_by)
    for r in session.execute(select(CP.c.customer_id, CP.c.kind, CP.c.value, CP.c.label)
                             .where(CP.c.customer_id.in_(ids)).order_by(CP.c.customer_id, CP.c.position, CP.c.id)):
        key = {"phone": "phones", "email": "emails"}.get(r.kind)
        if key:
            out[r.customer_id][key].append(r.value)
        else:
            out[r.customer_id]["socials"].append(f"{r.label}:{r.value}")
    consent = Consent.__table__
    for r in session.execute(select(consent).where(consent.c.customer_id.in_(ids))):
        out[r.customer_id]["consent"][r.channel] = bool(r.granted)
    pref = Preference.__table__
    for r in session.execute(select(pref).where(pref.c.customer_id.in_(ids)).order_by(pref.c.key)):
        out[r.customer_id]["preferences"][r.key] = r.value
    return out


def vcard_records(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for r in records:
        yield {"code": r["code"], "name": r["name"], "phones": r["phones"], "emails": r["emails"],
               "birthday": r["birthday"], "gender": r["gender"], "company": r["company"],
               "occupation": r["occupation"], "address": r["address"], "city": r["city"], "notes": r["notes"],
               "tags": r["tag_list"], "source": r["source"], "preferred_channel": r["preferred_channel"],
               "preferences_text": r["preferences_text"], "next_follow_up": r["next_follow_up"],
               "referred_by": r["referred_by"], "consent": r["consent"], "socials": r["socials"],
               "preferences": r["preference_map"]}


# ------------------------------------------------------------------------------------------ purchases

def purchase_records(rows: Iterable[dict[str, Any]], session: Session, ctx: StoreContext) -> Iterator[dict[str, Any]]:
    """`crm purchase list` rows (oldest first, so that a sale comes before its refunds), plus the ref of the
    refunded sale, which is what links a refund to its sale when the file is imported elsewhere."""
    P = Purchase.__table__
    buffer: list[dict[str, Any]] = []

    def drain() -> Iterator[dict[str, Any]]:
        sale_ids = [r["refund_of"] for r in buffer if r["refund_of"]]
        refs: dict[int, str | None] = {}
        for part in chunked(sale_ids, 900):
            refs.update({i: ref for i, ref in session.execute(select(P.c.id, P.c.ref).where(P.c.id.in_(part)))})
        for r in buffer:
            yield {**r, "amount": money_str(r["amount_minor"], ctx.currency),
                   "purchased_at": utc_to_local(r["purchased_at"], ctx.tz).isoformat(timespec="seconds"),
                   "refund_of_ref": refs.get(r["refund_of"]) if r["refund_of"] else None}
        buffer.clear()

    for row in rows:
        buffer.append(row)
        if len(buffer) >= 2000:
            yield from drain()
    yield from drain()


# ------------------------------------------------------------------------------------------ interactions

def interaction_records(session: Session, ctx: StoreContext, *, customer_id: int | None = None,
                        since: date | None = None, until: date | None = None, channel: str | None = None,
                        limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Interactions (oldest first), filtered like a customer's history: by customer, day range in the store's
    zone (inclusive) and channel."""
    from datetime import timedelta

    I = Interaction.__table__  # noqa: E741
    stmt = (select(I, C.c.code, C.c.name).join(C, C.c.id == I.c.customer_id)
            .where(C.c.erased_at.is_(None)).order_by(I.c.occurred_at, I.c.id))
    if customer_id is not None:
        stmt = stmt.where(I.c.customer_id == customer_id)
    if since:
        stmt = stmt.where(I.c.occurred_at >= start_of_day_utc(since, ctx.tz))
    if until:
        stmt = stmt.where(I.c.occurred_at < start_of_day_utc(until + timedelta(days=1), ctx.tz))
    if channel:
        stmt = stmt.where(func.lower(I.c.channel) == channel.strip().lower())
    if limit:
        stmt = stmt.limit(limit)
    for r in session.execute(stmt).mappings():
        yield {"id": r["id"], "customer_code": r["code"], "customer_name": r["name"], "channel": r["channel"],
               "summary": r["summary"], "outcome": r["outcome"],
               "occurred_at": utc_to_local(r["occurred_at"], ctx.tz).isoformat(timespec="seconds"),
               "next_date": r["next_date"], "actor": r["actor"]}
