"""Helpers for the classification tests (crm tier); no tests here."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

AS_OF = date(2025, 6, 30)


def day(days_ago: int) -> str:
    return (AS_OF - timedelta(days=days_ago)).isoformat()


def seed(cli: Any, plan: dict[str, list[tuple[int, str]]], *, as_of: date = AS_OF) -> dict[str, int]:
    """Customers (in the order given) and their purchases [(days ago, amount), ...] through the core API in one
    transaction: much faster than one CLI call per purchase. Returns name -> purchase ids."""
    from crmcli.core import customers as cust, purchases
    from crmcli.core.context import StoreContext
    from crmcli.store.engine import open_store

    store = open_store(str(cli.db))
    sales: dict[str, int] = {}
    try:
        with store.write() as session:
            ctx = StoreContext.load(session, as_of)
            for name, buys in plan.items():
                customer = cust.add_customer(session, cust.CustomerInput(name=name), ctx)
                for days_ago, amount in buys:
                    at = f"{(as_of - timedelta(days=days_ago)).isoformat()} 12:00"
                    sale = purchases.add_purchase(session, customer, purchases.PurchaseInput(amount=amount, at=at), ctx)
                    sales.setdefault(name, sale.purchase.id)
    finally:
        store.dispose()
    return sales


def customers(cli: Any, *names: str) -> list[str]:
    return [cli.ok("customer", "add", name).stdout.strip() for name in names]


def buy(cli: Any, who: str, amount: str, days_ago: int = 10, *, as_of: date = AS_OF) -> int:
    out = cli.ok("purchase", "add", who, amount, "--at", f"{(as_of - timedelta(days=days_ago)).isoformat()} 12:00",
                 "--as-of", as_of.isoformat())
    return int(out.stdout.strip())


def refund(cli: Any, purchase_id: int, amount: str | None = None, days_ago: int = 1, *, as_of: date = AS_OF) -> None:
    args = ["purchase", "refund", str(purchase_id)] + ([amount] if amount else [])
    cli.ok(*args, "--at", f"{(as_of - timedelta(days=days_ago)).isoformat()} 13:00", "--as-of", as_of.isoformat())


def recompute(cli: Any, as_of: date = AS_OF, *extra: str) -> dict[str, Any]:
    return cli.json("tier", "recompute", "--as-of", as_of.isoformat(), *extra)  # type: ignore[no-any-return]


def classes(cli: Any) -> dict[str, dict[str, Any]]:
    """name -> the `crm tier list` JSON row."""
    return {r["name"]: r for r in cli.json("tier", "list")}


def tiers(cli: Any) -> dict[str, Any]:
    return {name: row["tier"] for name, row in classes(cli).items()}


def stored(store: Any, sql: str) -> list[tuple[Any, ...]]:
    from sqlalchemy import text

    with store.read() as session:
        return [tuple(r) for r in session.execute(text(sql))]
