"""The bulk engine behind `crm tier recompute` and `crm tier rfm`.

1. One SQL aggregate, GROUP BY customer over the purchases (on the business date ``purchased_on``; refunds
   count against spend on their own date), streamed over the covering index ``ix_purchase_class`` (on SQLite
   forced with INDEXED BY: the planner prefers the date index, which costs a temporary B-tree over every
   matching row and a table lookup per row, several times slower). In one pass it yields:
   - the sales history: purchase days, first and last sale (lifecycle, tenure, recency);
   - per window: number of sales and net spend (tiers, RFM, levels).
   It returns integers only (dates as days since 1970-01-01), fetched straight into numpy arrays.
2. The rules run vectorized over those arrays (crmcli.core.tiers / rfm / lifecycle / levels).
3. The result is compared with the stored classification (read back as integer codes); only rows that
   differ are written (``Writes``), each tier or level change gets a history row, and one ``class_run`` row
   plus one audit row describe the run. A run that changes nothing writes nothing: a second run with the same
   as-of date leaves the store unchanged.
4. The CLI runs steps 1-3 in two phases (``run_two_phase``): everything is read and computed in a read
   transaction (other processes keep writing meanwhile); on SQLite the rows to write are then staged in TEMP
   tables of the same connection (no lock on the store), and the write transaction only moves them in with
   INSERT ... SELECT. If something that the result depends on (pins, levels, rules, customers, another run)
   was changed in between, as seen in the audit trail, the run is computed again; the last try computes under
   the write lock. All-or-nothing either way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import (BigInteger, Integer, and_, case, cast, distinct, func, insert, literal, literal_column, select,
                        update)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session

from crmcli.core import tiers as tiers_mod
from crmcli.core.levels import NO_DATE, epoch_day, from_epoch_day
from crmcli.core.lifecycle import STAGE_KEYS
from crmcli.core.rfm import SEGMENT_KEYS, TOP_SEGMENTS
from crmcli.core.tiers import CC, CODE_TIERS, HIST, PIN, TIER_CODES, Rules
from crmcli.errors import Conflict
from crmcli.i18n import _
from crmcli.store.models import Customer, Purchase

P = Purchase.__table__
C = Customer.__table__
NONE_INT = -(2**62)  # "no value" in integer arrays
BATCH = 50_000


class epoch_days(FunctionElement):  # type: ignore[type-arg]
    """Days since 1970-01-01 of a DATE expression, as an integer (SQLite and PostgreSQL twins)."""

    type = Integer()
    inherit_cache = True
    name = "epoch_days"


@compiles(epoch_days, "sqlite")
def _epoch_days_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return f"CAST(julianday({compiler.process(element.clauses, **kw)}) - 2440587.5 AS INTEGER)"


@compiles(epoch_days)
def _epoch_days_default(element: Any, compiler: Any, **kw: Any) -> str:  # PostgreSQL: date - date = integer days
    return f"(({compiler.process(element.clauses, **kw)}) - DATE '1970-01-01')"


PURCHASE_INDEX = "ix_purchase_class"


def int_rows(session: Session, stmt: Any, width: int, *, indexed: bool = False) -> Any:
    """Execute ``stmt`` (integer columns, no NULLs) and return an (n, width) int64 numpy array.

    On SQLite each column comes back as one text, ``group_concat`` of its values, parsed by numpy in C: a
    million-row result fetched as tuples costs a Python object per value, several times the SQL's own work
    (about 0.7 s per million single-integer rows here, against 0.2 s this way). A count of the rows checks
    that no value was NULL (``group_concat`` skips NULLs). Other databases: the driver's tuples.

    ``indexed``: on SQLite, read ``purchase`` through its covering index (INDEXED BY). SQLAlchemy's SQLite
    compiler drops table hints, so the statement is rendered with literal values (dates, numbers and fixed
    words only, never user text) and the hint is put into the FROM clause."""
    import numpy as np
    from itertools import chain

    conn = session.connection()
    if conn.dialect.name == "sqlite":
        try:
            return _concat_rows(conn, stmt, width, indexed)
        except DBAPIError as e:  # a column's text over SQLite's string limit (1 GB): tens of millions of rows
            if "too big" not in str(e.orig):
                raise
    result = conn.exec_driver_sql(_indexed_sql(conn, stmt)) if indexed and conn.dialect.name == "sqlite" \
        else session.execute(stmt)
    raw = result.cursor.fetchall()  # the driver's tuples: no per-row SQLAlchemy processing
    result.close()
    if not raw:
        return np.zeros((0, width), dtype=np.int64)
    return np.fromiter(chain.from_iterable(raw), dtype=np.int64, count=len(raw) * width).reshape(-1, width)


def _indexed_sql(conn: Any, stmt: Any) -> str:
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    sql, found = re.subn(r"\bFROM purchase\b", f"FROM purchase INDEXED BY {PURCHASE_INDEX}", sql, count=1)
    assert found == 1, sql
    return sql


def _concat_rows(conn: Any, stmt: Any, width: int, indexed: bool) -> Any:
    """SQLite: the row count and one ``group_concat`` text per column, parsed into an (n, width) array."""
    import numpy as np

    columns = list(stmt.subquery("q").c)
    assert len(columns) == width, (len(columns), width)
    wrapper = select(func.count(), *[func.group_concat(c) for c in columns])
    row = (conn.exec_driver_sql(_indexed_sql(conn, wrapper)) if indexed else conn.execute(wrapper)).fetchone()
    n = int(row[0])
    out = np.empty((n, width), dtype=np.int64)
    if n == 0:
        return out
    for k, text in enumerate(row[1:]):
        values = np.fromstring(text or "", dtype=np.int64, sep=",")
        if len(values) != n:
            raise AssertionError(f"column {k} of {stmt} has NULLs or non-integers")
        out[:, k] = values
    return out


def _align(ids: Any, rows: Any, defaults: list[int]) -> list[Any]:
    """Columns 1.. of ``rows`` (column 0 = customer id) aligned with ``ids``; ``defaults`` where missing."""
    import numpy as np

    n = len(ids)
    out = [np.full(n, d, dtype=np.int64) for d in defaults]
    if len(rows) == 0 or n == 0:
        return out
    keys = rows[:, 0]
    if len(keys) > 1 and not (keys[1:] > keys[:-1]).all():
        order = np.argsort(keys, kind="stable")
        rows, keys = rows[order], keys[order]
    pos = np.searchsorted(keys, ids)
    pos_c = np.minimum(pos, len(keys) - 1)
    found = keys[pos_c] == ids
    src = pos_c[found]
    for k in range(len(defaults)):
        out[k][found] = rows[src, k + 1]
    return out


@dataclass
class Facts:
    """Per live customer (ids ascending), as numpy arrays."""

    ids: Any
    windows: dict[int, tuple[Any, Any]]  # window days -> (sales count, net spend)
    first: Any  # epoch day of the first sale (NO_DATE if none)
    last: Any  # epoch day of the last sale
    days: Any  # number of purchase days


def live_ids(session: Session, above: int | None = None) -> Any:
    """The ids of the customers neither deleted nor erased, ascending (only those above ``above``)."""
    stmt = select(C.c.id).where(C.c.deleted_at.is_(None), C.c.erased_at.is_(None)).order_by(C.c.id)
    if above is not None:
        stmt = stmt.where(C.c.id > above)
    return int_rows(session, stmt, 1)[:, 0]


DAY_BITS = 23  # an epoch day + DAY_OFFSET (0 = no date) in a packed integer: years -3700 to 9700
DAY_OFFSET = 1 << 22


def _window_stmt(as_of: date, days: int, only: Any = None) -> Any:
    """rfm: per customer with a purchase in the window: last sale (epoch day + DAY_OFFSET, 0 if none) and
    number of sales packed into one integer, net spend. ``only``: these customers only."""
    sale = P.c.kind == "sale"
    start = as_of - timedelta(days=days - 1)
    stmt = (select(P.c.customer_id,
                   _packed([(func.coalesce(epoch_days(func.max(case((sale, P.c.purchased_on), else_=None)))
                                           + DAY_OFFSET, 0), DAY_BITS),
                            (func.sum(case((sale, 1), else_=0)), 0)]),
                   func.sum(case((sale, P.c.amount_minor), else_=-P.c.amount_minor)))
            .where(P.c.purchased_on >= start, P.c.purchased_on <= as_of))
    return _only(stmt, only).group_by(P.c.customer_id)


def _only(stmt: Any, only: Any) -> Any:
    """``stmt`` for these customers only, when given (ids as a JSON array: one literal, probed in the index)."""
    if only is None:
        return stmt
    return stmt.where(P.c.customer_id.in_(select(literal_column("value")).select_from(
        func.json_each(literal(json.dumps([int(i) for i in only]))))))


def _history_stmt(as_of: date, windows: list[int], only: Any = None) -> Any:
    """recompute: per customer with a purchase up to as_of, in one pass: purchase days, first and last sale
    (epoch days), then sales and net spend for each window. Date conversions run once per customer."""
    sale = P.c.kind == "sale"
    sale_day = case((sale, P.c.purchased_on), else_=None)
    signed = case((sale, P.c.amount_minor), else_=-P.c.amount_minor)
    cols: list[Any] = [P.c.customer_id, _packed([
        (func.coalesce(epoch_days(func.min(sale_day)) + DAY_OFFSET, 0), DAY_BITS),
        (func.coalesce(epoch_days(func.max(sale_day)) + DAY_OFFSET, 0), DAY_BITS),
        (func.count(distinct(sale_day)), 0)])]
    for days in windows:
        inside = P.c.purchased_on >= as_of - timedelta(days=days - 1)
        cols += [func.sum(case((and_(inside, sale), 1), else_=0)), func.sum(case((inside, signed), else_=0))]
    return _only(select(*cols).where(P.c.purchased_on <= as_of), only).group_by(P.c.customer_id)


def gather(session: Session, as_of: date, windows: list[int], *, history: bool, keeper: Any = None) -> Facts:
    """The SQL aggregate. ``history``: the sales history too (recompute); without it only the purchases of
    the one window are read, and ``last`` is the last sale in that window (rfm). ``keeper``: the cache kept
    between runs (core/class_cache.py), used when it is up to date or cheap to bring up to date."""
    import numpy as np

    ids = keeper.live_ids(lambda above: live_ids(session, above)) if keeper is not None else live_ids(session)
    result: dict[int, tuple[Any, Any]] = {}
    first = last = days = None
    wanted = sorted(set(windows))

    def history_rows(chosen: list[int]) -> Any:
        def compute(only: Any) -> Any:
            def sql(ids: Any) -> Any:
                return int_rows(session, _history_stmt(as_of, chosen, ids), 2 + 2 * len(chosen), indexed=True)

            if only is None:  # the whole history: on SQLite numpy aggregates the rows (core/purchase_scan.py)
                from crmcli.core import purchase_scan

                return _full_read(lambda: purchase_scan.history_rows(session, as_of, chosen, sql), sql)
            return sql(only)
        return compute

    if history:
        rows = keeper.history_rows(session, as_of, wanted, history_rows(wanted)) if keeper is not None \
            else history_rows(wanted)(None)
        cols = _align(ids, rows, [0] + [0, 0] * len(wanted))
        first, last, days = _unpack(cols[0], [DAY_BITS, DAY_BITS, 0])
        first = np.where(first > 0, first - DAY_OFFSET, NO_DATE)
        last = np.where(last > 0, last - DAY_OFFSET, NO_DATE)
        for k, w in enumerate(wanted):
            result[w] = (cols[1 + 2 * k], cols[2 + 2 * k])
    else:
        (w,) = set(windows)
        kept = keeper.cached_windows() if keeper is not None else None
        rows = None
        if kept and w in kept:  # the facts of the last recompute hold this window: brought to as_of, if cheap
            rows = keeper.history_rows(session, as_of, kept, history_rows(kept), full=False)
        if rows is not None:
            k = kept.index(w)
            cols = _align(ids, rows, [0] + [0, 0] * len(kept))
            packed, orders, net = cols[0], cols[1 + 2 * k], cols[2 + 2 * k]
            (sale_last,) = _unpack(packed >> DAY_BITS, [DAY_BITS])
            start = epoch_day(as_of) - (w - 1)
            last = np.where((sale_last > 0) & (sale_last - DAY_OFFSET >= start), sale_last - DAY_OFFSET, NO_DATE)
            if keeper.mode == "check":
                _check_window(session, ids, as_of, w, last, orders, net)
        else:
            last, orders, net = _window_facts(session, ids, as_of, w)
        result[w] = (orders, net)
    return Facts(ids=ids if len(ids) else np.zeros(0, dtype=np.int64), windows=result, first=first, last=last,
                 days=days)


def _window_facts(session: Session, ids: Any, as_of: date, w: int) -> tuple[Any, Any, Any]:
    """rfm without the cache: (last sale in the window, sales, net spend) per customer of ``ids``."""
    import numpy as np

    from crmcli.core import purchase_scan

    def sql(only: Any) -> Any:
        return int_rows(session, _window_stmt(as_of, w, only), 3, indexed=True)

    packed, net = _align(ids, _full_read(lambda: purchase_scan.window_rows(session, as_of, w, sql), sql), [0, 0])
    last, orders = _unpack(packed, [DAY_BITS, 0])
    return np.where(last > 0, last - DAY_OFFSET, NO_DATE), orders, net


def _full_read(scan: Any, sql: Any) -> Any:
    """The rows of everyone: ``scan()`` (numpy on SQLite, None where it cannot vouch for them), else
    ``sql(None)``, the SQL aggregate that defines them. With CRM_CLASS_CACHE=check (the test suite's mode)
    both run and must agree, so that every tier test also compares the two ways."""
    import numpy as np

    from crmcli.core.class_cache import mode

    rows = scan()
    if rows is None:
        return sql(None)
    if mode() == "check":
        theirs = sql(None)
        if rows.shape != theirs.shape or not np.array_equal(rows, theirs):
            raise AssertionError(f"purchase_scan: numpy and SQL aggregates differ ({rows.shape} vs {theirs.shape}; "
                                 f"first rows {rows[:3].tolist()} vs {theirs[:3].tolist()})")
    return rows


def _check_window(session: Session, ids: Any, as_of: date, w: int, last: Any, orders: Any, net: Any) -> None:
    """CRM_CLASS_CACHE=check: the window facts taken from the cache must equal the SQL aggregate's."""
    import numpy as np

    for name, mine, theirs in zip(("last", "orders", "net"), (last, orders, net),
                                  _window_facts(session, ids, as_of, w)):
        if not np.array_equal(mine, theirs):
            bad = np.nonzero(mine != theirs)[0][:3]
            raise AssertionError(f"class_cache: rfm {name} as of {as_of} differs for customers "
                                 f"{ids[bad].tolist()}: cache {mine[bad].tolist()} store {theirs[bad].tolist()}")


# ------------------------------------------------------------------------------------ stored state

@dataclass
class Stored:
    found: Any  # bool: a customer_class row exists
    tier: Any
    computed: Any
    net: Any
    orders: Any
    r: Any
    f: Any
    m: Any
    seg: Any
    stage: Any
    level: Any  # rank: 0 none, -1 a level that no longer exists
    since: Any
    basis: Any


def _code(column: Any, keys: Any, *, start: int = 0, none: int = -1, unknown: int = -1) -> Any:
    return case((column.is_(None), none), *[(column == k, i + start) for i, k in enumerate(keys)], else_=unknown)


def _packed(parts: list[tuple[Any, int]]) -> Any:
    """Small non-negative integers packed into one SQL integer (``(expression, bits)``, lowest bits first):
    fetching a Python object per value is what costs most when reading a million rows, not the SQL."""
    total: Any = None
    shift = 0
    for expr, bits in parts:
        # 64-bit arithmetic: PostgreSQL computes int4 * int4 in 32 bits and stops with "integer out of range".
        term = cast(expr, BigInteger) * (1 << shift) if shift else cast(expr, BigInteger)
        total = term if total is None else total + term
        shift += bits
    return total


def _unpack(values: Any, bits: list[int]) -> list[Any]:
    out, shift = [], 0
    for b in bits:
        out.append((values >> shift) & ((1 << b) - 1) if b else values >> shift)
        shift += b
    return out


STORED_BITS = [2, 2, 3, 3, 3, 4, 3, 1, DAY_BITS, 0]
# tier, computed tier, R, F, M, segment + 1, stage + 1, basis is NULL, level_since (epoch day + DAY_OFFSET, 0 =
# none), level + 1: one integer per row instead of eight values


def _score(column: Any) -> Any:
    """A stored R, F or M score as a code: 1-5 as they are, 0 for none, 7 for anything else (written by another
    program): never equal to a computed score, so that row gets rewritten."""
    return case((column.between(1, 5), column), (column.is_(None), 0), else_=7)


def load_stored(session: Session, ids: Any, level_names: list[str]) -> Stored:
    """The stored classification of ``ids`` as integer codes (read in SQL: the small codes and the level date
    packed into one integer per row, beside net spend, orders and the basis value)."""
    import numpy as np

    tier_code = case((CC.c.tier == "A", 3), (CC.c.tier == "B", 2), (CC.c.tier == "C", 1), else_=0)
    computed_code = case((CC.c.computed_tier == "A", 3), (CC.c.computed_tier == "B", 2),
                         (CC.c.computed_tier == "C", 1), else_=0)

    codes = _packed([(tier_code, 2), (computed_code, 2), (_score(CC.c.r_score), 3), (_score(CC.c.f_score), 3),
                     (_score(CC.c.m_score), 3), (_code(CC.c.segment, SEGMENT_KEYS, start=1, none=0, unknown=0), 4),
                     (_code(CC.c.stage, STAGE_KEYS, start=1, none=0, unknown=0), 3),
                     (case((CC.c.basis_minor.is_(None), 1), else_=0), 1),
                     (func.coalesce(epoch_days(CC.c.level_since) + DAY_OFFSET, 0), DAY_BITS),
                     (_code(CC.c.level, level_names, start=2, none=1, unknown=0), 0)])
    stmt = select(CC.c.customer_id, codes, CC.c.net_minor, CC.c.orders, func.coalesce(CC.c.basis_minor, 0))
    packed, net, orders, basis = _align(ids, int_rows(session, stmt, 5), [-1, 0, 0, 0])
    found = packed >= 0
    tier, computed, r, f, m, seg, stage, no_basis, since, level = _unpack(np.maximum(packed, 0), STORED_BITS)
    # missing rows: tier/computed/scores 0, segment and stage -1, level 0 (none), no date, no basis
    return Stored(found, tier, computed, net, orders, r, f, m, seg - 1, stage - 1,
                  np.where(found, level - 1, 0), np.where(since > 0, since - DAY_OFFSET, NO_DATE),
                  np.where(found & (no_basis == 0), basis, NONE_INT))


STORED_FIELDS = ("found", "tier", "computed", "net", "orders", "r", "f", "m", "seg", "stage", "level", "since",
                 "basis")
# load_stored's values for a customer without a customer_class row
STORED_DEFAULTS = {"found": 0, "tier": 0, "computed": 0, "net": 0, "orders": 0, "r": 0, "f": 0, "m": 0, "seg": -1,
                   "stage": -1, "level": 0, "since": NO_DATE, "basis": NONE_INT}


def stored_for(session: Session, ids: Any, level_names: list[str], keeper: Any) -> Stored:
    """The stored classification: from the cache kept between runs when it is up to date, else read."""
    return cached_stored(session, ids, level_names, keeper) or load_stored(session, ids, level_names)


def cached_stored(session: Session, ids: Any, level_names: list[str], keeper: Any) -> Stored | None:
    """The stored classification from the cache kept between runs, or None when it does not hold it (in
    CRM_CLASS_CACHE=check mode compared with the store's rows)."""
    import numpy as np

    cached = keeper.stored(ids, level_names, STORED_DEFAULTS) if keeper is not None else None
    if cached is None:
        return None
    stored = Stored(**{k: cached[k] for k in STORED_FIELDS})
    stored.found = stored.found.astype(bool)
    if keeper.mode == "check":
        read = load_stored(session, ids, level_names)
        for k in STORED_FIELDS:
            if not np.array_equal(getattr(read, k), getattr(stored, k)):
                bad = np.nonzero(getattr(read, k) != getattr(stored, k))[0][:3]
                raise AssertionError(f"class_cache: stored {k} differs for customers {ids[bad].tolist()}: "
                                     f"cache {getattr(stored, k)[bad].tolist()} store {getattr(read, k)[bad].tolist()}")
    return stored


def _remember(keeper: Any, ids: Any, level_names: list[str], stored: Stored) -> None:
    if keeper is not None:
        keeper.remember_stored(ids, level_names, {k: getattr(stored, k) for k in STORED_FIELDS})


RFM_BITS = 20  # R*100 + F*10 + M of a stored row (555 at most; wider for out-of-range values)


def stored_level_names(session: Session, customer_ids: list[int]) -> dict[int, str]:
    """Names of levels held by these customers (for history rows of levels that were removed)."""
    out: dict[int, str] = {}
    for start in range(0, len(customer_ids), 500):
        chunk = customer_ids[start:start + 500]
        out.update({r[0]: r[1] for r in session.execute(select(CC.c.customer_id, CC.c.level)
                                                        .where(CC.c.customer_id.in_(chunk)))})
    return out


def load_pins(session: Session, ids: Any) -> Any:
    import numpy as np

    rows = session.execute(select(PIN.c.customer_id, PIN.c.tier)).all()
    coded = np.array([(r[0], TIER_CODES.get(r[1], 0)) for r in rows], dtype=np.int64).reshape(-1, 2)
    return _align(ids, coded, [0])[0]


# --------------------------------------------------------------------------------------------- RFM

def score_rfm(last: Any, orders: Any, net: Any) -> tuple[Any, Any, Any, Any]:
    """R, F, M scores (0 for customers without a sale in the window) and segment codes (-1 for them)."""
    import numpy as np

    from crmcli.core.rfm import quintile_scores, segment_codes

    n = len(orders)
    scored = np.asarray(orders) > 0
    r = np.zeros(n, dtype=np.int64)
    f = np.zeros(n, dtype=np.int64)
    m = np.zeros(n, dtype=np.int64)
    seg = np.full(n, -1, dtype=np.int64)
    if scored.any():
        r[scored] = quintile_scores(np.asarray(last)[scored])
        f[scored] = quintile_scores(np.asarray(orders)[scored])
        m[scored] = quintile_scores(np.asarray(net)[scored])
        seg[scored] = segment_codes(r[scored], f[scored], m[scored])
    return r, f, m, seg


def segment_rows(seg: Any, recency: Any, orders: Any, net: Any) -> list[dict[str, Any]]:
    import numpy as np

    total_n = len(seg)
    scored = seg >= 0
    revenue_all = int(np.maximum(net[scored], 0).sum()) if total_n else 0
    k = len(SEGMENT_KEYS)
    counts = np.bincount(seg[scored], minlength=k)
    revenue = np.zeros(k, dtype=np.int64)  # exact integer sums (bincount weights would be floats)
    np.add.at(revenue, seg[scored], net[scored])
    rec = np.zeros(k, dtype=np.int64)
    np.add.at(rec, seg[scored], recency[scored])
    freq = np.zeros(k, dtype=np.int64)
    np.add.at(freq, seg[scored], orders[scored])
    out = []
    for code, key in enumerate(SEGMENT_KEYS):
        count = int(counts[code])
        rev = int(revenue[code])
        out.append({"segment": key, "customers": count, "customer_share": tiers_mod._pct(count, total_n),
                    "revenue_minor": rev, "revenue_share": tiers_mod._pct(max(rev, 0), revenue_all),
                    "average_minor": round(rev / count) if count else 0,
                    "recency_days": round(float(rec[code]) / count, 1) if count else None,
                    "frequency": round(float(freq[code]) / count, 2) if count else None})
    unscored = int(total_n - scored.sum())
    if unscored:
        out.append({"segment": None, "customers": unscored, "customer_share": tiers_mod._pct(unscored, total_n),
                    "revenue_minor": int(net[~scored].sum()), "revenue_share": None, "average_minor": None,
                    "recency_days": None, "frequency": None})
    return out


# ------------------------------------------------------------------------------------------ writing

def _dates(session: Session, days: Any) -> Any:
    """Epoch days (NO_DATE = none) as the driver wants dates: ISO text for SQLite (what SQLAlchemy stores),
    date objects elsewhere; a numpy object array."""
    import numpy as np

    out = np.full(len(days), None, dtype=object)
    has = days != NO_DATE
    if has.any():
        values = (np.datetime64("1970-01-01", "D") + days[has].astype("timedelta64[D]"))
        out[has] = values.astype(str) if session.get_bind().dialect.name == "sqlite" else values.tolist()
    return out


def _labels(codes: Any, table: Any) -> Any:
    """Codes -> stored values (numpy object array); code -1 takes the table's last entry (None)."""
    import numpy as np

    return np.array(list(table), dtype=object)[codes]


def _nullable(values: Any, none: int) -> Any:
    """Integers, with ``none`` as NULL (numpy object array)."""
    out = values.astype(object)
    out[values == none] = None
    return out


def executemany(session: Session, stmt: Any, keys: list[str], columns: list[Any]) -> None:
    """Bulk write with the driver's executemany inside the session's transaction. ``columns``: one sequence
    per key (values already in driver form); rows are zipped in C, in batches. The statement is compiled for
    the store's dialect."""
    if not columns or not len(columns[0]):
        return
    conn = session.connection()
    compiled = stmt.compile(dialect=conn.dialect, column_keys=keys)
    names = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
    index = {k: i for i, k in enumerate(keys)}
    columns = [columns[index[n.removeprefix("_")]] for n in names]  # the statement's parameter order
    _driver_executemany(session, str(compiled), columns, named=None if compiled.positional else names)


def _driver_executemany(target: Any, sql: str, columns: list[Any], *, named: list[str] | None = None) -> None:
    from itertools import islice

    rows = zip(*[c.tolist() if hasattr(c, "tolist") else c for c in columns])
    cursor = _dbapi(target).cursor()
    try:
        while chunk := list(islice(rows, BATCH)):
            cursor.executemany(sql, chunk if named is None else [dict(zip(named, r)) for r in chunk])
    finally:
        cursor.close()


def write_rows(session: Session, ids: Any, found: Any, changed: Any, values: dict[str, Any]) -> None:
    """Update the changed existing rows, insert the missing ones. ``values``: numpy arrays in driver form."""
    import numpy as np
    from sqlalchemy import bindparam

    keys = list(values)
    upd = np.nonzero(changed & found)[0]
    ins = np.nonzero(changed & ~found)[0]
    if len(upd) and session.connection().dialect.name == "postgresql":
        _copy_update(session, keys, [values[k][upd] for k in keys], ids[upd])
    elif len(upd):
        stmt = update(CC).where(CC.c.customer_id == bindparam("_customer_id")).values(
            {k: bindparam("_" + k) for k in keys})
        executemany(session, stmt, [*keys, "customer_id"], [values[k][upd] for k in keys] + [ids[upd]])
    if len(ins):
        extra = [k for k in CLASS_NOT_NULL if k not in values]  # NOT NULL columns rfm does not set
        insert_columns(session, CC, ["customer_id", *keys, *extra],
                       [ids[ins], *(values[k][ins] for k in keys), *([[0] * len(ins)] * len(extra))])


def insert_columns(session: Session, table: Any, keys: list[str], columns: list[Any]) -> None:
    """Insert rows given as one sequence per column: COPY on PostgreSQL (a statement per row, as its driver's
    executemany sends them, cost the server ~150 us a row), the driver's executemany elsewhere."""
    if session.connection().dialect.name == "postgresql":
        from crmcli.store.bulk import copy_rows

        copy_rows(session.connection(), table, keys, zip(*[c.tolist() if hasattr(c, "tolist") else c for c in columns]))
        return
    executemany(session, insert(table), keys, columns)


def _copy_update(session: Session, keys: list[str], columns: list[Any], ids: Any) -> None:
    """PostgreSQL: update customer_class rows by COPY into a temporary table and one UPDATE ... FROM."""
    from crmcli.store.bulk import copy_rows

    conn = session.connection()
    names = ", ".join(keys)
    conn.exec_driver_sql(f"CREATE TEMP TABLE crm_class_update ON COMMIT DROP AS "
                         f"SELECT customer_id, {names} FROM customer_class WITH NO DATA")
    copy_rows(conn, "crm_class_update", ["customer_id", *keys],
              zip(ids.tolist(), *[c.tolist() if hasattr(c, "tolist") else c for c in columns]))
    conn.exec_driver_sql(f"UPDATE customer_class AS t SET {', '.join(f'{k} = s.{k}' for k in keys)} "
                         f"FROM crm_class_update AS s WHERE t.customer_id = s.customer_id")
    conn.exec_driver_sql("DROP TABLE crm_class_update")


CLASS_NOT_NULL = ("net_minor", "orders")
HIST_KEYS = ["customer_id", "kind", "from_value", "to_value", "net_minor", "orders", "tenure_days", "share_bp",
             "basis_minor", "note"]
CLASS_STAGE, HIST_STAGE = "crm_class_stage", "crm_history_stage"  # TEMP tables, private to one connection


@dataclass
class Col:
    """One column of rows to write, kept as numpy codes until the rows are written.

    kind ``int``: integers (``none``: the value that stands for NULL); ``code``: indexes into ``labels`` (fixed
    words, numbers or None; -1 = the last label); ``date``: epoch days (NO_DATE = NULL); ``text``: driver
    values as they are (user text such as level names); ``const``: ``labels[0]`` on every row."""

    kind: str
    values: Any = None
    labels: tuple[Any, ...] = ()
    none: int | None = None

    def driver(self, session: Session, n: int) -> Any:
        """The values as the driver takes them (a numpy object or integer array)."""
        import numpy as np

        if self.kind == "code":
            return _labels(self.values, self.labels)
        if self.kind == "date":
            return _dates(session, self.values)
        if self.kind == "text":
            return np.asarray(self.values, dtype=object)
        if self.kind == "const":
            return np.full(n, self.labels[0], dtype=object)
        return self.values if self.none is None else _nullable(self.values, self.none)


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(int(value))
    assert re.fullmatch(r"[A-Za-z_]+", value), value  # fixed words only, never user text
    return f"'{value}'"


def _stage_statement(table: str, cols: dict[str, Col]) -> tuple[str, list[Any]]:
    """SQLite: an INSERT into ``table`` taking few parameters per row, and the parameter columns. All ``code``
    columns travel packed in one integer (?1) and are turned back into their labels by SQL ``CASE``
    expressions; dates are formatted by SQL. Binding fewer Python values per row is what makes staging fast
    (it is the most of its cost: about 5 us per row of 13 values)."""
    import numpy as np

    n = len(next(c.values for c in cols.values() if c.kind != "const"))
    packed = np.zeros(n, dtype=np.int64)
    params: list[Any] = [packed]
    exprs, shift = [], 0
    for col in cols.values():
        if col.kind == "code":
            k = len(col.labels)
            bits = max(1, (k - 1).bit_length())
            packed |= (np.asarray(col.values, dtype=np.int64) % k) << shift  # -1 -> the last label
            whens = " ".join(f"WHEN {i} THEN {_literal(v)}" for i, v in enumerate(col.labels))
            exprs.append(f"CASE (?1 >> {shift}) & {(1 << bits) - 1} {whens} END")
            shift += bits
            assert shift <= 62, "too many codes for one integer"
        elif col.kind == "const":
            exprs.append(_literal(col.labels[0]))
        elif _all_null(col):  # e.g. no levels defined: nothing to bind
            exprs.append("NULL")
        else:
            params.append(col.values)
            ref = f"?{len(params)}"
            if col.kind == "date":
                exprs.append(f"CASE WHEN {ref} = {NO_DATE} THEN NULL ELSE date({ref} * 86400, 'unixepoch') END")
            elif col.kind == "int" and col.none is not None:
                exprs.append(f"NULLIF({ref}, {col.none})")
            else:
                exprs.append(ref)
    return f"INSERT INTO temp.{table} ({', '.join(cols)}) VALUES ({', '.join(exprs)})", params


def _all_null(col: Col) -> bool:
    import numpy as np

    if col.kind == "text":
        return all(v is None for v in col.values)
    none = NO_DATE if col.kind == "date" else col.none
    return none is not None and bool(np.all(np.asarray(col.values) == none))


@dataclass
class Derived:
    """History rows made from the class rows where ``flag`` is set: each HIST_KEY is the name of a class
    column or a Col of its own (values aligned with the class rows). When staged, SQL makes them from the
    staged class rows (nothing more is bound per history row); otherwise ``block`` gives them as columns."""

    flag: Any
    columns: dict[str, str | Col]

    def block(self, rows: dict[str, Col]) -> dict[str, Col]:
        import numpy as np

        out = {}
        for key in HIST_KEYS:
            spec = self.columns[key]
            col = rows[spec] if isinstance(spec, str) else spec
            out[key] = col if col.kind == "const" else Col(
                col.kind, np.asarray(col.values, dtype=object if col.kind == "text" else None)[self.flag],
                col.labels, col.none)
        return out


@dataclass
class Writes:
    """What a run writes: the customer_class values of the changed customers (``rows``, with customer_id,
    ids ascending) and blocks of history rows (HIST_KEYS, without their run id: known only when saving).

    On SQLite, ``stage`` copies the rows into TEMP tables of the connection, which takes no lock on the
    store: ``run_two_phase`` does it between the read and the write phase. ``apply`` then moves them in with
    two ``INSERT ... SELECT`` statements, so the write lock is held for SQLite's own work on the rows, not
    for binding millions of Python values one by one (a first recompute at 1M customers: other writers
    waited 29.6 s for the lock before, see docs/tiers.md). On PostgreSQL ``apply`` writes the rows with COPY
    (its row locks do not stop other writers, so nothing is staged)."""

    found: Any  # bool per row: a customer_class row existed when computed
    rows: dict[str, Col]
    history: list[dict[str, Col] | Derived]
    staged: bool = False

    def stage(self, target: Any) -> None:
        """Copy the rows into the TEMP tables, inside the transaction of ``target`` (a session, or an SQLite
        driver connection); a no-op on other databases and once staged."""
        if self.staged or (isinstance(target, Session) and target.connection().dialect.name != "sqlite"):
            return
        _drop_stage(target)
        extra: dict[str, Col] = {}  # columns of the derived history rows, staged beside the class rows
        selects: list[str] = []
        for j, block in enumerate(self.history):
            if isinstance(block, Derived):
                extra[f"x{j}_flag"] = Col("code", block.flag.astype("int64"), (0, 1))
                exprs = []
                for key in HIST_KEYS:
                    spec = block.columns[key]
                    if isinstance(spec, str):
                        exprs.append(spec)
                    elif spec.kind == "const":
                        exprs.append(_literal(spec.labels[0]))
                    else:
                        extra[f"x{j}_{key}"] = spec
                        exprs.append(f"x{j}_{key}")
                selects.append(f"SELECT {', '.join(exprs)} FROM temp.{CLASS_STAGE} WHERE x{j}_flag = 1 "
                               f"ORDER BY customer_id")
            else:
                selects.append("")
        columns = [k for k in [*self.rows, *extra] if k != "customer_id"]
        _exec(target, f"CREATE TEMP TABLE {CLASS_STAGE} (customer_id INTEGER PRIMARY KEY, {', '.join(columns)})")
        sql, params = _stage_statement(CLASS_STAGE, {**self.rows, **extra})
        _driver_executemany(target, sql, params)
        _exec(target, f"CREATE TEMP TABLE {HIST_STAGE} (seq INTEGER PRIMARY KEY, {', '.join(HIST_KEYS)})")
        for block, select_sql in zip(self.history, selects):  # in order: the history rows' ids follow it
            if isinstance(block, Derived):
                _exec(target, f"INSERT INTO temp.{HIST_STAGE} ({', '.join(HIST_KEYS)}) {select_sql}")
            else:
                sql, params = _stage_statement(HIST_STAGE, block)
                _driver_executemany(target, sql, params)
        self.staged = True
        self.rows = {k: Col("const") for k in self.rows}  # keep the column names only
        self.history = []

    def apply(self, session: Session, run_id: int) -> None:
        if session.connection().dialect.name != "sqlite":
            self._apply(session, run_id)
            return
        # The customer_class triggers (m0021) count each row written by anyone else; this run raises the counter
        # once for its whole write. It takes them out meanwhile: even disarmed (class_armed = 0, what the first
        # version did), their WHEN clause cost about 1.4 µs a row under the write lock, 1.4 s of a first
        # recompute at 1M customers. SQLite's DDL is transactional: they are back, as they were, in the same
        # transaction, and a failed write rolls back to them.
        # Only the counting triggers: any other (another program's guard or sync) sees every row as always.
        from crmcli.store.migrations.m0021_class_cache import TRIGGERS

        ours = [name for name, (event, _counter) in TRIGGERS.items() if event.endswith(" ON customer_class")]
        cursor = _dbapi(session).cursor()
        try:
            triggers = cursor.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN "
                                      f"({', '.join('?' * len(ours))}) ORDER BY rowid", ours).fetchall()
        finally:
            cursor.close()
        for name, _sql in triggers:
            _exec(session, f'DROP TRIGGER "{name}"')
        self._apply(session, run_id)
        for _name, sql in triggers:
            _exec(session, sql)
        _exec(session, "UPDATE class_cache_state SET class_gen = class_gen + 1 WHERE id = 1")

    def _apply(self, session: Session, run_id: int) -> None:
        keys = [k for k in self.rows if k != "customer_id"]
        if not self.staged:
            ids = self.rows["customer_id"].values
            n = len(ids)
            write_rows(session, ids, self.found, _ones(n), {k: self.rows[k].driver(session, n) for k in keys})
            for block in self.history:
                if isinstance(block, Derived):
                    block = block.block(self.rows)
                m = len(block["customer_id"].values)
                insert_columns(session, HIST, ["run_id", *HIST_KEYS],
                               [[run_id] * m, *(block[k].driver(session, m) for k in HIST_KEYS)])
            return
        extra = [k for k in CLASS_NOT_NULL if k not in keys]
        # An upsert: new customers get a row, the others have theirs updated (ids ascending, as the table).
        _exec(session, f"INSERT INTO customer_class (customer_id, {', '.join(keys + extra)}) "
                       f"SELECT customer_id, {', '.join(keys + ['0'] * len(extra))} FROM temp.{CLASS_STAGE} "
                       f"WHERE true ORDER BY customer_id "
                       f"ON CONFLICT (customer_id) DO UPDATE SET {', '.join(f'{k} = excluded.{k}' for k in keys)}")
        _exec(session, f"INSERT INTO class_history (run_id, {', '.join(HIST_KEYS)}) "
                       f"SELECT ?, {', '.join(HIST_KEYS)} FROM temp.{HIST_STAGE} ORDER BY seq", (run_id,))
        # The TEMP tables are dropped after the commit (``run_two_phase``, or the next ``stage``): freeing a
        # million staged rows takes a good part of a second that need not hold the write lock.


def _dbapi(target: Any) -> Any:
    """The driver connection of a session (or ``target`` itself, a driver connection)."""
    return target.connection().connection.dbapi_connection if isinstance(target, Session) else target


def _exec(target: Any, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Plain SQL on a session's driver connection (column and table names are fixed words here)."""
    cursor = _dbapi(target).cursor()
    try:
        cursor.execute(sql, params)
    finally:
        cursor.close()


def _drop_stage(target: Any) -> None:
    for name in (CLASS_STAGE, HIST_STAGE):
        _exec(target, f"DROP TABLE IF EXISTS temp.{name}")


def _ones(n: int) -> Any:
    import numpy as np

    return np.ones(n, dtype=bool)


@dataclass
class Moves:
    up: int = 0
    down: int = 0
    new: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"up": self.up, "down": self.down, "new": self.new}


def _moves(new: Any, old: Any) -> Moves:
    import numpy as np

    return Moves(up=int(np.count_nonzero((new > old) & (old > 0))), down=int(np.count_nonzero(new < old)),
                 new=int(np.count_nonzero((old <= 0) & (new > 0))))


@dataclass
class RunResult:
    kind: str
    as_of: date
    rules: Rules
    customers: int
    changed_rows: int
    tier: Moves = field(default_factory=Moves)
    level: Moves = field(default_factory=Moves)
    tiers: dict[str, int] = field(default_factory=dict)  # A/B/C/none -> customers after the run
    segments: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)  # only when asked for
    scores: Any = None  # rfm: (ids, r, f, m, seg, recency, orders, net) for --customers
    run_id: int | None = None
    dry_run: bool = False
    writes: Writes | None = None  # the writes still to do; None when nothing changes
    run_counts: dict[str, Any] = field(default_factory=dict)  # recorded with the class_run and audit rows
    keeper: Any = None  # the cache kept between runs (core/class_cache.py), written with the rows

    def pending(self) -> bool:
        """Something to write: changed rows, or a cache worth keeping although no row changed."""
        return self.writes is not None or (self.keeper is not None and self.keeper.worth_saving())

    def save(self, session: Session) -> None:
        """Write the run (inside the session's write transaction): class_run and audit rows, then the rows,
        then the cache."""
        keeper, self.keeper = self.keeper, None
        if self.writes is None:
            if keeper is not None and keeper.worth_saving():
                keeper.save(session, wrote=False)
            return
        if keeper is not None:
            keeper.mark_class_gen(session)
        self.writes.stage(session)  # a no-op when the read phase staged them already
        self.run_id = _finish_run(session, self.kind, self.as_of, self.rules, self.run_counts)
        self.writes.apply(session, self.run_id)
        self.writes = None
        if keeper is not None:
            keeper.save(session, wrote=True)


def _finish_run(session: Session, kind: str, as_of: date, rules: Rules, counts: dict[str, Any]) -> int:
    from crmcli.core import audit

    run_id = tiers_mod._new_run(session, kind, as_of, rules.params(), counts)
    audit.record(session, entity="class_run", entity_id=run_id, action=kind, after={"as_of": as_of, **counts})
    return run_id


# ----------------------------------------------------------------------------------- two phases

# Audit entities whose changes between the read phase and the write phase leave a computed run valid: they
# only add or change purchases and other facts (the run then reflects the store as it was when it started
# reading, as any report does). Anything else (customers deleted or erased, pins, levels, rules, another
# classification run, an import undone, an entity unknown here) makes the run compute again.
HARMLESS_ENTITIES = frozenset({"purchase", "interaction", "feedback", "feedback_policy", "survey",
                               "survey_response", "care_template", "care_holiday", "churn_run", "churn_fit"})
ATTEMPTS = 3


def audit_mark(session: Session) -> int:
    from crmcli.store.models import AuditEntry

    A = AuditEntry.__table__
    return int(session.execute(select(func.coalesce(func.max(A.c.id), 0))).scalar() or 0)


def quiet_since(session: Session, mark: int) -> bool:
    """No audit row since ``mark`` that could change the result of a run computed before it."""
    from crmcli.store.models import AuditEntry

    A = AuditEntry.__table__
    entities = {r[0] for r in session.execute(select(A.c.entity).where(A.c.id > mark).distinct())}
    return entities <= HARMLESS_ENTITIES


def run_two_phase(store: Any, load_ctx: Any, compute: Any) -> tuple[RunResult, Any]:
    """Compute in a read transaction, then save in one short write transaction (the write lock is held only
    for the writes, not for the aggregates). ``load_ctx(session)`` -> ctx; ``compute(session, ctx)`` ->
    RunResult with its pending writes. If a change that could alter the result was committed in between, the
    run is computed again; the last attempt computes under the write lock. Returns (result, ctx).

    On SQLite all of it runs on one connection, and between the two phases the rows to write are staged in
    TEMP tables of that connection (``Writes.stage``), so that the write phase only moves them, in C."""
    with _phases(store) as (read, stage, write):
        for attempt in range(ATTEMPTS):
            with read() as session:
                ctx = load_ctx(session)
                mark = audit_mark(session)
                result = compute(session, ctx)
            if not result.pending():
                return result, ctx
            if result.writes is not None:
                stage(result.writes)
            with write() as session:
                # Audit rows name what could change the result; a customer removed by a taking back of a killed
                # import writes none, and its new class row would fail the foreign key: on SQLite the
                # customer_gen counter (m0021) tells.
                if quiet_since(session, mark) and not (result.keeper is not None
                                                       and result.keeper.customers_moved(session)):
                    result.save(session)
                    return result, ctx
                if attempt == ATTEMPTS - 1:
                    ctx = load_ctx(session)
                    result = compute(session, ctx)
                    result.save(session)
                    return result, ctx
    raise AssertionError("unreachable")


@contextmanager
def _phases(store: Any) -> Iterator[tuple[Any, Any, Any]]:
    """(read, stage, write). ``read()`` / ``write()``: context managers yielding a session in a read / write
    transaction; ``stage(writes)`` stages a run's rows. On SQLite all three use one connection (its TEMP tables
    carry the staged rows into the write phase); elsewhere the store's own ``read()`` and ``write()``, and
    nothing to stage."""
    if not store.is_sqlite:
        yield store.read, (lambda writes: None), store.write
        return
    from crmcli.store.engine import translate_errors

    conn = store.engine.connect()
    # The staged rows live in memory: in SQLite's default temporary file, a first recompute at 1M customers
    # spent 3 s more, mostly in the kernel, writing and reading back its ~2M staged rows.
    _exec(conn.connection.dbapi_connection, "PRAGMA temp_store = MEMORY")

    @contextmanager
    def phase(begin: str) -> Iterator[Session]:
        conn.execution_options(crm_begin=begin)  # the store's "begin" hook: BEGIN DEFERRED / IMMEDIATE
        with translate_errors(store.location):
            with Session(bind=conn, expire_on_commit=False) as session:
                with session.begin():
                    yield session

    def stage(writes: Writes) -> None:
        # A transaction of its own, on the TEMP database only: no lock on the store, and the read phase's
        # snapshot is already released. Begun and ended in SQL on the driver connection, which SQLAlchemy's
        # Connection leaves alone between its transactions (the store's connections are in autocommit mode).
        dbapi = conn.connection.dbapi_connection
        with translate_errors(store.location):
            _exec(dbapi, "BEGIN")
            try:
                writes.stage(dbapi)
            except BaseException:
                _exec(dbapi, "ROLLBACK")
                raise
            _exec(dbapi, "COMMIT")

    try:
        yield (lambda: phase("DEFERRED")), stage, (lambda: phase("IMMEDIATE"))
        _drop_stage(conn.connection.dbapi_connection)  # after the write transaction: no lock on the store
    finally:
        with suppress(Exception):  # the pooled connection goes back as it came (a broken one is discarded)
            _exec(conn.connection.dbapi_connection, "PRAGMA temp_store = DEFAULT")
        conn.close()


# ---------------------------------------------------------------------------------------- recompute

def recompute(session: Session, ctx: Any, *, dry_run: bool = False, want_changes: bool = False,
              defer: bool = False) -> RunResult:
    """Tiers, RFM segments, lifecycle stages and membership levels for every live customer as of ctx.today.
    Saved in ``session`` unless ``dry_run``; ``defer``: computed only, ``result.save(session)`` writes."""
    import numpy as np

    from crmcli.core import hooks, levels as levels_mod
    from crmcli.core.lifecycle import stage_codes

    rules = tiers_mod.load_rules(session)
    rules.validate()
    as_of = ctx.today
    today = epoch_day(as_of)
    defined = levels_mod.list_levels(session)
    for lvl in defined:
        if lvl.basis != rules.level_basis:
            raise Conflict(_("Level {name} was defined by {basis} but level.basis is {current}.").format(
                name=lvl.name, basis=_(lvl.basis), current=_(rules.level_basis)),
                hint=_("Set level.basis back, or redefine the levels."))
    windows = [rules.tiers.window_days, rules.rfm_window]
    if defined and rules.level_basis == "spend":
        windows.append(rules.level_window)
    from crmcli.core.class_cache import open_keeper

    keeper = open_keeper(session)
    facts = gather(session, as_of, windows, history=True, keeper=keeper)
    ids = facts.ids
    n = len(ids)
    bought = facts.days > 0
    orders_t, net_t = facts.windows[rules.tiers.window_days]
    tenure = np.where(bought, today - facts.first, -1)
    computed, share = tiers_mod.tier_codes(net_t, orders_t, tenure, bought, rules.tiers, ctx.currency)
    computed = computed.astype(np.int64)
    pins = load_pins(session, ids)
    effective = np.where(pins > 0, pins, computed)

    orders_r, net_r = facts.windows[rules.rfm_window]
    r, f, m, seg = score_rfm(facts.last, orders_r, net_r)
    top = (effective == TIER_CODES["A"]) | np.isin(seg, [SEGMENT_KEYS.index(k) for k in TOP_SEGMENTS])
    stage = stage_codes(facts.days, facts.first, facts.last, today, top, rules.lifecycle).astype(np.int64)

    names = [lvl.name for lvl in defined]
    stored = stored_for(session, ids, names, keeper)
    if defined:
        if rules.level_basis == "spend":
            basis = facts.windows[rules.level_window][1]
        else:
            basis = points_earned(session, hooks, ids, as_of, rules.level_window)
        level, since = levels_mod.assign(basis, stored.level, stored.since, today, [lv.threshold for lv in defined],
                                         rules.downgrade_days)
    else:
        basis = np.full(n, NONE_INT, dtype=np.int64)
        level = np.zeros(n, dtype=np.int64)
        since = np.full(n, NO_DATE, dtype=np.int64)

    changed = (~stored.found | (effective != stored.tier) | (computed != stored.computed) | (net_t != stored.net)
               | (orders_t != stored.orders) | (r != stored.r) | (f != stored.f) | (m != stored.m)
               | (seg != stored.seg) | (stage != stored.stage) | (level != stored.level) | (since != stored.since)
               | (basis != stored.basis))
    tier_changed = effective != stored.tier
    level_changed = level != stored.level
    result = RunResult(kind="recompute", as_of=as_of, rules=rules, customers=n, changed_rows=int(changed.sum()),
                       tier=_moves(effective, stored.tier), level=_moves(level, np.maximum(stored.level, 0)),
                       dry_run=dry_run)
    counts = np.bincount(effective, minlength=4)
    result.tiers = {"A": int(counts[3]), "B": int(counts[2]), "C": int(counts[1]), "none": int(counts[0])}
    level_label: list[Any] = [None, *names]
    gone = np.nonzero(level_changed & (stored.level < 0))[0]
    old_names = stored_level_names(session, ids[gone].tolist()) if len(gone) else {}

    def level_from(i: int) -> Any:
        code = int(stored.level[i])
        return old_names.get(int(ids[i])) if code < 0 else level_label[code]

    if want_changes:
        for i in np.nonzero(tier_changed | level_changed)[0].tolist():
            common = {"customer_id": int(ids[i]), "net_minor": int(net_t[i]), "orders": int(orders_t[i])}
            if tier_changed[i]:
                result.changes.append({**common, "kind": "tier", "from": CODE_TIERS[stored.tier[i]],
                                       "to": CODE_TIERS[effective[i]]})
            if level_changed[i]:
                result.changes.append({**common, "kind": "level", "from": level_from(i),
                                       "to": level_label[level[i]]})
    if dry_run:
        return result
    result.keeper = keeper
    _remember(keeper, ids, names, Stored(np.ones(n, dtype=bool), effective, computed, net_t, orders_t, r, f, m, seg,
                                         stage, level, since, basis))
    if not changed.any():
        if not defer:
            result.save(session)  # the cache only
        return result

    rows = np.nonzero(changed)[0]  # only the changed rows are written
    scores = (None, 1, 2, 3, 4, 5)
    values = {
        "customer_id": Col("int", ids[rows]),
        "tier": Col("code", effective[rows], CODE_TIERS), "computed_tier": Col("code", computed[rows], CODE_TIERS),
        "net_minor": Col("int", net_t[rows]), "orders": Col("int", orders_t[rows]),
        "r_score": Col("code", r[rows], scores), "f_score": Col("code", f[rows], scores),
        "m_score": Col("code", m[rows], scores),
        "segment": Col("code", seg[rows], (*SEGMENT_KEYS, None)), "stage": Col("code", stage[rows], (*STAGE_KEYS, None)),
        "level": Col("text", _labels(level[rows], level_label)),
        "level_since": Col("date", since[rows]),
        "basis_minor": Col("int", basis[rows], none=NONE_INT),
    }
    history: list[dict[str, Col] | Derived] = []
    if tier_changed.any():  # a tier change is a changed class row: its history row is made from it
        shares = (share[rows] if share is not None else np.full(len(rows), NONE_INT))
        history.append(Derived(tier_changed[rows], {
            "customer_id": "customer_id", "kind": Col("const", labels=("tier",)),
            "from_value": Col("code", stored.tier[rows], CODE_TIERS), "to_value": "tier",
            "net_minor": "net_minor", "orders": "orders", "tenure_days": Col("int", tenure[rows], none=-1),
            "share_bp": Col("int", np.where(net_t[rows] > 0, shares, NONE_INT), none=NONE_INT),
            "basis_minor": Col("const", labels=(None,)),
            "note": Col("code", (pins[rows] > 0).astype(np.int64), (None, "pinned"))}))
    idx = np.nonzero(level_changed)[0]
    if len(idx):
        history.append({"customer_id": Col("int", ids[idx]), "kind": Col("const", labels=("level",)),
                        "from_value": Col("text", [level_from(i) for i in idx.tolist()]),
                        "to_value": Col("text", _labels(level[idx], level_label)),
                        "net_minor": Col("int", net_t[idx]), "orders": Col("int", orders_t[idx]),
                        "tenure_days": Col("int", tenure[idx], none=-1), "share_bp": Col("const", labels=(None,)),
                        "basis_minor": Col("int", basis[idx], none=NONE_INT), "note": Col("const", labels=(None,))})
    result.run_counts = {"customers": n, "changed": result.changed_rows, "tier": result.tier.as_dict(),
                         "level": result.level.as_dict(), "tiers": result.tiers}
    result.writes = Writes(stored.found[rows], values, history)
    if not defer:
        result.save(session)
    return result


def points_earned(session: Session, hooks: Any, ids: Any, as_of: date, window: int) -> Any:
    """Points earned per customer in the level window, from the points feature (hooks.POINTS_EARNED)."""
    import numpy as np

    spec = getattr(hooks, "POINTS_EARNED", None)
    if not spec:
        raise Conflict(_("Membership levels by points need the points feature, which is not available."),
                       hint=_("Use levels by spend: crm tier rules set --level-basis spend (after removing the levels)."))
    start = as_of - timedelta(days=window - 1)
    rows = session.execute(hooks.load(spec)(session, start, as_of)).all()
    coded = np.array([(int(r[0]), int(r[1] or 0)) for r in rows], dtype=np.int64).reshape(-1, 2)
    return _align(ids, coded, [0])[0]


# ---------------------------------------------------------------------------------------------- rfm

def rfm(session: Session, ctx: Any, *, window_days: int | None = None, dry_run: bool = False,
        want_scores: bool = False, defer: bool = False) -> RunResult:
    """Score every live customer with a sale in the window and save R, F, M and the segment (and the
    loyal/repeat stage that depends on the segment). Other stages change only with a recompute.
    ``defer``: computed only, ``result.save(session)`` writes."""
    import numpy as np

    from crmcli.core import levels as levels_mod

    rules = tiers_mod.load_rules(session)
    window = window_days or rules.rfm_window
    as_of = ctx.today
    today = epoch_day(as_of)
    from crmcli.core.class_cache import open_keeper

    keeper = open_keeper(session)
    facts = gather(session, as_of, [window], history=False, keeper=keeper)
    ids = facts.ids
    n = len(ids)
    orders, net = facts.windows[window]
    r, f, m, seg = score_rfm(facts.last, orders, net)
    level_names = [lvl.name for lvl in levels_mod.list_levels(session)]
    stored = cached_stored(session, ids, level_names, keeper)
    if stored is not None:  # the rows kept by the last run
        found = stored.found
        tier_a = (stored.tier == TIER_CODES["A"]).astype(np.int64)
        old_rfm = stored.r * 100 + stored.f * 10 + stored.m
        old_seg, old_stage = stored.seg, stored.stage
    else:
        # one integer per stored row: tier is A, R*100 + F*10 + M, segment + 1, stage + 1 (0 = none)
        stmt = select(CC.c.customer_id, _packed([
            (case((CC.c.tier == "A", 1), else_=0), 1),
            (_score(CC.c.r_score) * 100 + _score(CC.c.f_score) * 10 + _score(CC.c.m_score), RFM_BITS),
            (_code(CC.c.segment, SEGMENT_KEYS, start=1, none=0, unknown=0), 4),
            (_code(CC.c.stage, STAGE_KEYS, start=1, none=0, unknown=0), 0)]))
        (packed,) = _align(ids, int_rows(session, stmt, 2), [-1])
        found = packed >= 0
        tier_a, old_rfm, old_seg, old_stage = _unpack(np.maximum(packed, 0), [1, RFM_BITS, 4, 0])
        old_seg, old_stage = np.where(found, old_seg - 1, -1), np.where(found, old_stage - 1, -1)
    stage = old_stage.copy()
    repeatish = np.isin(stage, [STAGE_KEYS.index("repeat"), STAGE_KEYS.index("loyal")])
    loyal = (tier_a == 1) | np.isin(seg, [SEGMENT_KEYS.index(k) for k in TOP_SEGMENTS])
    stage[repeatish & loyal] = STAGE_KEYS.index("loyal")
    stage[repeatish & ~loyal] = STAGE_KEYS.index("repeat")
    new_rfm = r * 100 + f * 10 + m
    changed = (~found & (seg >= 0)) | (found & ((new_rfm != old_rfm) | (seg != old_seg) | (stage != old_stage)))
    recency = np.where(orders > 0, today - facts.last, 0)
    result = RunResult(kind="rfm", as_of=as_of, rules=rules, customers=n, changed_rows=int(changed.sum()),
                       dry_run=dry_run)
    result.segments = segment_rows(seg, recency, orders, net)
    if want_scores:
        result.scores = (ids, r, f, m, seg, recency, orders, net)
    if dry_run:
        return result
    result.keeper = keeper
    if stored is None and not found.any():  # no live customer has a row yet (a first run): all known
        stored = Stored(**{k: np.full(n, v, dtype=np.int64) for k, v in STORED_DEFAULTS.items()})
    if stored is not None:  # the rows as this run leaves them: new scores; a new row where one is inserted
        _remember(keeper, ids, level_names, Stored(found | (seg >= 0), stored.tier, stored.computed, stored.net,
                                                   stored.orders, r, f, m, seg, stage, stored.level, stored.since,
                                                   stored.basis))
    if not changed.any():
        if not defer:
            result.save(session)  # the cache only
        return result

    rows = np.nonzero(changed)[0]
    scores = (None, 1, 2, 3, 4, 5)
    values = {"customer_id": Col("int", ids[rows]), "r_score": Col("code", r[rows], scores),
              "f_score": Col("code", f[rows], scores), "m_score": Col("code", m[rows], scores),
              "segment": Col("code", seg[rows], (*SEGMENT_KEYS, None)),
              "stage": Col("code", stage[rows], (*STAGE_KEYS, None))}
    result.run_counts = {"customers": n, "changed": result.changed_rows, "window_days": window,
                         "segments": {row["segment"] or "none": row["customers"] for row in result.segments}}
    result.writes = Writes(found[rows], values, [])
    if not defer:
        result.save(session)
    return result


__all__ = ["recompute", "rfm", "gather", "run_two_phase", "Facts", "RunResult"]
