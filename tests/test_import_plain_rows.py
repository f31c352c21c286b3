"""The quick check of plain customer rows (CustomerHandler._prepare_plain) against the full path: for every row
it answers, the prepared values, contacts and tags must be exactly the full path's; a row the full path
rejects must never pass the quick check (it declines, and the full path gives its message)."""

from __future__ import annotations

from datetime import date

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crm_helpers import cli, template_store  # noqa: F401
from crmcli.cli.common import store_context
from crmcli.core.io.import_customers import CustomerHandler, Prepared
from crmcli.core.io.importer import Options, Row, RowError

texts = st.one_of(
    st.sampled_from(["王芳", "Ann Lee", "上海", " x ", "'\tlead", "'=SUM(A1)", "a\x01b", "\t", "x" * 201,
                     "Shop, Inc.", "ünïcode"]),
    st.text(max_size=12))
phones = st.one_of(
    st.sampled_from(["13800138000", "+86 138 0013 8000", "138-0013-8000", "12345", "0108888888",
                     "13800138000;13900139000", "13800138000 / 13800138000", "+1 650 253 0000", "abc", "'13800138000",
                     "17951380013", "１３８００１３８０００"]),
    st.from_regex(r"1[3-9]\d{9}", fullmatch=True), st.text(alphabet="0123456789 -+;", max_size=16))
emails = st.one_of(
    st.sampled_from(["ann@example.com", "Ann@Example.COM", "a@b.test", "no-at", "a@x.com, A@X.com", "a..b@x.com",
                     "ann@例子.中国", "ann@example.com;bob@example.org"]),
    st.from_regex(r"[a-z0-9.]{1,8}@[a-z]{1,6}\.(com|cn)", fullmatch=True), st.text(max_size=12))
days = st.one_of(
    st.sampled_from(["1990-03-01", "1990/3/1", "1990年3月1日", "03/04/1990", "13/04/1990", "2030-01-01", "today",
                     "90d", "1990-02-30", "5 March 1990", "", "19900301"]),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2035, 1, 1)).map(str), st.text(max_size=10))
tags = st.one_of(st.sampled_from(["vip", "vip;VIP;new", "a,b", "x" * 65, "vip；老客", "; ;", "a\x02"]), st.text(max_size=10))
genders = st.one_of(st.sampled_from(["f", "女", "Male", " m ", "x", "unknown", "'\t"]), st.text(max_size=4))
codes = st.one_of(st.sampled_from(["C000123", "c-1.x_2", "-bad", "a" * 41, "中文"]), st.text(max_size=8))
FIELDS = {"name": texts, "first_name": texts, "last_name": texts, "phone": st.lists(phones, min_size=1, max_size=2),
          "email": st.lists(emails, min_size=1, max_size=2), "birthday": days, "gender": genders, "code": codes,
          "city": texts, "occupation": texts, "company": texts, "notes": texts, "source": texts,
          "preferences_text": texts, "address": st.lists(texts, min_size=1, max_size=2),
          "tags": st.lists(tags, min_size=1, max_size=2), "next_follow_up": days, "wechat": texts}

# Mostly valid values too, so that many rows pass both ways (random ones are mostly rejected).
GOOD_NAME = st.one_of(st.sampled_from(["王芳", "Ann Lee"]), st.text(min_size=1, max_size=8))
GOOD = {"phone": st.lists(st.one_of(st.from_regex(r"1[3-9]\d{9}", fullmatch=True),
                                    st.from_regex(r"\+86 1[3-9]\d \d{4} \d{4}", fullmatch=True)), min_size=1, max_size=2),
        "email": st.lists(st.from_regex(r"[A-Za-z0-9._+-]{1,8}@[A-Za-z]{1,6}\.(com|cn|CN|org)", fullmatch=True),
                          min_size=1, max_size=2),
        "birthday": st.dates(min_value=date(1900, 1, 1), max_value=date(2024, 6, 30)).map(str),
        "tags": st.lists(st.one_of(st.sampled_from(["vip", "VIP", "新客"]), st.text(min_size=1, max_size=6)),
                         min_size=1, max_size=2),
        "gender": st.sampled_from(["f", "女", "Male", "other"]), "code": st.from_regex(r"C\d{6}", fullmatch=True),
        "city": texts, "notes": texts, "address": st.lists(texts, min_size=1, max_size=2)}


def _present(f: dict) -> dict:  # type: ignore[type-arg]
    return {k: v for k, v in f.items() if v != "" and v != []}  # the column plan leaves out empty cells


rows = st.one_of(st.fixed_dictionaries({}, optional=FIELDS).map(_present),
                 st.fixed_dictionaries({"name": GOOD_NAME}, optional=GOOD).map(_present))


def _same(plain: Prepared, full: Prepared) -> None:
    assert plain.values == full.values
    assert (plain.phones, plain.emails, plain.socials, plain.tags) == (full.phones, full.emails, full.socials,
                                                                        full.tags)
    assert (plain.prefs, plain.code_given, plain.consent, plain.referred_by) == (full.prefs, full.code_given,
                                                                                 full.consent, full.referred_by)


def _handler(session, date_format: str | None = None) -> CustomerHandler:  # type: ignore[no-untyped-def]
    ctx = store_context(session, "2024-06-30")
    return CustomerHandler(session, ctx, 1, None, Options(kind="customers", date_format=date_format))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=rows, date_format=st.sampled_from([None, "%d/%m/%Y"]))
@example(fields={"name": "王芳", "phone": ["13800138000"], "email": ["Ann@Example.COM"], "birthday": "1990-03-01",
                 "city": "上海", "tags": ["vip"]}, date_format=None)
@example(fields={"name": "Ann", "birthday": "2030-01-01"}, date_format=None)
@example(fields={"name": "Ann", "birthday": "03/04/1990"}, date_format=None)
@example(fields={"name": "Ann", "birthday": "03/04/1990"}, date_format="%d/%m/%Y")
@example(fields={"first_name": "芳", "last_name": "王", "gender": "'\t"}, date_format=None)
def test_plain_rows_are_prepared_exactly_as_the_full_path(store, fields, date_format) -> None:  # type: ignore[no-untyped-def]
    with store.write() as session:
        handler = _handler(session, date_format)
        row = Row(2, fields, {}, [])
        plain = handler._prepare_plain(row)
        try:
            full = handler._prepare_full(Row(2, fields, {}, []))
        except RowError as e:
            assert plain is None, (fields, e.reason)
            return
        if plain is not None:
            _same(plain, full)


def test_the_quick_check_takes_the_common_rows(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as session:
        handler = _handler(session)
        row = Row(2, {"name": "王芳", "phone": ["138 0013 8000"], "email": ["Ann@Example.COM"],
                      "birthday": "1990-03-01", "city": "上海", "tags": ["vip;VIP"]}, {}, [])
        plain = handler._prepare_plain(row)
        assert plain is not None and plain.data is None
        assert plain.values == {"name": "王芳", "birthday": date(1990, 3, 1), "city": "上海"}
        assert (plain.phones, plain.emails, plain.tags) == (["+8613800138000"], ["Ann@example.com"], ["vip"])
        assert handler._data(plain).phones == ["138 0013 8000"]  # built when an update needs it
        # Anything else takes the full path.
        assert handler._prepare_plain(Row(2, {"name": "Ann", "consent_email": "yes"}, {}, [])) is None
        assert handler._prepare_plain(Row(2, {"name": "Ann"}, {"size": "M"}, [])) is None
