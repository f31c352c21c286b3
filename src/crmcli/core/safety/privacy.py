"""Privacy requests: everything stored about one person (subject access), and erasure (`customer forget`).

Erasure replaces the person's record with an anonymous stub: the name becomes ``[erased]``; contacts, tags,
preferences and consents are deleted; birthday, gender, occupation, company, address, city, notes and
follow-up are cleared; interaction summaries and outcomes and refund reasons are emptied; every feature
clears its own free text through hooks.CUSTOMER_ERASE. The customer row, its code, its purchases (amounts,
dates, products) and the points ledger stay, so revenue and points totals do not change.

The audit trail keeps every event but loses the erased values: in the person's earlier audit rows each
personal field (and any text containing an erased value) becomes ``[erased]``. The chain is built over a
salted digest of each payload (core/audit.py), so the stripped rows drop their salt and the erasure's own
audit row records the digest of each stripped payload: ``crm db audit --verify`` still passes, and still
fails when anyone changes a stripped row afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlmodel import Session

from crmcli.core import audit, hooks
from crmcli.core.clock import utc_to_local, utcnow
from crmcli.core.context import StoreContext
from crmcli.core.money import money_str
from crmcli.errors import Conflict, NotFound
from crmcli.i18n import _
from crmcli.store.models import (AuditEntry, Consent, ContactPoint, Customer, CustomerTag, Interaction, Preference,
                                 Purchase)

ERASED = "[erased]"  # stored, not shown translated: the same in every language

# Payload keys whose values are personal (customer fields, contacts, free text of any feature).
PERSONAL_KEYS = frozenset({
    "name", "gender", "birthday", "occupation", "company", "address", "city", "notes", "preferences_text",
    "preferences", "contacts", "phones", "emails", "phone", "email", "social", "wechat", "tags", "summary",
    "outcome", "note", "comment", "text", "message", "resolution", "answers", "pref", "handle",
})

C, CP, I, P, A = (Customer.__table__, ContactPoint.__table__, Interaction.__table__, Purchase.__table__,
                  AuditEntry.__table__)


def find_for_privacy(session: Session, ref: str, ctx: StoreContext) -> Customer:
    """Any customer reference (deleted ones too); an erased customer only by its exact code or id."""
    from crmcli.core import customers

    try:
        return customers.resolve(session, ref, ctx, include_deleted=True)
    except NotFound:
        text = ref.strip()
        cond = [C.c.code == text.upper(), C.c.code == text]
        if text.isdigit() and len(text) <= 9:
            cond.append(C.c.id == int(text))
        found = session.execute(select(C.c.id).where(C.c.erased_at.is_not(None), or_(*cond))).scalar()
        if found is None:
            raise
        return customers.get(session, int(found))


def _iso(value: Any, ctx: StoreContext) -> Any:
    if isinstance(value, datetime):
        return utc_to_local(value, ctx.tz).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _plain(value: Any, ctx: StoreContext) -> Any:
    """JSON-ready: dates ISO, datetimes in the store's zone, Decimals as strings, nested too."""
    from decimal import Decimal

    if isinstance(value, dict):
        return {str(k): _plain(v, ctx) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, ctx) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return _iso(value, ctx)


def customer_data(session: Session, customer: Customer, ctx: StoreContext) -> dict[str, Any]:
    """The subject-access document: record, contacts, consents, purchases, interactions, every feature's
    section (hooks.CUSTOMER_DATA) and the audit rows about the person."""
    cid = customer.id
    assert cid is not None
    record = {k: v for k, v in session.execute(select(C).where(C.c.id == cid)).mappings().one().items()
              if k != "import_id"}
    contacts = [{"kind": r.kind, "value": r.value, "label": r.label} for r in session.execute(
        select(CP.c.kind, CP.c.value, CP.c.label).where(CP.c.customer_id == cid).order_by(CP.c.position, CP.c.id))]
    consent = {r.channel: {"granted": r.granted, "at": r.changed_at, "source": r.source}
               for r in session.execute(select(Consent.__table__).where(Consent.__table__.c.customer_id == cid))}
    preferences = {r.key: r.value for r in session.execute(
        select(Preference.__table__).where(Preference.__table__.c.customer_id == cid))}
    tags = sorted(r[0] for r in session.execute(select(CustomerTag.__table__.c.tag)
                                                  .where(CustomerTag.__table__.c.customer_id == cid)))
    purchases = [{"id": r.id, "kind": r.kind, "amount": money_str(r.amount_minor if r.kind == "sale" else -r.amount_minor,
                                                                    ctx.currency),
                  "date": r.purchased_on, "purchased_at": r.purchased_at, "product": r.product, "category": r.category,
                  "quantity": r.quantity, "channel": r.channel, "ref": r.ref, "refund_of": r.refund_of_id, "note": r.note}
                 for r in session.execute(select(P).where(P.c.customer_id == cid).order_by(P.c.purchased_at, P.c.id))]
    interactions = [{"id": r.id, "at": r.occurred_at, "channel": r.channel, "summary": r.summary, "outcome": r.outcome,
                     "next_date": r.next_date, "recorded_by": r.actor}
                    for r in session.execute(select(I).where(I.c.customer_id == cid).order_by(I.c.occurred_at, I.c.id))]
    doc: dict[str, Any] = {"exported_at": utcnow(), "currency": ctx.currency, "customer": record, "contacts": contacts,
                           "consent": consent, "preferences": preferences, "tags": tags, "purchases": purchases,
                           "interactions": interactions}
    for spec in hooks.CUSTOMER_DATA:
        section, data = hooks.load(spec)(session, cid)
        doc[section] = data
    doc["audit"] = [{"id": r.id, "at": r.at, "actor": r.actor, "command": r.command, "entity": r.entity,
                     "entity_id": r.entity_id, "action": r.action,
                     "before": json.loads(r.before) if r.before else None,
                     "after": json.loads(r.after) if r.after else None}
                    for r in _audit_about(session, customer)]
    return _plain(doc, ctx)  # type: ignore[no-any-return]


def _audit_about(session: Session, customer: Customer) -> list[Any]:
    """The person's audit rows, with the batch rows of the import that created them (no per-customer row)."""
    rows = list(session.execute(select(A).where(_about(customer.id)).order_by(A.c.id)))  # type: ignore[arg-type]
    rows += audit.import_batch_rows(session, "customer", customer.id, customer.import_id)  # type: ignore[arg-type]
    return sorted(rows, key=lambda r: r.id)


def _about(cid: int) -> Any:
    return or_(A.c.customer_id == cid, (A.c.entity == "customer") & (A.c.entity_id == cid))


def erased_values(session: Session, customer_id: int) -> list[str]:
    """The person's identifying strings (name, contacts, free text) to strip wherever they occur."""
    row = session.execute(select(C).where(C.c.id == customer_id)).mappings().one()
    values = [row[k] for k in ("name", "address", "company", "notes", "preferences_text") if row[k]]
    values += [r[0] for r in session.execute(select(CP.c.value).where(CP.c.customer_id == customer_id))]
    # Short strings ("Li", "A") would strip unrelated words everywhere; they are caught by their keys instead.
    return sorted({v for v in values if len(v) >= 3}, key=len, reverse=True)


def strip(value: Any, secrets_: Iterable[str], key: str | None = None) -> Any:
    """A payload with personal fields and any text containing an erased value replaced by [erased]."""
    if key is not None and key in PERSONAL_KEYS and value not in (None, "", [], {}):
        return ERASED
    if isinstance(value, dict):
        return {k: strip(v, secrets_, k) for k, v in value.items()}
    if isinstance(value, list):
        return [strip(v, secrets_) for v in value]
    if isinstance(value, str) and any(s in value for s in secrets_):
        return ERASED
    return value


@dataclass(frozen=True)
class Erasure:
    customer_id: int
    code: str
    audit_rows_stripped: int


def forget(session: Session, customer: Customer, ctx: StoreContext) -> Erasure:
    """Erase one person (see the module's docstring); one transaction, recorded in the audit trail."""
    cid = customer.id
    assert cid is not None
    if customer.erased_at is not None:
        raise Conflict(_("{code} has already been erased.").format(code=customer.code), hint=_("Nothing to do."))
    secrets_ = erased_values(session, cid)
    now = utcnow()
    session.execute(update(C).where(C.c.id == cid).values(
        name=ERASED, gender=None, birthday=None, occupation=None, company=None, address=None, city=None,
        preferred_channel=None, preferences_text=None, notes=None, next_follow_up=None, erased_at=now, updated_at=now))
    for table in (ContactPoint.__table__, Preference.__table__, Consent.__table__, CustomerTag.__table__):
        session.execute(delete(table).where(table.c.customer_id == cid))
    session.execute(update(I).where(I.c.customer_id == cid).values(summary="", outcome=None))
    session.execute(update(P).where(P.c.customer_id == cid, P.c.note.is_not(None)).values(note=None))
    for spec in hooks.CUSTOMER_ERASE:
        hooks.load(spec)(session, cid)
    vouched: dict[str, str] = {}
    changes = []
    for r in session.execute(select(A.c.id, A.c.before, A.c.after).where(_about(cid)).order_by(A.c.id)).all():
        before = _strip_text(r.before, secrets_)
        after = _strip_text(r.after, secrets_)
        if (before, after) == (r.before, r.after):
            continue
        vouched[str(r.id)] = audit.payload_digest(None, before, after)
        changes.append({"b_id": r.id, "b_before": before, "b_after": after})
    if changes:
        from sqlalchemy import bindparam

        session.execute(update(A).where(A.c.id == bindparam("b_id")).values(
            before=bindparam("b_before"), after=bindparam("b_after"), payload_salt=None), changes)
    audit.record(session, entity="customer", entity_id=cid, customer_id=cid, action=audit.ERASE_ACTION,
                 after={"erased_at": now.isoformat(), audit.REDACTED_KEY: vouched})
    session.expire_all()
    return Erasure(cid, customer.code, len(changes))


def _strip_text(text: str | None, secrets_: list[str]) -> str | None:
    if text is None:
        return None
    return audit.dumps(strip(json.loads(text), secrets_))
