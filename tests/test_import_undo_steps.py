"""`crm import undo` and the taking back of a failed import run in short steps (issue #10): other writers get the
store between the steps, a record another command uses or changes meanwhile is kept and named, and an undo
or take-back whose process dies is finished by the next crm command (or a rerun) exactly as a clean run would
have ended. CRM_UNDO_STEP_RECORDS=50 makes the small files here take many steps."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import pg_support
from conftest import Cli
from crm_helpers import audit_rows, cli, fails, one, query, template_store  # noqa: F401
from test_import_steps import CUSTOMERS, customers_csv, dead_owner, imported, purchases_csv, shop, upsert_csv, regulars

import crmcli.core.io.removal as removal
import crmcli.core.io.rollback as rollback

STEP = 50


class Steps:
    """Counts the removal steps, and runs ``between`` (step number) at each hand-over between two of them,
    when the undo must hold no transaction."""

    def __init__(self) -> None:
        self.done = 0
        self.between: Any = None
        self.die_after: int | None = None  # a step after this many raises SystemExit, as if killed

    def pause(self) -> None:
        if self.between is not None and self.done:
            self.between(self.done)

    def wrap(self, original: Any) -> Any:
        def step(session, run_id, found, **kw):  # noqa: ANN001, ANN202
            if self.die_after is not None and self.done >= self.die_after:
                raise SystemExit(137)  # inside the step's transaction: rolled back, like a kill
            out = original(session, run_id, found, **kw)
            self.done += 1
            return out
        return step


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> Steps:
    monkeypatch.setenv("CRM_UNDO_STEP_RECORDS", str(STEP))
    counter = Steps()
    monkeypatch.setattr(removal, "step", counter.wrap(removal.step))
    monkeypatch.setattr(removal, "pause", counter.pause)
    return counter


def take_write_lock(db: Any) -> None:
    """Another writer that will not wait at all (busy timeout 0): fails with "database is locked" if anybody
    holds SQLite's write lock. (PostgreSQL has no store-wide write lock: a plain write there.)"""
    if pg_support.PG_URL:
        conn = sqlite3.connect(db)
        with conn:
            conn.execute("UPDATE setting SET value = value WHERE key = 'currency'")
        conn.close()
        return
    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE setting SET value = value WHERE key = 'currency'")
        conn.execute("COMMIT")
    finally:
        conn.close()


def used_by_a_purchase(db: Any, customer_id: int) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO purchase (customer_id, kind, amount_minor, purchased_at, purchased_on, quantity, "
                     "created_at) SELECT id, 'sale', 100, created_at, '2024-03-01', 1, created_at FROM customer "
                     "WHERE id = ?", (customer_id,))
    conn.close()


def tagged_by_another_command(db: Any, customer_id: int) -> None:
    """`crm customer tag`'s work, with its audit row, from another connection (the CLI state is busy)."""
    from crmcli.core.customers import get, tag_customer
    from crmcli.store.engine import open_store

    store = open_store(str(db))
    try:
        with store.write() as session:
            tag_customer(session, get(session, customer_id), ["called"], [])
    finally:
        store.dispose()


def undo_trail(db: Any) -> list[tuple]:
    """The audit rows an undo or a take-back writes, without times and hashes."""
    return [(r["entity"], r["entity_id"], r["action"], r["before"], r["after"]) for r in audit_rows(db)
            if r["action"] in ("undo-start", "import-undo", "import-kept", "undo")]


def state(db: Any) -> dict[str, list[tuple]]:
    return {"customer": query(db, "SELECT id, code, name, import_id FROM customer ORDER BY id"),
            "contact_point": query(db, "SELECT customer_id, kind, value FROM contact_point ORDER BY customer_id, kind"),
            "customer_tag": query(db, "SELECT customer_id, tag FROM customer_tag ORDER BY customer_id, tag"),
            "purchase": query(db, "SELECT id, customer_id, kind, amount_minor, import_id FROM purchase ORDER BY id"),
            "points_ledger": query(db, "SELECT id, customer_id, purchase_id, points FROM points_ledger ORDER BY id"),
            "import_run": query(db, "SELECT id, status, owner, undo_cursor, undo_removed, undo_kept FROM import_run"),
            "trail": undo_trail(db)}


def test_an_undo_larger_than_a_step_commits_step_by_step_and_lets_other_writers_in(cli, tmp_path, steps):
    imported(cli, "customers", customers_csv(tmp_path / "c.csv"))
    probes: list[int] = []

    def between(n: int) -> None:
        take_write_lock(cli.db)  # raises "database is locked" if the undo still held the lock
        probes.append(n)

    steps.between = between
    result = cli.ok("import", "undo", "1", "--yes")
    assert f"Import #1 undone: {CUSTOMERS} customers removed." in result.stderr
    expected = -(-CUSTOMERS // STEP)  # 11 steps of at most 50 customers
    assert steps.done == expected and probes == list(range(1, expected))
    assert one(cli.db, "SELECT COUNT(*) FROM customer") == 0
    assert one(cli.db, "SELECT COUNT(*) FROM contact_point") == 0
    assert query(cli.db, "SELECT status, owner, undo_removed, undo_kept FROM import_run") == [("undone", None, CUSTOMERS, 0)]
    trail = undo_trail(cli.db)
    assert [t[2] for t in trail] == ["undo-start"] + ["import-undo"] * expected + ["undo"]
    assert trail[0][3:] == ({"status": "done"}, {"status": "undoing"})
    assert trail[1][4] == {"import_id": 1, "first_id": CUSTOMERS - STEP + 1, "last_id": CUSTOMERS, "removed": STEP}
    assert sum(t[4]["removed"] for t in trail if t[2] == "import-undo") == CUSTOMERS
    assert trail[-1][3:] == ({"status": "undoing"}, {"status": "undone", "removed": CUSTOMERS, "kept": 0})
    cli.ok("db", "check")
    fails(cli, 4, "import", "undo", "1", "--yes", says=["already undone"])


@pytest.mark.skipif(bool(pg_support.PG_URL), reason="SQLite's store-wide write lock")
def test_the_lock_probe_fails_while_a_step_holds_the_lock(cli, tmp_path, monkeypatch, steps):
    """The probe above can tell: inside a step's transaction it gets "database is locked"."""
    imported(cli, "customers", customers_csv(tmp_path / "c.csv", 120))
    original = removal.step
    refused: list[str] = []

    def step(session, run_id, found, **kw):  # noqa: ANN001, ANN202
        out = original(session, run_id, found, **kw)
        try:
            take_write_lock(cli.db)
        except sqlite3.OperationalError as e:
            refused.append(str(e))
        return out

    monkeypatch.setattr(removal, "step", step)
    cli.ok("import", "undo", "1", "--yes")
    assert refused and set(refused) == {"database is locked"} and len(refused) == steps.done == 3


def test_records_used_or_changed_between_steps_are_kept_and_named(cli, tmp_path, steps):
    imported(cli, "customers", customers_csv(tmp_path / "c.csv"))

    def between(n: int) -> None:
        if n == 2:  # customers 1..420 are still there
            used_by_a_purchase(cli.db, 7)
            tagged_by_another_command(cli.db, 300)
            used_by_a_purchase(cli.db, 500)  # already removed by step 1: nothing to keep

    steps.between = between
    result = cli.ok("import", "undo", "1", "--yes")
    assert f"Import #1 undone: {CUSTOMERS - 2} customers removed." in result.stderr
    assert "2 of its records were used or changed by other commands while the undo ran and were kept: 7, 300" \
        in result.stderr.replace("\n", " ")
    assert query(cli.db, "SELECT id, import_id FROM customer ORDER BY id") == [(7, 1), (300, 1)]
    assert one(cli.db, "SELECT COUNT(*) FROM purchase") == 1  # the one for customer 7; customer 500 is gone
    kept = [r for r in audit_rows(cli.db, "import-kept")]
    assert [(r["entity"], r["entity_id"], r["after"]) for r in kept] == [
        ("customer", 300, {"import_id": 1}), ("customer", 7, {"import_id": 1})]
    assert query(cli.db, "SELECT status, undo_removed, undo_kept FROM import_run") == [("undone", CUSTOMERS - 2, 2)]
    run = cli.json("import", "history")[0]
    assert (run["status"], run["undo_removed"], run["undo_kept"]) == ("undone", CUSTOMERS - 2, 2)
    cli.ok("db", "check")


def test_a_killed_undo_is_finished_by_the_next_command_as_a_clean_undo_would_end(cli, tmp_path, steps):
    imported(cli, "customers", customers_csv(tmp_path / "c.csv"))
    clean = tmp_path / "clean.sqlite"
    pg_support.copy_store(cli.db, clean)

    steps.die_after = 4
    assert cli("import", "undo", "1", "--yes").exit_code == 137
    assert one(cli.db, "SELECT COUNT(*) FROM customer") == CUSTOMERS - 4 * STEP  # 4 steps committed
    run = cli.json("import", "history")[0]
    assert run["status"] == "undoing"  # its process (this one) still lives
    assert (run["undo_removed"], run["undo_kept"]) == (4 * STEP, 0)  # its progress, for scripts watching it
    cli.ok("db", "check")
    make_owner_dead(cli.db)

    steps.die_after = None
    result = cli.ok("customer", "list")
    assert "The undo of import #1 was interrupted (its process ended); it has now been finished: " \
           f"{CUSTOMERS} records removed in all." in result.stderr
    assert len(result.stdout.strip().splitlines()) == 1  # the header: no customer left
    cli.ok("db", "check")

    Cli(clean).ok("import", "undo", "1", "--yes")
    assert state(cli.db) == state(clean)


def test_rerunning_the_undo_finishes_it(cli, tmp_path, steps):
    imported(cli, "customers", customers_csv(tmp_path / "c.csv"))
    clean = tmp_path / "clean.sqlite"
    pg_support.copy_store(cli.db, clean)
    steps.die_after = 2
    assert cli("import", "undo", "1", "--yes").exit_code == 137
    make_owner_dead(cli.db)
    steps.die_after = None
    result = cli.ok("import", "undo", "1", "--yes")
    assert f"Import #1 undone: {CUSTOMERS} customers removed." in result.stderr
    Cli(clean).ok("import", "undo", "1", "--yes")
    assert state(cli.db) == state(clean)


def test_an_undo_another_live_process_is_doing_is_not_taken_over(cli, tmp_path, steps):
    import subprocess
    import sys

    imported(cli, "customers", customers_csv(tmp_path / "c.csv", 120))
    steps.die_after = 1
    assert cli("import", "undo", "1", "--yes").exit_code == 137
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        conn = sqlite3.connect(cli.db)
        with conn:
            conn.execute("UPDATE import_run SET owner = ?",
                         (f"{socket.gethostname()}:{other.pid}:{rollback._started(other.pid)}",))
        conn.close()
        steps.die_after = None
        assert cli.ok("customer", "list").stderr == ""  # a live undo is left alone
        fails(cli, 4, "import", "undo", "1", "--yes", says=["is being undone by another crm process"])
        assert cli.json("import", "history")[0]["status"] == "undoing"
    finally:
        other.kill()
        other.wait()
    result = cli.ok("import", "history")  # its process ended: the next command finishes it
    assert "has now been finished: 120 records removed in all" in result.stderr


def test_a_refused_undo_changes_nothing(cli, tmp_path, steps, unchanged):
    imported(cli, "customers", customers_csv(tmp_path / "c.csv"))
    used_by_a_purchase(cli.db, 3)
    check = unchanged()
    fails(cli, 4, "import", "undo", "1", "--yes", says=["cannot be undone", "customer C000003 is used by purchase"])
    assert steps.done == 0
    check()


def test_purchases_with_points_are_undone_in_steps(cli, tmp_path, steps):
    shop(cli)
    before = state(cli.db)
    data = imported(cli, "purchases", purchases_csv(tmp_path / "p.csv"))
    assert data["created"] == 402
    assert one(cli.db, "SELECT COUNT(*) FROM points_ledger WHERE purchase_id IS NOT NULL") >= 402
    # The file's two refunds reverse points of its own sales: that is no use of them, both go.
    assert one(cli.db, "SELECT COUNT(*) FROM points_allocation") > 0
    result = cli.ok("import", "undo", str(data["import_id"]), "--yes")
    assert "402 purchases removed" in result.stderr
    assert steps.done == -(-402 // STEP)
    after = state(cli.db)
    for table in ("customer", "purchase", "points_ledger"):
        assert after[table] == before[table], table
    assert one(cli.db, "SELECT COUNT(*) FROM points_allocation") == 0
    cli.ok("db", "check")




def test_points_redeemed_to_pay_for_an_imported_sale_are_use_of_it(cli, tmp_path, steps, store, unchanged):
    """`points redeem --purchase` names the sale it pays for. Taken from an older lot (not the sale's own points),
    the redemption touched none of the import's ledger rows, and an undo erased it with the sale: the customer
    got the spent points back. It is use of the sale: the undo is refused (and a step would keep the sale)."""
    shop(cli)
    cli.ok("purchase", "add", "C000001", "100", "--at", "2024-01-05")  # a lot that expires before the imported ones
    data = imported(cli, "purchases", purchases_csv(tmp_path / "p.csv"))
    sale = one(cli.db, "SELECT id FROM purchase WHERE ref = 'S3'")  # a sale of C000001
    imported_sales = [r[0] for r in query(cli.db, "SELECT id FROM purchase WHERE import_id IS NOT NULL")]
    with store.read() as session:
        assert removal.points_used(session, imported_sales, data["import_id"]) == set()
    cli.ok("points", "redeem", "C000001", "5", "--purchase", str(sale), "--as-of", "2024-06-30")
    lots = query(cli.db, "SELECT l.purchase_id FROM points_allocation a JOIN points_ledger l ON l.id = a.lot_id "
                         "JOIN points_ledger d ON d.id = a.debit_id WHERE d.kind = 'redeem'")
    assert lots == [(1,)]  # paid from the hand-entered sale's lot: no imported lot was touched
    with store.read() as session:
        assert removal.points_used(session, imported_sales, data["import_id"]) == {sale}  # the check before
        assert removal.points_used(session, [sale, sale + 1]) == {sale}  # a step's own check
    check = unchanged()
    fails(cli, 4, "import", "undo", str(data["import_id"]), "--yes", says=["cannot be undone", f"redeemed to pay for them (purchase #{sale})"])
    assert steps.done == 0
    check()


# ------------------------------------------------------------------ a failed stepped import, taken back in steps
@pytest.fixture
def import_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_IMPORT_STEP_SECONDS", "0")  # the import commits after every batch


def test_a_failed_import_is_taken_back_in_steps(cli, tmp_path, steps, import_steps, unchanged):
    check = unchanged()
    probes: list[int] = []

    def between(n: int) -> None:
        take_write_lock(cli.db)
        probes.append(n)

    steps.between = between
    result = cli("import", "customers", customers_csv(tmp_path / "c.csv", last="Broken,not-a-phone,,,"))
    assert result.exit_code == 5
    assert steps.done == -(-CUSTOMERS // STEP) and len(probes) == steps.done - 1
    check()


def test_a_killed_take_back_is_finished_by_the_next_command(cli, tmp_path, steps, import_steps, unchanged):
    regulars(cli)
    check = unchanged()
    steps.die_after = 3
    result = cli("import", "customers", upsert_csv(tmp_path / "u.csv", last="Broken,not-a-phone,,,,,,"),
                 "--mode", "upsert")
    assert result.exit_code == 137
    assert one(cli.db, "SELECT status FROM import_run") == "running"
    assert one(cli.db, "SELECT COUNT(*) FROM import_before") == 0  # the two regulars were put back first
    assert one(cli.db, "SELECT COUNT(*) FROM customer") == 2 + CUSTOMERS - 3 * STEP
    cli.ok("db", "check")
    make_owner_dead(cli.db)
    steps.die_after = None
    result = cli.ok("customer", "list")
    assert "Import #1 was interrupted (its process ended); its " in result.stderr
    check()


def test_a_record_used_between_take_back_steps_is_kept(cli, tmp_path, steps, import_steps):
    def between(n: int) -> None:
        if n == 1:
            used_by_a_purchase(cli.db, 10)

    steps.between = between
    assert cli("import", "customers", customers_csv(tmp_path / "c.csv", last="Broken,not-a-phone,,,")).exit_code == 5
    assert query(cli.db, "SELECT id FROM customer") == [(10,)]
    assert query(cli.db, "SELECT status, owner, undo_kept FROM import_run") == [("failed", None, 1)]
    assert [(r["entity"], r["entity_id"]) for r in audit_rows(cli.db, "import-kept")] == [("customer", 10)]
    cli.ok("db", "check")


def make_owner_dead(db: Path) -> None:
    """As if the process running the import or its undo had died (its pid now names no process)."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE import_run SET owner = ?", (dead_owner(),))
    conn.close()


def elsewhere_takes_it_on(db: Any) -> None:
    """As if a crm command on another machine had judged the run stalled and made it its own."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE import_run SET owner = 'elsewhere:1:1'")
    conn.close()


def test_an_undo_taken_on_by_another_machine_stops_and_leaves_the_rest_to_it(cli, tmp_path, steps):
    """On a shared PostgreSQL server a command elsewhere that judged this undo stalled makes the run its own.
    This process must not run one more step (both would remove and record the same range of records, or the
    loser would end on an unexpected error): each step first checks, under the lock, that the run is still its
    own. It stops with one line; the other process finishes the undo."""
    imported(cli, "customers", customers_csv(tmp_path / "c.csv", 120))
    steps.between = lambda done: elsewhere_takes_it_on(cli.db) if done == 1 else None
    result = cli("import", "undo", "1", "--yes")
    assert result.exit_code == 1, result.stderr
    assert "was taken on by another crm command while it ran" in result.stderr
    assert "Traceback" not in result.stderr
    assert steps.done == 1  # no step after the hand-over
    assert one(cli.db, "SELECT COUNT(*) FROM customer") == 120 - STEP
    assert query(cli.db, "SELECT status, owner FROM import_run") == [("undoing", "elsewhere:1:1")]
    steps.between = None
    fails(cli, 4, "import", "undo", "1", "--yes", says=["is being undone by another crm process"])  # fresh row
    conn = sqlite3.connect(cli.db)
    with conn:  # the other machine stalled too, for longer than rollback.STALE_AFTER
        conn.execute("UPDATE import_run SET undone_at = '2000-01-01 00:00:00'")
    conn.close()
    result = cli.ok("import", "history")  # the next command takes the dead run on and finishes it
    assert "has now been finished: 120 records removed in all" in result.stderr
    assert one(cli.db, "SELECT COUNT(*) FROM customer") == 0
    ranges = [r["after"] for r in audit_rows(cli.db) if r["action"] == "import-undo"]
    assert sum(r["removed"] for r in ranges) == 120  # every record recorded once, by whoever removed it
    assert sorted((r["first_id"], r["last_id"]) for r in ranges) == [(1, 20), (21, 70), (71, 120)]  # highest first
    cli.ok("db", "check")


def test_a_take_back_taken_on_by_another_machine_stops_there(cli, tmp_path, steps):
    """The same for the taking back of a failed import: a step of this process runs only while the run is its
    own; after the hand-over it leaves the rest to the other process."""
    from crmcli.core.io import rollback as rb
    from crmcli.store.engine import open_store

    imported(cli, "customers", customers_csv(tmp_path / "c.csv", 120))
    conn = sqlite3.connect(cli.db)
    with conn:  # a failed import whose records are still there, as its process left them when it died
        conn.execute("UPDATE import_run SET status = 'running'")
    conn.close()
    steps.between = lambda done: elsewhere_takes_it_on(cli.db) if done == 1 else None
    store = open_store(str(cli.db))
    try:
        assert rb.discard(store, 1) is None  # not this process's any more: it stopped after one step
    finally:
        store.dispose()
    assert steps.done == 1
    assert one(cli.db, "SELECT COUNT(*) FROM customer") == 120 - STEP
    assert query(cli.db, "SELECT status, owner FROM import_run") == [("running", "elsewhere:1:1")]


def test_runs_on_other_machines_are_judged_by_the_servers_clock(cli, tmp_path, steps, monkeypatch):
    """A run's row is stamped, and its age judged, by one clock: the database server's on PostgreSQL (clocks of
    machines sharing a server may be set minutes apart; a client clock an hour ahead took a live undo on
    another machine for dead). On a SQLite file, one machine: its clock."""
    from datetime import timedelta

    imported(cli, "customers", customers_csv(tmp_path / "c.csv", 120))
    steps.die_after = 1
    assert cli("import", "undo", "1", "--yes").exit_code == 137
    steps.die_after = None
    ahead = rollback.utcnow() + timedelta(hours=1)
    conn = sqlite3.connect(cli.db)
    with conn:  # another machine's undo, its row stamped just now
        conn.execute("UPDATE import_run SET owner = 'elsewhere:1:1'")
    conn.close()
    monkeypatch.setattr(rollback, "utcnow", lambda: ahead)  # this machine's clock, an hour ahead
    result = cli.ok("customer", "list")
    if pg_support.PG_URL:  # judged by the server's clock: alive, left alone
        assert "has now been finished" not in result.stderr
        assert cli.json("import", "history")[0]["status"] == "undoing"
    else:  # one machine, one clock: an hour without a step is a dead run
        assert "has now been finished: 120 records removed in all" in result.stderr
