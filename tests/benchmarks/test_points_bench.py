"""Benchmark: the points purchase hook on a bulk import, against a floor measured in the same run.

Scenario: a store already holds CRM_BENCH_CUSTOMERS customers (default 20,000) and CRM_BENCH_PURCHASES sales
(default 100,000, about 4 % of them partly refunded), recorded before the programme existed, as an import
would leave them; then the purchase hook runs once for all their ids, in one transaction, as an import
calls it (earn on every sale, settle every refund).

Floor: stdlib sqlite3 executemany of the same number of ledger rows plus the same number of audit rows
into the same store (what any implementation must at least write), in one transaction.

Both are timed by wall clock and by CPU time of this process; the ceiling applies to the wall ratio, as it always
has (it also pays the hook's COMMIT, which the floor, rolled back, does not). On a machine whose cores other work
shares, wall times stretch with the load, the short floor's least; the CPU ratio, printed too, counts only the
work done (it is lower: the old code measured 11.3x CPU in a run where it measured 21.2x wall).

Run:  pytest tests/benchmarks/test_points_bench.py -m benchmark -s
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

AS_OF = date(2025, 6, 30)
SEED = 20240301


def generate(path: Path, customers: int, sales: int) -> list[int]:
    from crmcli.core.stores import init_store

    init_store(str(path), currency="CNY", region="CN", timezone="Asia/Shanghai").store.dispose()
    rnd = random.Random(SEED)
    conn = sqlite3.connect(path)
    stamp = "2023-01-01 00:00:00.000000"
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO customer (id, code, name, birthday, referred_by_id, created_at, updated_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     ((i, f"C{i:07d}", f"Customer {i}", f"19{rnd.randrange(50, 99)}-{rnd.randrange(1, 13):02d}-15",
                       (i - 1 if i > 1 and rnd.random() < 0.1 else None), stamp, stamp)
                      for i in range(1, customers + 1)))
    start = AS_OF - timedelta(days=364)
    rows = []
    pid = 0
    for _ in range(sales):
        pid += 1
        cid = int(customers * rnd.random() ** 2) + 1
        day = start + timedelta(days=rnd.randrange(365))
        amount = int(rnd.lognormvariate(8.5, 1.0)) + 100
        rows.append((pid, cid, "sale", None, amount, f"{day} 04:00:00.000000", day.isoformat(),
                     rnd.choice([None, "coffee", "tea"]), stamp))
        if rnd.random() < 0.04:
            pid += 1
            later = min(day + timedelta(days=rnd.randrange(1, 20)), AS_OF)
            rows.append((pid, cid, "refund", pid - 1, amount // rnd.choice([1, 2, 3]), f"{later} 05:00:00.000000",
                         later.isoformat(), None, stamp))
    conn.executemany("INSERT INTO purchase (id, customer_id, kind, refund_of_id, amount_minor, purchased_at, "
                     "purchased_on, category, quantity, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)", rows)
    conn.commit()
    conn.close()
    return [r[0] for r in rows]


def floor_seconds(path: Path, n: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the floor's inserts."""
    conn = sqlite3.connect(path)
    start, cpu = time.perf_counter(), time.process_time()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO points_ledger (customer_id, kind, points, debt, effective_on, created_at, "
                     "expires_on, spendable_on, purchase_id, actor, detail, key) "
                     "VALUES (?, 'earn', ?, 0, '2025-01-01', '2025-01-01 00:00:00', '2026-01-31', '2025-01-08', ?, "
                     "'bench', '{\"rate\": \"1\"}', ?)",
                     ((1 + i % 1000, 100, i + 1, f"floor:{i}") for i in range(n)))
    conn.executemany("INSERT INTO audit (at, actor, command, entity, entity_id, customer_id, action, after, "
                     "prev_hash, hash) VALUES ('2025-01-01 00:00:00', 'bench', 'bench', 'points_ledger', ?, ?, "
                     "'earn', '{}', ?, ?)", ((i, 1 + i % 1000, "0" * 64, "f" * 64) for i in range(n)))
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    conn.rollback()
    conn.close()
    return elapsed


@pytest.mark.benchmark
def test_purchase_hook_on_a_bulk_import(tmp_path: Path) -> None:
    from sqlalchemy import text

    from crmcli.core import hooks, settings
    from crmcli.core.context import StoreContext
    from crmcli.core.points.earning import on_purchases
    from crmcli.store.engine import open_store

    customers = int(os.environ.get("CRM_BENCH_CUSTOMERS", 20_000))
    sales = int(os.environ.get("CRM_BENCH_PURCHASES", 100_000))
    path = tmp_path / "bench.sqlite"
    ids = generate(path, customers, sales)
    store = open_store(str(path))
    with store.write() as session:
        for key, value in {"points.enabled": "yes", "points.expiry": "month-end:12", "points.lock_days": "7",
                           "points.multiplier.category": "coffee=2", "points.multiplier.birthday": "2",
                           "points.referral.referrer": "100"}.items():
            settings.set_value(session, key, value)
    saved = hooks.CLASSIFICATION
    hooks.CLASSIFICATION = None  # measure the points feature alone
    try:
        start, cpu = time.perf_counter(), time.process_time()
        with store.write() as session:
            on_purchases(session, ids, StoreContext.load(session, as_of=AS_OF))
        hook, hook_cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        hooks.CLASSIFICATION = saved
    with store.read() as session:
        written = session.execute(text("SELECT COUNT(*) FROM points_ledger")).scalar_one()
        kinds = dict(session.execute(text("SELECT kind, COUNT(*) FROM points_ledger GROUP BY kind")).all())
    store.dispose()
    copy = tmp_path / "floor.sqlite"
    shutil.copy(path, copy)
    floors = [floor_seconds(copy, written) for _ in range(2)]
    floor, floor_cpu = min(f[0] for f in floors), min(f[1] for f in floors)
    ratio, ratio_cpu = hook / floor, hook_cpu / floor_cpu
    print(f"\npoints hook: {len(ids):,} purchases ({customers:,} customers) → {written:,} ledger rows {kinds} "
          f"in {hook:.2f} s wall, {hook_cpu:.2f} s CPU; floor (executemany of {written:,} ledger + audit rows) "
          f"{floor:.2f} s wall, {floor_cpu:.2f} s CPU; ratio {ratio:.1f}x wall, {ratio_cpu:.1f}x CPU")
    assert written >= sales * 0.9
    assert ratio < 15
