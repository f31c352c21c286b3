"""Validating and normalizing phones (phonenumbers → E.164) and e-mails (email-validator).

Invalid input is rejected with the value named; it is never stored altered into something else.
"""

from __future__ import annotations

from functools import lru_cache

from crmcli.errors import InvalidInput
from crmcli.i18n import _

SOCIAL_NETWORKS = ("wechat", "qq", "whatsapp", "line", "telegram", "weibo", "douyin", "xiaohongshu",
                   "instagram", "facebook", "x", "linkedin", "other")


@lru_cache(maxsize=65536)
def _phone(text: str, region: str | None) -> str | None:
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


@lru_cache(maxsize=65536)
def _email(text: str) -> tuple[str | None, str]:
    from email_validator import EmailNotValidError, validate_email

    try:
        # Deliverability needs DNS: never touch the network to store a customer.
        return validate_email(text, check_deliverability=False).normalized, ""
    except EmailNotValidError as e:
        return None, str(e)


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
