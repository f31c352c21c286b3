"""Per-store facts most domain functions need: currency, phone region, time zone and 'today'."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from zoneinfo import ZoneInfo

from sqlmodel import Session

from crmcli.core import clock, settings


@dataclass(frozen=True)
class StoreContext:
    currency: str
    region: str | None
    tz: ZoneInfo
    today: date

    @classmethod
    def load(cls, session: Session, as_of: date | None = None) -> "StoreContext":
        values = settings.get_many(session)
        tz = clock.zone(values["timezone"])
        return cls(currency=values["currency"], region=values["phone.region"] or None, tz=tz,
                   today=as_of or clock.today(tz))

    def at(self, as_of: date | None) -> "StoreContext":
        return replace(self, today=as_of) if as_of else self
