"""Report ranges (--since/--until/--as-of) and calendar periods (day, ISO week, month, quarter)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from dateutil.relativedelta import relativedelta

from crmcli.errors import InvalidInput
from crmcli.i18n import _


@dataclass(frozen=True)
class Range:
    """Business dates, both ends included."""

    since: date
    until: date

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    def previous(self) -> "Range":
        """The range of the same length just before this one."""
        end = self.since - timedelta(days=1)
        return Range(end - timedelta(days=self.days - 1), end)

    def as_dict(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}


def start_of(day: date, by: str) -> date:
    if by == "day":
        return day
    if by == "week":
        return day - timedelta(days=day.weekday())
    if by == "month":
        return day.replace(day=1)
    if by == "quarter":
        return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    if by == "year":
        return date(day.year, 1, 1)
    raise ValueError(by)


def step(by: str) -> relativedelta:
    return {"day": relativedelta(days=1), "week": relativedelta(weeks=1), "month": relativedelta(months=1),
            "quarter": relativedelta(months=3), "year": relativedelta(years=1)}[by]


def end_of(start: date, by: str) -> date:
    return start + step(by) - timedelta(days=1)


def label(start: date, by: str) -> str:
    """2025-03-04 (day), 2025-W10 (ISO week), 2025-03 (month), 2025-Q1 (quarter)."""
    if by == "day":
        return start.isoformat()
    if by == "week":
        year, week, _day = start.isocalendar()
        return f"{year}-W{week:02d}"
    if by == "month":
        return f"{start.year}-{start.month:02d}"
    if by == "quarter":
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return str(start.year)


def periods(rng: Range, by: str) -> Iterator[date]:
    """The starts of every period that overlaps the range."""
    current = start_of(rng.since, by)
    while current <= rng.until:
        yield current
        current = current + step(by)


# How far back a report looks when --since is not given: whole periods ending with the as-of one.
DEFAULT_SPAN = {"day": 30, "week": 12, "month": 12, "quarter": 8}


def resolve(today: date, since: date | None, until: date | None, *, by: str | None = None,
            days: int | None = None) -> Range:
    """--until defaults to the as-of date; --since to ``days`` days back (inclusive) or, for a periodic
    report, the start of the period DEFAULT_SPAN[by]-1 periods before the one holding --until."""
    end = until or today
    if since is None:
        if by is not None:
            since = start_of(end, by) - step(by) * (DEFAULT_SPAN[by] - 1)
        else:
            since = end - timedelta(days=(days or 30) - 1)
    if since > end:
        raise InvalidInput(_("--since {since} is after --until {until}.").format(since=since, until=end),
                           field="since", value=since.isoformat(),
                           hint=_("Give a start on or before the end of the report."))
    return Range(since, end)


def change_percent(current: int | float, previous: int | float) -> float | None:
    """Growth from the previous value in percent (None when there is nothing to compare with)."""
    if not previous:
        return None
    return round((current - previous) * 100.0 / abs(previous), 1)
