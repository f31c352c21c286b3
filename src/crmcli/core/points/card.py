"""The points slot on the customer card and the points section of a privacy export."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from crmcli.core.card import Slot
from crmcli.core.context import StoreContext
from crmcli.core.points import ledger
from crmcli.core.points import rules as rules_mod
from crmcli.i18n import _


def card_slot(session: Session, customer_id: int, ctx: StoreContext) -> Slot | None:
    """hooks.CARD_SLOTS["points"]: '1,250 pts · 300 expire 2025-01-31'; None when the store does not use
    points and the customer has none."""
    if not ledger.has_rows(session, customer_id) and not rules_mod.load(session).enabled:
        return None
    s = ledger.summary(session, customer_id, ctx.today)
    text = _("{points} pts").format(points=f"{s.spendable + s.locked:,}")
    if s.locked:
        text += " " + _("({locked} locked)").format(locked=f"{s.locked:,}")
    nxt = s.next_expiry
    if nxt:
        text += " · " + _("{points} expire {date}").format(points=f"{nxt[1]:,}", date=nxt[0].isoformat())
    if s.debt:
        text += " · " + _("owes {points}").format(points=f"{s.debt:,}")
    style = "bad" if s.debt else ("warn" if nxt and (nxt[0] - ctx.today).days <= 30 else None)
    return Slot(text=text, data=s.as_dict(), style=style)


def customer_data(session: Session, customer_id: int) -> tuple[str, Any]:
    """hooks.CUSTOMER_DATA: the customer's whole points ledger for a privacy export."""
    from crmcli.core.points.operations import history

    rows = history(session, customer_id)
    return "points", [{k: v for k, v in r.items() if k not in ("actor",)} for r in rows]
