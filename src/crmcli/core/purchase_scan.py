"""SQLite: the per-customer purchase aggregates of the tier engine, computed by numpy from the raw rows.

SQLite's GROUP BY runs its aggregate functions row by row in its bytecode engine: the history aggregate of
``classify._history_stmt`` (first and last sale, distinct sale days, sales and net spend per window) costs
about 10 s of CPU over 5M purchases, of which the COUNT(DISTINCT) alone is 2 s. Reading the same rows through
the covering index ``ix_purchase_class`` as three ``group_concat`` texts and aggregating them in numpy costs
about half (3.2 s of scan, under 2 s of parsing and ``reduceat``), and the window alone (rfm) less than the
benchmark's floor query itself.

The results are the SQL aggregates' rows exactly (same customers, same columns, same packing): the SQL
statements stay the definition, used on PostgreSQL, for the cache's patches of a few customers, and here
whenever the rows are not what this module expects (a date not written as YYYY-MM-DD, an amount too large
for exact 64-bit sums, ...): then ``None`` is returned and the caller runs the SQL. The test suite compares
both ways on every tier run (CRM_CLASS_CACHE=check) and in tests/test_purchase_scan.py.

The rows are read in ranges of customer ids (about ``CHUNK_ROWS`` purchases each), all in the caller's read
transaction, so memory stays bounded whatever the store's size.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlmodel import Session

from crmcli.core.classify import DAY_BITS, DAY_OFFSET, PURCHASE_INDEX
from crmcli.store.keys import db_errors

CHUNK_ROWS = 1_000_000  # purchases per range of customer ids (about 100 MB of texts and arrays)
_SAFE_SUM = 1 << 62  # |amount| x rows below this: no 64-bit sum can overflow (SQLite's SUM would raise)


def history_rows(session: Session, as_of: date, windows: list[int]) -> Any:
    """``classify._history_stmt(as_of, windows)``'s rows as an (n, 2 + 2 * len(windows)) int64 array, or
    None where this module cannot vouch for them (not SQLite, unexpected values)."""
    starts = [_epoch(as_of - timedelta(days=w - 1)) for w in windows]
    return _chunks(session, None, as_of, lambda cols: _history(cols, starts), 2 + 2 * len(windows))


def window_rows(session: Session, as_of: date, days: int) -> Any:
    """``classify._window_stmt(as_of, days)``'s rows as an (n, 3) int64 array, or None (see history_rows)."""
    start = as_of - timedelta(days=days - 1)
    return _chunks(session, start, as_of, _window, 3)


def _epoch(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def _chunks(session: Session, start: date | None, as_of: date, aggregate: Any, width: int) -> Any:
    import numpy as np

    conn = session.connection()
    if conn.dialect.name != "sqlite":
        return None
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        # one min() or max() per SELECT: SQLite answers each from an index's end (together: a full scan)
        lo, hi, top = cursor.execute("SELECT (SELECT min(customer_id) FROM purchase), (SELECT max(customer_id) "
                                     "FROM purchase), (SELECT max(id) FROM purchase)").fetchone()
        if lo is None:
            return np.zeros((0, width), dtype=np.int64)
        # max(id) bounds the number of rows: the ranges come out no larger than CHUNK_ROWS on average
        step = max(1, (hi - lo + 1) * CHUNK_ROWS // max(int(top), 1))
        where = "customer_id >= ? AND customer_id < ? AND purchased_on <= ?" + \
            (" AND purchased_on >= ?" if start is not None else "")
        sql = ("SELECT count(*), group_concat(customer_id), group_concat(purchased_on), "
               "group_concat(CASE WHEN kind = 'sale' THEN amount_minor * 2 + 1 ELSE amount_minor * 2 END) "
               f"FROM purchase INDEXED BY {PURCHASE_INDEX} WHERE {where}")
        parts = []
        for a in range(lo, hi + 1, step):
            params: tuple[Any, ...] = (a, a + step, as_of.isoformat())
            if start is not None:
                params += (start.isoformat(),)
            try:
                cols = _parse(cursor.execute(sql, params).fetchone())
            except db_errors() as e:  # a text over SQLite's string limit (1 GB, or lowered by the application)
                if "too big" not in str(e):
                    raise
                return None
            if cols is None:
                return None
            if len(cols[0]):
                parts.append(aggregate(cols))
    finally:
        cursor.close()
    return np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.int64)


def _parse(row: tuple[Any, ...]) -> tuple[Any, Any, Any, Any] | None:
    """(customer ids, epoch days, signed amounts, sale flags), sorted by customer and day; None if a value is
    not what the SQL aggregate would read the same way."""
    import numpy as np

    n = int(row[0])
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty.astype(bool)
    try:
        cust = np.fromstring(row[1], dtype=np.int64, sep=",")
        coded = np.fromstring(row[3], dtype=np.int64, sep=",")
        raw = row[2].encode("ascii")
    except (ValueError, UnicodeEncodeError):
        return None
    if len(cust) != n or len(coded) != n or len(raw) != 11 * n - 1:
        return None  # a NULL, a real number (an overflowing amount) or a date of another length
    text = np.frombuffer(raw + b",", dtype=np.uint8).reshape(n, 11)
    digits = text[:, [0, 1, 2, 3, 5, 6, 8, 9]]
    if not (((digits >= 48) & (digits <= 57)).all() and (text[:, [4, 7]] == 45).all() and (text[:, 10] == 44).all()):
        return None  # not YYYY-MM-DD on every row
    try:
        day = text[:, :10].copy().view("S10").ravel().astype("datetime64[D]").astype(np.int64)
    except ValueError:  # e.g. 2025-02-30, which SQLite's date functions read differently
        return None
    sale = (coded & 1).astype(bool)
    amount = coded >> 1
    if int(np.abs(amount).max()) >= _SAFE_SUM // n:
        return None
    if n > 1 and not ((cust[1:] > cust[:-1]) | ((cust[1:] == cust[:-1]) & (day[1:] >= day[:-1]))).all():
        order = np.lexsort((day, cust))  # the index's order is SQLite's choice, not a promise of group_concat
        cust, day, amount, sale = cust[order], day[order], amount[order], sale[order]
    return cust, day, np.where(sale, amount, -amount), sale


def _groups(cust: Any) -> tuple[Any, Any]:
    import numpy as np

    starts = np.flatnonzero(np.r_[True, cust[1:] != cust[:-1]])
    return cust[starts], starts


def _history(cols: tuple[Any, Any, Any, Any], starts: list[int]) -> Any:
    import numpy as np

    cust, day, signed, sale = cols
    ids, at = _groups(cust)
    big = np.int64(1 << 40)
    first = np.minimum.reduceat(np.where(sale, day, big), at)
    last = np.maximum.reduceat(np.where(sale, day, -big), at)
    sc, sd = cust[sale], day[sale]
    new_day = np.r_[True, (sc[1:] != sc[:-1]) | (sd[1:] != sd[:-1])] if len(sc) else np.zeros(0, dtype=bool)
    days = np.bincount(np.searchsorted(ids, sc[new_day]), minlength=len(ids)).astype(np.int64)
    packed = (np.where(first == big, 0, first + DAY_OFFSET) + (np.where(last == -big, 0, last + DAY_OFFSET) << DAY_BITS)
              + (days << (2 * DAY_BITS)))
    out = [ids, packed]
    for start in starts:
        inside = day >= start
        out.append(np.add.reduceat((inside & sale).astype(np.int64), at))
        out.append(np.add.reduceat(np.where(inside, signed, 0), at))
    return np.column_stack(out)


def _window(cols: tuple[Any, Any, Any, Any]) -> Any:
    import numpy as np

    cust, day, signed, sale = cols
    ids, at = _groups(cust)
    last = np.maximum.reduceat(np.where(sale, day + DAY_OFFSET, 0), at)
    sales = np.add.reduceat(sale.astype(np.int64), at)
    return np.column_stack([ids, last + (sales << DAY_BITS), np.add.reduceat(signed, at)])
