"""The churn slot of the customer card (hooks.CARD_SLOTS["churn"]).

Risk is assessed live for the card's as-of date (same rules as `crm churn scan`); P(alive), expected
purchases and CLV come from the last `crm churn score`; the next purchase from the customer's own rhythm.
JSON keys (``card show --format json`` → "churn"): risk, reasons, p_alive, clv, expected_purchases,
next_purchase, plus scored_as_of, horizon_days, clv_months and likely_products.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from crmcli.core.card import Slot
from crmcli.core.context import StoreContext
from crmcli.i18n import _, shown


def customer_view(session: Session, customer_id: int, ctx: StoreContext) -> dict[str, Any] | None:
    """Everything the churn feature knows about one customer (None: no purchase and no score)."""
    from crmcli.core.churn import nextbuy, scan
    from crmcli.core.churn.modeling import last_score_run
    from crmcli.core.churn.rules import LEVELS
    from crmcli.core.money import money_str
    from crmcli.store.models_churn import ChurnScore

    a = scan.assess(session, ctx, customers=[customer_id])
    has_purchases = len(a.ids) > 0
    score = session.get(ChurnScore, customer_id)
    if not has_purchases and score is None:
        return None
    run = last_score_run(session) if score else None
    reasons = a.reasons.get(customer_id, [])
    nxt = nextbuy.for_customer(session, customer_id, ctx.today) if has_purchases else None
    view: dict[str, Any] = {
        "risk": LEVELS[int(a.rank[0])] if has_purchases else None,
        "reasons": [{**r, "text": scan.reason_text(r, ctx.currency)} for r in reasons],
        "skipped_rules": a.skipped,
        "p_alive": round(score.p_alive, 4) if score else None,
        "expected_purchases": round(score.expected_purchases, 3) if score else None,
        "clv": money_str(score.clv_minor, ctx.currency) if score and score.clv_minor is not None else None,
        "clv_minor": score.clv_minor if score else None,
        "order_value": money_str(score.order_value_minor, ctx.currency)
        if score and score.order_value_minor is not None else None,
        "scored_as_of": run["as_of"] if run else None,
        "horizon_days": run["horizon_days"] if run else None,
        "clv_months": run["clv_months"] if run else None,
        "next_purchase": nxt["expected"] if nxt else None,
        "usual_interval_days": nxt["usual_days"] if nxt else None,
        "likely_products": [{"product": p, "score": round(v, 3)} for p, v in nxt["likely"]] if nxt else [],
    }
    return view


def card_slot(session: Session, customer_id: int, ctx: StoreContext) -> Slot | None:
    """'risk high: no purchase for 142 days, 3.1× their usual interval of 46 days · P(alive) 23 % ·
    CLV ¥1,234 · next ~2025-07-01'."""
    from crmcli.core.churn.rules import level_label
    from crmcli.core.money import format_money

    view = customer_view(session, customer_id, ctx)
    if view is None:
        return None
    parts = []
    if view["risk"] is not None:
        text = _("risk {level}").format(level=level_label(view["risk"]))
        if view["reasons"]:
            text += ": " + shown(view["reasons"][0]["text"])
            if len(view["reasons"]) > 1:
                text += " " + _("(+{n} more)").format(n=len(view["reasons"]) - 1)
        parts.append(text)
    if view["p_alive"] is not None:
        parts.append(_("P(alive) {pct} %").format(pct=round(view["p_alive"] * 100)))
    if view["clv_minor"] is not None:
        parts.append(_("CLV {amount}").format(amount=format_money(view["clv_minor"], ctx.currency)))
    if view["next_purchase"] is not None:
        parts.append(_("next ~{date}").format(date=view["next_purchase"].isoformat()))
    style = {"high": "bad", "medium": "warn", "none": "good"}.get(view["risk"] or "")
    data = {k: v for k, v in view.items() if k != "clv_minor"}
    return Slot(text=" · ".join(parts), data=data, style=style)
