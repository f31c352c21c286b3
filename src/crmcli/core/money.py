"""Money: integer minor units in the store, Decimal in Python, never float.

Currency precision and symbols come from Babel (CLDR data), so JPY has 0 decimals and KWD 3.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from crmcli.errors import InvalidInput
from crmcli.i18n import _, current_language

_AMOUNT = re.compile(r"^(?:\d+|\d{1,3}(?:,\d{3})+)(?:\.\d+)?$")


def precision(currency: str) -> int:
    from babel.numbers import get_currency_precision

    return int(get_currency_precision(currency))


def is_known_currency(code: str) -> bool:
    from babel.numbers import list_currencies

    return code.upper() in list_currencies()


def parse_amount(text: str, currency: str, *, field: str = "amount", allow_zero: bool = True) -> int:
    """'12', '12.5', '1,234.50' → minor units. Negative, too many decimals or junk → InvalidInput."""
    s = str(text).strip()
    digits = precision(currency)
    if s.startswith("-"):
        raise InvalidInput(_("Amount '{value}' for {field} is negative.").format(value=text, field=field),
                           field=field, value=text, hint=_("Amounts are positive; record a refund with `crm purchase refund`."))
    if not _AMOUNT.match(s):
        raise InvalidInput(_("'{value}' is not an amount for {field}.").format(value=text, field=field),
                           field=field, value=text, hint=_("Write digits with an optional decimal point, e.g. 128 or 99.50."))
    value = Decimal(s.replace(",", ""))
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # the pattern admits finite numbers only
    if -exponent > digits:
        raise InvalidInput(_("Amount '{value}' has more decimals than {currency} allows ({digits}).").format(
            value=text, currency=currency, digits=digits), field=field, value=text)
    minor = int(value.scaleb(digits))
    if minor == 0 and not allow_zero:
        raise InvalidInput(_("Amount for {field} must be greater than zero.").format(field=field), field=field, value=text)
    if minor > 10**15:
        raise InvalidInput(_("Amount '{value}' is too large.").format(value=text), field=field, value=text)
    return minor


def to_decimal(minor: int | None, currency: str) -> Decimal:
    return Decimal(int(minor or 0)).scaleb(-precision(currency))


def format_money(minor: int | None, currency: str) -> str:
    """Human display with the currency's symbol and decimals, in the interface language's style."""
    from babel.numbers import format_currency

    locale = "zh_CN" if current_language() == "zh" else "en_US"
    try:
        return format_currency(to_decimal(minor, currency), currency, locale=locale)
    except (InvalidOperation, ValueError):  # pragma: no cover - unknown currency slipped through
        return f"{to_decimal(minor, currency)} {currency}"


def money_str(minor: int | None, currency: str) -> str:
    """Machine form: a plain decimal string with the currency's decimals ('12.50'), for JSON/CSV."""
    return f"{to_decimal(minor, currency):.{precision(currency)}f}"
