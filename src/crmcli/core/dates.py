"""Parsing the dates people type: ISO, 2024/3/1, 2024年3月1日, 3月1日, yesterday, 90d, 3 months ago,
in 2 weeks. A day/month order that could be read both ways is refused with a hint, never guessed.

A relative form without a direction ("90d", "2 weeks") counts back from today, except for fields that
name a future date (a next follow-up), where it counts forward: ``parse_date(..., future=True)``.
Explicit directions always win: "3 days ago", "-3d", "3天前" are past; "in 3 days", "+3d", "3天后" future.
Every failure is an InvalidInput naming the value and the field; nothing else escapes.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from dateutil.relativedelta import relativedelta

from crmcli.errors import InvalidInput
from crmcli.i18n import _

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

_UNITS = {
    "d": "days", "day": "days", "days": "days", "天": "days",
    "w": "weeks", "wk": "weeks", "week": "weeks", "weeks": "weeks", "周": "weeks", "星期": "weeks",
    "m": "months", "mo": "months", "month": "months", "months": "months", "个月": "months", "月": "months",
    "y": "years", "yr": "years", "year": "years", "years": "years", "年": "years",
}
_WORDS = {"today": 0, "now": 0, "今天": 0, "yesterday": -1, "昨天": -1, "tomorrow": 1, "明天": 1,
          "前天": -2, "后天": 2}
_PAST = ("ago", "before", "前", "以前", "之前")
_FUTURE = ("later", "from now", "hence", "后", "以后", "之后")
_REL = re.compile(r"^(?P<sign>[+-]|in\s+)?(?P<n>\d{1,5})\s*(?P<unit>[a-z]+|天|周|星期|个月|月|年)"
                  r"(?:\s*(?P<dir>ago|before|later|from now|hence|前|以前|之前|后|以后|之后))?$")
_YMD = re.compile(r"^(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})$")
_YMD_COMPACT = re.compile(r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$")
_CN_FULL = re.compile(r"^(?P<y>\d{4})\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*[日号]?$")
_CN_MD = re.compile(r"^(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*[日号]?$")
_DMY = re.compile(r"^(?P<a>\d{1,2})[-/.](?P<b>\d{1,2})[-/.](?P<y>\d{4}|\d{2})$")
_DURATION = re.compile(r"^(?P<n>\d{1,5})\s*(?P<unit>[a-z]+|天|周|个月|月|年)$")

DATE_HINT = ("Use YYYY-MM-DD (e.g. 2024-03-01), 2024/3/1, 2024年3月1日, or a relative form such as today, "
             "yesterday, 90d, '3 months ago' or 'in 2 weeks'.")


def _fail(text: str, field: str, reason: str | None = None) -> InvalidInput:
    message = _("'{value}' is not a valid date for {field}").format(value=text, field=field)
    if reason:
        message += f" ({reason})"
    return InvalidInput(message + ".", field=field, value=text, hint=_(DATE_HINT))


def _make(y: int, m: int, d: int, text: str, field: str) -> date:
    try:
        return date(y, m, d)
    except ValueError:
        raise _fail(text, field, _("no such day")) from None


def _shift(today: date, delta: timedelta | relativedelta, forward: bool, text: str, field: str) -> date:
    try:
        return today + delta if forward else today - delta
    except (ValueError, OverflowError):
        raise _fail(text, field, _("out of range")) from None


def parse_date(text: str, *, today: date, field: str = "date", date_format: str | None = None,
               future: bool = False) -> date:
    """Parse one date; ``today`` anchors relative forms (pass the --as-of date for reproducible runs).

    ``future``: a relative form without a direction ('2 weeks') means that long from today, not ago.
    """
    raw = text
    s = " ".join(str(text).strip().lower().split())
    if not s:
        raise _fail(raw, field, _("empty"))
    if date_format:
        try:
            return datetime.strptime(str(text).strip(), date_format).date()
        except ValueError:
            raise _fail(raw, field, _("does not match {format}").format(format=date_format)) from None
    if s in _WORDS:
        return _shift(today, timedelta(days=abs(_WORDS[s])), _WORDS[s] >= 0, raw, field)
    if m := _REL.match(s):
        unit = _UNITS.get(m["unit"])
        if unit is None:
            raise _fail(raw, field, _("unknown unit '{unit}'").format(unit=m["unit"]))
        sign = (m["sign"] or "").strip()
        direction = m["dir"]
        if sign and direction:
            raise _fail(raw, field, _("give the direction once, e.g. 'in 3 days' or '3 days ago'"))
        if sign:
            forward = sign in ("+", "in")
        elif direction:
            forward = direction in _FUTURE
        else:
            forward = future
        return _shift(today, relativedelta(**{unit: int(m["n"])}), forward, raw, field)
    for pattern in (_YMD, _YMD_COMPACT, _CN_FULL):
        if m := pattern.match(s):
            return _make(int(m["y"]), int(m["m"]), int(m["d"]), raw, field)
    if m := _CN_MD.match(s):
        return _make(today.year, int(m["m"]), int(m["d"]), raw, field)
    if m := _DMY.match(s):
        a, b = int(m["a"]), int(m["b"])
        year = int(m["y"]) if len(m["y"]) == 4 else 2000 + int(m["y"])
        if a > 12 and b <= 12:
            return _make(year, b, a, raw, field)
        if b > 12 and a <= 12:
            return _make(year, a, b, raw, field)
        if a == b or (a > 12 and b > 12):
            return _make(year, a, b, raw, field)  # 13/14/2024 is no day either way
        readings = []
        for mm, dd in ((a, b), (b, a)):
            try:
                readings.append(date(year, mm, dd).isoformat())
            except ValueError:
                pass
        if len(readings) < 2:  # a zero day or month: no day either way
            return _make(year, a, b, raw, field)
        raise _fail(raw, field, _("day and month could be either way round: {readings}; write it as YYYY-MM-DD")
                    .format(readings=_(" or ").join(readings)))
    if re.search(r"[a-z]{3}", s):
        return _parse_words(text, today, raw, field)
    raise _fail(raw, field)


def _parse_words(text: str, today: date, raw: str, field: str) -> date:
    """English month names ('5 March 2024', 'Mar 5'): the day and the month must both be written;
    a missing year is this year. Parsed twice with different defaults to detect what was left out."""
    from dateutil import parser

    try:
        first = parser.parse(text, default=datetime(today.year, 1, 1))
        second = parser.parse(text, default=datetime(today.year, 2, 2))
    except Exception:  # noqa: BLE001 - dateutil raises ValueError, OverflowError, TypeError...
        raise _fail(raw, field) from None
    if (first.month, first.day) != (second.month, second.day) or first.year != second.year:
        raise _fail(raw, field, _("give the day and the month"))
    return first.date()


def parse_datetime(text: str, *, today: date, field: str = "time", date_format: str | None = None,
                   future: bool = False) -> datetime:
    """A local wall time: a date (midnight) or a date with a time ('2024-03-01 14:30', ISO 8601)."""
    s = text.strip()
    if date_format is None and re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}", s):
        try:
            return datetime.fromisoformat(s)
        except ValueError:
            raise _fail(text, field) from None
    if date_format is None and (m := re.match(r"^(?P<d>.+?)\s+(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?$", s)):
        day = parse_date(m["d"], today=today, field=field, future=future)
        try:
            return datetime(day.year, day.month, day.day, int(m["h"]), int(m["mi"]), int(m["s"] or 0))
        except ValueError:
            raise _fail(text, field, _("no such time")) from None
    if date_format and any(code in date_format for code in ("%H", "%M", "%I")):
        try:
            return datetime.strptime(s, date_format)
        except ValueError:
            raise _fail(text, field, _("does not match {format}").format(format=date_format)) from None
    day = parse_date(text, today=today, field=field, date_format=date_format, future=future)
    return datetime(day.year, day.month, day.day)


def parse_duration_days(text: str, *, field: str = "duration") -> int:
    """'90d', '12w', '6m', '1y', '30' → days (months count 30 days, years 365)."""
    s = text.strip().lower()
    if s.isdecimal() and len(s) <= 6:
        return int(s)
    m = _DURATION.match(s)
    unit = _UNITS.get(m["unit"]) if m else None
    if not m or unit is None:
        raise InvalidInput(_("'{value}' is not a duration for {field}.").format(value=text, field=field),
                           field=field, value=text, hint=_("Use a number of days or forms like 90d, 12w, 6m, 1y."))
    return int(m["n"]) * {"days": 1, "weeks": 7, "months": 30, "years": 365}[unit]


def age_on(birthday: date, day: date) -> int:
    years = day.year - birthday.year
    if (day.month, day.day) < (birthday.month, birthday.day):
        years -= 1
    return years


def moment(today: date, tz: "ZoneInfo") -> datetime:
    """'Now' for a record made without an explicit time: the real time when ``today`` is the real date,
    else noon of ``today`` in ``tz`` (so a command run with --as-of dates its records on that day)."""
    from crmcli.core.clock import local_to_utc, utcnow, utc_to_local

    now = utcnow()
    if utc_to_local(now, tz).date() == today:
        return now
    return local_to_utc(datetime(today.year, today.month, today.day, 12, 0, 0), tz)
