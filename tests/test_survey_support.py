"""Helpers for the survey and feedback tests; no tests here.

``fast_cli``: typer rebuilds the whole click command tree (every group, every option) on each
``CliRunner.invoke`` — about 0.15 s a call on this machine. The tree never changes within a test run, so we
build it once. Behaviour is identical: typer's own runner, only its ``_get_command`` memoised.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

_COMMANDS: dict[int, Any] = {}


@pytest.fixture(autouse=True)
def fast_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import typer.testing

    original = typer.testing._get_command

    def cached(app: Any) -> Any:
        key = id(app)
        if key not in _COMMANDS:
            _COMMANDS[key] = original(app)
        return _COMMANDS[key]

    monkeypatch.setattr(typer.testing, "_get_command", cached)
    yield


def seed_customers(cli: Any, people: list[dict[str, Any]]) -> list[int]:
    """Customers through the core API in one transaction (much faster than one CLI call each).
    Each dict: name, and optionally phones, emails, socials, consent {channel: bool}, tags."""
    from crmcli.core import customers as cust
    from crmcli.core.context import StoreContext
    from crmcli.store.engine import open_store

    store = open_store(str(cli.db))
    ids = []
    try:
        with store.write() as session:
            ctx = StoreContext.load(session)
            for p in people:
                c = cust.add_customer(session, cust.CustomerInput(
                    name=p["name"], phones=p.get("phones", []), emails=p.get("emails", []),
                    socials=p.get("socials", []), consent=p.get("consent", {}), tags=p.get("tags", [])), ctx)
                ids.append(c.id)
    finally:
        store.dispose()
    return ids


def seed_sales(cli: Any, sales: list[tuple[int, str]], *, as_of: Any) -> list[int]:
    """Sales [(customer id, 'YYYY-MM-DD HH:MM'), ...] of 100 each; returns the purchase ids."""
    from crmcli.core import customers as cust, purchases
    from crmcli.core.context import StoreContext
    from crmcli.store.engine import open_store

    store = open_store(str(cli.db))
    ids = []
    try:
        with store.write() as session:
            ctx = StoreContext.load(session, as_of)
            for cid, at in sales:
                rec = purchases.add_purchase(session, cust.get(session, cid), purchases.PurchaseInput(amount="100", at=at), ctx)
                ids.append(rec.purchase.id)
    finally:
        store.dispose()
    return ids
