"""`crm points backfill` commits in short steps: killed or interrupted half-way it leaves a consistent store
whose committed steps are whole (every earned sale has its refunds settled), running it again earns for the
rest exactly once, and a sale or a redemption at the till is not kept waiting while it runs.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from robust_support import (AS_OF, PY, Workers, copy_store, crm_env, crm_ok, generate_shop, reference_run,
                            run_wrapped, store_problems)

BACKFILL = ("points", "backfill", "--as-of", AS_OF)
EVERY = 2000  # VM instructions per tick of the kill harness
BLOCK_LIMIT = float(os.environ.get("CRM_ROBUST_BLOCK_LIMIT", "5"))


def shop(path: Path, customers: int, purchases: int) -> Path:
    """A generated shop with the programme on (90-day expiry, so refunds also meet expired points), nothing
    earned yet."""
    generate_shop(path, customers=customers, purchases=purchases)
    crm_ok(path, "points", "rules", "set", "enabled", "yes")
    crm_ok(path, "points", "rules", "set", "expiry", "90d")
    return path


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def earned_sales(db: Path) -> int:
    return query(db, "SELECT COUNT(*) FROM points_ledger WHERE kind = 'earn' AND purchase_id IS NOT NULL")[0][0]


def unsettled_refunds(db: Path) -> list[tuple[Any, ...]]:
    """Refunds of sales that have earned whose points were not taken back (any refund of a sale that earned
    takes back at least one point, so each has its `reversal:<refund id>` row)."""
    return query(db, "SELECT r.id, r.refund_of_id FROM purchase r JOIN points_ledger e ON e.purchase_id = r.refund_of_id "
                     "AND e.kind = 'earn' WHERE r.kind = 'refund' AND NOT EXISTS (SELECT 1 FROM points_ledger v "
                     "WHERE v.key = 'reversal:' || r.id)")


def ledger_by_key(db: Path) -> dict[str, Any]:
    """The ledger and its allocations without the row ids and clocks, which depend on how the work was split:
    each row is named by its key, with the ids inside keys (`expire:<lot id>`, `repay:<lot id>` ...) replaced
    by the key of the row they point to."""
    keys = dict(query(db, "SELECT id, key FROM points_ledger"))

    def stable(key: str | None) -> str | None:
        if key is None:
            return None
        head, _sep, tail = key.rpartition(":")
        if head.split(":")[0] in ("expire", "repay", "reversal", "restore") and head != "reversal" and tail.isdigit():
            return f"{head}:<{stable(keys[int(tail)])}>"
        return key
    rows = sorted((stable(key), customer, kind, points, debt, effective, expires, spendable, purchase,
                   stable(keys.get(ref)))
                  for key, customer, kind, points, debt, effective, expires, spendable, purchase, ref in query(
                      db, "SELECT key, customer_id, kind, points, debt, effective_on, expires_on, spendable_on, "
                          "purchase_id, ref_id FROM points_ledger"))
    allocations = sorted((stable(keys[debit]), stable(keys[lot]), n)
                         for debit, lot, n in query(db, "SELECT debit_id, lot_id, points FROM points_allocation"))
    return {"rows": rows, "allocations": allocations}


def test_backfill_killed_half_way_keeps_whole_steps_and_a_rerun_finishes(tmp_path: Path) -> None:
    base = shop(tmp_path / "base.sqlite", customers=400, purchases=4000)
    total = query(base, "SELECT COUNT(*) FROM purchase WHERE kind = 'sale'")[0][0]

    done = copy_store(base, tmp_path / "reference.sqlite")
    ref = reference_run(done, BACKFILL, every=EVERY)
    assert int(ref.stdout) == earned_sales(done) > total * 0.9
    assert not store_problems(done)
    expected = ledger_by_key(done)

    for share in (0.3, 0.7):
        db = copy_store(base, tmp_path / f"killed-{share}.sqlite")
        killed = run_wrapped(db, BACKFILL, db.with_suffix(".ticks.json"), kill_at=int(ref.ticks * share), every=EVERY)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert not store_problems(db)
        kept = earned_sales(db)
        assert 0 < kept < earned_sales(done), f"killed at {share:.0%} of the work, {kept} sales had earned"
        assert not unsettled_refunds(db)

        again = crm_ok(db, *BACKFILL)
        assert kept + int(again) == earned_sales(done)
        assert not store_problems(db)
        assert ledger_by_key(db) == expected, f"killed at {share:.0%}, then run again: a different ledger"
        assert crm_ok(db, *BACKFILL).strip() == "0"


def test_ctrl_c_stops_backfill_between_steps_and_says_what_was_kept(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) arrives right after the first step's COMMIT (the harness sends it from inside the
    process, so it does not race a backfill that finishes fast)."""
    db = shop(tmp_path / "shop.sqlite", customers=400, purchases=4000)
    proc = run_wrapped(db, BACKFILL, db.with_suffix(".ticks.json"), kill_commit="interrupt-after")
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 130, f"backfill was not interrupted (exit {proc.returncode})\n{out}\n{err}"
    assert "Interrupted after earning" in err and "run `crm points backfill` again" in err, err
    assert "Traceback" not in err
    assert not store_problems(db)
    kept = earned_sales(db)
    assert kept > 0 and not unsettled_refunds(db)
    again = int(crm_ok(db, *BACKFILL))
    assert kept + again == query(db, "SELECT COUNT(*) FROM purchase WHERE kind = 'sale'")[0][0]
    assert not unsettled_refunds(db) and not store_problems(db)


def lock_waits_while(proc: subprocess.Popen[str], db: Path) -> list[float]:
    """How long a writer waits for the write lock (with crmcli's own retrying BEGIN IMMEDIATE), sampled
    every 50 ms while ``proc`` runs."""
    from crmcli.store.engine import begin_writing

    conn = sqlite3.connect(db, isolation_level=None)
    waits = []
    try:
        while proc.poll() is None:
            t = time.monotonic()
            begin_writing(conn)  # raises "database is locked" after the 15 s busy timeout
            waits.append(time.monotonic() - t)
            conn.execute("ROLLBACK")
            time.sleep(0.05)
    finally:
        conn.close()
    return waits


def test_backfill_does_not_keep_a_sale_or_a_redemption_waiting(tmp_path: Path) -> None:
    """While backfill works through 30,000 purchases (in one transaction that took many seconds, longer than
    the busy timeout on a loaded machine), a `purchase add` and a `points redeem` started after its first step
    succeed, and a writer never waits more than BLOCK_LIMIT seconds for the write lock.

    The limit applies to the wait for the lock, measured directly: the short commands' own durations (printed)
    also grow with the machine's load, which the lock has nothing to do with."""
    db = shop(tmp_path / "shop.sqlite", customers=3000, purchases=30000)
    crm_ok(db, "points", "earn", "C000001", "500", "--reason", "spendable before the backfill")
    with Workers(tmp_path) as short:  # a failed test leaves no process behind
        short.start(db, [["purchase", "add", "C000002", "88.00", "--at", "2025-06-29 10:00", "--ref", "TILL-1"],
                         ["points", "redeem", "C000001", "200", "--reason", "at the till"]])
        for p in short.procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        long_op = subprocess.Popen([PY, "-m", "crmcli", "--db", str(db), *BACKFILL], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=crm_env())
        try:
            begun = time.monotonic()
            while earned_sales(db) == 0:  # its first step has committed
                assert long_op.poll() is None, long_op.communicate()
                assert time.monotonic() < begun + 120, "backfill committed nothing in 120 s"
                time.sleep(0.005)
            short.go_file.touch()
            waits = lock_waits_while(long_op, db)
            took = time.monotonic() - begun
            out, err = long_op.communicate(timeout=600)
        finally:
            if long_op.poll() is None:
                long_op.kill()
                long_op.wait()
        [results] = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in short.procs]
    assert long_op.returncode == 0, err
    for r in results:
        assert r["code"] == 0, r["stderr"]
    each = ", ".join(f"{' '.join(r['args'][2:4])} {r['seconds']:.2f} s" for r in results)
    print(f"\nbackfill of {out.strip()} sales took {took:.1f} s; meanwhile {each}; {len(waits)} waits for the "
          f"write lock: longest {max(waits):.2f} s, mean {sum(waits) / len(waits):.3f} s")
    assert len(waits) >= 10, "backfill ended too soon for the test to prove anything"
    assert max(waits) < BLOCK_LIMIT, f"a writer waited {max(waits):.1f} s for the lock behind backfill"
    assert not store_problems(db)
    till = query(db, "SELECT l.points FROM purchase p JOIN points_ledger l ON l.purchase_id = p.id "
                     "AND l.kind = 'earn' WHERE p.ref = 'TILL-1'")
    assert till == [(88,)]
    assert query(db, "SELECT points FROM points_ledger WHERE kind = 'redeem'") == [(-200,)]
    assert not unsettled_refunds(db)
