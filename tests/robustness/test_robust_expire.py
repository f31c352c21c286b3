"""`crm points expire` over tens of thousands of lots stays one all-or-nothing transaction (see the
"points-expire" operation of test_robust_crash.py) but finds the overdue lots in a read transaction and holds
the write lock only to write them, so a sale or a redemption at the till is not kept waiting behind it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

from robust_support import AS_OF, PY, Workers, crm_env, crm_ok, generate_shop, run_crm, store_problems
from test_robust_backfill import lock_waits_while, query

EXPIRE = ("points", "expire", "--as-of", AS_OF)
LOTS = int(os.environ.get("CRM_ROBUST_EXPIRE_LOTS", "40000"))
BLOCK_LIMIT = float(os.environ.get("CRM_ROBUST_BLOCK_LIMIT", "5"))


def shop_with_due_lots(path: Path, customers: int, lots: int) -> Path:
    """A shop whose customers hold ``lots`` lots of 10-99 points that expired before AS_OF (written straight
    with stdlib sqlite3, as a long-running store would have accumulated them), a tenth of them partly used."""
    generate_shop(path, customers=customers, purchases=0)
    crm_ok(path, "points", "rules", "set", "enabled", "yes")
    end = date.fromisoformat(AS_OF)
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO points_ledger (id, customer_id, kind, points, debt, effective_on, created_at, expires_on, "
            "spendable_on, actor, key) VALUES (?, ?, 'adjust', ?, 0, ?, '2024-01-01 00:00:00.000000', ?, ?, 'gen', ?)",
            ((i, i % customers + 1, 10 + i % 90, (end - timedelta(days=400)).isoformat(),
              (end - timedelta(days=1 + i % 300)).isoformat(), (end - timedelta(days=400)).isoformat(), f"gen:{i}")
             for i in range(1, lots + 1)))
        used = [(lots + k, i % customers + 1, -5, f"use:{i}", i) for k, i in enumerate(range(1, lots + 1, 10), 1)]
        conn.executemany("INSERT INTO points_ledger (id, customer_id, kind, points, debt, effective_on, created_at, "
                         "actor, key) VALUES (?, ?, 'redeem', ?, 0, '2024-02-01', '2024-02-01 00:00:00.000000', "
                         "'gen', ?)", (u[:4] for u in used))
        conn.executemany("INSERT INTO points_allocation (debit_id, lot_id, points) VALUES (?, ?, 5)",
                         ((u[0], u[4]) for u in used))
    conn.close()
    return path


def test_expire_does_not_keep_a_sale_or_a_redemption_waiting(tmp_path: Path) -> None:
    """While expire works through LOTS overdue lots (one transaction that took tens of seconds under load
    before it computed outside the lock), a `purchase add` and a `points redeem` started meanwhile succeed,
    a writer never waits more than BLOCK_LIMIT seconds for the write lock, and every overdue lot ends
    expired exactly once (the sale committed during expire's reading makes it compute again)."""
    db = shop_with_due_lots(tmp_path / "shop.sqlite", customers=3000, lots=LOTS)
    crm_ok(db, "points", "earn", "C000001", "500", "--reason", "spendable during the expiry")
    left = query(db, "SELECT SUM(points) FROM points_ledger WHERE key LIKE 'gen:%' OR key LIKE 'use:%'")[0][0]
    with Workers(tmp_path) as short:  # a failed test leaves no process behind
        short.start(db, [["purchase", "add", "C000002", "88.00", "--at", "2025-06-29 10:00", "--ref", "TILL-1"],
                         ["points", "redeem", "C000001", "200", "--reason", "at the till"]])
        for p in short.procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        # Its stdout (a row per lot) goes to a file: a pipe nobody reads until it ends would block it.
        out_file = (tmp_path / "expired.tsv").open("w")
        long_op = subprocess.Popen([PY, "-m", "crmcli", "--db", str(db), *EXPIRE], stdout=out_file,
                                   stderr=subprocess.PIPE, text=True, env=crm_env())
        try:
            begun = time.monotonic()
            time.sleep(1.0)  # it has imported crmcli and is reading the ledger
            short.go_file.touch()
            waits = lock_waits_while(long_op, db)
            took = time.monotonic() - begun
            _out, err = long_op.communicate(timeout=600)
        finally:
            if long_op.poll() is None:
                long_op.kill()
                long_op.wait()
            out_file.close()
        [results] = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in short.procs]
    assert long_op.returncode == 0, err
    for r in results:
        assert r["code"] == 0, r["stderr"]
    each = ", ".join(f"{' '.join(r['args'][2:4])} {r['seconds']:.2f} s" for r in results)
    print(f"\nexpire: {err.strip()} took {took:.1f} s; meanwhile {each}; {len(waits)} waits for the write lock: "
          f"longest {max(waits):.2f} s, mean {sum(waits) / len(waits):.3f} s")
    assert len(waits) >= 10, "expire ended too soon for the test to prove anything"
    assert max(waits) < BLOCK_LIMIT, f"a writer waited {max(waits):.1f} s for the lock behind expire"
    assert f"in {LOTS} lots" in err, err
    assert len((tmp_path / "expired.tsv").read_text().splitlines()) == 1 + LOTS  # a header, a row per lot
    assert not store_problems(db)
    expired = query(db, "SELECT COUNT(*), -SUM(points), COUNT(DISTINCT ref_id) FROM points_ledger WHERE kind = 'expire'")
    assert expired == [(LOTS, left, LOTS)]
    assert query(db, "SELECT COUNT(*) FROM points_allocation a JOIN points_ledger d ON d.id = a.debit_id "
                     "WHERE d.kind = 'expire'") == [(LOTS,)]
    till = query(db, "SELECT l.points FROM purchase p JOIN points_ledger l ON l.purchase_id = p.id "
                     "AND l.kind = 'earn' WHERE p.ref = 'TILL-1'")
    assert till == [(88,)]
    assert query(db, "SELECT points FROM points_ledger WHERE kind = 'redeem' AND actor != 'gen'") == [(-200,)]
    again = run_crm(db, *EXPIRE)
    assert again.returncode == 0 and "Expired 0 points in 0 lots" in again.stderr, again.stderr
