"""Validating and normalizing phones (phonenumbers → E.164) and e-mails (email-validator).

Invalid input is rejected with the value named; it is never stored altered into something else.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from crmcli.errors import InvalidInput
from crmcli.i18n import _

SOCIAL_NETWORKS = ("wechat", "qq", "whatsapp", "line", "telegram", "weibo", "douyin", "xiaohongshu",
                   "instagram", "facebook", "x", "linkedin", "other")


@lru_cache(maxsize=65536)
def _phone(text: str, region: str | None) -> str | None:
    fast = phone_fast_path(text, region)
    if fast is not None:
        return fast or None
    return phone_by_library(text, region)


def phone_by_library(text: str, region: str | None) -> str | None:
    import phonenumbers

    try:
        number = phonenumbers.parse(text, region or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_phone(text: str, region: str | None, *, field: str = "phone") -> str:
    value = text.strip()
    result = _phone(value, region) if value else None
    if result is None:
        if not region and not value.startswith("+"):
            hint = _("Write it with its country code (e.g. +86 138 0013 8000) or set a default region: crm config set phone.region CN")
        else:
            hint = _("Check the digits; numbers from another country need their country code (+...).")
        raise InvalidInput(_("'{value}' is not a valid phone number{region}.").format(
            value=text, region=f" ({region})" if region else ""), field=field, value=text, hint=hint)
    return result


def try_normalize_phone(text: str, region: str | None) -> str | None:
    return _phone(text.strip(), region) if text.strip() else None


def bulk_normalize_phone(text: str, region: str | None) -> str | None:
    """try_normalize_phone for a bulk import, whose values are mostly distinct: the fast path is asked first,
    outside the per-value cache (which would only miss and evict there); the cached path decides the rest."""
    value = text.strip()
    if not value:
        return None
    fast = phone_fast_path(value, region)
    if fast is not None:
        return fast or None
    return _phone(value, region)


# ----------------------------------------------------------------------------------------- fast paths
# A bulk import validates a million phones and e-mails; the libraries cost ~100 µs per value, mostly in
# generic parsing. The fast paths below handle only the plainest forms and answer exactly as the library does
# (tests/test_import_fastpath.py checks them against the libraries with hypothesis); anything else, or any
# doubt, returns None and the library decides.

_PLAIN_DIGITS = re.compile(r"^[1-9]\d{1,3}(?:[ -]?\d{2,4}){1,4}$")


@lru_cache(maxsize=None)
def _region_rules(region: str) -> tuple[int, list[tuple[Any, list[Any]]], Any] | None:
    """(country code, (general pattern, type patterns) for each number length up to 15, the national-prefix-
    for-parsing and international-prefix patterns) from the library's own metadata; None for regions the fast
    path does not handle."""
    from phonenumbers import PhoneMetadata
    from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

    meta = PhoneMetadata.metadata_for_region(region.upper())
    if meta is None or meta.country_code is None:
        return None
    if len(COUNTRY_CODE_TO_REGION_CODE.get(meta.country_code, ())) != 1:
        return None  # shared calling codes (+1, +7, +44 ...) pick the region by number: leave to the library
    if meta.leading_digits or meta.national_prefix_transform_rule:
        return None

    def desc(d: Any) -> Any:
        if d is None or d.national_number_pattern is None:
            return None
        return (re.compile(d.national_number_pattern), set(d.possible_length or ()))

    general = desc(meta.general_desc)
    types = [x for x in (desc(getattr(meta, name)) for name in (
        "mobile", "fixed_line", "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager",
        "uan", "voicemail")) if x is not None]
    prefix = re.compile(meta.national_prefix_for_parsing) if meta.national_prefix_for_parsing else None
    intl = re.compile(meta.international_prefix) if meta.international_prefix else None
    # By number length: the general pattern if that length is possible for it (else None: not a number of
    # the region), and the type patterns for which the length is possible, in the library's order.
    by_length = []
    for n in range(16):
        g = general[0] if general is not None and (not general[1] or n in general[1]) else None
        by_length.append((g, [pattern for pattern, lengths in types if not lengths or n in lengths]))
    return meta.country_code, by_length, (prefix, intl)


def phone_fast_path(text: str, region: str | None) -> str | None:
    """E.164 for a plain national number of ``region`` ('13800138000', '138 0013 8000') or the same with the
    region's own country code ('+86 138-0013-8000'); '' when such a number is certainly invalid; None when
    the form is not one of these (the caller asks the library)."""
    if not region or not text.isascii():
        return None
    rules = _region_rules(region)
    if rules is None:
        return None
    cc, by_length, (prefix, intl) = rules
    if text[:1] == "+":
        own = f"+{cc}"
        if not text.startswith(own):
            return None
        text = text[len(own):]
        if text[:1] in (" ", "-"):
            text = text[1:]
    if text.isdigit():  # (ASCII here) what _PLAIN_DIGITS accepts of a digits-only text, without the regex
        if not (4 <= len(text) <= 20 and text[0] != "0"):
            return None
        nn = text
    else:
        if _PLAIN_DIGITS.match(text) is None:
            return None
        nn = text.replace(" ", "").replace("-", "")
    # Digits the library would strip or reinterpret (national prefix, carrier codes, international prefix).
    if len(nn) > 15 or (prefix is not None and prefix.match(nn)) or (intl is not None and intl.match(nn)):
        return None
    general, types = by_length[len(nn)]
    if general is None or general.fullmatch(nn) is None:
        return ""
    for pattern in types:
        if pattern.fullmatch(nn) is not None:
            return f"+{cc}{nn}"
    return ""


_PLAIN_EMAIL = re.compile(r"^(?P<local>[A-Za-z0-9_+\-]+(?:\.[A-Za-z0-9_+\-]+)*)@"
                          r"(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})$")


@lru_cache(maxsize=1)
def _special_use() -> tuple[frozenset[str], tuple[str, ...]]:
    """The special-use names that are top-level domains, and '.name' for those with a dot."""
    from email_validator import SPECIAL_USE_DOMAIN_NAMES

    return frozenset(SPECIAL_USE_DOMAIN_NAMES), tuple("." + d for d in SPECIAL_USE_DOMAIN_NAMES if "." in d)


def email_fast_path(text: str) -> str | None:
    """The normalized form of a plain ASCII address (dot-atom local part of letters, digits, . _ + -, a domain
    of ordinary labels and an alphabetic top-level domain), or None: ask the library."""
    m = _PLAIN_EMAIL.match(text)
    if m is None:
        return None
    local, domain = m["local"], m["domain"].lower()
    if len(local) > 64 or len(text) > 254 or len(domain) > 253 or "--" in domain:
        return None  # lengths and IDNA-like labels ('xn--'): the library's rules are subtle there
    tlds, dotted = _special_use()
    if domain.rpartition(".")[2] in tlds or (dotted and domain.endswith(dotted)):
        return None
    return f"{local}@{domain}"


@lru_cache(maxsize=65536)
def _email(text: str) -> tuple[str | None, str]:
    fast = email_fast_path(text)
    if fast is not None:
        return fast, ""
    return email_by_library(text)


def email_by_library(text: str) -> tuple[str | None, str]:
    from email_validator import EmailNotValidError, validate_email

    try:
        # Deliverability needs DNS: never touch the network to store a customer.
        return validate_email(text, check_deliverability=False).normalized, ""
    except EmailNotValidError as e:
        return None, str(e)


def try_normalize_email(text: str) -> str | None:
    value = text.strip()
    return _email(value)[0] if value else None


def bulk_normalize_email(text: str) -> str | None:
    """try_normalize_email for a bulk import (see bulk_normalize_phone)."""
    value = text.strip()
    if not value:
        return None
    return email_fast_path(value) or _email(value)[0]


def normalize_email(text: str, *, field: str = "email") -> str:
    value = text.strip()
    result, reason = _email(value) if value else (None, _("empty"))
    if result is None:
        raise InvalidInput(_("'{value}' is not a valid e-mail address ({reason}).").format(value=text, reason=reason),
                           field=field, value=text, hint=_("Write it as name@example.com."))
    return result


def parse_social(text: str, *, field: str = "social") -> tuple[str, str]:
    """'wechat:ann_lee' → ('wechat', 'ann_lee')."""
    network, sep, handle = text.partition(":")
    network = network.strip().lower()
    handle = handle.strip()
    if not sep or not handle or network not in SOCIAL_NETWORKS:
        raise InvalidInput(_("'{value}' is not a social handle.").format(value=text), field=field, value=text,
                           hint=_("Write NETWORK:HANDLE, e.g. wechat:ann_lee; networks: {networks}.").format(
                               networks=", ".join(SOCIAL_NETWORKS)))
    return network, handle


def mask_phone(value: str) -> str:
    if len(value) <= 7:
        return value[:2] + "*" * max(len(value) - 2, 0)
    return value[: len(value) - 8] + "****" + value[-4:]


def mask_email(value: str) -> str:
    local, _sep, domain = value.partition("@")
    return (local[:1] + "***@" + domain) if domain else value
