"""The cache kept between runs of `crm tier recompute` / `crm tier rfm` (issue #4; core/class_cache.py,
migration m0021_class_cache): the specification.

* Triggers: ``class_cache_state.purchase_gen`` rises when a purchase is deleted or changed (not when one is
  added); ``class_gen`` rises on every write of a customer_class row (pins, runs that change rows).
* Use: a run after a run reads only what changed (``Keeper.reused`` says how each part was used) and gives
  exactly what a store without the cache gives (a twin store run with CRM_CLASS_CACHE=off).
* A far move of the as-of date or a deleted purchase falls back to a full pass.
* A hypothesis differential test against the twin.
* A change committed between the two phases of a run leaves no cache that claims to be current.
* A damaged cache row is ignored and overwritten.

The suite runs with CRM_CLASS_CACHE=check (tests/conftest.py): every run also reads the store in full and
raises AssertionError when the cache gave anything else. PostgreSQL does not use the cache (no triggers).
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

import pg_support
from crm_helpers import cli, fast_cli, one, query, template_store  # noqa: F401  (fixtures)
from test_tier_support import seed

if pg_support.PG_URL:
    pytest.skip("the class cache is SQLite only (PostgreSQL: no triggers, the cache is off)", allow_module_level=True)

AS_OF = date(2025, 6, 30)
FAR = "2030-01-01"  # --as-of for commands that record purchases on any date of the tests


# ------------------------------------------------------------------------------------------- helpers

@contextmanager
def cache_mode(mode: str) -> Iterator[None]:
    before = os.environ.get("CRM_CLASS_CACHE")
    os.environ["CRM_CLASS_CACHE"] = mode
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CRM_CLASS_CACHE", None)
        else:
            os.environ["CRM_CLASS_CACHE"] = before


def run(cli: Any, mode: str, *args: str) -> Any:
    with cache_mode(mode):
        return cli(*args)


def ok(cli: Any, mode: str, *args: str) -> Any:
    result = run(cli, mode, *args)
    assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def as_json(cli: Any, mode: str, *args: str) -> Any:
    return json.loads(ok(cli, mode, *args, "--format", "json").stdout)


def gens(db: Path) -> tuple[int, int]:
    """(purchase_gen, class_gen)"""
    return one(db, "SELECT purchase_gen, class_gen FROM class_cache_state WHERE id = 1")


def meta(db: Path) -> dict[str, Any] | None:
    rows = query(db, "SELECT meta FROM class_cache")
    assert len(rows) <= 1, rows
    return json.loads(rows[0][0]) if rows else None


def class_rows(db: Path) -> list[tuple[Any, ...]]:
    return query(db, "SELECT * FROM customer_class ORDER BY customer_id")


def history_rows(db: Path) -> list[tuple[Any, ...]]:
    return query(db, "SELECT * FROM class_history ORDER BY id")


def runs(db: Path) -> list[tuple[Any, ...]]:
    return query(db, "SELECT id, kind, as_of, counts FROM class_run ORDER BY id")


def sql(db: Path, statement: str, *params: Any) -> None:
    """Another process's write, straight through sqlite3 (no crmcli code, no audit row)."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute(statement, params)
    finally:
        conn.close()


def is_current(db: Path) -> tuple[bool, bool]:
    """Whether the cache row claims its (facts, stored) part is current: its counter is the store's now."""
    m = meta(db)
    p, c = gens(db)
    if m is None:
        return False, False
    return (bool(m.get("facts")) and m["facts"]["purchase_gen"] == p,
            bool(m.get("stored")) and m["stored"]["class_gen"] == c)


def settled(cli: Any, as_of: date) -> None:
    """What is stored equals what a full pass without the cache computes: its dry run changes nothing."""
    data = as_json(cli, "off", "tier", "recompute", "--as-of", as_of.isoformat(), "--dry-run")
    assert data["changed"] == 0, data


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    from conftest import snapshot_db

    return snapshot_db(db)


def new_twin(template: Path, path: Path) -> Any:
    from conftest import Cli

    pg_support.copy_store(template, path)
    return Cli(path)


@pytest.fixture
def twin(template_store: Any, tmp_path: Path, memory_keyring: Any) -> Any:
    """A second fresh store, run with CRM_CLASS_CACHE=off: what the cached store must equal."""
    template, secrets = template_store
    memory_keyring.data.update(secrets)
    return new_twin(template, tmp_path / "twin.sqlite")


@pytest.fixture
def keepers(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every Keeper that a run opens (its ``reused`` says how the cache was used)."""
    from crmcli.core import class_cache

    seen: list[Any] = []
    real = class_cache.open_keeper

    def spy(session: Any) -> Any:
        keeper = real(session)
        if keeper is not None:  # None: CRM_CLASS_CACHE=off (the twin)
            seen.append(keeper)
        return keeper

    monkeypatch.setattr(class_cache, "open_keeper", spy)
    return seen


# The 365-day window as of AS_OF starts on 2024-07-01 (364 days before): Dan's sale of that day leaves it the
# next day, Bob's of 2024-07-02 (363) the day after.
PLAN = {"Ann": [(3, "900"), (40, "300"), (200, "50")], "Bob": [(10, "200"), (363, "80")],
        "Cat": [(30, "120")], "Dan": [(364, "60"), (366, "70")], "Eve": []}


def shop(*clis: Any) -> dict[str, int]:
    """The same customers and purchases in each store (ids equal)."""
    sales: dict[str, int] = {}
    for c in clis:
        sales = seed(c, PLAN)
    return sales


def write_csv(path: Path, rows: list[tuple[str, str, str, str]]) -> str:
    path.write_text("ref,customer_code,amount,purchased_at\n" + "".join(",".join(r) + "\n" for r in rows),
                    encoding="utf-8")
    return str(path)


def both(cli: Any, twin: Any, *args: str, json_out: bool = False) -> Any:
    """The command on the cached store (check mode) and on the twin (off): same exit code, same stdout."""
    a = run(cli, "check", *args, *(["--format", "json"] if json_out else []))
    b = run(twin, "off", *args, *(["--format", "json"] if json_out else []))
    assert a.exit_code == b.exit_code, (args, a.stdout, a.stderr, b.stdout, b.stderr)
    assert a.stdout == b.stdout, args
    return json.loads(a.stdout) if json_out and a.exit_code == 0 else a


def same_tables(cli: Any, twin: Any) -> None:
    assert class_rows(cli.db) == class_rows(twin.db)
    assert history_rows(cli.db) == history_rows(twin.db)
    assert runs(cli.db) == runs(twin.db)


# ------------------------------------------------------------------------------------------ triggers

def test_deleting_or_changing_a_purchase_raises_purchase_gen_adding_one_does_not(cli, tmp_path):
    shop(cli)
    assert gens(cli.db) == (0, 0)
    cli.ok("purchase", "add", "Ann", "10", "--at", "2025-06-01", "--as-of", FAR, "--note", "gift wrap")
    cli.ok("purchase", "refund", "1", "5", "--at", "2025-06-29", "--as-of", FAR)
    cli.ok("import", "purchases", write_csv(tmp_path / "p.csv", [("R1", "C000002", "20", "2025-05-01"),
                                                                   ("R2", "C000003", "30", "2025-06-20")]),
           "--as-of", FAR)
    assert one(cli.db, "SELECT count(*) FROM purchase") == 12
    assert gens(cli.db) == (0, 0)  # inserts need no trigger: they are above the watermark

    cli.ok("import", "undo", "1", "--yes")  # deletes the two imported purchases
    assert one(cli.db, "SELECT count(*) FROM purchase") == 10
    assert gens(cli.db) == (2, 0)

    # `customer forget` clears purchase notes: not a column the classification reads
    cli.ok("customer", "forget", "Ann", "--yes")
    assert one(cli.db, "SELECT count(*) FROM purchase WHERE note IS NOT NULL") == 0
    assert gens(cli.db)[0] == 2

    # any writer: the triggers watch customer, date, kind and amount, nothing else
    last = one(cli.db, "SELECT max(id) FROM purchase WHERE kind = 'sale'")
    for statement, raised in [("UPDATE purchase SET note = 'x' WHERE id = ?", 0),
                              ("UPDATE purchase SET product = 'tea', quantity = 3 WHERE id = ?", 0),
                              ("UPDATE purchase SET amount_minor = amount_minor + 1 WHERE id = ?", 1),
                              ("UPDATE purchase SET purchased_on = '2025-01-01' WHERE id = ?", 1),
                              ("UPDATE purchase SET customer_id = 2 WHERE id = ?", 1),
                              ("UPDATE purchase SET kind = 'refund' WHERE id = ?", 1),
                              ("UPDATE purchase SET amount_minor = amount_minor WHERE id = ?", 1),  # written: counts
                              ("DELETE FROM purchase WHERE id = ?", 1)]:
        before = gens(cli.db)
        sql(cli.db, statement, last)
        assert gens(cli.db) == (before[0] + raised, before[1]), statement
    assert gens(cli.db)[1] == 0  # nothing touched customer_class


def test_every_write_of_customer_class_raises_class_gen(cli):
    """Any command's write of a customer_class row raises class_gen (triggers); a tier run takes them out for its
    own bulk write (even disarmed with class_armed = 0 they cost ~1.4 µs a row under the write lock) and raises
    the counter once itself, in the same transaction (tests/test_purchase_scan.py: they come back as they were)."""
    shop(cli)
    data = as_json(cli, "check", "tier", "recompute", "--as-of", AS_OF.isoformat())
    assert data["changed"] == 5
    assert gens(cli.db) == (0, 1)  # five rows inserted by one run: raised once
    assert one(cli.db, "SELECT class_armed FROM class_cache_state") == 1  # armed all along
    assert meta(cli.db)["stored"]["class_gen"] == 1  # the cache is valid at the counter after the run's writes

    as_json(cli, "check", "tier", "recompute", "--as-of", AS_OF.isoformat())  # changes nothing
    assert gens(cli.db) == (0, 1)

    cli.ok("tier", "pin", "Eve", "A", "--reason", "key account", "--as-of", AS_OF.isoformat())
    assert gens(cli.db) == (0, 2)
    assert is_current(cli.db) == (True, False)  # the stored part no longer holds
    cli.ok("tier", "unpin", "Eve", "--as-of", AS_OF.isoformat())
    assert gens(cli.db) == (0, 3)

    cli.ok("purchase", "add", "Cat", "5000", "--at", "2025-06-30", "--as-of", FAR)
    data = as_json(cli, "check", "tier", "recompute", "--as-of", "2025-07-01")
    assert data["changed"] >= 1
    assert gens(cli.db) == (0, 4)
    assert is_current(cli.db) == (True, True)

    cli.ok("tier", "rfm", "--as-of", "2025-07-01", "--window", "30d")
    assert runs(cli.db)[-1][1] == "rfm" and json.loads(runs(cli.db)[-1][3])["changed"] >= 1
    assert gens(cli.db)[1] == 5

    # a raw write of any column counts too, one per row
    before = gens(cli.db)
    sql(cli.db, "UPDATE customer_class SET stage = stage WHERE customer_id = 1")
    sql(cli.db, "DELETE FROM customer_class WHERE customer_id = 2")
    assert gens(cli.db) == (before[0], before[1] + 2)
    sql(cli.db, "UPDATE class_cache_state SET class_armed = 0")  # the triggers still honour the switch
    sql(cli.db, "DELETE FROM customer_class WHERE customer_id = 3")
    assert gens(cli.db) == (before[0], before[1] + 2)


def customer_gen(db: Path) -> int:
    return one(db, "SELECT customer_gen FROM class_cache_state WHERE id = 1")


def test_deleting_restoring_or_erasing_a_customer_raises_customer_gen(cli, twin, keepers, tmp_path):
    """The live customers are taken from the cache (plus the customers added since, ids above every id there
    was) only while no customer was deleted, restored, erased or removed: triggers on customer count each."""
    shop(cli, twin)
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    assert customer_gen(cli.db) == 0
    for c in (cli, twin):
        c.ok("customer", "add", "Fay")
        c.ok("customer", "edit", "Ann", "--city", "杭州")
    assert customer_gen(cli.db) == 0  # added and edited: the kept ids plus those above them are still right
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    assert keepers[-1].reused["live"] == "cache"
    for c in (cli, twin):
        c.ok("customer", "rm", "Bob", "--yes")
    assert customer_gen(cli.db) == 1
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    assert "live" not in keepers[-1].reused  # read from the store
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    assert keepers[-1].reused["live"] == "cache"  # the last run's cache holds them again
    for c in (cli, twin):
        c.ok("customer", "restore", "Bob")
    assert customer_gen(cli.db) == 2
    for c in (cli, twin):
        c.ok("customer", "forget", "Cat", "--yes")
    assert customer_gen(cli.db) == 3
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    assert "live" not in keepers[-1].reused
    same_tables(cli, twin)
    sql(cli.db, "DELETE FROM customer WHERE name = 'Fay'")  # as `crm import undo` removes customers
    assert customer_gen(cli.db) == 4


# ------------------------------------------------------------------------------------------------ use

def test_later_runs_use_the_cache_and_equal_a_store_without_it(cli, twin, keepers):
    shop(cli, twin)
    first = both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    assert first["changed"] == 5
    assert keepers[-1].reused == {"facts": "full"}  # nothing kept yet: the whole history, the stored rows read
    m = meta(cli.db)
    assert m["facts"] == {"as_of": AS_OF.isoformat(), "windows": [365], "watermark": 8, "purchase_gen": 0,
                          "width": 4}
    assert m["stored"] == {"level_names": [], "max_customer_id": 5, "customer_gen": 0, "class_gen": 1}
    assert meta(twin.db) is None  # off: nothing kept

    # the same as-of again: nothing to read but the cache, nothing written
    check = snapshot(cli.db)
    again = both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    assert again["changed"] == 0
    assert keepers[-1].reused == {"live": "cache", "facts": "patched 0", "stored": "cache"}
    assert snapshot(cli.db) == check

    # next day, one new purchase: only the customers that can differ are read again
    for c in (cli, twin):
        c.ok("purchase", "add", "Eve", "75", "--at", "2025-06-30 18:00", "--as-of", FAR)
    nxt = both(cli, twin, "tier", "recompute", "--as-of", "2025-07-01", "--changes", json_out=True)
    assert keepers[-1].reused == {"live": "cache", "facts": "patched 2", "stored": "cache"}  # Eve's new sale, Dan's leaves the window
    assert "Eve" in {c["name"] for c in nxt}
    assert meta(cli.db)["facts"]["as_of"] == "2025-07-01" and meta(cli.db)["facts"]["watermark"] == 9
    same_tables(cli, twin)

    # two days on: Bob's sale of 2024-07-02 leaves the 365-day window (a boundary moved over it)
    both(cli, twin, "tier", "recompute", "--as-of", "2025-07-02", "--changes", json_out=True)
    assert keepers[-1].reused["facts"] == "patched 1"
    same_tables(cli, twin)

    # rfm over the recompute's window, a day later: the facts and the stored rows come from the cache
    seg = both(cli, twin, "tier", "rfm", "--as-of", "2025-07-03", json_out=True)
    assert keepers[-1].reused == {"live": "cache", "facts": "patched 0", "stored": "cache"}
    assert sum(r["customers"] for r in seg) == 5
    scores = both(cli, twin, "tier", "rfm", "--as-of", "2025-07-03", "--customers", json_out=True)
    assert keepers[-1].reused == {"live": "cache", "facts": "patched 0", "stored": "cache"}
    assert len(scores) >= 4
    # ... and a recompute after the rfm still uses what the rfm left
    both(cli, twin, "tier", "recompute", "--as-of", "2025-07-03", "--changes", json_out=True)
    assert keepers[-1].reused == {"live": "cache", "facts": "patched 0", "stored": "cache"}
    same_tables(cli, twin)
    assert is_current(cli.db) == (True, True)
    settled(cli, date(2025, 7, 3))


def test_a_cached_run_reads_only_the_changed_customers(cli, monkeypatch):
    """In "on" mode (no full check pass) a next-day run builds the history aggregate for a few customers
    only, never for everyone."""
    from crmcli.core import classify, purchase_scan

    shop(cli)
    cli.ok("tier", "recompute", "--as-of", AS_OF.isoformat())
    seen: list[Any] = []
    real = classify._history_stmt

    def spy(as_of: date, windows: list[int], only: Any = None) -> Any:
        seen.append(None if only is None else sorted(int(i) for i in only))
        return real(as_of, windows, only)

    def full_spy(session: Any, as_of: date, windows: list[int], sql: Any) -> Any:  # everyone, read by numpy
        seen.append(None)
        return real_full(session, as_of, windows, sql)

    real_full = purchase_scan.history_rows
    monkeypatch.setattr(classify, "_history_stmt", spy)
    monkeypatch.setattr(purchase_scan, "history_rows", full_spy)
    cli.ok("purchase", "add", "Cat", "40", "--at", "2025-06-30 10:00", "--as-of", FAR)
    ok(cli, "on", "tier", "recompute", "--as-of", "2025-07-01")
    assert seen == [[3, 4]]  # Cat (a new sale), Dan (his sale of 2024-07-01 leaves the window)
    seen.clear()
    ok(cli, "on", "tier", "recompute", "--as-of", "2025-07-02")  # Bob's sale of 2024-07-02 leaves the window
    assert seen == [[2]]
    seen.clear()
    ok(cli, "on", "tier", "recompute", "--as-of", "2025-07-02")
    assert seen == []  # nothing moved: nothing read
    ok(cli, "off", "tier", "recompute", "--as-of", "2025-07-02")
    assert seen == [None]  # without the cache: the whole history
    settled(cli, date(2025, 7, 2))


@pytest.mark.parametrize("days", [62, 63, -63])
def test_a_far_move_of_the_as_of_date_reads_the_whole_history(cli, twin, keepers, days):
    shop(cli, twin)
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    target = (AS_OF + timedelta(days=days)).isoformat()
    both(cli, twin, "tier", "recompute", "--as-of", target, "--changes", json_out=True)
    assert keepers[-1].reused["facts"].startswith("full" if abs(days) > 62 else "patched ")
    assert meta(cli.db)["facts"]["as_of"] == target
    same_tables(cli, twin)
    settled(cli, AS_OF + timedelta(days=days))


def test_a_deleted_purchase_makes_the_next_run_read_the_whole_history(cli, twin, keepers, tmp_path):
    shop(cli, twin)
    csv = write_csv(tmp_path / "p.csv", [("R1", "C000005", "5000", "2025-06-29"), ("R2", "C000004", "10", "2025-06-01")])
    both(cli, twin, "import", "purchases", csv, "--as-of", FAR)
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    assert {r[0]: r[1] for r in class_rows(cli.db)}[5] == "A"  # Eve's imported 5000 makes her A
    assert meta(cli.db)["facts"]["purchase_gen"] == 0
    both(cli, twin, "import", "undo", "1", "--yes")
    assert gens(cli.db)[0] == 2 and is_current(cli.db)[0] is False
    data = both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), "--changes", json_out=True)
    assert keepers[-1].reused["facts"] == "full"
    assert "Eve" in {c["name"] for c in data}
    assert {r[0]: r[1] for r in class_rows(cli.db)}[5] != "A"
    assert meta(cli.db)["facts"]["purchase_gen"] == 2 and meta(cli.db)["facts"]["watermark"] == 8
    same_tables(cli, twin)
    # and the rfm after it uses the new facts
    both(cli, twin, "tier", "rfm", "--as-of", AS_OF.isoformat(), json_out=True)
    assert keepers[-1].reused["facts"] == "patched 0"
    same_tables(cli, twin)


def test_many_customers_to_read_again_read_the_whole_history(cli, twin, keepers, monkeypatch):
    """More customers to read again than the share allowed (DIRTY_SHARE of them, at least DIRTY_MIN): one full
    pass instead of a long list of ids."""
    from crmcli.core import class_cache

    shop(cli, twin)
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    monkeypatch.setattr(class_cache, "DIRTY_MIN", 1)
    for c in (cli, twin):
        c.ok("purchase", "add", "Eve", "10", "--at", "2025-06-30 21:00", "--as-of", FAR)
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    assert keepers[-1].reused["facts"] == "patched 1"  # one customer: not more than DIRTY_MIN
    for c in (cli, twin):
        c.ok("purchase", "add", "Ann", "10", "--at", "2025-06-30 21:00", "--as-of", FAR)
        c.ok("purchase", "add", "Bob", "10", "--at", "2025-06-30 21:00", "--as-of", FAR)
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), "--changes", json_out=True)
    assert keepers[-1].reused["facts"] == "full"  # two of five: over max(1, 10 % of 5)
    assert is_current(cli.db) == (True, True) and meta(cli.db)["facts"]["watermark"] == 11
    same_tables(cli, twin)


def test_a_cache_too_large_to_keep_is_not_kept(cli, twin, keepers, monkeypatch):
    from crmcli.core import class_cache

    shop(cli, twin)
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    assert meta(cli.db) is not None
    monkeypatch.setattr(class_cache, "MAX_BYTES", 4)
    for c in (cli, twin):
        c.ok("purchase", "add", "Eve", "10", "--at", "2025-06-30 21:00", "--as-of", FAR)
    both(cli, twin, "tier", "recompute", "--as-of", "2025-07-01", json_out=True)
    assert keepers[-1].reused["facts"] == "patched 2"
    assert meta(cli.db) is None  # the old row is not left behind either
    both(cli, twin, "tier", "recompute", "--as-of", "2025-07-02", json_out=True)
    assert keepers[-1].reused == {"facts": "full"}
    same_tables(cli, twin)


def test_new_and_restored_customers(cli, twin, keepers):
    shop(cli, twin)
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    for c in (cli, twin):
        c.ok("customer", "add", "Fay")
        c.ok("customer", "rm", "Bob", "--yes")
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), "--changes", json_out=True)
    assert keepers[-1].reused.get("stored") == "cache"  # a new customer (above every id then) has no row yet
    same_tables(cli, twin)
    for c in (cli, twin):
        c.ok("customer", "restore", "Bob")
    both(cli, twin, "tier", "rfm", "--as-of", AS_OF.isoformat(), json_out=True)
    assert "stored" not in keepers[-1].reused  # Bob came back: not held by the cache, so the rows are read
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), "--changes", json_out=True)
    same_tables(cli, twin)
    settled(cli, AS_OF)


def test_levels_and_rfm_windows(cli, twin, keepers):
    shop(cli, twin)
    for c in (cli, twin):
        c.ok("tier", "levels", "add", "Silver", "--threshold", "100")
        c.ok("tier", "levels", "add", "Gold", "--threshold", "800")
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    assert meta(cli.db)["stored"]["level_names"] == ["Silver", "Gold"]
    both(cli, twin, "tier", "rfm", "--as-of", "2025-07-05", "--window", "30d", "--customers", json_out=True)
    assert "facts" not in keepers[-1].reused  # a window the cache does not hold: read on its own
    same_tables(cli, twin)
    both(cli, twin, "tier", "recompute", "--as-of", "2025-07-05", "--changes", json_out=True)
    same_tables(cli, twin)
    for c in (cli, twin):
        c.ok("tier", "levels", "rm", "Gold", "--yes")
    both(cli, twin, "tier", "recompute", "--as-of", "2025-07-05", "--changes", json_out=True)
    assert "stored" not in keepers[-1].reused or keepers[-1].reused["stored"] != "cache"
    same_tables(cli, twin)
    settled(cli, date(2025, 7, 5))


def test_rfm_over_the_second_window_the_cache_holds(cli, twin):
    """The recompute keeps the facts of its windows sorted ([30, 365] here); an rfm over the 365-day window
    is the cache's second window."""
    shop(cli, twin)
    for c in (cli, twin):
        c.ok("tier", "rules", "set", "--rfm-window", "30d")
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    assert meta(cli.db)["facts"]["windows"] == [30, 365]
    both(cli, twin, "tier", "rfm", "--as-of", AS_OF.isoformat(), "--window", "365d", "--customers", json_out=True)
    same_tables(cli, twin)


# --------------------------------------------------------------------------- changes between the phases

def _two_phase(cli: Any, as_of: date, kind: str, meanwhile: Any) -> Any:
    """One run through classify.run_two_phase (as the CLI runs it); ``meanwhile()`` runs once, inside the
    first read phase after the run computed (another connection: the run's snapshot does not see it)."""
    from crmcli.core import classify
    from crmcli.core.context import StoreContext
    from crmcli.store.engine import open_store

    store = open_store(str(cli.db))
    calls: list[int] = []

    def compute(session: Any, ctx: Any) -> Any:
        calls.append(1)
        run_ = classify.recompute if kind == "recompute" else classify.rfm
        result = run_(session, ctx, defer=True)
        if len(calls) == 1:
            meanwhile()
        return result

    try:
        with cache_mode("check"):
            result, _ = classify.run_two_phase(store, lambda s: StoreContext.load(s, as_of), compute)
    finally:
        store.dispose()
    return result, len(calls)


@pytest.mark.parametrize("kind,writes", [("recompute", True), ("recompute", False), ("rfm", True)],
                         ids=["recompute-writes-rows", "recompute-writes-cache-only", "rfm-writes-rows"])
@pytest.mark.parametrize("change", ["purchase-deleted", "class-row-written", "pin", "import-undo", "purchase-added"])
def test_a_change_between_the_phases_leaves_no_cache_that_claims_to_be_current(cli, tmp_path, kind, writes, change):
    shop(cli)
    cli.ok("import", "purchases", write_csv(tmp_path / "p.csv", [("R1", "C000003", "700", "2025-06-01")]),
           "--as-of", FAR)
    cli.ok("tier", "recompute", "--as-of", AS_OF.isoformat())
    cli.ok("tier", "rfm", "--as-of", AS_OF.isoformat())
    assert is_current(cli.db) == (True, True)
    if writes:  # a new sale and a new day: the run changes rows
        cli.ok("purchase", "add", "Eve", "3000", "--at", "2025-06-30 20:00", "--as-of", FAR)
        as_of = AS_OF + timedelta(days=1)
    else:  # the cache gone: the run reads everything, changes no row and writes the cache only
        sql(cli.db, "DELETE FROM class_cache")
        as_of = AS_OF
    before = gens(cli.db)

    def meanwhile() -> None:
        if change == "purchase-deleted":  # another program, no audit row: the run cannot notice it but by the counter
            sql(cli.db, "DELETE FROM purchase WHERE id = (SELECT max(id) FROM purchase WHERE customer_id = 1)")
        elif change == "class-row-written":
            sql(cli.db, "UPDATE customer_class SET tier = 'A', segment = 'lost' WHERE customer_id = 4")
        elif change == "purchase-added":  # harmless for the run (it reports the store as it began reading) ...
            cli.ok("purchase", "add", "Bob", "9000", "--at", "2025-06-15", "--as-of", FAR)
        elif change == "pin":
            cli.ok("tier", "pin", "Dan", "A", "--reason", "meanwhile", "--as-of", as_of.isoformat())
        else:
            cli.ok("import", "undo", "1", "--yes")

    result, computed = _two_phase(cli, as_of, kind, meanwhile)
    audited = change in ("pin", "import-undo")
    assert computed == (2 if audited else 1)  # an audited change makes the run compute again
    p, c = gens(cli.db)
    assert p == before[0] + (1 if change in ("purchase-deleted", "import-undo") else 0)
    facts_current, stored_current = is_current(cli.db)
    if change == "purchase-deleted":
        assert not facts_current  # computed before the delete: not valid now
    if change == "class-row-written":
        assert not stored_current  # the rows were changed behind the run's back
    if audited and kind == "recompute":
        assert facts_current and stored_current  # computed again after the change: valid
    if audited and kind == "rfm" and change == "pin" and writes:
        assert facts_current  # (rfm keeps the stored part only when it could take it from the cache)
    if change == "purchase-added":  # ... and its cache, current, leaves the sale to the next run: above the watermark
        assert facts_current and meta(cli.db)["facts"]["watermark"] < one(cli.db, "SELECT max(id) FROM purchase")
        assert {r[0]: r[1] for r in class_rows(cli.db)}[2] != "A"
    if facts_current or stored_current:
        # what the cache claims must be what the store holds: the next run in check mode reads both and compares
        cli.ok("tier", kind, "--as-of", as_of.isoformat())
    # whatever was kept, the next run is right
    cli.ok("tier", "recompute", "--as-of", as_of.isoformat())
    settled(cli, as_of)
    if change == "pin":
        assert {r[0]: r[1] for r in class_rows(cli.db)}[4] == "A"
    if change == "purchase-added":
        assert {r[0]: r[1] for r in class_rows(cli.db)}[2] == "A"  # Bob's 9000 counted


# ------------------------------------------------------------------------------------------ corruption

def _corrupt(db: Path, how: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        raw, data = conn.execute("SELECT meta, data FROM class_cache").fetchone()
        m = json.loads(raw)
        if how == "data-garbage":
            data = b"\x00garbage"
        elif how == "meta-not-json":
            raw = "{not json"
        elif how == "meta-a-list":
            raw = "[1, 2]"
        elif how == "meta-other-format":
            raw = json.dumps({**m, "format": 999})
        elif how == "meta-other-schema":
            raw = json.dumps({**m, "schema": "3:m0003_tiers"})
        elif how == "facts-without-width":
            del m["facts"]["width"]
            raw = json.dumps(m)
        elif how == "facts-bad-date":
            m["facts"]["as_of"] = "yesterday"
            raw = json.dumps(m)
        elif how == "facts-a-string":
            m["facts"] = "facts"
            raw = json.dumps(m)
        elif how == "column-missing":
            m["columns"] = [s for s in m["columns"] if s["name"] != "s_tier"]
            raw = json.dumps(m)
        elif how == "column-too-long":
            for s in m["columns"]:
                s["n"] += 1
            raw = json.dumps(m)
        elif how == "column-bad-dtype":
            for s in m["columns"]:
                if "dtype" in s:
                    s["dtype"] = "no such type"
            raw = json.dumps(m)
        elif how == "data-bytes-changed":  # the same length, other values: only a checksum can tell
            data = bytes((b + 1) % 256 for b in data)
        else:
            raise AssertionError(how)
        conn.execute("UPDATE class_cache SET meta = ?, data = ?", (raw, data))
    finally:
        conn.close()


CORRUPTIONS = ["data-garbage", "meta-not-json", "meta-a-list", "meta-other-format", "meta-other-schema", "facts-without-width", "facts-bad-date", "facts-a-string",
               "column-missing", "column-too-long", "column-bad-dtype", "data-bytes-changed"]


@pytest.mark.parametrize("how,kind", [(how, "recompute") for how in CORRUPTIONS]
                         + [(how, "rfm") for how in ("data-garbage", "meta-a-list", "facts-bad-date")])
def test_a_damaged_cache_row_is_ignored_and_overwritten(cli, keepers, how, kind):
    shop(cli)
    cli.ok("purchase", "add", "Cat", "800", "--at", "2025-07-01", "--as-of", FAR)
    cli.ok("tier", "recompute", "--as-of", AS_OF.isoformat())
    _corrupt(cli.db, how)
    # a later day: the cache, were it trusted, would decide what is read again (check mode: a cache that
    # disagrees with the store stops the run)
    ok(cli, "check", "tier", kind, "--as-of", "2025-07-02")
    assert "stored" not in keepers[-1].reused and keepers[-1].reused.get("facts", "full") == "full"
    m = meta(cli.db)
    if kind == "recompute":  # it computed everything afresh: its cache replaces the damaged row
        assert m is not None and m["format"] == 1, m
        assert m["facts"]["as_of"] == "2025-07-02" and is_current(cli.db) == (True, True)
        settled(cli, date(2025, 7, 2))  # what it stored is what a store without the cache holds
    else:  # rfm had nothing of its own to keep: the damaged row is gone, or replaced by a sound one
        assert m is None or (m["format"] == 1 and _readable(cli)), m
        ok(cli, "check", "tier", "recompute", "--as-of", "2025-07-02")
    # the row is sound now: the next run uses it
    ok(cli, "check", "tier", "recompute", "--as-of", "2025-07-02")
    assert keepers[-1].reused == {"live": "cache", "facts": "patched 0", "stored": "cache"}
    settled(cli, date(2025, 7, 2))


def _readable(cli: Any) -> bool:
    from crmcli.core.class_cache import open_keeper
    from crmcli.store.engine import open_store

    store = open_store(str(cli.db))
    try:
        with store.read() as session:
            return bool(open_keeper(session).meta)
    finally:
        store.dispose()


# ------------------------------------------------------------------------------- differential property

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

WHO = st.integers(0, 6)  # customers C000001.. (some do not exist yet: both stores refuse alike)
# days from the current as-of: most near where the next runs' boundaries will move (the end of the history, the
# start of the 365-day window), some anywhere
DAYS = st.one_of(st.integers(-3, 8), st.integers(-368, -355), st.integers(-400, 40))
RUN = st.one_of(st.tuples(st.just("recompute"), st.one_of(st.integers(0, 3), st.integers(-30, 70))),
                st.tuples(st.just("rfm"), st.integers(-10, 40), st.sampled_from([None, "30d", "365d"])))
OPS = st.one_of(
    RUN, RUN, RUN, RUN,  # a third of the steps are runs: the cache matters from the second one on
    st.tuples(st.just("buy"), WHO, st.integers(1, 3000), DAYS),
    st.tuples(st.just("buy"), WHO, st.integers(1, 3000), DAYS),
    st.tuples(st.just("refund"), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("customer")),
    st.tuples(st.just("rm"), WHO),
    st.tuples(st.just("restore"), WHO),
    st.tuples(st.just("pin"), WHO, st.sampled_from("ABC")),
    st.tuples(st.just("unpin"), WHO),
    st.tuples(st.just("levels")),
    st.tuples(st.just("import"), WHO, st.integers(1, 3000), DAYS),
    st.tuples(st.just("undo"), st.integers(0, 3)),
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, min_size=4, max_size=12))
def test_any_sequence_of_commands_gives_what_a_store_without_the_cache_gives(
        template_store, memory_keyring, tmp_path_factory, ops):
    template, secrets = template_store
    memory_keyring.data.update(secrets)
    folder = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    cached, plain = new_twin(template, folder / "cached.sqlite"), new_twin(template, folder / "plain.sqlite")
    sales = shop(cached, plain)
    assert sales
    cur = AS_OF
    sold: list[tuple[int, date]] = [(i, AS_OF - timedelta(days=d)) for i, d in
                                    enumerate([d for buys in PLAN.values() for d, _a in buys], start=1)]
    imports = levels = 0
    both(cached, plain, "tier", "recompute", "--as-of", cur.isoformat(), json_out=True)  # the first cache
    for op in ops:
        kind = op[0]
        if kind == "buy":
            on = cur + timedelta(days=op[3])
            out = both(cached, plain, "purchase", "add", f"C{op[1] + 1:06d}", str(op[2]), "--at",
                       f"{on.isoformat()} 11:00", "--as-of", FAR)
            if out.exit_code == 0:
                sold.append((int(out.stdout.strip()), on))
        elif kind == "refund":
            if not sold:
                continue
            pid, on = sold[op[1] % len(sold)]
            both(cached, plain, "purchase", "refund", str(pid), *(["1"] if op[2] else []),
                 "--at", f"{(on + timedelta(days=op[1] % 5)).isoformat()} 23:00", "--as-of", FAR)
        elif kind == "customer":
            both(cached, plain, "customer", "add", "New")
        elif kind == "rm":
            both(cached, plain, "customer", "rm", f"C{op[1] + 1:06d}", "--yes")
        elif kind == "restore":
            both(cached, plain, "customer", "restore", f"C{op[1] + 1:06d}")
        elif kind == "pin":
            both(cached, plain, "tier", "pin", f"C{op[1] + 1:06d}", op[2], "--reason", "r", "--as-of", cur.isoformat())
        elif kind == "unpin":
            both(cached, plain, "tier", "unpin", f"C{op[1] + 1:06d}", "--as-of", cur.isoformat())
        elif kind == "recompute":
            cur += timedelta(days=op[1])
            both(cached, plain, "tier", "recompute", "--as-of", cur.isoformat(), "--changes", json_out=True)
        elif kind == "rfm":
            on = cur + timedelta(days=op[1])
            both(cached, plain, "tier", "rfm", "--as-of", on.isoformat(), *(["--window", op[2]] if op[2] else []),
                 "--customers", json_out=True)
        elif kind == "levels":
            if levels:
                both(cached, plain, "tier", "levels", "rm", "Gold", "--yes")
                both(cached, plain, "tier", "levels", "rm", "Silver", "--yes")
            else:
                both(cached, plain, "tier", "levels", "add", "Silver", "--threshold", "300")
                both(cached, plain, "tier", "levels", "add", "Gold", "--threshold", "1500")
            levels = 1 - levels
        elif kind == "import":
            imports += 1
            on = cur + timedelta(days=op[3])
            csv = write_csv(folder / f"i{imports}.csv", [(f"I{imports}", f"C{op[1] + 1:06d}", str(op[2]), on.isoformat())])
            both(cached, plain, "import", "purchases", csv, "--as-of", FAR, "--partial")
        elif kind == "undo":
            if imports:
                both(cached, plain, "import", "undo", str(max(1, imports - op[1])), "--yes")
        assert class_rows(cached.db) == class_rows(plain.db), op
    both(cached, plain, "tier", "recompute", "--as-of", cur.isoformat(), json_out=True)
    same_tables(cached, plain)
    assert meta(plain.db) is None


def test_an_empty_store_then_its_first_customers(cli, twin, keepers):
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    both(cli, twin, "tier", "rfm", "--as-of", AS_OF.isoformat(), json_out=True)
    for c in (cli, twin):
        c.ok("customer", "add", "Ann")
        c.ok("customer", "add", "Bob")
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)  # no purchase at all yet
    for c in (cli, twin):
        c.ok("purchase", "add", "Ann", "100", "--at", "2025-06-30", "--as-of", FAR)
    both(cli, twin, "tier", "recompute", "--as-of", "2025-07-01", "--changes", json_out=True)
    assert keepers[-1].reused == {"live": "cache", "facts": "patched 1", "stored": "cache"}
    both(cli, twin, "tier", "rfm", "--as-of", "2025-07-01", "--customers", json_out=True)
    same_tables(cli, twin)


# ----------------------------------------------------------------------------------- found in review

def test_a_score_written_out_of_range_by_another_program_is_rewritten_either_way(cli, twin):
    """A stored R/F/M outside 1-5 (crm never writes one) compares unequal to any computed score, with or without
    the cache: rfm and recompute rewrite that row. (rfm read raw scores, the cache mapped them to 0: the two
    ways stored different results.)"""
    shop(cli, twin)
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)
    for c in (cli, twin):
        sql(c.db, "UPDATE customer_class SET r_score = 7, f_score = 7, m_score = 7 WHERE customer_id = 2")
    both(cli, twin, "tier", "recompute", "--as-of", AS_OF.isoformat(), json_out=True)  # rewrites it
    same_tables(cli, twin)
    assert one(cli.db, "SELECT r_score FROM customer_class WHERE customer_id = 2") != 7
    for c in (cli, twin):
        sql(c.db, "UPDATE customer_class SET r_score = 9 WHERE customer_id = 2")
    both(cli, twin, "tier", "rfm", "--as-of", AS_OF.isoformat(), json_out=True)
    same_tables(cli, twin)
    assert one(cli.db, "SELECT r_score FROM customer_class WHERE customer_id = 2") != 9
    settled(cli, AS_OF)


def test_a_customer_removed_between_the_phases_without_an_audit_row_makes_the_run_compute_again(cli, tmp_path):
    """The taking back of a killed import removes customers and writes no audit row. A run whose read phase saw
    such a customer must not write its class row (the foreign key would fail the whole run): on SQLite the
    customer_gen counter makes the write phase compute again."""
    shop(cli)
    ok(cli, "check", "tier", "recompute", "--as-of", AS_OF.isoformat())
    cli.ok("customer", "add", "Late")
    late = one(cli.db, "SELECT max(id) FROM customer")
    result, computed = _two_phase(cli, AS_OF, "recompute",
                                  lambda: sql(cli.db, "DELETE FROM customer WHERE id = ?", late))
    assert computed == 2  # read phase, then again under the write lock, where "Late" is gone: nothing to write
    assert result.customers == 5 and result.run_id is None
    assert one(cli.db, "SELECT COUNT(*) FROM customer_class WHERE customer_id = ?", late) == 0
    settled(cli, AS_OF)
