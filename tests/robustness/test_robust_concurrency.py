"""Concurrency: several `crm` processes writing the same store at once finish without "database is locked"
and without lost updates; a long operation does not keep a short command waiting for long.

Each worker is one process that imports crmcli once, waits for a shared start signal (so the writes really
overlap), then runs its commands through crmcli's real entry point one after another, recording every exit
code, error line and duration.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from robust_support import (AS_OF, PY, Workers, crm_env, generate_shop, run_crm, store_problems,
                            write_purchases_csv)

def lock_held(db: Path) -> bool:
    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


N_WORKERS = 8
CUSTOMERS = 4
START_POINTS = 10_000


def test_eight_writers_lose_nothing(tmp_path: Path) -> None:
    run_writers(tmp_path, rounds=2, imported_rows=100)


@pytest.mark.slow
def test_eight_writers_lose_nothing_long(tmp_path: Path) -> None:
    run_writers(tmp_path, rounds=10, imported_rows=2000)


def run_writers(tmp_path: Path, *, rounds: int, imported_rows: int) -> None:
    """8 processes, each adding purchases and redeeming points of four shared customers; the first three
    also run an import, a backup and a tier recompute first."""
    db = tmp_path / "shop.sqlite"
    generate_shop(db, customers=CUSTOMERS, purchases=0)
    assert run_crm(db, "points", "rules", "set", "enabled", "yes").returncode == 0
    # The workers share four customers, so every one of them contends for the same ledgers.
    sold: dict[int, int] = {c: 0 for c in range(1, CUSTOMERS + 1)}
    redeemed: dict[int, int] = {c: 0 for c in range(1, CUSTOMERS + 1)}
    workers = Workers(tmp_path)
    workers.start(db, [["points", "earn", f"C{c:06d}", str(START_POINTS), "--reason", "start"]
                       for c in range(1, CUSTOMERS + 1)])
    workers.go()
    assert all(r["code"] == 0 for r in workers.results()[0])

    csv = tmp_path / "orders.csv"
    write_purchases_csv(csv, imported_rows, customers=CUSTOMERS)
    for c, amount in _whole_yuan(csv).items():
        sold[c] += amount
    backup = tmp_path / "backup.sqlite"
    first = {0: [["import", "purchases", str(csv), "--as-of", AS_OF]], 1: [["db", "backup", str(backup)]],
             2: [["tier", "recompute", "--as-of", AS_OF]]}
    workers = Workers(tmp_path / "round")
    (tmp_path / "round").mkdir()
    for w in range(N_WORKERS):
        commands = first.get(w, [])
        for i in range(rounds):
            c = (w + i) % CUSTOMERS + 1
            amount = 100 + 10 * w + i  # whole yuan at rate 1: the points earned equal the amount
            sold[c] += amount
            commands.append(["purchase", "add", f"C{c:06d}", str(amount), "--at", f"2025-06-{10 + i} 1{w}:00",
                             "--ref", f"W{w}-{i}"])
            other, r = (w + i + 1) % CUSTOMERS + 1, 7 + w + i
            redeemed[other] += r
            commands.append(["points", "redeem", f"C{other:06d}", str(r), "--reason", f"w{w}-{i}"])
        workers.start(db, commands)
    workers.go()
    results = [r for worker in workers.results() for r in worker]

    failed = [f"{' '.join(r['args'][2:])} -> {r['code']}: {r['stderr'].strip()}" for r in results if r["code"] != 0]
    assert not failed, "\n".join(failed)
    assert not [r for r in results if "locked" in r["stderr"] or "busy" in r["stderr"]]

    conn = sqlite3.connect(db)
    try:
        n_sales = conn.execute("SELECT COUNT(*) FROM purchase WHERE kind = 'sale'").fetchone()[0]
        balances = dict(conn.execute("SELECT customer_id, SUM(points) FROM points_ledger GROUP BY customer_id"))
        redeem_rows = conn.execute("SELECT COUNT(*) FROM points_ledger WHERE kind = 'redeem'").fetchone()[0]
    finally:
        conn.close()
    assert n_sales == N_WORKERS * rounds + imported_rows
    assert redeem_rows == N_WORKERS * rounds
    expected = {c: START_POINTS + sold[c] - redeemed[c] for c in sold}
    assert balances == expected
    assert not store_problems(db)
    # The backup is a whole store as of some moment: it passes the same checks.
    assert backup.exists() and not store_problems(backup)


def _whole_yuan(csv: Path) -> dict[int, int]:
    """Points each customer earns from the file at rate 1 (floor of each amount)."""
    earned: dict[int, int] = {}
    for line in csv.read_text().splitlines()[1:]:
        code, amount = line.split(",")[:2]
        c = int(code[1:])
        earned[c] = earned.get(c, 0) + int(float(amount))
    return earned


BLOCK_LIMIT = float(os.environ.get("CRM_ROBUST_BLOCK_LIMIT", "5"))


def short_command_behind(tmp_path: Path, db: Path, long_args: list[str]) -> tuple[dict, float, bool]:
    """Start the long operation; once it holds the write lock, let a ready `customer add` go. Returns the short
    command's result, how long it took, and whether the long operation was still running when it finished."""
    short = Workers(tmp_path)
    short.start(db, [["customer", "add", "Walk-in", "--phone", "+8613900000001"]])
    for p in short.procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    long_op = subprocess.Popen([PY, "-m", "crmcli", "--db", str(db), *long_args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=crm_env())
    deadline = time.monotonic() + 120
    while not lock_held(db):
        assert long_op.poll() is None, f"the long operation ended before it took the write lock: {long_op.stderr}"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    short.go_file.touch()
    [[result]] = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in short.procs]
    waited = time.monotonic() - started
    still_running = long_op.poll() is None
    assert long_op.wait(timeout=600) == 0, long_op.stderr and long_op.stderr.read()
    assert result["code"] == 0, result["stderr"]
    return result, waited, still_running


def test_long_operation_does_not_block_a_short_command(tmp_path: Path) -> None:
    """`tier recompute` over 2,000 customers / 12,000 purchases (the long operation) is running and holds
    the write lock; a `customer add` started then finishes within BLOCK_LIMIT seconds, successfully."""
    db = tmp_path / "shop.sqlite"
    generate_shop(db, customers=2000, purchases=12000)
    _result, waited, _running = short_command_behind(tmp_path, db, ["tier", "recompute", "--as-of", AS_OF])
    print(f"customer add finished {waited:.2f} s after it started behind a running tier recompute")
    assert waited < BLOCK_LIMIT, f"a short command waited {waited:.1f} s behind tier recompute"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM customer WHERE name = 'Walk-in'").fetchone()[0] == 1
    finally:
        conn.close()


def test_a_long_import_lets_a_short_command_in_between_its_steps(tmp_path: Path) -> None:
    """A purchase import that runs for many seconds commits in steps of about a second (core/io/importer.py);
    a `customer add` started while it holds the lock finishes within BLOCK_LIMIT seconds — while the import is
    still running — and the import then completes with every row."""
    db = tmp_path / "shop.sqlite"
    generate_shop(db, customers=500, purchases=0)
    csv = tmp_path / "orders.csv"
    rows = 40000
    write_purchases_csv(csv, rows, customers=500)
    _result, waited, import_still_running = short_command_behind(
        tmp_path, db, ["import", "purchases", str(csv), "--as-of", AS_OF])
    print(f"customer add finished {waited:.2f} s after it started behind a running import")
    assert import_still_running, "the import finished before the short command: the file is too small to tell"
    assert waited < BLOCK_LIMIT, f"a short command waited {waited:.1f} s behind an import"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM customer WHERE name = 'Walk-in'").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM purchase WHERE import_id IS NOT NULL").fetchone()[0] == rows
        assert conn.execute("SELECT status FROM import_run").fetchall() == [("done",)]
    finally:
        conn.close()
    assert store_problems(db) == []
