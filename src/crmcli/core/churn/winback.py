"""Win-back action lists (`crm churn winback`): who to contact, how, and with which words.

Risk is assessed live as of the as-of date (the `crm churn scan` rules). The suggested action depends on
the strongest reason and the customer's tier (hooks.CLASSIFICATION; no tier counts as C):

======================================  ============  ============================================
strongest reason                        tier          action
======================================  ============  ============================================
complaints open                         any           ``complaint``: call to resolve the complaint
low NPS / CSAT                          A, B          ``survey``: call about the low score
low NPS / CSAT                          C, none       ``message``: personal apology and an offer
anything else                           A             ``call``: a personal call
anything else                           B             ``message``: a personal message with an offer
anything else                           C, none       ``coupon``: a welcome-back coupon
======================================  ============  ============================================

Calls go by phone; messages and coupons by the customer's preferred channel, else WeChat, SMS, e-mail. A
channel is usable only with granted consent (none recorded counts as no) and an address; calls fall back to
a message channel when the phone is not usable. Customers with no usable channel are left out and counted
(no_consent: no consent on any channel they have an address for; no_contact: no address on a consented
channel). With ``log``, each listed customer gets a follow-up interaction (crmcli.core.interactions) and a
``churn_winback`` row; customers already logged in the last ``skip_days`` days are left out (already_logged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlmodel import Session

from crmcli.core import hooks
from crmcli.core.churn import scan
from crmcli.core.churn.rules import LEVELS, level_label
from crmcli.core.context import StoreContext
from crmcli.errors import InvalidInput
from crmcli.i18n import N_, Message, _
from crmcli.store.models import Consent, ContactPoint, Customer
from crmcli.store.models_churn import ChurnScore, ChurnWinback

CP = ContactPoint.__table__
CON = Consent.__table__
C = Customer.__table__
WB = ChurnWinback.__table__
SCORE = ChurnScore.__table__

ACTIONS = {
    "complaint": N_("call to resolve the open complaint"),
    "survey": N_("call about their low score"),
    "call": N_("personal call"),
    "message": N_("personal message with an offer"),
    "coupon": N_("welcome-back coupon"),
}
CALLS = ("complaint", "survey", "call")
MESSAGE_CHANNELS = ("wechat", "sms", "email")
EXCLUSIONS = ("no_consent", "no_contact", "already_logged")
DEFAULT_MESSAGES = {
    "message": N_("Hello {name}, it has been a while since we last saw you. We would love to welcome you back: "
                  "reply to this message and we will set something aside for you."),
    "coupon": N_("Hello {name}, we have missed you! Your next visit comes with a welcome-back gift from us."),
    # complaints and low scores: an apology, not "we have not seen you for a while" (they may have bought
    # yesterday)
    "apology": N_("Hello {name}, we are sorry that your experience with us was not what it should be. Please "
                  "reply to this message, or tell us when we may call you, so that we can put it right."),
}


def action_label(action: str) -> Message:
    return Message(ACTIONS.get(action, action))


def suggest(tier: str | None, top_rule: str | None) -> str:
    t = (tier or "C").upper()
    if top_rule == "complaints":
        return "complaint"
    if top_rule in ("nps", "csat"):
        return "survey" if t in ("A", "B") else "message"
    return {"A": "call", "B": "message"}.get(t, "coupon")


def tiers_of(session: Session, ids: list[int]) -> dict[int, str | None]:
    """Tier per customer through hooks.CLASSIFICATION (None everywhere when no feature sets it)."""
    if not hooks.CLASSIFICATION:
        return dict.fromkeys(ids)
    fn = hooks.load(hooks.CLASSIFICATION)
    return {cid: (fn(session, cid) or {}).get("tier") for cid in ids}


def _addresses(session: Session, ids: list[int]) -> dict[int, dict[str, str]]:
    """{customer: {'phone'|'sms': first phone, 'email': first e-mail, 'wechat': first WeChat handle}}."""
    out: dict[int, dict[str, str]] = {i: {} for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = session.execute(select(CP.c.customer_id, CP.c.kind, CP.c.label, CP.c.value)
                               .where(CP.c.customer_id.in_(chunk)).order_by(CP.c.customer_id, CP.c.position, CP.c.id))
        for cid, kind, label, value in rows:
            if kind == "phone":
                out[cid].setdefault("phone", value)
                out[cid].setdefault("sms", value)
            elif kind == "email":
                out[cid].setdefault("email", value)
            elif kind == "social" and (label or "").lower() == "wechat":
                out[cid].setdefault("wechat", value)
    return out


def _consents(session: Session, ids: list[int]) -> dict[int, set[str]]:
    """Channels each customer consented to, by the shared rule (crmcli.core.consent) when it is installed."""
    out: dict[int, set[str]] = {i: set() for i in ids}
    try:
        from crmcli.core.consent import consenting
    except ImportError:  # pragma: no cover - builds without the data-safety feature
        consenting = None
    if consenting is not None:
        for channel in ("phone", *MESSAGE_CHANNELS):
            allowed, _refused = consenting(session, ids, channel)
            for cid in allowed:
                out[cid].add(channel)
        return out
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for cid, channel in session.execute(select(CON.c.customer_id, CON.c.channel)
                                            .where(CON.c.customer_id.in_(chunk), CON.c.granted.is_(True))):
            out[cid].add(channel)
    return out


def check_template(text: str) -> str:
    try:
        text.format(name="x", code="x", days=0)
    except (KeyError, IndexError, ValueError) as e:
        raise InvalidInput(_("The message template has an unknown or broken placeholder ({error}).").format(error=e),
                           field="--message", value=text,
                           hint=_("Use {name}, {code} and {days} (days since the last purchase).")) from None
    return text


@dataclass
class WinbackResult:
    as_of: date
    rows: list[dict[str, Any]]
    counts: dict[str, int] = field(default_factory=dict)
    skipped_rules: list[str] = field(default_factory=list)
    next_date: date | None = None


def winback(session: Session, ctx: StoreContext, *, min_rank: int, log: bool = False, next_text: str | None = None,
            skip_days: int = 14, message: str | None = None, limit: int | None = None) -> WinbackResult:
    """The action list, most urgent first; ``limit`` keeps the first N (and only those are logged)."""
    from crmcli.core import customers as customers_mod
    from crmcli.core.interactions import log_interaction

    if message is not None:
        check_template(message)
    if skip_days < 0:
        raise InvalidInput(_("--skip-logged-within cannot be negative."), field="--skip-logged-within", value=skip_days)
    a = scan.assess(session, ctx)
    at_risk = [(int(cid), int(rank)) for cid, rank in zip(a.ids.tolist(), a.rank.tolist()) if rank >= min_rank]
    ids = [cid for cid, _r in at_risk]
    counts = {"at_risk": len(ids), **dict.fromkeys(EXCLUSIONS, 0), "listed": 0, "over_limit": 0, "logged": 0}
    if not ids:
        return WinbackResult(ctx.today, [], counts, a.skipped)
    tiers = tiers_of(session, ids)
    addresses = _addresses(session, ids)
    consents = _consents(session, ids)
    info: dict[int, Any] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for row in session.execute(select(C.c.id, C.c.code, C.c.name, C.c.preferred_channel).where(C.c.id.in_(chunk))):
            info[row.id] = row
    clv: dict[int, int] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for cid, value, p_alive in session.execute(select(SCORE.c.customer_id, SCORE.c.clv_minor, SCORE.c.p_alive)
                                                   .where(SCORE.c.customer_id.in_(chunk))):
            clv[cid] = value if value is not None else -1
    logged_recently: set[int] = set()
    if log and skip_days:
        since = ctx.today - timedelta(days=skip_days - 1)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            logged_recently |= set(session.execute(select(WB.c.customer_id).where(
                WB.c.customer_id.in_(chunk), WB.c.as_of >= since)).scalars())

    rows = []
    for cid, rank in at_risk:
        reasons = a.reasons.get(cid, [])
        top = reasons[0]["rule"] if reasons else None
        tier = tiers.get(cid)
        action = suggest(tier, top)
        row = info[cid]
        preferred = row.preferred_channel if row.preferred_channel in MESSAGE_CHANNELS else None
        order = (["phone"] if action in CALLS else []) + ([preferred] if preferred else []) + list(MESSAGE_CHANNELS)
        channel = next((ch for ch in dict.fromkeys(order) if ch in consents[cid] and ch in addresses[cid]), None)
        if channel is None:
            consented_somewhere = any(ch in consents[cid] for ch in dict.fromkeys(order))
            counts["no_contact" if consented_somewhere else "no_consent"] += 1
            continue
        if cid in logged_recently:
            counts["already_logged"] += 1
            continue
        days = next((r["days"] for r in reasons if r["rule"] in ("interval", "recency")), None)
        texts = [scan.reason_text(r, ctx.currency) for r in reasons]
        text = None
        if channel in MESSAGE_CHANNELS:
            default = ("apology" if action in ("complaint", "survey") or top in ("nps", "csat")
                       else "coupon" if action == "coupon" else "message")
            template = message or _(DEFAULT_MESSAGES[default])
            text = template.format(name=row.name, code=row.code, days=days if days is not None else "")
        rows.append({"customer_id": cid, "code": row.code, "name": row.name, "tier": tier, "risk": LEVELS[rank],
                     "rank": rank, "reasons": texts, "action": action, "action_text": action_label(action),
                     "channel": channel, "contact": addresses[cid][channel], "message": text,
                     "clv_minor": clv.get(cid) if clv.get(cid, -1) >= 0 else None})
    tier_order = {"A": 0, "B": 1, "C": 2}
    rows.sort(key=lambda r: (-r["rank"], tier_order.get((r["tier"] or "").upper(), 3), -(r["clv_minor"] or 0), r["code"]))
    if limit is not None and len(rows) > limit:
        counts["over_limit"] = len(rows) - limit
        rows = rows[:limit]
    counts["listed"] = len(rows)
    result = WinbackResult(ctx.today, rows, counts, a.skipped)
    if log and rows:
        from crmcli.core.churn.modeling import new_run
        from crmcli.core.dates import parse_date

        nxt = parse_date(next_text or "7d", today=ctx.today, field="--next", future=True)
        if nxt < ctx.today:
            raise InvalidInput(_("The next follow-up {date} is in the past.").format(date=nxt), field="--next",
                               value=next_text, hint=_("Give a future date, e.g. --next 'in 2 weeks'."))
        run_id = new_run(session, "winback", ctx.today, {"min_risk": LEVELS[min_rank], "next": nxt.isoformat()},
                         {k: v for k, v in counts.items()} | {"logged": len(rows)})
        links = []
        for r in rows:
            customer = customers_mod.get(session, r["customer_id"])
            summary = _("Win-back ({risk} risk): {action}. {reasons}").format(
                risk=level_label(r["risk"]), action=r["action_text"], reasons="; ".join(r["reasons"]))
            interaction = log_interaction(session, customer, ctx, channel=r["channel"], summary=summary[:2000],
                                          outcome=_("planned"), next_date=nxt.isoformat())
            r["interaction_id"] = interaction.id
            links.append({"run_id": run_id, "customer_id": r["customer_id"], "as_of": ctx.today, "risk": r["risk"],
                          "action": r["action"], "channel": r["channel"], "interaction_id": interaction.id})
        session.execute(insert(WB), links)
        counts["logged"] = len(rows)
        result.next_date = nxt
    return result
