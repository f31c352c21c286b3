"""`crm export purchases` and `crm export interactions` stream: the memory the export allocates (tracemalloc's
peak while the command runs) does not grow when the store holds eight times the rows; an export that loads
the selected rows first grows by several MB here."""

from __future__ import annotations

import gc
import sqlite3
import tracemalloc
from pathlib import Path

import pytest

GROWTH_LIMIT = 1024 * 1024  # bytes the 8x rows may add to the peak
STAMP = "2025-01-01 04:00:00.000000"


def add_rows(db: Path, start: int, n: int) -> None:
    """n more sales (each with a ref, product and note) and n interactions, for 100 customers."""
    conn = sqlite3.connect(db)
    with conn:
        if start == 1:  # the customers once (plain SQL that PostgreSQL, under CRM_TEST_PG, runs too)
            conn.executemany("INSERT INTO customer (id, code, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                             ((i, f"C{i:06d}", f"Customer {i}", STAMP, STAMP) for i in range(1, 101)))
        conn.executemany(
            "INSERT INTO purchase (id, customer_id, kind, amount_minor, purchased_at, purchased_on, product, quantity, "
            "ref, note, created_at) VALUES (?, ?, 'sale', ?, ?, '2025-01-01', '拿铁 large', 1, ?, ?, ?)",
            ((i, i % 100 + 1, 1000 + i, STAMP, f"ORD{i:08d}", "a note of some length " * 3, STAMP)
             for i in range(start, start + n)))
        conn.executemany(
            "INSERT INTO interaction (id, customer_id, channel, summary, occurred_at, actor, created_at) "
            "VALUES (?, ?, 'phone', ?, ?, 'tester', ?)",
            ((i, i % 100 + 1, f"called about order {i}, asked for the new beans " * 2, STAMP, STAMP)
             for i in range(start, start + n)))
    conn.close()


def export_peak(cli, kind: str, out: Path) -> int:  # type: ignore[no-untyped-def]
    gc.collect()
    tracemalloc.start()
    try:
        cli.ok("export", kind, str(out))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["purchases", "interactions"])
def test_export_streams_in_flat_memory(cli, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    add_rows(cli.db, 1, 2_000)
    cli.ok("export", kind, str(tmp_path / "warm.csv"))  # imports and caches filled before measuring
    small = export_peak(cli, kind, tmp_path / "small.csv")
    add_rows(cli.db, 2_001, 14_000)
    large = export_peak(cli, kind, tmp_path / "large.csv")
    with (tmp_path / "large.csv").open(encoding="utf-8", newline="") as f:
        assert f.read().count("\r\n") == 16_000 + 1
    print(f"export {kind}: peak allocation {small // 1024} KiB for 2,000 rows, {large // 1024} KiB for 16,000")
    assert large - small < GROWTH_LIMIT, (small, large)
