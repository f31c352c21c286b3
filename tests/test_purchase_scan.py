"""core/purchase_scan.py: on SQLite the tier engine's per-customer aggregates are computed by numpy from the raw
purchase rows. They must equal the SQL aggregates (classify._history_stmt / _window_stmt, the definition, still
used on PostgreSQL and for the cache's patches) row for row, and give way to them on any value they could read
differently. The tier runs also drop the customer_class counting triggers for their own bulk write and create
them again in the same transaction: they must come back exactly as they were, also when the write fails."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from test_tier_support import AS_OF, seed

pytestmark = pytest.mark.skipif(
    __import__("pg_support").PG_URL is not None, reason="the numpy aggregation is SQLite's; PostgreSQL runs the SQL")

CUSTOMERS = 6
STAMP = "2024-01-01 00:00:00.000000"


def _new_store(path: Path) -> Path:
    from crmcli.core.stores import init_store

    init_store(str(path), currency="CNY", region="CN", timezone="Asia/Shanghai").store.dispose()
    conn = sqlite3.connect(path)
    conn.executemany("INSERT INTO customer (id, code, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                     [(i, f"C{i}", f"Customer {i}", STAMP, STAMP) for i in range(1, CUSTOMERS + 1)])
    conn.commit()
    conn.close()
    return path


def _put(path: Path, purchases: list[tuple[int, str, int, str]]) -> None:
    """Replace every purchase by ``purchases``: (customer id, kind, amount, purchased_on text)."""
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM purchase")
    conn.executemany("INSERT INTO purchase (customer_id, kind, amount_minor, purchased_at, purchased_on, quantity, "
                     "created_at) VALUES (?, ?, ?, ?, ?, 1, ?)",
                     [(c, k, a, f"{d} 12:00:00.000000", d, STAMP) for c, k, a, d in purchases])
    conn.commit()
    conn.close()


def _both(path: Path, as_of: date, windows: list[int]) -> tuple[Any, Any, Any, Any]:
    """(numpy history, SQL history, numpy window, SQL window) for the window windows[0]."""
    from crmcli.core import classify, purchase_scan
    from crmcli.store.engine import open_store

    store = open_store(str(path))
    try:
        with store.read() as session:
            width = 2 + 2 * len(windows)
            return (purchase_scan.history_rows(session, as_of, windows),
                    classify.int_rows(session, classify._history_stmt(as_of, windows), width, indexed=True),
                    purchase_scan.window_rows(session, as_of, windows[0]),
                    classify.int_rows(session, classify._window_stmt(as_of, windows[0]), 3, indexed=True))
    finally:
        store.dispose()


def _equal(mine: Any, theirs: Any) -> None:
    import numpy as np

    assert mine is not None
    assert mine.shape == theirs.shape and np.array_equal(mine, theirs), (mine.tolist(), theirs.tolist())


@pytest.fixture(scope="module")
def scan_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _new_store(tmp_path_factory.mktemp("scan") / "scan.sqlite")


def test_a_hand_made_case(scan_store: Path) -> None:
    """Two sales on one day count one purchase day; a refund counts against spend on its own date and is no
    sale; a customer with refunds only has a row (net below zero) and no sale dates; purchases after the as-of
    date are not read."""
    from crmcli.core.classify import DAY_BITS, DAY_OFFSET

    _put(scan_store, [(1, "sale", 100, "2025-06-01"), (1, "sale", 50, "2025-06-01"), (1, "refund", 30, "2025-06-20"),
                      (1, "sale", 70, "2024-01-01"), (2, "refund", 40, "2025-06-30"), (3, "sale", 5, "2025-07-01"),
                      (4, "sale", 9, "1969-12-31")])
    hist, sql_hist, win, sql_win = _both(scan_store, AS_OF, [30, 365])
    _equal(hist, sql_hist)
    _equal(win, sql_win)
    epoch = date(1970, 1, 1)

    def day(d: str) -> int:
        return (date.fromisoformat(d) - epoch).days + DAY_OFFSET

    assert hist.tolist() == [
        [1, day("2024-01-01") + (day("2025-06-01") << DAY_BITS) + (2 << 2 * DAY_BITS), 2, 120, 2, 120],
        [2, 0, 0, -40, 0, -40],
        [4, day("1969-12-31") + (day("1969-12-31") << DAY_BITS) + (1 << 2 * DAY_BITS), 0, 0, 0, 0]]
    assert win.tolist() == [[1, day("2025-06-01") + (2 << DAY_BITS), 120], [2, 0, -40]]


purchase = st.tuples(st.integers(1, CUSTOMERS), st.sampled_from(["sale", "sale", "sale", "refund", "other"]),
                     st.integers(0, 10**9), st.integers(-400, 40))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(purchase, max_size=40), as_of=st.sampled_from([AS_OF, date(1970, 2, 1), date(2024, 2, 29)]),
       windows=st.lists(st.sampled_from([1, 2, 30, 90, 365, 400]), min_size=1, max_size=3, unique=True),
       chunk=st.sampled_from([1, 2, 3, 7, 1_000_000]))
def test_numpy_and_sql_aggregates_agree(scan_store: Path, monkeypatch: pytest.MonkeyPatch, rows: list[Any],
                                        as_of: date, windows: list[int], chunk: int) -> None:
    """Random purchases around the as-of date (some after it, some before 1970, several on one day, kinds
    other than sale and refund), several windows, ranges of customers as small as one purchase."""
    from crmcli.core import purchase_scan

    monkeypatch.setattr(purchase_scan, "CHUNK_ROWS", chunk)
    _put(scan_store, [(c, k, a, (as_of - timedelta(days=d)).isoformat()) for c, k, a, d in rows])
    hist, sql_hist, win, sql_win = _both(scan_store, as_of, windows)
    _equal(hist, sql_hist)
    _equal(win, sql_win)


@pytest.mark.parametrize("value, why", [
    ("2025-01-3", "a date of another length"),  # each read by the SQL's text comparisons (inside the window)
    ("2025 06 03", "another separator"),
    ("2025-02-30", "a day the month does not have (SQLite's date functions roll it over)"),
])
def test_a_date_it_cannot_read_as_sql_would_gives_way(tmp_path: Path, value: str, why: str) -> None:
    path = _new_store(tmp_path / "odd.sqlite")
    _put(path, [(1, "sale", 100, "2025-06-01"), (2, "sale", 100, "2025-06-02")])
    conn = sqlite3.connect(path)  # another program's write: the purchase commands never store such text
    conn.execute("UPDATE purchase SET purchased_on = ? WHERE customer_id = 2", (value,))
    conn.commit()
    conn.close()
    hist, _sql_hist, win, _sql_win = _both(path, AS_OF, [365])
    assert hist is None and win is None, why


def test_an_amount_that_could_overflow_a_sum_gives_way(tmp_path: Path) -> None:
    path = _new_store(tmp_path / "big.sqlite")
    _put(path, [(1, "sale", 2**61, "2025-06-01"), (1, "sale", 2**61, "2025-06-02")])
    from crmcli.core import purchase_scan
    from crmcli.store.engine import open_store

    store = open_store(str(path))
    try:
        with store.read() as session:
            assert purchase_scan.history_rows(session, AS_OF, [365]) is None
            assert purchase_scan.window_rows(session, AS_OF, 365) is None
    finally:
        store.dispose()


def test_a_recompute_over_an_odd_date_falls_back_to_sql(cli: Any) -> None:
    """The command does not fail: the SQL aggregate reads the store as before (CRM_CLASS_CACHE=check also
    compares the cache with it)."""
    seed(cli, {"Ann": [(10, "100"), (40, "300")], "Bob": [(5, "50")]})
    conn = sqlite3.connect(cli.db)
    conn.execute("UPDATE purchase SET purchased_on = '2025-6-1' WHERE customer_id = 2")
    conn.commit()
    conn.close()
    data = cli.json("tier", "recompute", "--as-of", AS_OF.isoformat())
    assert data["customers"] == 2


def _triggers(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name").fetchall()
    finally:
        conn.close()


def _gens(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT purchase_gen, class_gen FROM class_cache_state WHERE id = 1").fetchone()
    finally:
        conn.close()


def test_a_tier_run_puts_the_counting_triggers_back_as_they_were(cli: Any) -> None:
    seed(cli, {"Ann": [(10, "100")], "Bob": [(5, "50")], "Cat": []})
    before = _triggers(cli.db)
    assert {"class_cache_class_inserted", "class_cache_class_changed", "class_cache_class_deleted"} <= \
        {name for name, _ in before}
    cli.ok("tier", "recompute", "--as-of", AS_OF.isoformat())
    assert _triggers(cli.db) == before
    assert _gens(cli.db)[1] == 1  # three rows written by one run: counted once
    cli.ok("tier", "rfm", "--as-of", AS_OF.isoformat(), "--window", "7d")  # Ann's sale leaves the window
    assert _triggers(cli.db) == before and _gens(cli.db)[1] == 2
    conn = sqlite3.connect(cli.db)  # and they still count another program's writes, one per row
    conn.execute("UPDATE customer_class SET stage = stage")
    conn.commit()
    conn.close()
    assert _gens(cli.db)[1] == 5


def test_a_failed_bulk_write_leaves_store_and_triggers_as_they_were(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import snapshot_db
    from crmcli.core import classify

    seed(cli, {"Ann": [(10, "100")], "Bob": [(5, "50")]})
    before, triggers = snapshot_db(cli.db), _triggers(cli.db)
    real = classify.Writes._apply

    def broken(self: Any, session: Any, run_id: int) -> None:
        real(self, session, run_id)  # the rows are in, the triggers still out: then the disk fills up
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(classify.Writes, "_apply", broken)
    result = cli("tier", "recompute", "--as-of", AS_OF.isoformat())
    assert result.exit_code == 1 and "is full; nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot_db(cli.db) == before
    assert _triggers(cli.db) == triggers
