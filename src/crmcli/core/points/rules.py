"""Earning rules and the expiry policy, kept as settings in the store (``points.*``; `crm points rules`).

Formula for a sale of ``amount`` (the sale's own amount; later refunds take points back proportionally):

    points = ROUND(amount in currency units × rate × tier multiplier × category multiplier × birthday multiplier)

ROUND is ``floor`` by default (``half-up`` optional); a sale below ``points.min_purchase`` earns nothing.
All arithmetic is Decimal, never float.
"""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cached_property, lru_cache
from typing import Any

from dateutil.relativedelta import relativedelta

from crmcli.i18n import _

ROUNDINGS = ("floor", "half-up")
MAX_MULTIPLIER = Decimal(100)
MAX_POINTS = 10**12

# ------------------------------------------------------------------------------------- value parsers
# Each takes the text a person typed (``crm config set`` / ``crm points rules set``) and returns the JSON
# value stored, or raises ValueError with a translated reason.


def parse_decimal(text: str, *, maximum: Decimal | None = None, allow_zero: bool = True) -> Decimal:
    s = str(text).strip().replace(",", "")
    try:
        value = Decimal(s)
    except InvalidOperation:
        raise ValueError(_("expected a number such as 1 or 0.5")) from None
    if not value.is_finite() or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(_("expected a positive number") if not allow_zero else _("expected a number of 0 or more"))
    if maximum is not None and value > maximum:
        raise ValueError(_("expected at most {maximum}").format(maximum=maximum))
    if -int(value.as_tuple().exponent) > 6:  # type: ignore[operator]
        raise ValueError(_("at most 6 decimals"))
    return value


def rate(text: str) -> str:
    return str(parse_decimal(text, maximum=Decimal(10_000)).normalize() + 0)


def multiplier(text: str) -> str:
    return str(parse_decimal(text, maximum=MAX_MULTIPLIER).normalize() + 0)


def amount(text: str) -> str:
    """A money amount in currency units (checked against the currency's decimals when used)."""
    return str(parse_decimal(text, maximum=Decimal(10**12)))


def count(text: str) -> int:
    s = str(text).strip().replace(",", "")
    if not s.isdigit():
        raise ValueError(_("expected a whole number of 0 or more"))
    value = int(s)
    if value > MAX_POINTS:
        raise ValueError(_("expected at most {maximum}").format(maximum=MAX_POINTS))
    return value


def days(text: str) -> int:
    s = str(text).strip().lower().removesuffix("days").removesuffix("day").removesuffix("d").strip()
    if not s.isdigit() or int(s) > 3650:
        raise ValueError(_("expected a number of days from 0 to 3650, e.g. 7 or 7d"))
    return int(s)


def rounding(text: str) -> str:
    value = str(text).strip().lower().replace("_", "-")
    if value not in ROUNDINGS:
        raise ValueError(_("expected floor or half-up"))
    return value


_EXPIRY = re.compile(r"^(?P<kind>month-end|year-end|end-of-month|end-of-year)\s*[:+ ]\s*(?P<n>\d{1,3})$")


def expiry(text: str) -> str:
    """'never', '365d' (or '365'), 'month-end:12', 'year-end:12' → the normalized policy string."""
    s = str(text).strip().lower()
    if s in ("never", "none", "0", "off", "永不"):
        return "never"
    m = re.match(r"^(\d{1,4})\s*(d|day|days|天)?$", s)
    if m:
        n = int(m.group(1))
        if not 1 <= n <= 3650:
            raise ValueError(_("expected 1 to 3650 days"))
        return f"days:{n}"
    m = _EXPIRY.match(s)
    if m:
        kind = "month-end" if "month" in m["kind"] else "year-end"
        n = int(m["n"])
        if n > 120:
            raise ValueError(_("expected at most 120 months"))
        return f"{kind}:{n}"
    raise ValueError(_("expected never, a number of days (365d), month-end:N or year-end:N (N months)"))


def multipliers(text: str) -> dict[str, str]:
    """'coffee=2, tea=1.5' or a JSON object → {name: multiplier}; empty text clears the map."""
    s = str(text).strip()
    if not s:
        return {}
    if s.startswith("{"):
        try:
            raw = json.loads(s)
        except ValueError:
            raise ValueError(_("expected NAME=MULTIPLIER pairs such as coffee=2,tea=1.5")) from None
        if not isinstance(raw, dict):
            raise ValueError(_("expected NAME=MULTIPLIER pairs such as coffee=2,tea=1.5"))
        pairs = [(str(k), str(v)) for k, v in raw.items()]
    else:
        pairs = []
        for part in s.split(","):
            name, sep, value = part.partition("=")
            if not sep or not name.strip():
                raise ValueError(_("expected NAME=MULTIPLIER pairs such as coffee=2,tea=1.5"))
            pairs.append((name.strip(), value.strip()))
    return {name: multiplier(value) for name, value in pairs}


def enabled(text: str) -> bool:
    from crmcli.core.settings import _bool

    return _bool(text)


# ---------------------------------------------------------------------------------- the rules in force

@dataclass(frozen=True)
class Rules:
    enabled: bool = False
    rate: Decimal = Decimal(1)
    rounding: str = "floor"
    min_purchase: Decimal = Decimal(0)
    lock_days: int = 0
    expiry: str = "never"
    birthday_multiplier: Decimal = Decimal(1)
    category_multipliers: dict[str, Decimal] = field(default_factory=dict)
    level_multipliers: dict[str, Decimal] = field(default_factory=dict)
    birthday_bonus: int = 0
    referral_referrer: int = 0
    referral_referee: int = 0
    redemption_value: Decimal = Decimal("0.01")

    @cached_property
    def _by_category(self) -> dict[str, Decimal]:
        folded: dict[str, Decimal] = {}
        for name, value in self.category_multipliers.items():
            folded.setdefault(name.casefold(), value)  # the first spelling wins, as it always has
        return folded

    def category_multiplier(self, category: str | None) -> Decimal:
        if not category:
            return Decimal(1)
        return self._by_category.get(category.strip().casefold(), Decimal(1))

    def level_multiplier(self, classification: dict[str, Any] | None) -> Decimal:
        """The tiers feature's own points_multiplier, else this store's map by level name, then by tier."""
        if not classification:
            return Decimal(1)
        own = classification.get("points_multiplier")
        if own is not None:
            return Decimal(str(own))
        for key in ("level", "tier"):
            name = classification.get(key)
            if name:
                for mapped, value in self.level_multipliers.items():
                    if mapped.casefold() == str(name).casefold():
                        return value
        return Decimal(1)

    def as_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "rate": str(self.rate), "rounding": self.rounding,
                "min_purchase": str(self.min_purchase), "lock_days": self.lock_days, "expiry": self.expiry,
                "birthday_multiplier": str(self.birthday_multiplier),
                "category_multipliers": {k: str(v) for k, v in self.category_multipliers.items()},
                "level_multipliers": {k: str(v) for k, v in self.level_multipliers.items()},
                "birthday_bonus": self.birthday_bonus, "referral_referrer": self.referral_referrer,
                "referral_referee": self.referral_referee, "redemption_value": str(self.redemption_value)}


def load(session: Any) -> Rules:
    from crmcli.core import settings

    v = settings.get_many(session)
    return Rules(
        enabled=bool(v["points.enabled"]), rate=Decimal(str(v["points.rate"])), rounding=v["points.rounding"],
        min_purchase=Decimal(str(v["points.min_purchase"])), lock_days=int(v["points.lock_days"]),
        expiry=v["points.expiry"], birthday_multiplier=Decimal(str(v["points.multiplier.birthday"])),
        category_multipliers={k: Decimal(str(x)) for k, x in (v["points.multiplier.category"] or {}).items()},
        level_multipliers={k: Decimal(str(x)) for k, x in (v["points.multiplier.level"] or {}).items()},
        birthday_bonus=int(v["points.birthday_bonus"]), referral_referrer=int(v["points.referral.referrer"]),
        referral_referee=int(v["points.referral.referee"]),
        redemption_value=Decimal(str(v["points.redemption_value"])))


# --------------------------------------------------------------------------------------- computations

def round_points(value: Decimal, mode: str) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_UP if mode == "half-up" else ROUND_FLOOR))


@dataclass(frozen=True)
class Earning:
    points: int
    detail: dict[str, Any]


def earn_for(rules: Rules, *, amount_minor: int, currency_digits: int, category: str | None,
             classification: dict[str, Any] | None, birthday_month: bool) -> Earning:
    """Points one sale earns under ``rules`` (0 below the minimum purchase)."""
    units = Decimal(int(amount_minor)).scaleb(-currency_digits)
    tier = rules.level_multiplier(classification)
    cat = rules.category_multiplier(category)
    bday = rules.birthday_multiplier if birthday_month else Decimal(1)
    detail: dict[str, Any] = {"amount": str(units), "rate": str(rules.rate), "tier_multiplier": str(tier),
                              "category_multiplier": str(cat), "birthday_multiplier": str(bday),
                              "rounding": rules.rounding}
    if classification:
        detail["level"] = classification.get("level")
        detail["tier"] = classification.get("tier")
    if units < rules.min_purchase:
        detail["below_minimum"] = str(rules.min_purchase)
        return Earning(0, detail)
    raw = units * rules.rate * tier * cat * bday
    points = min(round_points(raw, rules.rounding), MAX_POINTS)
    return Earning(max(points, 0), detail)


@lru_cache(maxsize=4096)
def expiry_date(policy: str, earned_on: date) -> date | None:
    """The last day points earned on ``earned_on`` can be used (None: they never expire)."""
    if policy == "never":
        return None
    kind, _sep, n_text = policy.partition(":")
    n = int(n_text)
    if kind == "days":
        return earned_on + timedelta(days=n)
    target = earned_on + relativedelta(months=n)
    if kind == "month-end":
        return date(target.year, target.month, calendar.monthrange(target.year, target.month)[1])
    if kind == "year-end":
        return date(target.year, 12, 31)
    raise ValueError(policy)  # pragma: no cover - settings validate the policy


def describe_expiry(policy: str) -> str:
    if policy == "never":
        return _("never")
    kind, _sep, n = policy.partition(":")
    if kind == "days":
        return _("{n} days after they are earned").format(n=n)
    if kind == "month-end":
        return _("at the end of the month, {n} months after they are earned").format(n=n)
    return _("at the end of the year, {n} months after they are earned").format(n=n)
