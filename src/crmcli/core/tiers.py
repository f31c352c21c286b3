"""A/B/C tiers: rules kept in the store, the pareto and thresholds methods, pins, and the read side
(list, history, summary, the card slot, the classification hook and the customer-list filters).

Tiers are recomputed in bulk by crmcli.core.classify (``crm tier recompute``); this module holds the pure
rule logic (numpy, vectorized) and everything that touches one customer at a time.

Pareto (ABC) rule, exact and order-independent (docs/tiers.md):
  T = total positive net spend in the window; for a customer with net spend s > 0,
  before(s) = the spend of all customers with a strictly greater net spend;
  A if before(s) < a% of T, else B if before(s) < (a + b)% of T, else C.
  So a customer straddling a boundary belongs to the class where their spend starts (the upper one), and
  customers with equal spend always get the same tier. Customers with net spend <= 0 in the window are C;
  customers who never bought anything get no tier (or C: setting tier.prospects).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlmodel import Session

from crmcli.core import settings
from crmcli.core.lifecycle import LifecycleRules
from crmcli.errors import Conflict, InvalidInput, NotFound
from crmcli.i18n import _
from crmcli.store.models_tiers import ClassHistory, ClassRun, CustomerClass, MemberLevel, TierPin

TIERS = ("A", "B", "C")
# Codes used in the numpy arrays: 0 = no tier, 1 = C, 2 = B, 3 = A (higher is better).
TIER_CODES: dict[str | None, int] = {None: 0, "C": 1, "B": 2, "A": 3}
CODE_TIERS: tuple[str | None, ...] = (None, "C", "B", "A")

CC = CustomerClass.__table__
PIN = TierPin.__table__
RUN = ClassRun.__table__
HIST = ClassHistory.__table__
LVL = MemberLevel.__table__


# ------------------------------------------------------------------------------------------ settings

def _choice(*choices: str) -> Any:
    def parse(text: str) -> str:
        value = text.strip().lower()
        for c in choices:
            if value == c.lower():
                return c
        raise ValueError(_("expected one of: {choices}").format(choices=", ".join(choices)))
    return parse


def _days(text: str) -> int:
    from crmcli.core.dates import parse_duration_days

    try:
        days = parse_duration_days(str(text))
    except InvalidInput:
        raise ValueError(_("expected a number of days or a duration such as 90d, 12w, 6m, 1y")) from None
    if not 1 <= days <= 36_500:
        raise ValueError(_("expected between 1 and 36500 days"))
    return days


def _optional_days(text: str) -> int | None:
    return None if _is_unset(text) else _days(text)


def _is_unset(text: str) -> bool:
    return str(text).strip().lower() in ("", "none", "off", "-")


def _decimal(text: str, *, low: Decimal, high: Decimal, places: int, low_inclusive: bool = True) -> str:
    try:
        value = Decimal(str(text).strip().rstrip("%").strip())
    except InvalidOperation:
        raise ValueError(_("expected a number")) from None
    if not value.is_finite() or value > high or value < low or (value == low and not low_inclusive):
        raise ValueError(_("expected a number from {low} to {high}").format(low=low, high=high))
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise ValueError(_("at most {n} decimals").format(n=places))
    return str(value.normalize() if value == value.to_integral() else value)


def _percent(text: str) -> str:
    return _decimal(text, low=Decimal(0), high=Decimal(100), places=2)


def _multiple(text: str) -> str:
    return _decimal(text, low=Decimal(0), high=Decimal(1000), places=2, low_inclusive=False)


def _optional_amount(text: str) -> str | None:
    if _is_unset(text):
        return None
    value = str(text).strip().replace(",", "")
    if not re.fullmatch(r"\d{1,15}(\.\d{1,3})?", value):
        raise ValueError(_("expected an amount such as 5000 or 99.50"))
    return value


def _optional_count(text: str) -> int | None:
    if _is_unset(text):
        return None
    value = str(text).strip()
    if not value.isdigit() or int(value) > 10**9:
        raise ValueError(_("expected a whole number"))
    return int(value)


def _count(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        value = str(text).strip()
        if not value.isdigit() or not low <= int(value) <= high:
            raise ValueError(_("expected a whole number from {low} to {high}").format(low=low, high=high))
        return int(value)
    return parse


def _downgrade(text: str) -> str | int:
    value = str(text).strip().lower()
    if value in ("never", "no", "off", "none"):
        return "never"
    return _days(value)


# Parsers of the rule settings (the specs themselves live in crmcli.core.settings.SPECS, so that
# `crm config` knows them without importing this module).
PARSERS: dict[str, Any] = {
    "method": _choice("pareto", "thresholds"),
    "days": _days,
    "optional_days": _optional_days,
    "percent": _percent,
    "amount": _optional_amount,
    "count": _optional_count,
    "match": _choice("all", "any"),
    "prospects": _choice("none", "C"),
    "history": _count(2, 1000),
    "multiple": _multiple,
    "basis": _choice("spend", "points"),
    "downgrade": _downgrade,
}
RULE_PREFIXES = ("tier.", "rfm.", "lifecycle.", "level.")


@dataclass(frozen=True)
class Criteria:
    min_spend: Decimal | None = None
    min_orders: int | None = None
    min_tenure: int | None = None

    def empty(self) -> bool:
        return self.min_spend is None and self.min_orders is None and self.min_tenure is None


@dataclass(frozen=True)
class TierRules:
    method: str = "pareto"
    window_days: int = 365
    pareto_a: Decimal = Decimal(80)
    pareto_b: Decimal = Decimal(15)
    a: Criteria = Criteria()
    b: Criteria = Criteria()
    match: str = "all"
    prospects: str = "none"

    def validate(self) -> None:
        if self.method == "pareto":
            if self.pareto_a <= 0:
                raise InvalidInput(_("tier.pareto.a must be greater than 0."), field="tier.pareto.a",
                                   hint=_("For example: crm tier rules set --a-share 80 --b-share 15"))
            if self.pareto_a + self.pareto_b > 100:
                raise InvalidInput(_("tier.pareto.a + tier.pareto.b is {total} %, more than 100 %.").format(
                    total=f"{self.pareto_a + self.pareto_b:f}"), field="tier.pareto.b",  # 110, not 1.1E+2
                    hint=_("For example: crm tier rules set --a-share 80 --b-share 15"))
        elif self.a.empty():
            raise InvalidInput(_("The thresholds method needs at least one minimum for tier A."), field="tier.a",
                               hint=_("For example: crm tier rules set --method thresholds --a-spend 5000 --b-spend 1000"))


@dataclass(frozen=True)
class Rules:
    tiers: TierRules
    rfm_window: int
    lifecycle: LifecycleRules
    level_basis: str
    level_window: int
    downgrade_days: int | None  # None: never

    def validate(self) -> None:
        self.tiers.validate()
        self.lifecycle.validate()

    def params(self) -> dict[str, Any]:
        """The rules as JSON-able values (recorded with each run)."""
        t = self.tiers
        return {"method": t.method, "window_days": t.window_days, "pareto_a": str(t.pareto_a),
                "pareto_b": str(t.pareto_b),
                "a": {k: (str(v) if v is not None else None) for k, v in vars(t.a).items()},
                "b": {k: (str(v) if v is not None else None) for k, v in vars(t.b).items()},
                "match": t.match, "prospects": t.prospects, "rfm_window": self.rfm_window,
                "level_basis": self.level_basis, "level_window": self.level_window,
                "downgrade_days": self.downgrade_days}


def load_rules(session: Session) -> Rules:
    v = settings.get_many(session)

    def crit(cls: str) -> Criteria:
        spend = v[f"tier.{cls}.min_spend"]
        return Criteria(Decimal(spend) if spend is not None else None, v[f"tier.{cls}.min_orders"],
                        v[f"tier.{cls}.min_tenure"])

    tiers = TierRules(method=v["tier.method"], window_days=int(v["tier.window"]), pareto_a=Decimal(v["tier.pareto.a"]),
                      pareto_b=Decimal(v["tier.pareto.b"]), a=crit("a"), b=crit("b"), match=v["tier.match"],
                      prospects=v["tier.prospects"])
    life = LifecycleRules(new_days=int(v["lifecycle.new_days"]), min_history=int(v["lifecycle.min_history"]),
                          at_risk_multiple=Decimal(v["lifecycle.at_risk_multiple"]),
                          lost_multiple=Decimal(v["lifecycle.lost_multiple"]),
                          at_risk_days=int(v["lifecycle.at_risk_days"]), lost_days=int(v["lifecycle.lost_days"]),
                          min_days=int(v["lifecycle.min_days"]))
    downgrade = v["level.downgrade"]
    return Rules(tiers=tiers, rfm_window=int(v["rfm.window"]), lifecycle=life, level_basis=v["level.basis"],
                 level_window=int(v["level.window"]),
                 downgrade_days=None if downgrade == "never" else int(downgrade))


def rule_keys() -> list[str]:
    return [key for key in settings.SPECS if key.startswith(RULE_PREFIXES)]


def rules_rows(session: Session) -> list[dict[str, Any]]:
    values = settings.get_many(session)
    return [{"key": key, "value": values[key], "help": _(settings.SPECS[key].help)} for key in rule_keys()]


def set_rules(session: Session, values: dict[str, str]) -> dict[str, Any]:
    """Set several rule settings at once (each audited), then check that they fit together."""
    from crmcli.core.context import StoreContext
    from crmcli.core.money import parse_amount

    changed: dict[str, Any] = {}
    if "level.basis" in values:
        current = settings.get(session, "level.basis")
        wanted = PARSERS["basis"](values["level.basis"])
        if wanted != current and session.execute(select(func.count()).select_from(LVL)).scalar():
            raise Conflict(_("Membership levels are defined by {basis}; the basis cannot change while levels exist.")
                           .format(basis=_(current)),
                           hint=_("Remove the levels first (crm tier levels rm NAME), then set the basis and add them again."))
    for key, text in values.items():
        changed[key] = settings.set_value(session, key, text)
    ctx = StoreContext.load(session)
    for cls in ("a", "b"):
        spend = settings.get(session, f"tier.{cls}.min_spend")
        if spend is not None:
            parse_amount(spend, ctx.currency, field=f"tier.{cls}.min_spend")
    load_rules(session).validate()
    return changed



# ---------------------------------------------------------------------------------------- tier logic

def parse_tier(text: str) -> str:
    value = text.strip().upper()
    if value not in TIERS:
        raise InvalidInput(_("'{value}' is not a tier.").format(value=text), field="tier", value=text,
                           hint=_("Use A, B or C."))
    return value


def tier_codes(net: Any, orders: Any, tenure: Any, bought: Any, rules: TierRules, currency: str) -> tuple[Any, Any]:
    """Tier codes (0 none, 1 C, 2 B, 3 A) and, for pareto, the revenue share before each customer in 1/100 %
    (else None). ``net``/``orders``: in the window; ``tenure``: days since the first sale (-1 if none);
    ``bought``: whether the customer ever bought anything."""
    import numpy as np

    net = np.asarray(net, dtype=np.int64)
    n = len(net)
    bought = np.asarray(bought, dtype=bool)
    codes = np.full(n, TIER_CODES["C"], dtype=np.int8)
    share = None
    if rules.method == "pareto":
        positive = net > 0
        uniq, inverse = np.unique(net, return_inverse=True)
        inverse = inverse.reshape(-1)
        counts = np.bincount(inverse, minlength=len(uniq)).astype(np.int64)
        contrib = np.where(uniq > 0, uniq * counts, 0)
        total = int(contrib.sum())
        greater = total - np.cumsum(contrib)  # spend of the customers strictly above each distinct value
        a_bp = int(rules.pareto_a * 100)
        ab_bp = int((rules.pareto_a + rules.pareto_b) * 100)
        if total > 0:
            if total * 10_000 < 2**62:
                g = greater
                scaled = g * 10_000
                share_u = scaled // total
            else:  # beyond int64: exact Python integers (slow, never seen in practice)
                g = greater.astype(object)
                scaled = g * 10_000
                share_u = np.array([int(x) // total for x in scaled], dtype=np.int64)
            is_a = np.asarray(scaled < a_bp * total, dtype=bool)[inverse] & positive
            is_b = np.asarray(scaled < ab_bp * total, dtype=bool)[inverse] & positive & ~is_a
            codes[is_a] = TIER_CODES["A"]
            codes[is_b] = TIER_CODES["B"]
            share = np.where(positive, share_u[inverse], 10_000).astype(np.int64)
        else:
            share = np.full(n, 10_000, dtype=np.int64)
    else:
        from crmcli.core.money import parse_amount

        orders = np.asarray(orders, dtype=np.int64)
        tenure = np.asarray(tenure, dtype=np.int64)

        def meets(c: Criteria) -> Any:
            conds = []
            if c.min_spend is not None:
                conds.append(net >= parse_amount(str(c.min_spend), currency, field="min_spend"))
            if c.min_orders is not None:
                conds.append(orders >= c.min_orders)
            if c.min_tenure is not None:
                conds.append(tenure >= c.min_tenure)
            if not conds:
                return np.zeros(n, dtype=bool)
            return np.logical_and.reduce(conds) if rules.match == "all" else np.logical_or.reduce(conds)

        is_a = meets(rules.a)
        is_b = meets(rules.b) & ~is_a
        codes[is_a] = TIER_CODES["A"]
        codes[is_b] = TIER_CODES["B"]
    codes[~bought] = TIER_CODES["C"] if rules.prospects == "C" else TIER_CODES[None]
    return codes, share


# ---------------------------------------------------------------------------------------------- pins

def _new_run(session: Session, kind: str, as_of: Any, params: dict[str, Any] | None = None,
             counts: dict[str, Any] | None = None) -> int:
    from sqlalchemy import insert

    from crmcli.core.audit import actor
    from crmcli.core.clock import utcnow

    result = session.execute(insert(RUN).values(kind=kind, as_of=as_of, at=utcnow(), actor=actor(),
                                                params=json.dumps(params, sort_keys=True) if params else None,
                                                counts=json.dumps(counts, sort_keys=True) if counts else None))
    return int(result.inserted_primary_key[0])


def _class_row(session: Session, customer_id: int) -> CustomerClass:
    row = session.get(CustomerClass, customer_id)
    if row is None:
        row = CustomerClass(customer_id=customer_id, net_minor=0, orders=0)
        session.add(row)
    return row


def pin(session: Session, customer: Any, tier: str, reason: str, as_of: Any) -> bool:
    """Pin a manual tier that recompute keeps. Returns True when the customer's tier changed."""
    from sqlalchemy import insert

    from crmcli.core import audit
    from crmcli.core.clock import utcnow
    from crmcli.core.customers import clean_text

    cid = customer.id
    tier = parse_tier(tier)
    note = clean_text(reason, "reason", max_len=500)
    if not note:
        raise InvalidInput(_("The reason must not be empty."), field="reason", value=reason,
                           hint=_("Say why, e.g. --reason 'key account, see contract 2024-17'."))
    existing = session.get(TierPin, cid)
    before = {"tier": existing.tier, "reason": existing.reason} if existing else None
    if existing is not None:
        existing.tier, existing.reason, existing.pinned_at, existing.actor = tier, note, utcnow(), audit.actor()
        session.add(existing)
    else:
        session.add(TierPin(customer_id=cid, tier=tier, reason=note, pinned_at=utcnow(), actor=audit.actor()))
    row = _class_row(session, cid)
    old = row.tier
    row.tier = tier
    session.add(row)
    session.flush()
    if old != tier:
        run_id = _new_run(session, "pin", as_of)
        session.execute(insert(HIST).values(run_id=run_id, customer_id=cid, kind="tier", from_value=old, to_value=tier,
                                            net_minor=row.net_minor, orders=row.orders, note=note))
    audit.record(session, entity="tier_pin", entity_id=cid, customer_id=cid, action="pin", before=before,
                 after={"tier": tier, "reason": note})
    return old != tier


def unpin(session: Session, customer: Any, as_of: Any) -> tuple[str | None, str | None]:
    """Remove the manual tier; the customer gets back the tier of the last recompute. Returns (old, new)."""
    from sqlalchemy import insert

    from crmcli.core import audit

    cid = customer.id
    existing = session.get(TierPin, cid)
    if existing is None:
        raise Conflict(_("{customer} has no pinned tier.").format(customer=customer.code),
                       hint=_("Pin one with `crm tier pin {code} A --reason ...`.").format(code=customer.code))
    before = {"tier": existing.tier, "reason": existing.reason}
    session.delete(existing)
    row = _class_row(session, cid)
    old, new = row.tier, row.computed_tier
    row.tier = new
    session.add(row)
    session.flush()
    if old != new:
        run_id = _new_run(session, "unpin", as_of)
        session.execute(insert(HIST).values(run_id=run_id, customer_id=cid, kind="tier", from_value=old, to_value=new,
                                            net_minor=row.net_minor, orders=row.orders, note=before["reason"]))
    audit.record(session, entity="tier_pin", entity_id=cid, customer_id=cid, action="unpin", before=before, after=None)
    return old, new


# --------------------------------------------------------------------------------------------- reads

def last_run(session: Session, kinds: tuple[str, ...] = ("recompute",)) -> dict[str, Any] | None:
    row = session.execute(select(RUN).where(RUN.c.kind.in_(kinds)).order_by(RUN.c.id.desc()).limit(1)).mappings().first()
    return dict(row) if row else None


def _rfm_text(r: Any, f: Any, m: Any) -> str | None:
    return f"{r}{f}{m}" if r and f and m else None


def list_classified(session: Session, *, tier: str | None = None, pinned_only: bool = False,
                    segment: str | None = None, stage: str | None = None, level: str | None = None,
                    limit: int | None = None) -> list[dict[str, Any]]:
    """Classified live customers, biggest spenders first."""
    from crmcli.store.models import Customer

    C = Customer.__table__
    stmt = (select(C.c.id, C.c.code, C.c.name, CC, PIN.c.tier.label("pin_tier"), PIN.c.reason.label("pin_reason"))
            .select_from(C.join(CC, CC.c.customer_id == C.c.id).outerjoin(PIN, PIN.c.customer_id == C.c.id))
            .where(C.c.deleted_at.is_(None), C.c.erased_at.is_(None)))
    if tier:
        stmt = stmt.where(CC.c.tier == parse_tier(tier))
    if pinned_only:
        stmt = stmt.where(PIN.c.tier.is_not(None))
    if segment:
        from crmcli.core.rfm import parse_segment

        stmt = stmt.where(CC.c.segment == parse_segment(segment))
    if stage:
        from crmcli.core.lifecycle import parse_stage

        stmt = stmt.where(CC.c.stage == parse_stage(stage))
    if level:
        from crmcli.core.levels import resolve_level

        stmt = stmt.where(CC.c.level == resolve_level(session, level).name)
    stmt = stmt.order_by(CC.c.net_minor.desc(), C.c.code)
    if limit:
        stmt = stmt.limit(limit)
    return [{"id": r["id"], "code": r["code"], "name": r["name"], "tier": r["tier"], "computed_tier": r["computed_tier"],
             "pinned": r["pin_tier"] is not None, "pin_reason": r["pin_reason"], "net_minor": r["net_minor"],
             "orders": r["orders"], "r": r["r_score"], "f": r["f_score"], "m": r["m_score"],
             "rfm": _rfm_text(r["r_score"], r["f_score"], r["m_score"]), "segment": r["segment"], "stage": r["stage"],
             "level": r["level"], "level_since": r["level_since"]}
            for r in session.execute(stmt).mappings()]


def history(session: Session, customer_id: int, *, limit: int | None = None) -> list[dict[str, Any]]:
    stmt = (select(HIST, RUN.c.kind.label("run_kind"), RUN.c.as_of, RUN.c.at)
            .join(RUN, RUN.c.id == HIST.c.run_id).where(HIST.c.customer_id == customer_id)
            .order_by(HIST.c.id.desc()))
    if limit:
        stmt = stmt.limit(limit)
    return [{"as_of": r["as_of"], "at": r["at"], "by": r["run_kind"], "kind": r["kind"], "from": r["from_value"],
             "to": r["to_value"], "net_minor": r["net_minor"], "orders": r["orders"], "tenure_days": r["tenure_days"],
             "share": _share_text(r["share_bp"]), "basis_minor": r["basis_minor"], "note": r["note"]}
            for r in session.execute(stmt).mappings()]


def _share_text(bp: int | None) -> str | None:
    return None if bp is None else f"{Decimal(bp) / 100:.2f}"


def _pct(part: int, whole: int) -> str:
    return f"{Decimal(part * 100) / whole:.1f}" if whole else "0.0"


def summary(session: Session) -> list[dict[str, Any]]:
    """Per tier (A, B, C, none): customers, their share, window revenue, its share, average spend."""
    from crmcli.store.models import Customer

    C = Customer.__table__
    rows = session.execute(
        select(CC.c.tier, func.count().label("n"), func.coalesce(func.sum(CC.c.net_minor), 0).label("revenue"))
        .select_from(C.outerjoin(CC, CC.c.customer_id == C.c.id))
        .where(C.c.deleted_at.is_(None), C.c.erased_at.is_(None)).group_by(CC.c.tier)).all()
    by = {r.tier: (int(r.n), int(r.revenue)) for r in rows}
    customers = sum(n for n, _r in by.values())
    revenue = sum(max(rv, 0) for _n, rv in by.values())
    out = []
    for tier in ("A", "B", "C", None):
        n, rv = by.get(tier, (0, 0))
        if tier is None and n == 0:
            continue
        out.append({"tier": tier, "customers": n, "customer_share": _pct(n, customers), "revenue_minor": rv,
                    "revenue_share": _pct(max(rv, 0), revenue), "average_minor": round(rv / n) if n else 0})
    return out


def segments_summary(session: Session) -> list[dict[str, Any]]:
    """Per RFM segment (as stored by the last recompute / rfm run): customers, revenue and their shares."""
    from crmcli.core.rfm import SEGMENT_KEYS
    from crmcli.store.models import Customer

    C = Customer.__table__
    rows = session.execute(
        select(CC.c.segment, func.count().label("n"), func.coalesce(func.sum(CC.c.net_minor), 0).label("revenue"),
               func.avg(CC.c.r_score).label("r"), func.avg(CC.c.f_score).label("f"), func.avg(CC.c.m_score).label("m"))
        .select_from(C.join(CC, CC.c.customer_id == C.c.id))
        .where(C.c.deleted_at.is_(None), C.c.erased_at.is_(None)).group_by(CC.c.segment)).all()
    by = {r.segment: r for r in rows}
    customers = sum(int(r.n) for r in rows)
    revenue = sum(max(int(r.revenue), 0) for r in rows)
    out = []
    for key in (*SEGMENT_KEYS, None):
        r = by.get(key)
        if r is None and key is None:
            continue
        n, rv = (int(r.n), int(r.revenue)) if r else (0, 0)
        out.append({"segment": key, "customers": n, "customer_share": _pct(n, customers), "revenue_minor": rv,
                    "revenue_share": _pct(max(rv, 0), revenue), "average_minor": round(rv / n) if n else 0})
    return out


# --------------------------------------------------------------------------------------------- hooks

def card_slot(session: Session, customer_id: int, ctx: Any) -> Any:
    """hooks.CARD_SLOTS['tier']: tier (+ pinned), level, RFM segment and lifecycle stage."""
    from crmcli.core.card import Slot
    from crmcli.core.lifecycle import stage_label
    from crmcli.core.rfm import segment_label

    row = session.get(CustomerClass, customer_id)
    if row is None:
        return None
    pinned = session.get(TierPin, customer_id) is not None
    rfm = _rfm_text(row.r_score, row.f_score, row.m_score)
    parts = [(row.tier or "—") + (" " + _("(pinned)") if pinned else "")]
    if row.level:
        parts.append(row.level)
    if row.segment:
        parts.append(f"{segment_label(row.segment)} {rfm}" if rfm else segment_label(row.segment))
    if row.stage:
        parts.append(stage_label(row.stage))
    style = "bad" if row.stage == "lost" else "warn" if row.stage == "at_risk" else "good" if row.tier == "A" else None
    return Slot(text=" · ".join(parts), style=style,
                data={"tier": row.tier, "pinned": pinned, "level": row.level, "segment": row.segment, "rfm": rfm,
                      "stage": row.stage})


def classification(session: Session, customer_id: int) -> dict[str, Any]:
    """hooks.CLASSIFICATION: the customer's tier, level and the level's points multiplier."""
    row = session.get(CustomerClass, customer_id)
    if row is None:
        return {"tier": None, "level": None, "points_multiplier": None}
    multiplier = None
    if row.level:
        lvl = session.execute(select(LVL.c.points_multiplier).where(LVL.c.name == row.level)).scalar()
        multiplier = Decimal(lvl) if lvl else None
    return {"tier": row.tier, "level": row.level, "points_multiplier": multiplier}


def class_filter(session: Session, customer_id: Any, *, tier: str | None = None, segment: str | None = None,
                 stage: str | None = None, level: str | None = None) -> Any:
    """An EXISTS condition for `crm customer list --tier/--segment/--stage/--level`."""
    conds = [CC.c.customer_id == customer_id]
    if tier:
        conds.append(CC.c.tier == parse_tier(tier))
    if segment:
        from crmcli.core.rfm import parse_segment

        conds.append(CC.c.segment == parse_segment(segment))
    if stage:
        from crmcli.core.lifecycle import parse_stage

        conds.append(CC.c.stage == parse_stage(stage))
    if level:
        from crmcli.core.levels import resolve_level

        conds.append(CC.c.level == resolve_level(session, level).name)
    return exists().where(and_(*conds))


def pinned(session: Session, customer_id: int) -> TierPin | None:
    return session.get(TierPin, customer_id)


def require_customer_class(session: Session, customer: Any) -> CustomerClass:
    row = session.get(CustomerClass, customer.id)
    if row is None:
        raise NotFound(_("{customer} has not been classified yet.").format(customer=customer.code),
                       hint=_("Run `crm tier recompute`."))
    return row
