"""The parsers every command relies on: dates people type, amounts, phones, e-mails, social handles — including
property tests that they never fail with anything but InvalidInput, and that amounts round-trip exactly."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crmcli.core.contacts import mask_email, mask_phone, normalize_email, normalize_phone, parse_social
from crmcli.core.dates import age_on, moment, parse_date, parse_datetime, parse_duration_days
from crmcli.core.money import format_money, is_known_currency, money_str, parse_amount, precision
from crmcli.errors import InvalidInput

TODAY = date(2024, 6, 15)

# ------------------------------------------------------------------------------------------- dates


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-03-01", date(2024, 3, 1)), (" 2024-3-1 ", date(2024, 3, 1)), ("2024/3/1", date(2024, 3, 1)),
    ("2024.03.01", date(2024, 3, 1)), ("20240301", date(2024, 3, 1)), ("2024年3月1日", date(2024, 3, 1)),
    ("2024 年 3 月 1 号", date(2024, 3, 1)), ("3月1日", date(2024, 3, 1)), ("２０２４-０３-０１", date(2024, 3, 1)),
    ("today", TODAY), ("Today", TODAY), ("now", TODAY), ("今天", TODAY), ("yesterday", date(2024, 6, 14)),
    ("昨天", date(2024, 6, 14)), ("前天", date(2024, 6, 13)), ("tomorrow", date(2024, 6, 16)), ("后天", date(2024, 6, 17)),
    ("90d", date(2024, 3, 17)), ("90 days", date(2024, 3, 17)), ("3 months ago", date(2024, 3, 15)),
    ("1y", date(2023, 6, 15)), ("2w", date(2024, 6, 1)), ("-3d", date(2024, 6, 12)), ("+3d", date(2024, 6, 18)),
    ("in 2 weeks", date(2024, 6, 29)), ("2 weeks later", date(2024, 6, 29)), ("3 days from now", date(2024, 6, 18)),
    ("3天前", date(2024, 6, 12)), ("3天后", date(2024, 6, 18)), ("2个月前", date(2024, 4, 15)), ("1年前", date(2023, 6, 15)),
    ("17/05/1990", date(1990, 5, 17)), ("05/17/1990", date(1990, 5, 17)), ("5.5.2024", date(2024, 5, 5)),
    ("13/12/24", date(2024, 12, 13)), ("5 March 2024", date(2024, 3, 5)), ("March 5, 2024", date(2024, 3, 5)),
    ("mar 5", date(2024, 3, 5)), ("2024-02-29", date(2024, 2, 29)),
])
def test_date_forms(text, expected):
    assert parse_date(text, today=TODAY) == expected


@pytest.mark.parametrize(("text", "past", "future"), [
    ("2 weeks", date(2024, 6, 1), date(2024, 6, 29)), ("10d", date(2024, 6, 5), date(2024, 6, 25)),
    ("3 days ago", date(2024, 6, 12), date(2024, 6, 12)), ("in 3 days", date(2024, 6, 18), date(2024, 6, 18)),
])
def test_future_fields_count_forward_without_a_direction(text, past, future):
    assert parse_date(text, today=TODAY) == past
    assert parse_date(text, today=TODAY, future=True) == future


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"), ("   ", "empty"), ("2024-02-30", "no such day"), ("2023-02-29", "no such day"),
    ("0000-00-00", "no such day"), ("2024-13-01", "no such day"), ("2024年2月30日", "no such day"),
    ("03/04/2024", "either way round: 2024-03-04 or 2024-04-03"), ("02/30/2024", "no such day"),
    ("13/14/2024", "no such day"), ("0/5/2024", "no such day"), ("31/04/2024", "no such day"),
    ("99999 years ago", "out of range"), ("in 9999 years", "out of range"), ("3 fortnights", "unknown unit"),
    ("in 3 days ago", "give the direction once"), ("Monday", "give the day and the month"),
    ("March 2024", "give the day and the month"), ("someday", None), ("1e5", None), ("2024-03", None),
])
def test_bad_dates_name_the_value_and_the_field(text, reason):
    with pytest.raises(InvalidInput) as info:
        parse_date(text, today=TODAY, field="birthday")
    error = info.value
    assert f"'{text}' is not a valid date for birthday" in error.message
    if reason:
        assert reason in error.message
    assert error.field == "birthday" and error.value == text
    assert "YYYY-MM-DD" in (error.hint or "")


def test_explicit_date_format():
    assert parse_date("03/04/2024", today=TODAY, date_format="%d/%m/%Y") == date(2024, 4, 3)
    assert parse_date("03/04/2024", today=TODAY, date_format="%m/%d/%Y") == date(2024, 3, 4)
    with pytest.raises(InvalidInput, match="does not match %d/%m/%Y"):
        parse_date("2024-03-04", today=TODAY, date_format="%d/%m/%Y")


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-03-01 14:30", datetime(2024, 3, 1, 14, 30)), ("2024-03-01T14:30:15", datetime(2024, 3, 1, 14, 30, 15)),
    ("2024/3/1 9:05", datetime(2024, 3, 1, 9, 5)), ("yesterday 10:30", datetime(2024, 6, 14, 10, 30)),
    ("2024-03-01", datetime(2024, 3, 1)), ("2024年3月1日 08:00", datetime(2024, 3, 1, 8, 0)),
    ("2024-03-01T14:30+08:00", datetime(2024, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=8)))),
])
def test_datetime_forms(text, expected):
    assert parse_datetime(text, today=TODAY) == expected


@pytest.mark.parametrize("text", ["2024-03-01 25:00", "2024-03-01T10:61", "2024-03-01 10:00:99", "2024-02-30 10:00"])
def test_bad_datetimes(text):
    with pytest.raises(InvalidInput, match="is not a valid date for --at"):
        parse_datetime(text, today=TODAY, field="--at")


@pytest.mark.parametrize(("text", "days"), [("30", 30), ("90d", 90), ("12w", 84), ("6m", 180), ("1y", 365), ("2 周", 14)])
def test_durations(text, days):
    assert parse_duration_days(text) == days


@pytest.mark.parametrize("text", ["", "abc", "5 fortnights", "²", "-3d", "1234567"])
def test_bad_durations(text):
    with pytest.raises(InvalidInput, match="is not a duration"):
        parse_duration_days(text)


def test_age_counts_birthdays_passed():
    assert age_on(date(1990, 5, 17), date(2024, 5, 16)) == 33
    assert age_on(date(1990, 5, 17), date(2024, 5, 17)) == 34
    assert age_on(date(2000, 2, 29), date(2023, 2, 28)) == 22
    assert age_on(date(2000, 2, 29), date(2023, 3, 1)) == 23


def test_moment_is_now_today_and_noon_on_other_days():
    tz = ZoneInfo("Asia/Shanghai")
    real_today = datetime.now(tz).date()
    assert abs((moment(real_today, tz) - datetime.now(timezone.utc)).total_seconds()) < 5
    assert moment(date(2024, 6, 15), tz) == datetime(2024, 6, 15, 4, 0, tzinfo=timezone.utc)


DATEISH = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\A[0-9 ]{1,6}[-/.年]?[0-9]{0,4}[-/.月]?[0-9]{0,5}[日号]?\Z"),
    st.from_regex(r"\A[+-]?(in )?[0-9]{1,6} ?(d|w|m|y|days?|weeks?|months?|years?|天|周|月|年|个月)( ago| later|前|后)?\Z"),
    st.sampled_from(["Feb 30", "31 Apr 2024", "jan 0", "Mon 2024", "12/31/99", "00/00/0000", "0d", "99999d",
                     "9999-12-31", "0001-01-01", "in 0 days"]),
)


@settings(max_examples=400, deadline=None)
@given(text=DATEISH, today=st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)), future=st.booleans())
@example(text="99999y", today=date(9999, 12, 31), future=True)
@example(text="tomorrow", today=date(9999, 12, 31), future=False)
@example(text="yesterday", today=date(1, 1, 1), future=False)
def test_date_parsing_never_raises_anything_but_invalid_input(text, today, future):
    try:
        result = parse_date(text, today=today, future=future)
    except InvalidInput as e:
        assert e.message and e.field == "date" and "either way round: ?" not in e.message
        return
    assert isinstance(result, date)


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(DATEISH, st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2})?\Z")))
def test_datetime_parsing_never_raises_anything_but_invalid_input(text):
    try:
        result = parse_datetime(text, today=TODAY)
    except InvalidInput:
        return
    assert isinstance(result, datetime)


# ------------------------------------------------------------------------------------------- money

@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("12", "CNY", 1200), ("12.5", "CNY", 1250), ("12.50", "CNY", 1250), ("12.500", "CNY", 1250), ("0", "CNY", 0),
    ("1,234,567.89", "CNY", 123456789), ("0.01", "USD", 1), ("1200", "JPY", 1200), ("1,200", "JPY", 1200),
    ("1200.0", "JPY", 1200), ("1.234", "KWD", 1234), (" 7 ", "EUR", 700), ("999999999999.99", "CNY", 99999999999999),
])
def test_amount_forms(text, currency, minor):
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(("text", "says"), [
    ("-5", "Amount '-5' is negative"), ("-0", "is negative"), ("12.345", "more decimals than CNY allows (2)"),
    ("abc", "'abc' is not an amount"), ("", "'' is not an amount"), ("1,23", "is not an amount"),
    ("1.2.3", "is not an amount"), ("1e3", "is not an amount"), ("inf", "is not an amount"), ("¥5", "is not an amount"),
    ("+5", "is not an amount"), ("1000000000000", "is too large"), ("9" * 5000, "is too large"),
])
def test_bad_amounts(text, says):
    with pytest.raises(InvalidInput) as info:
        parse_amount(text, "CNY")
    assert says in info.value.message and info.value.hint and len(info.value.message) < 120
    assert info.value.field == "amount"


def test_zero_can_be_refused_and_the_field_is_named():
    with pytest.raises(InvalidInput, match="Amount '0' for refund must be greater than zero"):
        parse_amount("0", "CNY", field="refund", allow_zero=False)


CURRENCIES = ["CNY", "USD", "JPY", "KWD", "EUR", "GBP"]


@settings(max_examples=300, deadline=None)
@given(minor=st.integers(min_value=0, max_value=10**12 - 1), currency=st.sampled_from(CURRENCIES),
       grouped=st.booleans())
@example(minor=0, currency="CNY", grouped=False)
@example(minor=10**12 - 1, currency="KWD", grouped=True)
def test_amounts_round_trip(minor, currency, grouped):
    text = money_str(minor, currency)
    assert Decimal(text).as_tuple().exponent == -precision(currency)
    if grouped:  # the thousands separators people paste are accepted too
        whole, dot, frac = text.partition(".")
        text = f"{int(whole):,}" + dot + frac
    assert parse_amount(text, currency) == minor
    assert format_money(minor, currency)  # always displayable


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(st.text(max_size=40), st.from_regex(r"\A-?[0-9,]{0,20}(\.[0-9]{0,6})?\Z")),
       currency=st.sampled_from(CURRENCIES))
def test_amount_parsing_never_raises_anything_but_invalid_input(text, currency):
    try:
        minor = parse_amount(text, currency)
    except InvalidInput as e:
        assert e.message
        return
    assert isinstance(minor, int) and 0 <= minor < 10**12 * 10 ** precision(currency)


def test_currency_codes():
    assert is_known_currency("CNY") and is_known_currency("usd") and is_known_currency("XOF")
    assert not is_known_currency("XXX") and not is_known_currency("XAU") and not is_known_currency("ABC")
    assert (precision("CNY"), precision("JPY"), precision("KWD")) == (2, 0, 3)
    assert money_str(-2850, "CNY") == "-28.50" and money_str(5, "JPY") == "5" and money_str(None, "CNY") == "0.00"


# ---------------------------------------------------------------------------------------- contacts

@pytest.mark.parametrize(("text", "region", "expected"), [
    ("13800138000", "CN", "+8613800138000"), ("138 0013 8000", "CN", "+8613800138000"),
    ("138-0013-8000", "CN", "+8613800138000"), ("+86 138 0013 8000", None, "+8613800138000"),
    ("(650) 253-0000", "US", "+16502530000"), ("07911 123456", "GB", "+447911123456"),
    ("+44 7911 123456", "CN", "+447911123456"), ("010-12345678", "CN", "+861012345678"),
])
def test_phones_are_normalized_to_e164(text, region, expected):
    assert normalize_phone(text, region) == expected


@pytest.mark.parametrize(("text", "region", "hint"), [
    ("12345", "CN", "country code"), ("1380013800", "CN", "Check the digits"), ("phone", "CN", "Check the digits"),
    ("", "CN", "Check"), ("13800138000", None, "crm config set phone.region CN"), ("+999 1234", None, "Check the digits"),
])
def test_bad_phones(text, region, hint):
    with pytest.raises(InvalidInput) as info:
        normalize_phone(text, region)
    assert f"'{text}' is not a valid phone number" in info.value.message and hint in (info.value.hint or "")


@pytest.mark.parametrize(("text", "expected"), [
    ("ann@example.com", "ann@example.com"), (" Ann@Example.COM ", "Ann@example.com"),
    ("王芳@例子.中国", "王芳@例子.中国"), ("a.b+tag@sub.example.co.uk", "a.b+tag@sub.example.co.uk"),
])
def test_emails(text, expected):
    assert normalize_email(text) == expected


@pytest.mark.parametrize("text", ["ann", "ann@", "@example.com", "ann@example", "ann@@example.com", "a b@example.com", ""])
def test_bad_emails(text):
    with pytest.raises(InvalidInput) as info:
        normalize_email(text)
    assert f"'{text}' is not a valid e-mail address" in info.value.message and info.value.hint


def test_social_handles():
    assert parse_social("wechat:ann_lee") == ("wechat", "ann_lee")
    assert parse_social(" WeChat : Ann ") == ("wechat", "Ann")
    assert parse_social("x:@ann") == ("x", "@ann")
    for bad in ("ann", "wechat:", "myspace:ann", ":ann"):
        with pytest.raises(InvalidInput, match="is not a social handle"):
            parse_social(bad)


def test_masks():
    assert mask_phone("+8613800138000") == "+86138****8000"
    assert mask_phone("12345") == "12***"
    assert mask_email("fang@example.com") == "f***@example.com"
    assert mask_email("not-an-email") == "not-an-email"


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=30), region=st.sampled_from(["CN", "US", None]))
def test_contact_parsers_raise_only_invalid_input(text, region):
    for parse in (lambda: normalize_phone(text, region), lambda: normalize_email(text), lambda: parse_social(text)):
        try:
            parse()
        except InvalidInput:
            pass
