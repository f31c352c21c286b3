"""Benchmark: `crm points expire` over CRM_BENCH_LOTS overdue lots (default 100,000) of CRM_BENCH_CUSTOMERS
customers (default 20,000), a tenth of them partly used, against a floor measured in the same run.

Floor: stdlib sqlite3 executemany of as many expire debit rows, allocation rows and audit rows into a copy of
the same store, in one transaction (what any implementation must at least write while it holds the lock).

Printed: the whole run (reading, computing, writing) and the write transaction alone (the time other writers
may wait for the lock), by wall clock and by CPU time of this process. On a machine whose cores other work
shares, wall times stretch with the load; the CPU ratios count only the work done.

Run:  pytest tests/benchmarks/test_points_expire_bench.py -m benchmark -s
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

AS_OF = date(2025, 6, 30)
STAMP = "2024-01-01 00:00:00.000000"


def generate(path: Path, customers: int, lots: int) -> None:
    """Lots of 10-99 points expired on the 300 days before AS_OF; every tenth lot partly redeemed."""
    from crmcli.core.stores import init_store

    init_store(str(path), currency="CNY", region="CN", timezone="Asia/Shanghai").store.dispose()
    start = (AS_OF - timedelta(days=400)).isoformat()
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("INSERT INTO customer (id, code, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                         ((i, f"C{i:07d}", f"Customer {i}", STAMP, STAMP) for i in range(1, customers + 1)))
        conn.executemany(
            "INSERT INTO points_ledger (id, customer_id, kind, points, debt, effective_on, created_at, expires_on, "
            "spendable_on, actor, key) VALUES (?, ?, 'earn', ?, 0, ?, ?, ?, ?, 'bench', ?)",
            ((i, i % customers + 1, 10 + i % 90, start, STAMP, (AS_OF - timedelta(days=1 + i % 300)).isoformat(),
              start, f"gen:{i}") for i in range(1, lots + 1)))
        used = [(lots + k, i % customers + 1, i) for k, i in enumerate(range(1, lots + 1, 10), 1)]
        conn.executemany("INSERT INTO points_ledger (id, customer_id, kind, points, debt, effective_on, created_at, "
                         "actor, key) VALUES (?, ?, 'redeem', -5, 0, '2024-02-01', ?, 'bench', ?)",
                         ((d, c, STAMP, f"use:{lot}") for d, c, lot in used))
        conn.executemany("INSERT INTO points_allocation (debit_id, lot_id, points) VALUES (?, ?, 5)",
                         ((d, lot) for d, _c, lot in used))
    conn.close()


def floor_seconds(path: Path, lots: int, customers: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the floor's inserts (with crmcli's connection settings)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    mark = conn.execute("SELECT MAX(id) FROM points_ledger").fetchone()[0]
    start, cpu = time.perf_counter(), time.process_time()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO points_ledger (id, customer_id, kind, points, debt, effective_on, created_at, "
                     "ref_id, actor, key) VALUES (?, ?, 'expire', -50, 0, '2025-01-01', ?, ?, 'bench', ?)",
                     ((mark + i, i % customers + 1, STAMP, i, f"expire:{i}") for i in range(1, lots + 1)))
    conn.executemany("INSERT INTO points_allocation (debit_id, lot_id, points) VALUES (?, ?, 50)",
                     ((mark + i, i) for i in range(1, lots + 1)))
    conn.executemany("INSERT INTO audit (at, actor, command, entity, entity_id, customer_id, action, after, "
                     "prev_hash, hash) VALUES (?, 'bench', 'bench', 'points_ledger', ?, ?, 'expire', '{}', ?, ?)",
                     ((STAMP, mark + i, i % customers + 1, "0" * 64, "f" * 64) for i in range(1, lots + 1)))
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    conn.execute("ROLLBACK")
    conn.close()
    return elapsed


@pytest.mark.benchmark
def test_points_expire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crmcli.core.points import expiry
    from crmcli.store.engine import open_store

    customers = int(os.environ.get("CRM_BENCH_CUSTOMERS", 20_000))
    lots = int(os.environ.get("CRM_BENCH_LOTS", 100_000))
    path = tmp_path / "bench.sqlite"
    generate(path, customers, lots)
    copy = tmp_path / "floor.sqlite"
    shutil.copy(path, copy)

    held: list[tuple[float, float]] = []
    real_write = expiry.write

    def timed_write(session: Any, todo: Any) -> None:
        session.connection()  # the lock is taken before write is called; time the writing alone
        start, cpu = time.perf_counter(), time.process_time()
        real_write(session, todo)
        held.append((time.perf_counter() - start, time.process_time() - cpu))

    monkeypatch.setattr(expiry, "write", timed_write)
    store = open_store(str(path))
    start, cpu = time.perf_counter(), time.process_time()
    found, _people = expiry.expire_in_store(store, AS_OF)
    run, run_cpu = time.perf_counter() - start, time.process_time() - cpu
    store.dispose()
    [(lock, lock_cpu)] = held

    floors = [floor_seconds(copy, lots, customers) for _ in range(2)]
    floor, floor_cpu = min(f[0] for f in floors), min(f[1] for f in floors)
    print(f"\npoints expire: {len(found):,} lots of {customers:,} customers in {run:.2f} s wall, {run_cpu:.2f} s CPU; "
          f"write transaction {lock:.2f} s wall, {lock_cpu:.2f} s CPU; floor (executemany of {lots:,} debit + "
          f"allocation + audit rows) {floor:.2f} s wall, {floor_cpu:.2f} s CPU; ratios: whole run "
          f"{run_cpu / floor_cpu:.1f}x CPU, write transaction {lock_cpu / floor_cpu:.1f}x CPU, {lock / floor:.1f}x wall")
    assert len(found) == lots
    assert lock_cpu / floor_cpu < 4, "the write transaction does much more than writing"
    assert run_cpu / floor_cpu < 10
