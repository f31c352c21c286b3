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


def _many(tmp_path: Path, customers: int) -> tuple[Any, Path]:
    """A store with ``customers`` customers, each with one or two purchases (written straight with sqlite3)."""
    from crmcli.core.stores import init_store

    path = tmp_path / "many.sqlite"
    init_store(str(path), currency="CNY", region="CN", timezone="Asia/Shanghai").store.dispose()
    conn = sqlite3.connect(path)
    stamp = "2025-01-01 00:00:00.000000"
    conn.executemany("INSERT INTO customer (id, code, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                     [(i, f"C{i:05d}", f"Customer {i}", stamp, stamp) for i in range(1, customers + 1)])
    rows, pid = [], 0
    for i in range(1, customers + 1):
        for k in range(1 + i % 2):
            pid += 1
            day = (AS_OF - timedelta(days=(i * 7 + k * 40) % 500)).isoformat()
            rows.append((pid, i, "sale", 1000 + i * 13 % 9000, day + " 04:00:00.000000", day, stamp))
    conn.executemany("INSERT INTO purchase (id, customer_id, kind, amount_minor, purchased_at, purchased_on, "
                     "quantity, created_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?)", rows)
    conn.commit()
    conn.close()
    from crmcli.store.engine import open_store

    return open_store(str(path)), path


@pytest.mark.parametrize("kind", ["recompute", "rfm"])
def test_the_write_transaction_runs_a_fixed_number_of_statements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  kind: str) -> None:
    """Issue #10: a run that changes every row (a first run at 1M customers writes two million rows) holds the
    write lock for SQLite's own work only. The rows are bound into TEMP tables in the read phase; the write
    transaction moves them with INSERT ... SELECT, so it executes the same few statements for 600 changed
    customers as for 6 (the code before bound every row inside the write transaction: 1,200 executions)."""
    from crmcli.core import classify
    from crmcli.store import engine

    store, path = _many(tmp_path, 600)
    executed: list[str] = []
    begin_writing = engine.begin_writing

    def traced_begin(dbapi_conn: Any) -> None:  # every write transaction of the store starts here
        begin_writing(dbapi_conn)
        done = []

        def trace(sql: str) -> None:
            if executed and sql == executed[-1]:
                return  # a trigger (m0021) ran for a row: Python reports its statement again, nothing was executed
            if not done:
                executed.append(sql)
                if sql.strip().upper() in ("COMMIT", "ROLLBACK"):
                    done.append(1)
        dbapi_conn.set_trace_callback(trace)

    monkeypatch.setattr(engine, "begin_writing", traced_begin)
    run = classify.recompute if kind == "recompute" else classify.rfm
    result, _ = classify.run_two_phase(store, _ctx, lambda s, c: run(s, c, defer=True))
    store.dispose()
    assert result.changed_rows == (600 if kind == "recompute" else 469)  # rfm: the customers with a sale in the window
    assert executed and len(executed) < 40, executed[:50]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM customer_class").fetchone()[0] == result.changed_rows
        if kind == "recompute":
            assert conn.execute("SELECT count(*) FROM class_history").fetchone()[0] == 600
        assert conn.execute("SELECT count(*) FROM sqlite_temp_master").fetchone()[0] == 0
    finally:
        conn.close()


def test_staging_the_rows_takes_no_write_lock(shop: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process writes (no busy wait) right after the read phase staged the rows to write."""
    from crmcli.core import classify

    store, path, ids = shop
    stage = classify.Writes.stage
    staged = []

    def stage_then_write(self: Any, session: Any) -> None:
        if self.staged:  # save() in the write phase: nothing left to stage
            return
        stage(self, session)
        staged.append(self.staged)
        _write_now(path)  # "database is locked" if staging had taken the write lock

    monkeypatch.setattr(classify.Writes, "stage", stage_then_write)
    result, _ = classify.run_two_phase(store, _ctx, lambda s, c: classify.recompute(s, c, defer=True))
    assert staged == [True] and result.run_id is not None
    assert len(_tiers(path)) == len(ids)


def _dump(path: Path) -> tuple[list[Any], list[Any]]:
    conn = sqlite3.connect(path)
    try:
        return (conn.execute("SELECT * FROM customer_class ORDER BY customer_id").fetchall(),
                conn.execute("SELECT id, run_id, customer_id, kind, from_value, to_value, net_minor, orders, "
                             "tenure_days, share_bp, basis_minor, note FROM class_history ORDER BY id").fetchall())
    finally:
        conn.close()


def test_staged_and_direct_writes_store_the_same_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQLite staging (codes packed into one integer, labels and dates made by SQL) stores exactly what the
    driver's executemany of the Python values stores (the path other databases take): same values, same types.
    Levels (level dates, level history), a pinned customer, a second run 200 days later, then an rfm run."""
    from crmcli.core import classify, customers, levels, tiers
    from crmcli.core.context import StoreContext

    def run(staged: bool, sub: str) -> tuple[list[Any], list[Any]]:
        (tmp_path / sub).mkdir()
        store, path = _many(tmp_path / sub, 300)
        if not staged:
            monkeypatch.setattr(classify.Writes, "stage", lambda self, target: None)
        with store.write() as session:
            ctx = StoreContext.load(session, AS_OF)
            levels.add_level(session, ctx, name="silver", threshold="50")
            levels.add_level(session, ctx, name="gold", threshold="150")
            tiers.pin(session, customers.get(session, 7), "A", "key account", AS_OF)
        for day in (AS_OF, AS_OF + timedelta(days=200)):
            result, _ = classify.run_two_phase(store, lambda s, d=day: StoreContext.load(s, d),
                                               lambda s, c: classify.recompute(s, c, defer=True))
            assert result.run_id is not None
        classify.run_two_phase(store, lambda s: StoreContext.load(s, AS_OF + timedelta(days=201)),
                               lambda s, c: classify.rfm(s, c, defer=True))
        store.dispose()
        monkeypatch.undo()
        return _dump(path)

    staged = run(True, "staged")
    direct = run(False, "direct")
    assert staged == direct
    rows, history = staged
    assert {r[11] for r in rows} > {None}  # level dates were written
    assert {h[3] for h in history} == {"tier", "level"}
    assert len({h[1] for h in history}) == 3  # the pin's row and both recomputes' rows
