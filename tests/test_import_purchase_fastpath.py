"""The purchase import's quick paths against the full ones: the time column (rowfields.quick_when against
rowfields.when, the parser of `crm purchase add --at`), text columns (rowfields.text against clean_text) and the
stored forms of times and dates (store.bulk.sqlite_datetime/sqlite_date against SQLAlchemy's own processors).
A quick path may only decline: whatever it answers must be exactly the full path's answer, and it never accepts
what the full path rejects."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from crmcli.core.context import StoreContext
from crmcli.core.customers import clean_text
from crmcli.core.io.importer import RowError
from crmcli.core.io.import_purchases import P
from crmcli.core.io.rowfields import quick_when, text, when
from crmcli.errors import CrmError
from crmcli.store.bulk import sqlite_date, sqlite_datetime

# Zones with DST gaps and folds, a half-hour zone, one east of the date line, and UTC.
ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Adelaide", "Pacific/Kiritimati",
         "Asia/Kolkata", "UTC"]
TODAY = date(2024, 3, 31)


@st.composite
def time_like(draw: st.DrawFn) -> str:
    """Mostly the shop-export form, with its near misses: impossible days and hours, one-digit fields, other
    separators, offsets, fractions, spaces, non-ASCII digits, dates around today and DST changes."""
    year = draw(st.sampled_from([2023, 2024, 2025, 1999, 2000, 9999, 1]))
    month = draw(st.integers(0, 13))
    day = draw(st.integers(0, 32))
    hour = draw(st.integers(0, 25))
    minute = draw(st.integers(0, 61))
    second = draw(st.integers(0, 61))
    sep = draw(st.sampled_from([" ", "T", "  ", "t", "_"]))
    body = f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}"
    if draw(st.booleans()):
        body += f":{second:02d}"
    tail = draw(st.sampled_from(["", "", "", ".5", "+08:00", "Z", " ", "\n", "-05:00"]))
    head = draw(st.sampled_from(["", "", "", " ", "\ufeff"]))
    text_ = head + body + tail
    if draw(st.integers(0, 9)) == 0:
        text_ = text_.replace("1", "\uff11")  # a full-width digit
    return text_


def _full(raw: str, ctx: StoreContext) -> tuple[datetime, date] | str:
    try:
        return when(raw, "purchased_at", ctx, None)
    except RowError as e:
        return "rejected: " + e.reason


def _check_time(raw: str, zone: str, today: date = TODAY) -> None:
    ctx = StoreContext("CNY", "CN", ZoneInfo(zone), today)
    quick = quick_when(raw, ctx)
    if quick is None:
        return
    full = _full(raw, ctx)
    assert not isinstance(full, str), (raw, zone, quick, full)
    assert quick == full, (raw, zone)
    assert quick[0].utcoffset() == timedelta(0) and quick[0].tzinfo is not None
    assert sqlite_datetime(quick[0]) == sqlite_datetime(full[0])


@settings(max_examples=700, deadline=None)
@given(st.one_of(time_like(), st.text(max_size=25)), st.sampled_from(ZONES))
@example("2024-03-31 02:30", "Europe/Berlin")  # in the spring-forward gap
@example("2023-10-29 02:30", "Europe/Berlin")  # in the autumn fold
@example("2024-03-10 02:30:00", "America/New_York")
@example("2024-03-31 23:59", "Asia/Shanghai")  # today, late
@example("2024-04-01 00:00", "Asia/Shanghai")  # tomorrow
@example("2024-04-01 00:30", "Pacific/Kiritimati")
@example("2024-02-30 10:00", "UTC")
@example("2024-01-01 24:00", "UTC")
@example("2024-01-01 9:30", "UTC")
@example("2024-01-01T10:00", "UTC")
@example(" 2024-01-01 10:00", "UTC")
@example("0001-01-01 00:00", "Asia/Shanghai")
@example("0001-01-01 00:00", "America/New_York")
def test_quick_when_agrees_with_the_full_parser(raw: str, zone: str) -> None:
    _check_time(raw, zone)


def test_quick_when_takes_the_benchmark_forms_and_refuses_the_future() -> None:
    ctx = StoreContext("CNY", "CN", ZoneInfo("Asia/Shanghai"), TODAY)
    assert quick_when("2024-03-01 14:30", ctx) == (datetime(2024, 3, 1, 6, 30, tzinfo=timezone.utc), date(2024, 3, 1))
    assert quick_when("2024-03-01T00:30:15", ctx) == (datetime(2024, 2, 29, 16, 30, 15, tzinfo=timezone.utc),
                                                      date(2024, 3, 1))
    assert quick_when("2024-04-01 00:00", ctx) is None  # the future: the full path says why
    with pytest.raises(RowError, match="future"):
        when("2024-04-01 00:00", "purchased_at", ctx, None)
    assert quick_when("2024-02-30 10:00", ctx) is None
    assert quick_when("01/03/2024 10:00", ctx) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.sampled_from([5, 30, 100]))
@example(" latte ", 100)
@example("a\tb", 100)
@example("a\x07b", 100)
@example("\u00a0x\u00a0", 100)
@example("x" * 31, 30)
@example("   ", 30)
@example("拿铁\u2028", 30)
def test_text_columns_answer_as_clean_text(raw: str, max_len: int) -> None:
    try:
        expected: str | None = clean_text(raw, "product", max_len=max_len) or None
    except CrmError:
        expected = None
        with pytest.raises(RowError):
            text({"product": raw}, "product", max_len)
        return
    assert text({"product": raw}, "product", max_len) == expected


UTC_ZONES = [timezone.utc, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.sampled_from(UTC_ZONES)),
       st.dates())
@example(datetime(2024, 3, 1, 6, 30, tzinfo=timezone.utc), date(2024, 3, 1))
@example(datetime(999, 1, 1, 0, 0, 0, 5, tzinfo=timezone.utc), date(999, 1, 1))
def test_stored_forms_are_sqlalchemys(value: datetime, day: date) -> None:
    dialect = sqlite.dialect()
    at = P.c.purchased_at.type.dialect_impl(dialect).bind_processor(dialect)
    on = P.c.purchased_on.type.dialect_impl(dialect).bind_processor(dialect)
    assert sqlite_datetime(value) == at(value)
    assert sqlite_date(day) == on(day)
