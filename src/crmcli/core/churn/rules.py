"""The churn warning rules' thresholds, kept as settings in the store (``churn.*``; `crm churn rules`).

Each rule has three thresholds, for the levels low, medium and high ("-" leaves a level out):

=================  =============  ==========================================================================
setting            default        a customer reaches the level when ...
=================  =============  ==========================================================================
churn.interval     1.5,2,3        days since the last purchase ≥ N × their own usual interval
churn.recency      60,90,180      days since the last purchase ≥ N (customers with too little history)
churn.spend_drop   30,50,80       net spend in the last window is down ≥ N % on the window before
churn.nps          -,6,3          their latest NPS answer (0-10) is ≤ N
churn.csat         -,2,1          their latest CSAT answer (1-5) is ≤ N
churn.complaints   -,1,2          they have ≥ N complaints open
churn.no_contact   120,240,-      no interaction (call, visit, message) for ≥ N days
=================  =============  ==========================================================================

and three single values: ``churn.min_history`` (3 purchase days before the usual interval is used),
``churn.spend_window`` (90 days) and ``churn.satisfaction_days`` (365: older answers do not count).
A customer's risk is the highest level any rule gives (none when no rule fires).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from crmcli.errors import InvalidInput
from crmcli.i18n import N_, _

LEVELS = ("none", "low", "medium", "high")
LEVEL_LABELS = {"none": N_("none"), "low": N_("low"), "medium": N_("medium"), "high": N_("high")}

# Rule key → (setting key, direction, kind). "up": a higher value is worse (value ≥ threshold);
# "down": a lower value is worse (value ≤ threshold).
RULES: dict[str, tuple[str, str, str]] = {
    "interval": ("churn.interval", "up", "multiple"),
    "recency": ("churn.recency", "up", "days"),
    "spend_drop": ("churn.spend_drop", "up", "percent"),
    "nps": ("churn.nps", "down", "nps"),
    "csat": ("churn.csat", "down", "csat"),
    "complaints": ("churn.complaints", "up", "count"),
    "no_contact": ("churn.no_contact", "up", "days"),
}
SINGLE = {"churn.min_history": "history", "churn.spend_window": "window", "churn.satisfaction_days": "window"}
# Rules that read the surveys/feedback tables (skipped, and said so, when those are missing).
FEEDBACK_RULES = ("nps", "csat", "complaints")


def level_label(level: str) -> str:
    return _(LEVEL_LABELS.get(level, level))


def parse_level(text: str) -> str:
    value = text.strip().lower()
    for key, label in LEVEL_LABELS.items():
        if value in (key, _(label).lower()):
            return key
    raise InvalidInput(_("'{value}' is not a risk level.").format(value=text), field="risk", value=text,
                       hint=_("Use one of: {choices}.").format(choices=", ".join(LEVELS)))


# ------------------------------------------------------------------------------------ value parsers

def _number(text: str, kind: str) -> float | int:
    s = text.strip().rstrip("%×x").strip().lower().removesuffix("d").strip()
    try:
        value = Decimal(s)
    except InvalidOperation:
        raise ValueError(_("'{value}' is not a number").format(value=text.strip())) from None
    if not value.is_finite():
        raise ValueError(_("'{value}' is not a number").format(value=text.strip()))
    limits = {"multiple": (Decimal("0.01"), Decimal(100)), "days": (Decimal(1), Decimal(3650)),
              "percent": (Decimal(1), Decimal(100)), "nps": (Decimal(0), Decimal(10)),
              "csat": (Decimal(1), Decimal(5)), "count": (Decimal(1), Decimal(1000))}
    low, high = limits[kind]
    if value < low or value > high:
        raise ValueError(_("{value} is out of range ({low} to {high})").format(value=text.strip(), low=low, high=high))
    if kind == "multiple":
        if -int(value.as_tuple().exponent) > 2:  # type: ignore[operator]
            raise ValueError(_("at most 2 decimals"))
        return float(value)
    if value != value.to_integral_value():
        raise ValueError(_("'{value}' is not a whole number").format(value=text.strip()))
    return int(value)


def thresholds(kind: str, direction: str) -> Any:
    """A parser of 'LOW,MEDIUM,HIGH' ('-' leaves a level out; 'off' all of them) → [low, medium, high]."""
    def parse(text: str) -> list[float | int | None]:
        s = str(text).strip()
        if s.lower() in ("off", "none", "-"):
            return [None, None, None]
        parts = [p.strip() for p in s.split(",")]
        if len(parts) != 3:
            raise ValueError(_("expected three thresholds LOW,MEDIUM,HIGH such as 30,50,80 ('-' leaves a level out)"))
        values = [None if p in ("-", "", "off") else _number(p, kind) for p in parts]
        given = [v for v in values if v is not None]
        ordered = all((a <= b) if direction == "up" else (a >= b) for a, b in zip(given, given[1:]))
        if not ordered:
            raise ValueError(_("the thresholds must rise from low to high") if direction == "up"
                             else _("the thresholds must fall from low to high (a lower score is worse)"))
        return values
    return parse


def history(text: str) -> int:
    s = str(text).strip()
    if not s.isdigit() or not 2 <= int(s) <= 1000:
        raise ValueError(_("expected a whole number from 2 to 1000"))
    return int(s)


def window(text: str) -> int:
    s = str(text).strip().lower().removesuffix("days").removesuffix("d").strip()
    if not s.isdigit() or not 1 <= int(s) <= 3650:
        raise ValueError(_("expected a number of days from 1 to 3650, e.g. 90 or 90d"))
    return int(s)


PARSERS: dict[str, Any] = {
    **{setting: thresholds(kind, direction) for setting, direction, kind in RULES.values()},
    "churn.min_history": history,
    "churn.spend_window": window,
    "churn.satisfaction_days": window,
}


# ---------------------------------------------------------------------------------- the rules in force

@dataclass(frozen=True)
class Rules:
    thresholds: dict[str, list[Any]]  # rule key → [low, medium, high]
    min_history: int = 3
    spend_window: int = 90
    satisfaction_days: int = 365

    def levels(self, rule: str, values: Any) -> Any:
        """Level code (0 none .. 3 high) per value for one rule (numpy; NaN values give 0)."""
        import numpy as np

        _setting, direction, _kind = RULES[rule]
        values = np.asarray(values, dtype=np.float64)
        out = np.zeros(values.shape, dtype=np.int8)
        for code, threshold in enumerate(self.thresholds[rule], start=1):
            if threshold is None:
                continue
            with np.errstate(invalid="ignore"):
                hit = values >= threshold if direction == "up" else values <= threshold
            out[hit] = code
        return out

    def enabled(self, rule: str) -> bool:
        return any(v is not None for v in self.thresholds[rule])

    def as_dict(self) -> dict[str, Any]:
        return {**{RULES[k][0]: v for k, v in self.thresholds.items()}, "churn.min_history": self.min_history,
                "churn.spend_window": self.spend_window, "churn.satisfaction_days": self.satisfaction_days}


def setting_keys() -> list[str]:
    return [setting for setting, _d, _k in RULES.values()] + list(SINGLE)


def load(session: Any) -> Rules:
    from crmcli.core import settings

    values = {key: settings.get(session, key) for key in setting_keys()}
    return Rules(thresholds={rule: list(values[setting]) for rule, (setting, _d, _k) in RULES.items()},
                 min_history=int(values["churn.min_history"]), spend_window=int(values["churn.spend_window"]),
                 satisfaction_days=int(values["churn.satisfaction_days"]))


def describe(value: Any) -> str:
    """[30, 50, None] → '30, 50, -'; single values as they are."""
    if isinstance(value, list):
        return ", ".join("-" if v is None else (f"{v:g}" if isinstance(v, float) else str(v)) for v in value)
    return str(value)
