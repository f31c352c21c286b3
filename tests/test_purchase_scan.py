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

from conftest import snapshot_db
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

            def hist_sql(only: Any) -> Any:
                return classify.int_rows(session, classify._history_stmt(as_of, windows, only), width, indexed=True)

            def win_sql(only: Any) -> Any:
                return classify.int_rows(session, classify._window_stmt(as_of, windows[0], only), 3, indexed=True)

            return (purchase_scan.history_rows(session, as_of, windows, hist_sql), hist_sql(None),
                    purchase_scan.window_rows(session, as_of, windows[0], win_sql), win_sql(None))
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


def _scan_only(path: Path) -> tuple[Any, Any]:
    """purchase_scan's (history, window) rows, with an SQL fall-back that must not be needed."""
    from crmcli.core import purchase_scan
    from crmcli.store.engine import open_store

    def no_sql(only: Any) -> Any:
        raise AssertionError(f"the SQL was asked for {only}")

    store = open_store(str(path))
    try:
        with store.read() as session:
            return (purchase_scan.history_rows(session, AS_OF, [365], no_sql),
                    purchase_scan.window_rows(session, AS_OF, 365, no_sql))
    finally:
        store.dispose()


def _raw(path: Path, statement: str, *params: Any) -> None:
    conn = sqlite3.connect(path)  # another program's write: the purchase commands never store such values
    conn.execute(statement, params)
    conn.commit()
    conn.close()


def test_an_amount_that_could_overflow_a_sum_gives_way(tmp_path: Path) -> None:
    path = _new_store(tmp_path / "big.sqlite")
    _put(path, [(1, "sale", 2**61, "2025-06-01"), (1, "refund", 2**61, "2025-06-02")])
    assert _scan_only(path) == (None, None)
    _put(path, [(1, "sale", -(2**63), "2025-06-01")])
    assert _scan_only(path) == (None, None)


@pytest.mark.parametrize("value", ["abc", "12abc", 2.5, b"\x01\x02"])
def test_an_amount_that_is_not_an_integer_gives_way(tmp_path: Path, value: Any) -> None:
    """Arithmetic in SQL would have read 'abc' as 0 and '12abc' as 12: the raw values are parsed instead."""
    path = _new_store(tmp_path / "amount.sqlite")
    _put(path, [(1, "sale", 100, "2025-06-01"), (2, "sale", 100, "2025-06-02")])
    _raw(path, "UPDATE purchase SET amount_minor = ? WHERE customer_id = 2", value)
    assert _scan_only(path) == (None, None)


@pytest.mark.parametrize("value", ["abc", 2.5])
def test_a_customer_id_that_is_not_an_integer_gives_way(tmp_path: Path, value: Any) -> None:
    path = _new_store(tmp_path / "ids.sqlite")
    _put(path, [(1, "sale", 100, "2025-06-01"), (2, "sale", 100, "2025-06-02")])
    _raw(path, "PRAGMA foreign_keys = OFF")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE purchase SET customer_id = ? WHERE customer_id = 2", (value,))
    conn.commit()
    conn.close()
    assert _scan_only(path) == (None, None)


def test_a_real_number_at_a_range_boundary_gives_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Customer 2 must not fall between two ranges because a row of customer 2.5 (another program's write,
    outside the dates read) marks the boundary."""
    from crmcli.core import purchase_scan

    monkeypatch.setattr(purchase_scan, "CHUNK_ROWS", 2)
    path = _new_store(tmp_path / "real.sqlite")
    _put(path, [(1, "sale", 1, "2025-06-01"), (1, "sale", 1, "2025-06-02"), (3, "sale", 5, "2025-06-03"),
                (2, "sale", 900, "2025-06-04")])
    _raw(path, "UPDATE purchase SET customer_id = 2.5, purchased_on = '2026-01-01' WHERE customer_id = 3")
    assert _scan_only(path) == (None, None)


@pytest.mark.parametrize("column, value", [("amount_minor", "ff32"), ("purchased_on", "3230323520ff")])
def test_bytes_that_are_not_utf8_give_way(tmp_path: Path, column: str, value: str) -> None:
    """(The date is "2025 " and a byte 0xff: inside the window as the SQL compares texts.)"""
    path = _new_store(tmp_path / "bytes.sqlite")
    _put(path, [(1, "sale", 100, "2025-06-01"), (2, "refund", 100, "2025-06-02")])
    _raw(path, f"UPDATE purchase SET {column} = CAST(x'{value}' AS TEXT) WHERE customer_id = 2")
    assert _scan_only(path) == (None, None)


def test_more_sale_days_than_the_packed_integer_holds_gives_way(tmp_path: Path) -> None:
    """2**17 distinct sale days (359 years of daily sales) would not fit beside two dates in 63 bits."""
    path = _new_store(tmp_path / "days.sqlite")
    first = AS_OF - timedelta(days=2**17 - 1)
    _put(path, [(1, "sale", 1, (first + timedelta(days=k)).isoformat()) for k in range(2**17)])
    from crmcli.core import purchase_scan
    from crmcli.store.engine import open_store

    store = open_store(str(path))
    try:
        with store.read() as session:
            assert purchase_scan.history_rows(session, AS_OF, [365], lambda only: None) is None
    finally:
        store.dispose()


@pytest.mark.parametrize("top", [10**14, 2**63 - 1])
def test_customer_ids_near_the_integer_limit(tmp_path: Path, top: int) -> None:
    """Range bounds never pass the largest id (they once overflowed SQLite's 64-bit integers)."""
    path = _new_store(tmp_path / "top.sqlite")
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO customer (id, code, name, created_at, updated_at) VALUES (?, 'TOP', 'Top', ?, ?)",
                 (top, STAMP, STAMP))
    conn.commit()
    conn.close()
    _put(path, [(1, "sale", 100, "2025-06-01"), (top, "sale", 7, "2025-06-02"), (top, "refund", 2, "2025-06-03")])
    hist, sql_hist, win, sql_win = _both(path, AS_OF, [365])
    _equal(hist, sql_hist)
    _equal(win, sql_win)
    assert hist[:, 0].tolist() == [1, top]


def test_ranges_hold_whole_customers_and_at_most_chunk_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Skewed purchases (a walk-in account with most of them): every range read holds whole customers and at most
    CHUNK_ROWS purchases; a customer with more than that is aggregated by the SQL, which streams."""
    from crmcli.core import purchase_scan

    monkeypatch.setattr(purchase_scan, "CHUNK_ROWS", 4)
    path = _new_store(tmp_path / "skew.sqlite")
    rows = [(1, "sale", 10 + k, f"2025-0{1 + k % 6}-1{k % 10}") for k in range(30)]  # the walk-in account
    rows += [(c, "sale", 5 * c, "2025-06-0" + str(c)) for c in range(2, CUSTOMERS + 1) for _ in range(c % 3 + 1)]
    _put(path, rows)
    sizes: list[int] = []
    customers: list[set[int]] = []
    real_parse = purchase_scan._parse

    def spy(row: Any) -> Any:
        cols = real_parse(row)
        sizes.append(int(row[0]))
        customers.append(set(cols[0].tolist()))
        return cols

    asked: list[Any] = []
    monkeypatch.setattr(purchase_scan, "_parse", spy)
    hist, sql_hist, win, sql_win = _both(path, AS_OF, [365])
    _equal(hist, sql_hist)
    _equal(win, sql_win)
    assert sizes and max(sizes) <= 4
    reads = customers[:len(customers) // 2]  # the history's reads (then the window's)
    assert sum(len(c) for c in reads) == len(set().union(*reads)) == CUSTOMERS - 1  # each customer in one range
    from crmcli.core import classify
    from crmcli.store.engine import open_store

    store = open_store(str(path))
    try:
        with store.read() as session:
            def sql(only: Any) -> Any:
                asked.append(list(only))
                return classify.int_rows(session, classify._history_stmt(AS_OF, [365], only), 4, indexed=True)

            purchase_scan.history_rows(session, AS_OF, [365], sql)
    finally:
        store.dispose()
    assert asked == [[1]]  # the walk-in account alone


def _classes(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT * FROM customer_class ORDER BY customer_id").fetchall()
    finally:
        conn.close()


def test_a_recompute_over_an_odd_date_falls_back_to_sql(cli: Any, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The command does not fail, and classifies exactly as the SQL does (a twin store read by the SQL only)."""
    import shutil

    from crmcli.core import purchase_scan

    seed(cli, {"Ann": [(10, "100"), (40, "300")], "Bob": [(5, "50"), (60, "70")]})
    _raw(cli.db, "UPDATE purchase SET purchased_on = '2025-05-1' WHERE purchased_on = '2025-05-01'")  # Bob's
    twin = tmp_path / "twin.sqlite"
    shutil.copyfile(cli.db, twin)
    assert _scan_only(cli.db) == (None, None)  # the odd date is inside the window: numpy gives way
    cli.ok("tier", "recompute", "--as-of", AS_OF.isoformat())
    monkeypatch.setattr(purchase_scan, "history_rows", lambda *a: None)
    monkeypatch.setattr(purchase_scan, "window_rows", lambda *a: None)
    type(cli)(twin).ok("tier", "recompute", "--as-of", AS_OF.isoformat())
    assert _classes(cli.db) == _classes(twin) and len(_classes(twin)) == 2


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


def test_other_triggers_on_customer_class_see_every_row(cli: Any) -> None:
    """Only the counting triggers are taken out of a run's write: another program's triggers keep working."""
    seed(cli, {"Ann": [(10, "100")], "Bob": [(5, "50")]})
    _raw(cli.db, "CREATE TABLE sync_log (customer_id INTEGER)")
    _raw(cli.db, "CREATE TRIGGER sync_class AFTER INSERT ON customer_class BEGIN "
                 "INSERT INTO sync_log VALUES (new.customer_id); END")
    cli.ok("tier", "recompute", "--as-of", AS_OF.isoformat())
    conn = sqlite3.connect(cli.db)
    assert conn.execute("SELECT count(*) FROM sync_log").fetchone() == (2,)
    conn.close()
    _raw(cli.db, "CREATE TRIGGER guard_class BEFORE UPDATE ON customer_class BEGIN "
                 "SELECT RAISE(ABORT, 'frozen by the accountant'); END")
    before = snapshot_db(cli.db)
    result = cli("tier", "recompute", "--as-of", (AS_OF + timedelta(days=200)).isoformat())
    assert result.exit_code != 0 and "frozen by the accountant" in result.stderr and "Traceback" not in result.stderr
    assert snapshot_db(cli.db) == before


def test_a_failed_bulk_write_leaves_store_and_triggers_as_they_were(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
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
