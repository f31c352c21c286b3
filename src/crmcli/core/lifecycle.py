"""Lifecycle stages, derived from each customer's own purchase rhythm (docs/tiers.md, "Lifecycle stages").

Counted in purchase days (several sales on one day are one visit), all history up to the as-of date:

- prospect: no sale at all;
- lost: no sale for longer than the lost threshold;
- at risk: no sale for longer than the at-risk threshold;
- new: exactly one purchase day (and not at risk/lost: for them the at-risk threshold is ``new_days``);
- loyal: two or more purchase days, and tier A or a top RFM segment (Champions, Loyal);
- repeat: the other customers with two or more purchase days.

Thresholds: with at least ``min_history`` purchase days the customer's usual interval
u = (last - first) / (purchase days - 1) gives at risk after max(ceil(at_risk_multiple * u), min_days)
days and lost after max(ceil(lost_multiple * u), 2 * min_days); with less history the fixed
``at_risk_days`` / ``lost_days`` apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from crmcli.errors import InvalidInput
from crmcli.i18n import N_, _

STAGES: dict[str, str] = {
    "prospect": N_("prospect"),
    "new": N_("new"),
    "repeat": N_("repeat"),
    "loyal": N_("loyal"),
    "at_risk": N_("at risk"),
    "lost": N_("lost"),
}
STAGE_KEYS: tuple[str, ...] = tuple(STAGES)


@dataclass(frozen=True)
class LifecycleRules:
    new_days: int = 90
    min_history: int = 3
    at_risk_multiple: Decimal = Decimal(2)
    lost_multiple: Decimal = Decimal(4)
    at_risk_days: int = 90
    lost_days: int = 180
    min_days: int = 14

    def validate(self) -> None:
        if self.at_risk_multiple >= self.lost_multiple:
            raise InvalidInput(_("lifecycle.at_risk_multiple ({a}) must be smaller than lifecycle.lost_multiple ({b}).")
                               .format(a=self.at_risk_multiple, b=self.lost_multiple), field="lifecycle.at_risk_multiple")
        if self.at_risk_days >= self.lost_days:
            raise InvalidInput(_("lifecycle.at_risk_days ({a}) must be smaller than lifecycle.lost_days ({b}).")
                               .format(a=self.at_risk_days, b=self.lost_days), field="lifecycle.at_risk_days")
        if self.new_days >= self.lost_days:
            raise InvalidInput(_("lifecycle.new_days ({a}) must be smaller than lifecycle.lost_days ({b}).")
                               .format(a=self.new_days, b=self.lost_days), field="lifecycle.new_days")


def stage_label(key: str | None) -> str:
    return _(STAGES[key]) if key in STAGES else "—"


def parse_stage(text: str) -> str:
    wanted = " ".join(text.strip().lower().replace("_", " ").replace("-", " ").split())
    for key, name in STAGES.items():
        if wanted in (key.replace("_", " "), name, _(name).lower()):
            return key
    raise InvalidInput(_("'{value}' is not a lifecycle stage.").format(value=text), field="stage", value=text,
                       hint=_("Use one of: {choices}.").format(choices=", ".join(STAGES.values())))


def thresholds(days: Any, first: Any, last: Any, rules: LifecycleRules) -> tuple[Any, Any]:
    """(at-risk after, lost after) in days, per customer (numpy arrays; meaningless where days == 0)."""
    import numpy as np

    days = np.asarray(days, dtype=np.int64)
    span = np.asarray(last, dtype=np.int64) - np.asarray(first, dtype=np.int64)
    usual = span / np.maximum(days - 1, 1)
    enough = days >= max(rules.min_history, 2)
    personal_risk = np.maximum(np.ceil(float(rules.at_risk_multiple) * usual), rules.min_days)
    personal_lost = np.maximum(np.ceil(float(rules.lost_multiple) * usual), 2 * rules.min_days)
    risk = np.where(days == 1, rules.new_days, np.where(enough, personal_risk, rules.at_risk_days))
    lost = np.where(enough, personal_lost, rules.lost_days)
    return risk.astype(np.int64), lost.astype(np.int64)


def stage_codes(days: Any, first: Any, last: Any, as_of: int, top: Any, rules: LifecycleRules) -> Any:
    """Index into STAGE_KEYS per customer (numpy int8). ``first``/``last`` are day ordinals of the first
    and last sale; ``top`` says tier A or a top RFM segment."""
    import numpy as np

    days = np.asarray(days, dtype=np.int64)
    gap = as_of - np.asarray(last, dtype=np.int64)
    risk, lost = thresholds(days, first, last, rules)
    code = np.full(len(days), STAGE_KEYS.index("repeat"), dtype=np.int8)
    code[np.asarray(top, dtype=bool)] = STAGE_KEYS.index("loyal")
    code[days == 1] = STAGE_KEYS.index("new")
    code[gap > risk] = STAGE_KEYS.index("at_risk")
    code[gap > lost] = STAGE_KEYS.index("lost")
    code[days == 0] = STAGE_KEYS.index("prospect")
    return code
