"""Membership levels (e.g. silver, gold, diamond): definitions kept in the store, and the assignment rule.

A level has an entry threshold in the store's level basis (``level.basis``: net spend in minor units, or
points earned) over the level window (``level.window`` days), and privileges: a discount %, a points
multiplier (read by the points feature through hooks.CLASSIFICATION) and free-form perks.

Assignment at each recompute (docs/tiers.md, "Membership levels"):
- a customer qualifies for the highest level whose threshold their basis value reaches;
- upgrades apply at once (``level_since`` = the as-of date);
- downgrades follow ``level.downgrade``: ``never`` keeps the highest level reached; ``N`` days re-evaluates
  a level N days after it was reached or last re-evaluated: then the customer gets the level they qualify
  for (lower, the same, or none) and the clock restarts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlmodel import Session

from crmcli.core import audit, settings
from crmcli.core.clock import utcnow
from crmcli.errors import Conflict, InvalidInput, NotFound
from crmcli.i18n import _
from crmcli.store.models_tiers import CustomerClass, MemberLevel

LVL = MemberLevel.__table__
CC = CustomerClass.__table__


@dataclass
class Level:
    id: int
    name: str
    basis: str
    threshold: int
    discount_pct: Decimal | None
    points_multiplier: Decimal | None
    perks: list[str] = field(default_factory=list)


def _level(row: Any) -> Level:
    return Level(id=row["id"], name=row["name"], basis=row["basis"], threshold=int(row["threshold"]),
                 discount_pct=Decimal(row["discount_pct"]) if row["discount_pct"] else None,
                 points_multiplier=Decimal(row["points_multiplier"]) if row["points_multiplier"] else None,
                 perks=json.loads(row["perks"]) if row["perks"] else [])


def list_levels(session: Session) -> list[Level]:
    """Levels from the lowest to the highest threshold."""
    return [_level(r) for r in session.execute(select(LVL).order_by(LVL.c.threshold, LVL.c.id)).mappings()]


def resolve_level(session: Session, text: str) -> Level:
    wanted = text.strip().lower()
    levels = list_levels(session)
    for lvl in levels:
        if lvl.name.lower() == wanted:
            return lvl
    raise NotFound(_("No membership level '{name}'.").format(name=text),
                   hint=_("Known levels: {names}.").format(names=", ".join(lv.name for lv in levels) or "—")
                   if levels else _("Define one with `crm tier levels add NAME --threshold AMOUNT`."))


def _name(text: str) -> str:
    from crmcli.core.customers import clean_text

    name = clean_text(text, "name", max_len=40)
    if not name or "," in name:
        raise InvalidInput(_("'{value}' is not a level name.").format(value=text), field="name", value=text,
                           hint=_("Use a short word such as silver, gold or diamond."))
    return name


def _threshold(session: Session, text: str, basis: str, currency: str) -> int:
    from crmcli.core.money import parse_amount

    if basis == "spend":
        return parse_amount(text, currency, field="threshold")
    value = text.strip().replace(",", "")
    if not value.isdigit() or int(value) > 10**15:
        raise InvalidInput(_("'{value}' is not a number of points for threshold.").format(value=text),
                           field="threshold", value=text, hint=_("Write a whole number, e.g. 2000."))
    return int(value)


def _decimal(text: str, field_name: str, low: Decimal, high: Decimal, places: int) -> str | None:
    if not text.strip():
        return None
    try:
        value = Decimal(text.strip().rstrip("%").strip())
    except InvalidOperation:
        value = Decimal("NaN")
    exponent = value.as_tuple().exponent if value.is_finite() else 0
    if not value.is_finite() or not low <= value <= high or (isinstance(exponent, int) and -exponent > places):
        raise InvalidInput(_("'{value}' is not valid for {field}: expected a number from {low} to {high} with at most {n} decimals.")
                           .format(value=text, field=field_name, low=low, high=high, n=places),
                           field=field_name, value=text)
    return str(value)


def _perks(values: list[str]) -> list[str]:
    from crmcli.core.customers import clean_text

    return [p for p in (clean_text(v, "perk", max_len=200) for v in values) if p]


def _view(lvl: Level) -> dict[str, Any]:
    return {"name": lvl.name, "basis": lvl.basis, "threshold": lvl.threshold, "discount_pct": lvl.discount_pct,
            "points_multiplier": lvl.points_multiplier, "perks": lvl.perks}


def _check_unique(session: Session, name: str, threshold: int, exclude_id: int | None = None) -> None:
    for lvl in list_levels(session):
        if lvl.id == exclude_id:
            continue
        if lvl.name.lower() == name.lower():
            raise Conflict(_("A level named {name} already exists.").format(name=lvl.name),
                           hint=_("Change it with `crm tier levels edit {name} ...`.").format(name=lvl.name))
        if lvl.threshold == threshold:
            raise Conflict(_("Level {name} already has this threshold.").format(name=lvl.name),
                           hint=_("Each level needs its own threshold."))


def add_level(session: Session, ctx: Any, *, name: str, threshold: str, discount: str | None = None,
              multiplier: str | None = None, perks: list[str] | None = None) -> Level:
    basis = settings.get(session, "level.basis")
    clean = _name(name)
    minimum = _threshold(session, threshold, basis, ctx.currency)
    _check_unique(session, clean, minimum)
    now = utcnow()
    result = session.execute(insert(LVL).values(
        name=clean, basis=basis, threshold=minimum,
        discount_pct=_decimal(discount or "", "discount", Decimal(0), Decimal(100), 2),
        points_multiplier=_decimal(multiplier or "", "multiplier", Decimal(0), Decimal(100), 3),
        perks=json.dumps(_perks(perks or []), ensure_ascii=False), created_at=now, updated_at=now))
    lvl = resolve_level(session, clean)
    audit.record(session, entity="member_level", entity_id=int(result.inserted_primary_key[0]), action="add",
                 after=_view(lvl))
    return lvl


def edit_level(session: Session, ctx: Any, name: str, *, threshold: str | None = None, discount: str | None = None,
               multiplier: str | None = None, perks: list[str] | None = None, add_perks: list[str] | None = None,
               remove_perks: list[str] | None = None) -> bool:
    lvl = resolve_level(session, name)
    before = _view(lvl)
    values: dict[str, Any] = {}
    if threshold is not None:
        values["threshold"] = _threshold(session, threshold, lvl.basis, ctx.currency)
        _check_unique(session, lvl.name, values["threshold"], exclude_id=lvl.id)
    if discount is not None:
        values["discount_pct"] = _decimal(discount, "discount", Decimal(0), Decimal(100), 2)
    if multiplier is not None:
        values["points_multiplier"] = _decimal(multiplier, "multiplier", Decimal(0), Decimal(100), 3)
    new_perks = _perks(perks) if perks is not None else list(lvl.perks)
    for p in _perks(add_perks or []):
        if p not in new_perks:
            new_perks.append(p)
    for p in _perks(remove_perks or []):
        if p not in new_perks:
            raise NotFound(_("Level {name} has no perk '{perk}'.").format(name=lvl.name, perk=p))
        new_perks.remove(p)
    if new_perks != lvl.perks:
        values["perks"] = json.dumps(new_perks, ensure_ascii=False)
    if not values:
        return False
    session.execute(update(LVL).where(LVL.c.id == lvl.id).values(**values, updated_at=utcnow()))
    after = _view(resolve_level(session, lvl.name))
    if after == before:
        return False
    audit.record(session, entity="member_level", entity_id=lvl.id, action="edit",
                 before={k: v for k, v in before.items() if after[k] != v},
                 after={k: v for k, v in after.items() if before[k] != v})
    return True


def remove_level(session: Session, name: str) -> tuple[Level, int]:
    """Delete a level definition. Customers holding it keep the name until the next recompute re-assigns them."""
    lvl = resolve_level(session, name)
    holders = int(session.execute(select(func.count()).select_from(CC).where(CC.c.level == lvl.name)).scalar() or 0)
    session.execute(delete(LVL).where(LVL.c.id == lvl.id))
    audit.record(session, entity="member_level", entity_id=lvl.id, action="delete", before=_view(lvl))
    return lvl, holders


def members(session: Session) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in session.execute(
        select(CC.c.level, func.count()).where(CC.c.level.is_not(None)).group_by(CC.c.level))}


# ----------------------------------------------------------------------------------------- assignment

NO_DATE = -(2**40)  # "no date" in epoch-day arrays


def assign(value: Any, current: Any, since: Any, as_of: int, thresholds: list[int],
           downgrade_days: int | None) -> tuple[Any, Any]:
    """New level ranks and since-days (numpy arrays).

    value: basis value per customer; current: current rank (0 none, 1 = lowest level; -1 = a level that no
    longer exists); since: epoch day the current level was reached or re-evaluated (NO_DATE if none);
    thresholds: ascending. Ranks count from 1 at the lowest threshold.
    """
    import numpy as np

    value = np.asarray(value, dtype=np.int64)
    current = np.asarray(current, dtype=np.int64).copy()
    since = np.asarray(since, dtype=np.int64).copy()
    qualified = np.searchsorted(np.asarray(thresholds, dtype=np.int64), value, side="right").astype(np.int64)
    gone = current < 0  # level removed: re-assign now
    current[gone] = 0
    since[gone] = NO_DATE
    new = current.copy()
    new_since = since.copy()
    up = qualified > current
    new[up] = qualified[up]
    new_since[up] = as_of
    if downgrade_days is not None:
        due = ~up & (current > 0) & ((since == NO_DATE) | (as_of >= since + downgrade_days))
        new[due] = qualified[due]
        new_since[due] = np.where(qualified[due] > 0, as_of, NO_DATE)
    new_since[new == 0] = NO_DATE
    return new, new_since


def epoch_day(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def from_epoch_day(n: int) -> date | None:
    from datetime import timedelta

    return None if n == NO_DATE else date(1970, 1, 1) + timedelta(days=int(n))
