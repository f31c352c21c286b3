"""Creating a store with sensible defaults taken from the machine's locale and time zone."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from crmcli.core import audit, clock, settings
from crmcli.errors import InvalidInput
from crmcli.i18n import _, current_language
from crmcli.store.engine import Store, open_store


@dataclass
class InitResult:
    store: Store
    created: bool
    settings: dict[str, Any]


def locale_territory() -> str | None:
    for var in ("LC_ALL", "LC_MONETARY", "LANG"):
        value = os.environ.get(var, "")
        if m := re.match(r"^[a-z]{2,3}_([A-Z]{2})", value):
            return m.group(1)
        if value:
            break
    return None


def default_settings() -> dict[str, Any]:
    territory = locale_territory()
    currency = "CNY" if current_language() == "zh" else "USD"
    if territory:
        from babel.numbers import get_territory_currencies

        found = get_territory_currencies(territory)
        if found:
            currency = found[0]
    import phonenumbers

    region = territory if territory in phonenumbers.SUPPORTED_REGIONS else ("CN" if current_language() == "zh" else "")
    return {"currency": currency, "phone.region": region or "", "timezone": clock.system_timezone_name()}


def init_store(location: str | None, *, currency: str | None = None, region: str | None = None,
               timezone: str | None = None) -> InitResult:
    """Create (or just open) the store; options apply to a new store only (use `config set` later)."""
    values = default_settings()
    for key, raw in (("currency", currency), ("phone.region", region), ("timezone", timezone)):
        if raw is not None:
            try:
                values[key] = settings.SPECS[key].parse(raw)
            except ValueError as e:
                raise InvalidInput(_("'{value}' is not valid for {key}: {reason}.").format(value=raw, key=key, reason=e),
                                   field=key, value=raw) from None
    store = open_store(location, create=True)
    with store.write() as session:
        from crmcli.store.models import Setting

        created = session.get(Setting, "currency") is None
        if created:
            settings.put_defaults(session, values)
            audit.record(session, entity="store", entity_id=None, action="init", after=values)
        current = settings.get_many(session)
    return InitResult(store, created, current)
