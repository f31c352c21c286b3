"""Money: integer minor units in the store, Decimal in Python, never float.

Currency precision and symbols come from Babel (CLDR data), so JPY has 0 decimals and KWD 3.
"""

from __future__ import annotations

import re
from functools import lru_cache
from decimal import Decimal, InvalidOperation

from crmcli.errors import InvalidInput
from crmcli.i18n import _, current_language

_AMOUNT = re.compile(r"^(?:\d+|\d{1,3}(?:,\d{3})+)(?:\.\d+)?$")
#: Largest accepted amount, in major units (a trillion: far above any one sale, far below int64 minor units).
MAX_AMOUNT_UNITS = 10**12


def _short(text: object) -> str:
    s = str(text)
    return s if len(s) <= 40 else s[:37] + "…"


@lru_cache(maxsize=None)
def precision(currency: str) -> int:
    # Cached: a bulk import asks once per amount, and Babel's lookup costs more than parsing the amount.
    from babel.numbers import get_currency_precision

    return int(get_currency_precision(currency))


# ISO 4217 codes that are not money a shop is paid in: precious metals, bond-market units, SDRs, the
# testing code and "no currency".
NOT_MONEY = frozenset({"XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX"})


def is_known_currency(code: str) -> bool:
    from babel.numbers import list_currencies

    code = code.upper()
    return code in list_currencies() and code not in NOT_MONEY


def parse_amount(text: str, currency: str, *, field: str = "amount", allow_zero: bool = True) -> int:
    """'12', '12.5', '1,234.50', '12.500' → minor units. Negative, more decimals than the currency has,
    too large (a trillion or more) or junk → InvalidInput naming the value (and the field, unless it is
    plainly 'amount')."""
    s = str(text).strip()
    digits = precision(currency)
    shown = _short(text)
    where = "" if field == "amount" else " " + _("for {field}").format(field=field)
    if s.startswith("-"):
        raise InvalidInput(_("Amount '{value}'{where} is negative.").format(value=shown, where=where),
                           field=field, value=text,
                           hint=_("Amounts are positive; record a refund with `crm purchase refund`."))
    if not _AMOUNT.match(s):
        raise InvalidInput(_("'{value}' is not an amount{where}.").format(value=shown, where=where),
                           field=field, value=text,
                           hint=_("Write digits with an optional decimal point, e.g. 128 or 99.50."))
    value = Decimal(s.replace(",", ""))
    if value >= MAX_AMOUNT_UNITS:  # checked before any arithmetic: '1' followed by 10,000 zeros is text, not money
        raise InvalidInput(_("Amount '{value}'{where} is too large.").format(value=shown, where=where),
                           field=field, value=text,
                           hint=_("Amounts must be below {max}.").format(max=f"{MAX_AMOUNT_UNITS:,}"))
    if value != value.quantize(Decimal(1).scaleb(-digits)):  # '12.50' and '12.500' fine, '12.345' not
        raise InvalidInput(_("Amount '{value}'{where} has more decimals than {currency} allows ({digits}).").format(
            value=shown, where=where, currency=currency, digits=digits), field=field, value=text,
            hint=_("Round it to {digits} decimals.").format(digits=digits))
    minor = int(value.scaleb(digits))
    if minor == 0 and not allow_zero:
        raise InvalidInput(_("Amount '{value}'{where} must be greater than zero.").format(value=shown, where=where),
                           field=field, value=text, hint=_("Give the amount, e.g. 128 or 99.50."))
    return minor


def to_decimal(minor: int | None, currency: str) -> Decimal:
    return Decimal(int(minor or 0)).scaleb(-precision(currency))


def format_money(minor: int | None, currency: str, *, language: str | None = None) -> str:
    """Human display with the currency's symbol and decimals, in the style of ``language`` (default: the
    interface language)."""
    from babel.numbers import format_currency

    locale = "zh_CN" if (language or current_language()) == "zh" else "en_US"
    try:
        return format_currency(to_decimal(minor, currency), currency, locale=locale)
    except (InvalidOperation, ValueError):  # pragma: no cover - unknown currency slipped through
        return f"{to_decimal(minor, currency)} {currency}"


class MoneyText(str):
    """An amount inside a sentence kept as data (crmcli.i18n.Message): English formatting as the value, the
    interface language's formatting where people read it."""

    minor: int
    currency: str

    def __new__(cls, minor: int, currency: str) -> "MoneyText":
        made = super().__new__(cls, format_money(minor, currency, language="en"))
        made.minor, made.currency = minor, currency
        return made

    def translated(self) -> str:
        return format_money(self.minor, self.currency)


def money_str(minor: int | None, currency: str) -> str:
    """Machine form: a plain decimal string with the currency's decimals ('12.50'), for JSON/CSV."""
    return f"{to_decimal(minor, currency):.{precision(currency)}f}"
