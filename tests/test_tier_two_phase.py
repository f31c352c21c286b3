"""Recompute and rfm hold the store's write lock only to save (issue #10): they read and compute in a read
transaction, then apply the changes in one short write transaction; a change that could alter the result,
committed in between, makes them compute again."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

AS_OF = date(2025, 6, 30)


@pytest.fixture
def shop(tmp_path: Path) -> Any:
    from crmcli.core import customers, purchases
    from crmcli.core.context import StoreContext
    from crmcli.core.stores import init_store

    path = tmp_path / "shop.sqlite"
    store = init_store(str(path), currency="CNY", region="CN", timezone="Asia/Shanghai").store
    with store.write() as session:
        ctx = StoreContext.load(session, AS_OF)
        ids = []
        for k, amount in enumerate([5000, 3000, 1000, 400, 100]):
            c = customers.add_customer(session, customers.CustomerInput(name=f"T{k}"), ctx)
            for d in (3, 40):
                purchases.add_purchase(session, c, purchases.PurchaseInput(
                    amount=str(amount), at=(AS_OF - timedelta(days=d + k)).isoformat()), ctx)
            ids.append(c.id)
    yield store, path, ids
    store.dispose()


def _ctx(session: Any) -> Any:
    from crmcli.core.context import StoreContext

    return StoreContext.load(session, AS_OF)


def _write_now(path: Path) -> None:
    """Another process's short write that must not wait: BEGIN IMMEDIATE with no busy timeout."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE customer SET city = 'written meanwhile' WHERE id = (SELECT min(id) FROM customer)")
        conn.execute("COMMIT")
    finally:
        conn.close()


def _tiers(path: Path) -> dict[int, str | None]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT customer_id, tier FROM customer_class").fetchall())
    finally:
        conn.close()


@pytest.mark.parametrize("kind", ["recompute", "rfm"])
def test_other_writers_are_not_blocked_while_a_run_computes(shop: Any, kind: str) -> None:
    from crmcli.core import classify

    store, path, ids = shop
    calls = []

    def compute(session: Any, ctx: Any) -> Any:
        calls.append(1)
        run = classify.recompute if kind == "recompute" else classify.rfm
        result = run(session, ctx, defer=True)
        _write_now(path)  # would raise "database is locked" if the run held the write lock here
        return result

    result, _ctx_used = classify.run_two_phase(store, _ctx, compute)
    assert len(calls) == 1  # a harmless write (no audit row of a classification input) needs no second pass
    assert result.run_id is not None
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT city FROM customer WHERE id = ?", (ids[0],)).fetchone()[0] == "written meanwhile"
        assert conn.execute("SELECT count(*) FROM class_run WHERE kind = ?", (kind,)).fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM customer_class").fetchone()[0] == len(ids)
    finally:
        conn.close()


def test_a_pin_committed_while_recompute_computes_is_kept(shop: Any) -> None:
    """The pin lands between the read and the write phase: the run notices it in the audit trail and
    computes again, so the pinned tier is what ends up stored, with one history row per change."""
    from crmcli.core import classify, customers, tiers

    store, path, ids = shop
    calls = []

    def compute(session: Any, ctx: Any) -> Any:
        calls.append(1)
        result = classify.recompute(session, ctx, defer=True)
        if len(calls) == 1:
            with store.write() as other:
                tiers.pin(other, customers.get(other, ids[-1]), "A", "key account", AS_OF)
        return result

    result, _ = classify.run_two_phase(store, _ctx, compute)
    assert len(calls) == 2
    assert _tiers(path)[ids[-1]] == "A"
    assert result.tiers["A"] >= 1
    # idempotent afterwards: a plain second run changes nothing
    again, _ = classify.run_two_phase(store, _ctx, lambda s, c: classify.recompute(s, c, defer=True))
    assert again.run_id is None and again.changed_rows == 0


def test_the_last_attempt_computes_under_the_write_lock(shop: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from crmcli.core import classify

    store, path, ids = shop
    monkeypatch.setattr(classify, "quiet_since", lambda session, mark: False)  # always disturbed
    calls = []

    def compute(session: Any, ctx: Any) -> Any:
        calls.append(session.connection().connection.dbapi_connection.in_transaction)
        return classify.recompute(session, ctx, defer=True)

    result, _ = classify.run_two_phase(store, _ctx, compute)
    assert len(calls) == classify.ATTEMPTS + 1  # each read phase, then once more inside the write transaction
    assert result.run_id is not None
    assert len(_tiers(path)) == len(ids)
