"""Interactions (calls, visits, messages) and the customer's timeline."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core.clock import local_to_utc, utc_to_local, utcnow
from crmcli.core.context import StoreContext
from crmcli.core.customers import clean_text, mark_follow_up, parse_channel
from crmcli.core.dates import moment, parse_date, parse_datetime
from crmcli.errors import InvalidInput
from crmcli.i18n import N_, _
from crmcli.store.models import AuditEntry, Customer, Interaction, Purchase


def log_interaction(session: Session, customer: Customer, ctx: StoreContext, *, channel: str, summary: str,
                    outcome: str | None = None, next_date: str | None = None, at: str | None = None) -> Interaction:
    assert customer.id is not None
    ch = parse_channel(channel)
    text = clean_text(summary, "summary")
    if not text:
        raise InvalidInput(_("The summary must not be empty."), field="summary", value=summary,
                           hint=_("Say what happened, e.g. --summary 'Called about the new menu'."))
    if at:
        local = parse_datetime(at, today=ctx.today, field="--at")
        occurred = local_to_utc(local, ctx.tz)
        if utc_to_local(occurred, ctx.tz).date() > ctx.today:
            raise InvalidInput(_("{field} {value} is in the future.").format(field="--at", value=at), field="at",
                               value=at, hint=_("Log contacts that happened; plan the next one with --next."))
    else:
        occurred = moment(ctx.today, ctx.tz)
    follow: date | None = None
    if next_date:
        follow = parse_date(next_date, today=ctx.today, field="--next", future=True)
        if follow < ctx.today:
            raise InvalidInput(_("The next follow-up {date} is in the past.").format(date=follow), field="next",
                               value=next_date, hint=_("Give a future date, e.g. --next 'in 2 weeks' or --next 2025-01-15."))
    old_follow_up = customer.next_follow_up
    row = Interaction(customer_id=customer.id, channel=ch, summary=text,
                      outcome=clean_text(outcome, "outcome", max_len=500) or None if outcome else None,
                      occurred_at=occurred, next_date=follow, actor=audit.actor(), created_at=utcnow())
    session.add(row)
    mark_follow_up(session, customer, follow, utc_to_local(occurred, ctx.tz).date())
    session.flush()
    assert row.id is not None
    audit.record(session, entity="interaction", entity_id=row.id, customer_id=customer.id, action="add",
                 before={"next_follow_up": old_follow_up},
                 after={"channel": ch, "summary": text, "outcome": row.outcome, "next_date": follow,
                        "occurred_at": occurred, "next_follow_up": customer.next_follow_up})
    return row


def recent_interactions(session: Session, customer_id: int, limit: int = 5) -> list[Interaction]:
    t = Interaction.__table__
    stmt = select(Interaction).where(t.c.customer_id == customer_id).order_by(t.c.occurred_at.desc(), t.c.id.desc())
    return list(session.execute(stmt.limit(limit)).scalars())


def timeline(session: Session, customer_id: int, ctx: StoreContext, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Purchases, refunds, interactions and record changes, newest first, with stable keys."""
    from crmcli.core.money import money_str

    events: list[dict[str, Any]] = []
    for p in session.execute(select(Purchase).where(Purchase.customer_id == customer_id)).scalars():
        sign = "" if p.kind == "sale" else "-"
        what = " · ".join(x for x in (p.product, p.category, f"ref {p.ref}" if p.ref else None) if x)
        events.append({"at": p.purchased_at, "type": p.kind, "id": p.id,
                       "summary": f"{sign}{money_str(p.amount_minor, ctx.currency)} {ctx.currency}" + (f" {what}" if what else ""),
                       "amount_minor": p.amount_minor if p.kind == "sale" else -p.amount_minor})
    for i in session.execute(select(Interaction).where(Interaction.customer_id == customer_id)).scalars():
        text = i.summary + (f" → {i.outcome}" if i.outcome else "") + (f" (next {i.next_date})" if i.next_date else "")
        events.append({"at": i.occurred_at, "type": f"interaction:{i.channel}", "id": i.id, "summary": text,
                       "amount_minor": None})
    for a in session.execute(select(AuditEntry).where(AuditEntry.customer_id == customer_id,
                                                      AuditEntry.entity == "customer")).scalars():
        events.append({"at": a.at, "type": f"change:{a.action}", "id": a.id, "summary": _change_text(a),
                       "amount_minor": None})
    imported = session.execute(select(Customer.import_id).where(Customer.id == customer_id)).scalar()
    for a in audit.import_batch_rows(session, "customer", customer_id, imported):  # created by `crm import customers`
        events.append({"at": a.at, "type": "change:add", "id": a.id, "summary": N_("record created"), "amount_minor": None})
    events.sort(key=lambda e: (e["at"], e["id"]), reverse=True)
    return events[:limit] if limit else events


def _change_text(entry: AuditEntry) -> str:
    import json

    if entry.action == "add":
        return N_("record created")  # translated for tables only (cli: Column kind "message")
    after = json.loads(entry.after) if entry.after else {}
    before = json.loads(entry.before) if entry.before else {}

    def show(value: Any) -> str:
        if value is None or value == "" or value == [] or value == {}:
            return "—"
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        if isinstance(value, dict):
            return ", ".join(f"{k}={v}" for k, v in value.items())
        return str(value)

    parts = [f"{k}: {show(before.get(k))} → {show(after.get(k))}" for k in sorted(set(after) | set(before))]
    text = "; ".join(parts)
    return text if len(text) <= 300 else text[:299] + "…"
