"""SQLite: the per-customer purchase aggregates of the tier engine, computed by numpy from the raw rows.

SQLite's GROUP BY runs its aggregate functions row by row in its bytecode engine: the history aggregate of
``classify._history_stmt`` (first and last sale, distinct sale days, sales and net spend per window) costs
about 10 s of CPU over 5M purchases, of which the COUNT(DISTINCT) alone is 2 s. Reading the same rows through
the covering index ``ix_purchase_class`` as ``group_concat`` texts and aggregating them in numpy costs about
half (3.2 s of scan, under 2 s of parsing and ``reduceat``), and the window alone (rfm) less than the
benchmark's floor query itself.

The results are the SQL aggregates' rows exactly (same customers, same columns, same packing): the SQL
statements stay the definition, used on PostgreSQL, for the cache's patches of a few customers, and here
whenever the rows are not what this module expects (a date not written as YYYY-MM-DD, an amount that is not an
integer or so large that a 64-bit sum could overflow, a customer id that is not an integer, bytes that are not
UTF-8): then ``None`` is returned and the caller runs the SQL. One known difference, on purpose: an amount
stored as a BLOB of digits (only raw SQL binding bytes can write one) counts as that number here, where the
SQL's SUM turns into a real number and the run fails; telling blobs apart would cost a ``typeof`` on every row
(0.5 s at 5M purchases). tests/test_purchase_scan.py compares both ways on random purchases, and
with CRM_CLASS_CACHE=check (the test suite's mode) every full read is compared with the SQL's
(``classify._full_read``).

The rows are read in ranges of whole customers of at most ``CHUNK_ROWS`` purchases each (bounds found by an
OFFSET walk over the index, 0.2 s at 5M purchases), all in the caller's read transaction, so memory stays
bounded whatever the store's size or skew; a single customer with more purchases than that (a shop's
"walk-in" account) is aggregated by the SQL (``sql_rows``), which streams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

from sqlmodel import Session

from crmcli.core.classify import DAY_BITS, DAY_OFFSET, PURCHASE_INDEX
from crmcli.store.keys import db_errors

CHUNK_ROWS = 1_000_000  # purchases per range of customers (about 100 MB of texts and arrays at most)
_SAFE_SUM = 1 << 62  # |amount| x rows below this: no 64-bit sum can overflow (SQLite's SUM would raise)


def history_rows(session: Session, as_of: date, windows: list[int], sql_rows: Callable[[list[int]], Any]) -> Any:
    """``classify._history_stmt(as_of, windows)``'s rows as an (n, 2 + 2 * len(windows)) int64 array, or
    None where this module cannot vouch for them (not SQLite, unexpected values). ``sql_rows(ids)``: the SQL
    aggregate's rows of those customers."""
    starts = [_epoch(as_of - timedelta(days=w - 1)) for w in windows]
    return _chunks(session, None, as_of, lambda cols: _history(cols, starts), 2 + 2 * len(windows), sql_rows)


def window_rows(session: Session, as_of: date, days: int, sql_rows: Callable[[list[int]], Any]) -> Any:
    """``classify._window_stmt(as_of, days)``'s rows as an (n, 3) int64 array, or None (see history_rows)."""
    start = as_of - timedelta(days=days - 1)
    return _chunks(session, start, as_of, _window, 3, sql_rows)


def _epoch(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def _ranges(cursor: Any) -> Iterator[tuple[Any, Any, bool]]:
    """(first, end or None, alone): ranges ``first <= customer_id < end`` of whole customers of at most
    CHUNK_ROWS purchases in all, ascending; ``alone``: one customer with more purchases than that. The ids
    are as stored: the caller gives way on any that is not an integer."""
    walk = (f"SELECT customer_id FROM purchase INDEXED BY {PURCHASE_INDEX} WHERE customer_id >= ? "
            "ORDER BY customer_id LIMIT 1 OFFSET ?")
    (a,) = cursor.execute("SELECT min(customer_id) FROM purchase").fetchone()
    while a is not None:
        (b,) = cursor.execute(walk, (a, CHUNK_ROWS)).fetchone() or (None,)
        if b is None:
            yield a, None, False
            return
        if b == a:
            yield a, None, True
            (a,) = cursor.execute("SELECT min(customer_id) FROM purchase WHERE customer_id > ?", (a,)).fetchone()
        else:
            yield a, b, False
            a = b


def _chunks(session: Session, start: date | None, as_of: date, aggregate: Any, width: int,
            sql_rows: Callable[[list[int]], Any]) -> Any:
    import numpy as np

    conn = session.connection()
    if conn.dialect.name != "sqlite":
        return None
    cursor = conn.connection.dbapi_connection.cursor()
    dates = " AND purchased_on <= ?" + (" AND purchased_on >= ?" if start is not None else "")
    tail: tuple[Any, ...] = (as_of.isoformat(),) + ((start.isoformat(),) if start is not None else ())
    sql = ("SELECT count(*), group_concat(customer_id), group_concat(purchased_on), group_concat(amount_minor), "
           f"group_concat(kind = 'sale', '') FROM purchase INDEXED BY {PURCHASE_INDEX} WHERE customer_id >= ?")
    parts = []
    try:
        # Texts and blobs sort after every number in the index: the largest id tells (a real number among the
        # integers fails the parse below). The SQL says what it makes of such ids.
        (top,) = cursor.execute("SELECT max(customer_id) FROM purchase").fetchone()
        if top is not None and not isinstance(top, int):
            return None
        for a, b, alone in _ranges(cursor):
            if not isinstance(a, int) or not isinstance(b, (int, type(None))):
                return None  # a real number among the ids (2.5 would fall between two ranges)
            if alone:  # streamed by SQLite, whatever that customer's number of purchases
                parts.append(np.asarray(sql_rows([a]), dtype=np.int64).reshape(-1, width))
                continue
            bound = " AND customer_id < ?" if b is not None else ""
            try:
                row = cursor.execute(sql + bound + dates, (a, *((b,) if b is not None else ()), *tail)).fetchone()
            except db_errors() as e:
                # a text over SQLite's string limit (1 GB, or lowered by the application), or bytes that are not
                # UTF-8 (another program's write): the SQL, which does arithmetic on them, decides
                if "too big" not in str(e) and "decode" not in str(e).lower():
                    raise
                return None
            cols = _parse(row)
            if cols is None:
                return None
            if len(cols[0]):
                try:
                    parts.append(aggregate(cols))
                except _GiveWay:
                    return None
    finally:
        cursor.close()
    return np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.int64)


class _GiveWay(Exception):
    """A value the packed rows cannot hold as the SQL would."""


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
        amount = np.fromstring(row[3], dtype=np.int64, sep=",")
        raw = row[2].encode("ascii")
        flags = row[4].encode("ascii")
    except (ValueError, UnicodeEncodeError, AttributeError):
        return None
    if len(cust) != n or len(amount) != n or len(raw) != 11 * n - 1 or len(flags) != n:
        return None  # a NULL, a real number, a text or blob amount, or a date of another length
    text = np.frombuffer(raw + b",", dtype=np.uint8).reshape(n, 11)
    digits = text[:, [0, 1, 2, 3, 5, 6, 8, 9]]
    if not (((digits >= 48) & (digits <= 57)).all() and (text[:, [4, 7]] == 45).all() and (text[:, 10] == 44).all()):
        return None  # not YYYY-MM-DD on every row
    try:
        day = text[:, :10].copy().view("S10").ravel().astype("datetime64[D]").astype(np.int64)
    except ValueError:  # e.g. 2025-02-30, which SQLite's date functions read differently
        return None
    sale = np.frombuffer(flags, dtype=np.uint8) == 49  # "1"
    if not -_SAFE_SUM // n < int(amount.min()) <= int(amount.max()) < _SAFE_SUM // n:
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
    if len(days) and int(days.max()) >= 1 << (63 - 2 * DAY_BITS):
        raise _GiveWay  # would not fit the packed integer (the SQL's overflows into a real number)
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
