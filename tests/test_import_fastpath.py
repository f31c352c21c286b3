"""The import fast paths for phones and e-mails (crmcli.core.contacts) against the libraries: for every input
the fast path answers, its answer must be exactly the library's (same E.164 / normalized form, same
valid-or-not); a fast path may only decline."""

from __future__ import annotations

import string

from hypothesis import example, given, settings
from hypothesis import strategies as st

from crmcli.core import contacts

REGIONS = ["CN", "HK", "TW", "DE", "FR", "JP", "SG", "US", "GB", "IN", "BR", "AU"]

digits = st.text(alphabet="0123456789", min_size=1, max_size=16)
separators = st.sampled_from(["", " ", "-"])


@st.composite
def phone_like(draw: st.DrawFn) -> str:
    region_cc = draw(st.sampled_from(["", "+86", "+86 ", "+49", "+33-", "+81", "+1 ", "+852", "+8", "+"]))
    body = draw(st.one_of(
        st.builds(lambda a, b: "1" + a + b, st.sampled_from(list("0123456789")), st.text("0123456789", min_size=0, max_size=11)),
        digits,
        st.lists(st.text("0123456789", min_size=1, max_size=4), min_size=1, max_size=5).map(
            lambda parts: " ".join(parts)),
        st.lists(st.text("0123456789", min_size=1, max_size=4), min_size=1, max_size=5).map(
            lambda parts: "-".join(parts)),
    ))
    return region_cc + body


def _check_phone(text: str, region: str) -> None:
    fast = contacts.phone_fast_path(text, region)
    if fast is None:
        return
    assert (fast or None) == contacts.phone_by_library(text, region), (text, region, fast)


@settings(max_examples=500, deadline=None)
@given(phone_like(), st.sampled_from(REGIONS))
@example("13800138000", "CN")
@example("+86 138-0013-8000", "CN")
@example("17951380013", "CN")
@example("12012345678", "CN")
@example("10012345678", "CN")
@example("0012345678", "CN")
def test_phone_fast_path_agrees_with_phonenumbers(text: str, region: str) -> None:
    _check_phone(text, region)


def test_phone_fast_path_every_chinese_mobile_prefix() -> None:
    """Every 11-digit number's first five digits (1xxxx), with two fixed tails: all 10,000 prefixes."""
    answered = 0
    for prefix in range(10000, 20000):
        for tail in ("000000", "987654"):
            text = f"{prefix}{tail}"
            _check_phone(text, "CN")
            answered += contacts.phone_fast_path(text, "CN") is not None
    assert answered > 15000  # the fast path really handles the common form


local_chars = string.ascii_letters + string.digits + "._+-!#$%&'*/=?^`{|}~\"() ,:;<>@[\\]"
domain_chars = string.ascii_letters + string.digits + ".-_"


@st.composite
def email_like(draw: st.DrawFn) -> str:
    local = draw(st.text(alphabet=local_chars, min_size=0, max_size=70))
    labels = draw(st.lists(st.text(alphabet=domain_chars, min_size=0, max_size=65), min_size=1, max_size=4))
    tld = draw(st.one_of(st.sampled_from(["com", "CN", "test", "localhost", "onion", "x", "co", "invalid", "arpa",
                                          "1com", "xn--fiqs8s", "local"]),
                         st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=0, max_size=64)))
    return local + "@" + ".".join([*labels, tld])


plain_email = st.builds(
    lambda local, labels, tld: local + "@" + ".".join([*labels, tld]),
    st.text(alphabet=string.ascii_letters + string.digits + "._+-", min_size=1, max_size=66),
    st.lists(st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=64), min_size=1, max_size=3),
    st.text(alphabet=string.ascii_letters + "-", min_size=1, max_size=6))


@settings(max_examples=800, deadline=None)
@given(st.one_of(email_like(), plain_email, st.text(max_size=40)))
@example("Ann.Lee@Example.COM")
@example("a@b.co")
@example("a..b@x.com")
@example(".a@x.com")
@example("a@x.test")
@example("a@-x.com")
@example("a@x-.com")
@example("a@sub.localhost")
@example("a" * 64 + "@x.com")
@example("a" * 65 + "@x.com")
def test_email_fast_path_agrees_with_email_validator(text: str) -> None:
    fast = contacts.email_fast_path(text)
    if fast is None:
        return
    assert contacts.email_by_library(text) == (fast, ""), text


def test_the_fast_paths_answer_the_common_forms() -> None:
    assert contacts.phone_fast_path("13800138000", "CN") == "+8613800138000"
    assert contacts.phone_fast_path("+86 138 0013 8000", "CN") == "+8613800138000"
    assert contacts.email_fast_path("Ann.Lee@Example.COM") == "Ann.Lee@example.com"
    assert contacts.phone_fast_path("+1 650 253 0000", "US") is None  # shared calling code: the library decides


@settings(max_examples=300, deadline=None)
@given(st.one_of(phone_like(), st.text(max_size=20)), st.sampled_from([*REGIONS, None]),
       st.one_of(email_like(), plain_email, st.text(max_size=30)))
def test_bulk_normalizers_answer_as_the_cached_ones(phone: str, region: str | None, email: str) -> None:
    """The import's uncached entry points (bulk_normalize_*) give exactly what `crm customer add` gets."""
    assert contacts.bulk_normalize_phone(phone, region) == contacts.try_normalize_phone(phone, region)
    assert contacts.bulk_normalize_email(email) == contacts.try_normalize_email(email)
