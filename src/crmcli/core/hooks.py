"""Extension points between features, named as "module:function" strings and imported on use.

A feature plugs in by adding its function here; callers (purchases, the card) never change:
- PURCHASE_HOOKS: called as fn(session, purchase_ids, ctx) in the same transaction after sales or
  refunds are recorded (by command or import), e.g. to earn or reverse loyalty points.
- CARD_SLOTS: slot name → fn(session, customer_id, ctx) returning a Slot or None, for the card's
  at-a-glance row (tier, points, satisfaction, churn risk).
- CUSTOMER_DATA: fn(session, customer_id) → (section name, JSON-able data) for privacy exports.
- CLASSIFICATION: fn(session, customer_id) → {"tier": "A"|"B"|"C"|None, "level": name|None,
  "points_multiplier": Decimal|None} (set by the tiers feature; the points feature reads it).
- CUSTOMER_ERASE: fn(session, customer_id) called by `customer forget` to erase feature-owned personal data
  (free-text comments, survey answers' text, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

PURCHASE_HOOKS: list[str] = ["crmcli.core.points.earning:on_purchases"]

CARD_SLOTS: dict[str, str | None] = {
    "tier": "crmcli.core.tiers:card_slot",
    "points": "crmcli.core.points.card:card_slot",
    "satisfaction": "crmcli.core.surveys:card_slot",
    "churn": "crmcli.core.churn.card:card_slot",
}

CUSTOMER_DATA: list[str] = ["crmcli.core.points.card:customer_data", "crmcli.core.surveys:customer_data",
                             "crmcli.core.feedback:customer_data", "crmcli.core.care:customer_data"]

CLASSIFICATION: str | None = "crmcli.core.tiers:classification"

# fn(session, start: date, end: date) -> a SQLAlchemy select of (customer_id, points earned between the two
# business dates, inclusive), one row per customer; read by membership levels with level.basis = points
# (set by the points feature).
POINTS_EARNED: str | None = "crmcli.core.points.earning:points_earned"

CUSTOMER_ERASE: list[str] = ["crmcli.core.surveys:erase_customer", "crmcli.core.feedback:erase_customer",
                              "crmcli.core.care:erase_customer"]


def load(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    return getattr(import_module(module), name)  # type: ignore[no-any-return]


def warm(specs: list[str | None]) -> None:
    """Import the hooks' modules now, before a write transaction: an import inside one holds the store's
    write lock for its duration (tenths of a second on a busy machine, while other crm processes wait)."""
    for spec in specs:
        if spec:
            load(spec)
