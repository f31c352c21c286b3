"""Parsing the dates people type: ISO, 2024/3/1, 2024年3月1日, 3月1日, yesterday, 90d, 3 months ago,
in 2 weeks. A day/month order that could be read both ways is refused with a hint to pass a format,
never guessed."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from dateutil.relativedelta import relativedelta

from crmcli.errors import InvalidInput
from crmcli.i18n import _

_UNITS = {
    "d": "days", "day": "days", "days": "days", "天": "days",
    "w": "weeks", "wk": "weeks", "week": "weeks", "weeks": "weeks", "周": "weeks",
    "m": "months", "mo": "months", "month": "months", "months": "months", "个月": "months", "月": "months",
    "y": "years", "yr": "years", "year": "years", "years": "years", "年": "years",
}
_WORDS = {"today": 0, "今天": 0, "yesterday": -1, "昨天": -1, "tomorrow": 1, "明天": 1}
_REL = re.compile(r"^(?P<sign>[+-]|in\s+)?(?P<n>\d{1,5})\s*(?P<unit>[a-z]+|天|周|个月|月|年)(?P<ago>\s+ago|前|后|以后|之后)?$")
_YMD = re.compile(r"^(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})$")
_YMD_COMPACT = re.compile(r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$")
_CN_FULL = re.compile(r"^(?P<y>\d{4})\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*[日号]?$")
_CN_MD = re.compile(r"^(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*[日号]?$")
_DMY = re.compile(r"^(?P<a>\d{1,2})[-/.](?P<b>\d{1,2})[-/.](?P<y>\d{4}|\d{2})$")
_DURATION = re.compile(r"^(?P<n>\d{1,5})\s*(?P<unit>[a-z]+|天|周|个月|月|年)$")

DATE_HINT = "Use YYYY-MM-DD (e.g. 2024-03-01), 2024年3月1日, a relative form such as yesterday, 90d or '3 months ago', or pass --date-format (e.g. %d/%m/%Y)."


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


def parse_date(text: str, *, today: date, field: str = "date", date_format: str | None = None) -> date:
    """Parse one date; ``today`` anchors relative forms (pass the --as-of date for reproducible runs)."""
    raw = text
    s = text.strip().lower()
    if not s:
        raise _fail(raw, field, _("empty"))
    if date_format:
        try:
            return datetime.strptime(text.strip(), date_format).date()
        except ValueError:
            raise _fail(raw, field, _("does not match {format}").format(format=date_format)) from None
    if s in _WORDS:
        return today + timedelta(days=_WORDS[s])
    if m := _REL.match(s):
        unit = _UNITS.get(m["unit"])
        if unit is None:
            raise _fail(raw, field, _("unknown unit '{unit}'").format(unit=m["unit"]))
        n = int(m["n"])
        future = bool(m["sign"] and m["sign"].strip() in ("+", "in")) or m["ago"] in ("后", "以后", "之后")
        delta = relativedelta(**{unit: n})
        return today + delta if future else today - delta
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
        if a == b:
            return _make(year, a, b, raw, field)
        raise _fail(raw, field, _("day and month could be either way round; pass --date-format %d/%m/%Y or %m/%d/%Y"))
    if re.search(r"[a-z]{3}", s):
        from dateutil import parser

        try:
            return parser.parse(text, default=datetime(today.year, 1, 1)).date()
        except (ValueError, OverflowError):
            raise _fail(raw, field) from None
    raise _fail(raw, field)


def parse_datetime(text: str, *, today: date, field: str = "time", date_format: str | None = None) -> datetime:
    """A local wall time: a date (midnight) or a date with a time ('2024-03-01 14:30', ISO 8601)."""
    s = text.strip()
    if date_format is None and re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}", s):
        try:
            return datetime.fromisoformat(s)
        except ValueError:
            raise _fail(text, field) from None
    if date_format is None and (m := re.match(r"^(?P<d>.+?)\s+(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?$", s)):
        day = parse_date(m["d"], today=today, field=field)
        try:
            return datetime(day.year, day.month, day.day, int(m["h"]), int(m["mi"]), int(m["s"] or 0))
        except ValueError:
            raise _fail(text, field, _("no such time")) from None
    if date_format and any(code in date_format for code in ("%H", "%M", "%I")):
        try:
            return datetime.strptime(s, date_format)
        except ValueError:
            raise _fail(text, field, _("does not match {format}").format(format=date_format)) from None
    day = parse_date(text, today=today, field=field, date_format=date_format)
    return datetime(day.year, day.month, day.day)


def parse_duration_days(text: str, *, field: str = "duration") -> int:
    """'90d', '12w', '6m', '1y', '30' → days (months count 30 days, years 365)."""
    s = text.strip().lower()
    if s.isdigit():
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
