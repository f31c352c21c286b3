"""The customer card's data: identity and contact, purchase summary, preferences, interactions, and the
at-a-glance slots (tier, points, satisfaction, churn risk) that features fill in through hooks.CARD_SLOTS.

The same data renders as a Rich panel (crmcli.render.card) and as JSON for scripts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from crmcli.core import hooks, purchases
from crmcli.core.clock import utc_to_local
from crmcli.core.context import StoreContext
from crmcli.core.dates import age_on
from crmcli.core.interactions import recent_interactions
from crmcli.store.models import Consent, ContactPoint, Customer, CustomerTag, Preference


@dataclass
class Slot:
    """One at-a-glance value: ``text`` for people, ``data`` (stable keys) for JSON."""

    text: str
    data: dict[str, Any] = field(default_factory=dict)
    style: str | None = None  # a hint for renderers: "good", "warn", "bad"


@dataclass
class CardData:
    customer: dict[str, Any]
    contacts: dict[str, Any]
    consent: dict[str, Any]
    purchases: dict[str, Any]
    recent_purchases: list[dict[str, Any]]
    preferences: dict[str, str]
    preferences_text: str | None
    tags: list[str]
    interactions: list[dict[str, Any]]
    next_follow_up: Any
    slots: dict[str, Slot | None]
    currency: str


def build_card(session: Session, customer: Customer, ctx: StoreContext, *, recent: int = 5) -> CardData:
    assert customer.id is not None
    cid = customer.id
    referred = session.get(Customer, customer.referred_by_id) if customer.referred_by_id else None
    contacts: dict[str, Any] = {"phones": [], "emails": [], "social": []}
    cp = ContactPoint.__table__
    for row in session.execute(select(cp).where(cp.c.customer_id == cid).order_by(cp.c.position, cp.c.id)).mappings():
        if row["kind"] == "phone":
            contacts["phones"].append(row["value"])
        elif row["kind"] == "email":
            contacts["emails"].append(row["value"])
        else:
            contacts["social"].append({"network": row["label"], "handle": row["value"]})
    contacts["preferred_channel"] = customer.preferred_channel
    consent = {c.channel: {"granted": c.granted, "at": utc_to_local(c.changed_at, ctx.tz), "source": c.source}
               for c in session.execute(select(Consent).where(Consent.customer_id == cid)
                                        .order_by(Consent.channel)).scalars()}
    pref_t = Preference.__table__
    prefs = {r.key: r.value for r in session.execute(select(pref_t).where(pref_t.c.customer_id == cid).order_by(pref_t.c.key))}
    tag_t = CustomerTag.__table__
    tags = [r[0] for r in session.execute(select(tag_t.c.tag).where(tag_t.c.customer_id == cid).order_by(tag_t.c.tag))]
    interactions = [{"at": utc_to_local(i.occurred_at, ctx.tz), "channel": i.channel,
                     "summary": i.summary, "outcome": i.outcome, "next_date": i.next_date}
                    for i in recent_interactions(session, cid, limit=3)]
    slots: dict[str, Slot | None] = {}
    for name, spec in hooks.CARD_SLOTS.items():
        slots[name] = hooks.load(spec)(session, cid, ctx) if spec else None
    return CardData(
        customer={"id": cid, "code": customer.code, "name": customer.name, "gender": customer.gender,
                  "birthday": customer.birthday,
                  "age": age_on(customer.birthday, ctx.today) if customer.birthday else None,
                  "occupation": customer.occupation, "company": customer.company, "address": customer.address,
                  "city": customer.city, "source": customer.source,
                  "referred_by": ({"id": referred.id, "code": referred.code, "name": referred.name}
                                  if referred else None),
                  "notes": customer.notes, "created_at": utc_to_local(customer.created_at, ctx.tz),
                  "updated_at": utc_to_local(customer.updated_at, ctx.tz),
                  "deleted": customer.deleted_at is not None},
        contacts=contacts, consent=consent, purchases=purchases.summary(session, cid),
        recent_purchases=purchases.list_purchases(session, ctx, customer_id=cid, limit=recent),
        preferences=prefs, preferences_text=customer.preferences_text, tags=tags, interactions=interactions,
        next_follow_up=customer.next_follow_up, slots=slots, currency=ctx.currency)


def card_json(card: CardData) -> dict[str, Any]:
    """The card's data with stable keys (README: 'JSON keys')."""
    from crmcli.core.money import money_str

    cur = card.currency
    summary = dict(card.purchases)
    for key in ("gross_minor", "refunded_minor", "net_minor", "average_minor"):
        summary[key.removesuffix("_minor")] = money_str(summary.pop(key), cur)
    return {
        "customer": card.customer, "contacts": card.contacts, "consent": card.consent,
        "purchases": {**summary, "currency": cur,
                      "recent": [{"id": p["id"], "date": p["date"], "kind": p["kind"],
                                  "amount": money_str(p["amount_minor"], cur), "product": p["product"],
                                  "category": p["category"], "ref": p["ref"]} for p in card.recent_purchases]},
        "preferences": card.preferences, "preferences_text": card.preferences_text, "tags": card.tags,
        "interactions": card.interactions, "next_follow_up": card.next_follow_up,
        "tier": card.slots["tier"].data if card.slots.get("tier") else None,
        "points": card.slots["points"].data if card.slots.get("points") else None,
        "satisfaction": card.slots["satisfaction"].data if card.slots.get("satisfaction") else None,
        "churn": card.slots["churn"].data if card.slots.get("churn") else None,
    }


def mask_card_json(payload: dict[str, Any]) -> dict[str, Any]:
    """Partly hide the phones and e-mails of ``card_json`` output in place (for --mask / privacy.mask)."""
    from crmcli.core.contacts import mask_email, mask_phone

    payload["contacts"]["phones"] = [mask_phone(p) for p in payload["contacts"]["phones"]]
    payload["contacts"]["emails"] = [mask_email(e) for e in payload["contacts"]["emails"]]
    return payload
