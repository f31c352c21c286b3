"""Settings live in the store (copying the file moves the business). Each key has a spec that
validates values and gives the default."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from crmcli.errors import InvalidInput, NotFound
from crmcli.i18n import N_, _
from crmcli.store.models import Setting


@dataclass(frozen=True)
class SettingSpec:
    key: str
    default: Any
    parse: Callable[[str], Any]
    help: str  # marked with N_, translated where shown


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on", "y", "是"):
        return True
    if value in ("0", "false", "no", "off", "n", "否"):
        return False
    raise ValueError(_("expected true or false"))


def _currency(text: str) -> str:
    from crmcli.core.money import is_known_currency

    code = text.strip().upper()
    if not is_known_currency(code):
        raise ValueError(_("not an ISO 4217 currency code such as CNY, USD or EUR"))
    return code


def _region(text: str) -> str:
    import phonenumbers

    code = text.strip().upper()
    if code and code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(_("not a region code such as CN, US or GB"))
    return code


def _timezone(text: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(text.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(_("not an IANA time zone such as Asia/Shanghai or Europe/London")) from None
    return text.strip()


def _language(text: str) -> str:
    value = text.strip().lower()
    if value not in ("", "en", "zh"):
        raise ValueError(_("expected en or zh (or empty to follow CRM_LANG and the locale)"))
    return value


def _prefix(text: str) -> str:
    value = text.strip()
    if not value or not value.isalnum() or len(value) > 8:
        raise ValueError(_("expected 1-8 letters or digits"))
    return value


def _host(text: str) -> str:
    value = text.strip()
    if value and (any(ch.isspace() for ch in value) or "/" in value or len(value) > 253):
        raise ValueError(_("expected a host name such as smtp.example.com (or empty)"))
    return value


def _port(text: str) -> int:
    value = text.strip()
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ValueError(_("expected a port number from 1 to 65535"))
    return int(value)


def _line(text: str) -> str:
    value = text.strip()
    if any(ord(ch) < 32 for ch in value) or len(value) > 320:
        raise ValueError(_("expected one short line of text"))
    return value


def _sender(text: str) -> str:
    from email.utils import parseaddr

    value = _line(text)
    if value and "@" not in parseaddr(value)[1]:
        raise ValueError(_("expected an address such as shop@example.com or 'My Shop <shop@example.com>'"))
    return value


def _followup_priority(text: str) -> str:
    value = text.strip().lower()
    if value not in ("none", "low", "normal", "high", "urgent"):
        raise ValueError(_("expected low, normal, high, urgent or none"))
    return value


def _points(name: str) -> Callable[[str], Any]:
    """A parser from crmcli.core.points.rules, imported when a value is set."""
    def parse(text: str) -> Any:
        from crmcli.core.points import rules

        return getattr(rules, name)(text)
    return parse


SPECS: dict[str, SettingSpec] = {s.key: s for s in [
    SettingSpec("currency", "USD", _currency, N_("Currency of all amounts (ISO 4217 code).")),
    SettingSpec("phone.region", "", _region, N_("Default region for phone numbers written without +country code.")),
    SettingSpec("timezone", "UTC", _timezone, N_("Time zone of the business: business dates and displayed times.")),
    SettingSpec("ui.language", "", _language, N_("Interface language: en or zh (empty: CRM_LANG, then the locale).")),
    SettingSpec("customer.code_prefix", "C", _prefix, N_("Prefix of generated customer codes.")),
    SettingSpec("privacy.mask", False, _bool, N_("Mask phones and e-mails in tables, cards and exports.")),
    SettingSpec("store.demo", False, _bool, N_("Marks a demo store (crm demo may rebuild it).")),
    SettingSpec("smtp.host", "", _host, N_("SMTP server for survey e-mails (the password is kept in the keyring).")),
    SettingSpec("smtp.port", 587, _port, N_("SMTP port (587 with STARTTLS; 465 means TLS from the start).")),
    SettingSpec("smtp.user", "", _line, N_("SMTP login name (empty: no login).")),
    SettingSpec("smtp.from", "", _sender, N_("Sender of survey e-mails, e.g. 'My Shop <shop@example.com>'.")),
    SettingSpec("smtp.starttls", True, _bool, N_("Upgrade the SMTP connection with STARTTLS.")),
    SettingSpec("survey.followup_priority", "high", _followup_priority,
                N_("Priority of the follow-up opened for a detractor (NPS 0-6, CSAT 1-2); none to turn it off.")),
    SettingSpec("points.enabled", False, _points("enabled"), N_("Loyalty points: earn automatically on purchases.")),
    SettingSpec("points.rate", "1", _points("rate"), N_("Points per currency unit of spend (before multipliers).")),
    SettingSpec("points.rounding", "floor", _points("rounding"), N_("Rounding of earned points: floor or half-up.")),
    SettingSpec("points.min_purchase", "0", _points("amount"), N_("Smallest purchase amount that earns points.")),
    SettingSpec("points.lock_days", 0, _points("days"), N_("Days before earned points can be spent (return window).")),
    SettingSpec("points.expiry", "never", _points("expiry"),
                N_("When points expire: never, 365d, month-end:N or year-end:N (N months after earning).")),
    SettingSpec("points.multiplier.birthday", "1", _points("multiplier"), N_("Points multiplier in the birthday month.")),
    SettingSpec("points.multiplier.category", {}, _points("multipliers"),
                N_("Points multipliers by product category, e.g. coffee=2,tea=1.5.")),
    SettingSpec("points.multiplier.level", {}, _points("multipliers"),
                N_("Points multipliers by membership level or tier, e.g. gold=1.5,A=1.2.")),
    SettingSpec("points.birthday_bonus", 0, _points("count"), N_("Points granted once in each birthday month.")),
    SettingSpec("points.referral.referrer", 0, _points("count"),
                N_("Points for the referrer when a referred customer makes a first purchase.")),
    SettingSpec("points.referral.referee", 0, _points("count"),
                N_("Points for the referred customer on their first purchase.")),
    SettingSpec("points.redemption_value", "0.01", _points("amount"),
                N_("Value of one point in currency units (for liability reports).")),
]}


def register(spec: SettingSpec) -> None:
    """Feature modules add their settings here (points rules, churn thresholds, ...)."""
    SPECS[spec.key] = spec


def _tiers(name: str) -> Callable[[str], Any]:
    """A parser from crmcli.core.tiers (classification rules, `crm tier rules`), imported when a value is set."""
    def parse(text: str) -> Any:
        from crmcli.core import tiers

        return tiers.PARSERS[name](text)
    return parse


for _tier_spec in [
    SettingSpec("tier.method", "pareto", _tiers("method"),
                N_("Tier method: pareto (share of revenue) or thresholds (minimum spend, orders, tenure).")),
    SettingSpec("tier.window", 365, _tiers("days"), N_("Tier window in days (net spend and orders are counted over it).")),
    SettingSpec("tier.pareto.a", "80", _tiers("percent"), N_("Pareto: share of revenue (%) made by tier A.")),
    SettingSpec("tier.pareto.b", "15", _tiers("percent"), N_("Pareto: share of revenue (%) made by tier B (C makes the rest).")),
    SettingSpec("tier.a.min_spend", None, _tiers("amount"), N_("Thresholds: minimum net spend in the window for A.")),
    SettingSpec("tier.a.min_orders", None, _tiers("count"), N_("Thresholds: minimum number of purchases in the window for A.")),
    SettingSpec("tier.a.min_tenure", None, _tiers("optional_days"), N_("Thresholds: minimum days since the first purchase for A.")),
    SettingSpec("tier.b.min_spend", None, _tiers("amount"), N_("Thresholds: minimum net spend in the window for B.")),
    SettingSpec("tier.b.min_orders", None, _tiers("count"), N_("Thresholds: minimum number of purchases in the window for B.")),
    SettingSpec("tier.b.min_tenure", None, _tiers("optional_days"), N_("Thresholds: minimum days since the first purchase for B.")),
    SettingSpec("tier.match", "all", _tiers("match"),
                N_("Thresholds: a class needs all of its minimums (all) or at least one (any).")),
    SettingSpec("tier.prospects", "none", _tiers("prospects"), N_("Tier of customers who never bought anything: none or C.")),
    SettingSpec("rfm.window", 365, _tiers("days"), N_("RFM window in days (frequency and monetary value are counted over it).")),
    SettingSpec("lifecycle.new_days", 90, _tiers("days"), N_("A one-purchase customer is new for this many days, then at risk.")),
    SettingSpec("lifecycle.min_history", 3, _tiers("history"),
                N_("Purchase days needed before a customer's own usual interval is used.")),
    SettingSpec("lifecycle.at_risk_multiple", "2", _tiers("multiple"), N_("At risk after this many usual intervals without a purchase.")),
    SettingSpec("lifecycle.lost_multiple", "4", _tiers("multiple"), N_("Lost after this many usual intervals without a purchase.")),
    SettingSpec("lifecycle.at_risk_days", 90, _tiers("days"), N_("At risk after this many days without a purchase (too little history).")),
    SettingSpec("lifecycle.lost_days", 180, _tiers("days"), N_("Lost after this many days without a purchase (too little history).")),
    SettingSpec("lifecycle.min_days", 14, _tiers("days"),
                N_("Personal thresholds are at least this many days (at risk) and twice as many (lost).")),
    SettingSpec("level.basis", "spend", _tiers("basis"),
                N_("Membership levels are reached by net spend or by points earned in the level window.")),
    SettingSpec("level.window", 365, _tiers("days"), N_("Level window in days.")),
    SettingSpec("level.downgrade", "never", _tiers("downgrade"),
                N_("Level downgrades: never, or a re-evaluation every N days (e.g. 365d).")),
]:
    register(_tier_spec)


def _churn(key: str) -> Callable[[str], Any]:
    """A parser from crmcli.core.churn.rules (churn warning thresholds, `crm churn rules`), imported when set."""
    def parse(text: str) -> Any:
        from crmcli.core.churn import rules

        return rules.PARSERS[key](text)
    return parse


for _churn_spec in [
    SettingSpec("churn.interval", [1.5, 2, 3], _churn("churn.interval"),
                N_("Churn risk low/medium/high after this many of the customer's usual intervals without a purchase.")),
    SettingSpec("churn.min_history", 3, _churn("churn.min_history"),
                N_("Purchase days needed before a customer's usual interval is used (else churn.recency).")),
    SettingSpec("churn.recency", [60, 90, 180], _churn("churn.recency"),
                N_("Churn risk low/medium/high after this many days without a purchase (too little history).")),
    SettingSpec("churn.spend_window", 90, _churn("churn.spend_window"),
                N_("Days of the spend windows compared by churn.spend_drop.")),
    SettingSpec("churn.spend_drop", [30, 50, 80], _churn("churn.spend_drop"),
                N_("Churn risk low/medium/high when spend in the last window is down this many % on the one before.")),
    SettingSpec("churn.nps", [None, 6, 3], _churn("churn.nps"),
                N_("Churn risk low/medium/high when the latest NPS answer is at most this.")),
    SettingSpec("churn.csat", [None, 2, 1], _churn("churn.csat"),
                N_("Churn risk low/medium/high when the latest CSAT answer is at most this.")),
    SettingSpec("churn.satisfaction_days", 365, _churn("churn.satisfaction_days"),
                N_("Only NPS/CSAT answers from the last this many days count.")),
    SettingSpec("churn.complaints", [None, 1, 2], _churn("churn.complaints"),
                N_("Churn risk low/medium/high with at least this many complaints open.")),
    SettingSpec("churn.no_contact", [120, 240, None], _churn("churn.no_contact"),
                N_("Churn risk low/medium/high after this many days without an interaction.")),
]:
    register(_churn_spec)


def _spec(key: str) -> SettingSpec:
    spec = SPECS.get(key)
    if spec is None:
        raise NotFound(_("Unknown setting '{key}'.").format(key=key),
                       hint=_("See the known settings with `crm config list`."))
    return spec


def get(session: Session, key: str) -> Any:
    spec = _spec(key)
    row = session.get(Setting, key)
    return json.loads(row.value) if row is not None else spec.default


def get_many(session: Session) -> dict[str, Any]:
    stored = {row.key: json.loads(row.value) for row in session.exec(select(Setting))}
    return {key: stored.get(key, spec.default) for key, spec in sorted(SPECS.items())}


def set_value(session: Session, key: str, text: str) -> Any:
    """Validate ``text`` for ``key``, store it and audit the change; returns the parsed value."""
    from crmcli.core import audit

    spec = _spec(key)
    try:
        value = spec.parse(text)
    except ValueError as e:
        raise InvalidInput(_("'{value}' is not valid for {key}: {reason}.").format(value=text, key=key, reason=e),
                           field=key, value=text) from None
    before = get(session, key)
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=json.dumps(value)))
    else:
        row.value = json.dumps(value)
        session.add(row)
    session.flush()
    audit.record(session, entity="setting", entity_id=None, action="set",
                 before={key: before}, after={key: value})
    return value


def put_defaults(session: Session, values: dict[str, Any]) -> None:
    """Write initial values at store creation (no audit: the creation itself is audited)."""
    for key, value in values.items():
        _spec(key)
        if session.get(Setting, key) is None:
            session.add(Setting(key=key, value=json.dumps(value)))
    session.flush()
