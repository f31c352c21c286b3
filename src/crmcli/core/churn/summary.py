"""Purchase days and the per-customer summary the models use (docs/churn.md, "The customer summary").

Definitions (as in Fader, Hardie & Lee 2005 and DESIGN.md, "Statistical models"):

- a *purchase day* is a business date (``purchased_on``, the store's time zone) with at least one sale; all
  sales of one customer on one day merge into one purchase whose amount is their sum;
- refunds reduce the sale they belong to (``refund_of_id``), on the sale's day, if the refund was recorded
  on or before the end date; a day whose sales were refunded in full (net ≤ 0) is no purchase;
- frequency x = purchase days - 1 (repeat purchases); recency t_x = days from the first to the last purchase
  day; age T = days from the first purchase day to the end date; t_x and T are divided by the period length
  (1 for --period day, 7 for week): fractional periods, never calendar-week buckets;
- monetary value = mean net amount of the repeat purchase days (the first purchase is left out).

Deleted and erased customers are left out. The data are read in one scan of the purchase table and
aggregated with numpy (``fetch_days``), because moving millions of rows through an SQL GROUP BY that sorts
or looks every sale up by index is several times slower in SQLite.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from datetime import date
from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, or_, select, type_coerce
from sqlmodel import Session

from crmcli.store.models import Customer, Purchase

P = Purchase.__table__
C = Customer.__table__
EPOCH = date(1970, 1, 1)
PERIODS = {"day": 1, "week": 7}


def epoch_day(d: date) -> int:
    return (d - EPOCH).days


def from_epoch_day(n: int) -> date:
    return date.fromordinal(EPOCH.toordinal() + int(n))


@dataclass
class Days:
    """Net amount per (customer, purchase day), sorted by customer then day; days as epoch-day numbers."""

    cid: Any
    day: Any
    net: Any  # minor units, > 0

    def until(self, end: date) -> "Days":
        keep = self.day <= epoch_day(end)
        return Days(self.cid[keep], self.day[keep], self.net[keep])

    def between(self, start: date, end: date) -> "Days":
        keep = (self.day >= epoch_day(start)) & (self.day <= epoch_day(end))
        return Days(self.cid[keep], self.day[keep], self.net[keep])


def _column_arrays(session: Session, stmt: Any, kinds: tuple[str, ...]) -> list[Any]:
    """The columns of a Core select as numpy arrays (``kinds``: 'int' or 'date' → epoch days), read through
    the driver's cursor without per-row type processing. The cyclic garbage collector is paused meanwhile:
    millions of row tuples would otherwise trigger full collections again and again."""
    import numpy as np

    conn = session.connection()
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    enabled = gc.isenabled()
    gc.disable()
    try:
        rows = conn.exec_driver_sql(sql).fetchall()
        n = len(rows)
        cols = list(zip(*rows)) if rows else [() for _ in kinds]
        del rows
        out = []
        for col, kind in zip(cols, kinds):
            if kind == "date":
                out.append(_dates(col))
            else:
                out.append(np.fromiter(col, dtype=np.int64, count=n))
        return out
    finally:
        if enabled:
            gc.enable()


def _dates(values: tuple[Any, ...]) -> Any:
    import numpy as np

    if not values:
        return np.zeros(0, dtype=np.int64)
    return np.array([str(v)[:10] for v in values] if not isinstance(values[0], str) else values,
                    dtype="datetime64[D]").astype(np.int64)


def excluded_ids(session: Session) -> Any:
    """Ids of deleted or erased customers (few; cheaper than listing the live ones)."""
    import numpy as np

    rows = session.execute(select(C.c.id).where(or_(C.c.deleted_at.is_not(None), C.c.erased_at.is_not(None)))).scalars()
    return np.array(sorted(rows), dtype=np.int64)


def fetch_days(session: Session, end: date, *, start: date | None = None,
               customers: Sequence[int] | None = None) -> Days:
    """Purchase days up to ``end`` (and from ``start``), with refunds recorded up to ``end`` taken off;
    ``customers``: only these (a short list is filtered in SQL through the customer index)."""
    import numpy as np

    few = customers is not None and len(customers) <= 500

    lo_day = epoch_day(start) if start is not None else None
    hi_day = epoch_day(end)
    # No date condition in SQL: a range on purchased_on would make SQLite walk its index and look up every
    # sale by rowid (several times slower than one scan of the table); the dates are filtered here instead.
    cid, day, amt = _column_arrays(session, select(P.c.customer_id, type_coerce(P.c.purchased_on, String),
                                                   P.c.amount_minor)
                                   .where(P.c.kind == "sale", *([P.c.customer_id.in_(list(customers or []))] if few else [])),
                                   ("int", "date", "int"))
    keep = day <= hi_day
    if lo_day is not None:
        keep &= day >= lo_day
    if not keep.all():
        cid, day, amt = cid[keep], day[keep], amt[keep]
    # Refunds (few): each with its sale's customer and day; ``refund_of_id > 0`` walks the refund index.
    S = P.alias("sale")
    r_cid, r_day, r_on, r_amt = _column_arrays(
        session,
        select(S.c.customer_id, type_coerce(S.c.purchased_on, String), type_coerce(P.c.purchased_on, String),
               P.c.amount_minor)
        .select_from(P.join(S, S.c.id == P.c.refund_of_id))
        .where(P.c.refund_of_id > 0, P.c.kind == "refund", *([S.c.customer_id.in_(list(customers or []))] if few else [])),
        ("int", "date", "date", "int"))
    if len(r_cid):
        keep = (r_on <= hi_day) & (r_day <= hi_day)
        if lo_day is not None:
            keep &= r_day >= lo_day
        cid = np.concatenate([cid, r_cid[keep]])
        day = np.concatenate([day, r_day[keep]])
        amt = np.concatenate([amt, -r_amt[keep]])
    gone = excluded_ids(session)
    if len(gone):
        keep = ~np.isin(cid, gone)
        cid, day, amt = cid[keep], day[keep], amt[keep]
    if customers is not None and not few:
        keep = np.isin(cid, np.asarray(list(customers), dtype=np.int64))
        cid, day, amt = cid[keep], day[keep], amt[keep]
    if not len(cid):
        return Days(cid, day, amt)
    lo = int(day.min())
    span = int(day.max()) - lo + 1
    key = cid * span + (day - lo)
    order = np.argsort(key, kind="stable")
    key = key[order]
    new = np.ones(len(key), dtype=bool)
    new[1:] = key[1:] != key[:-1]
    starts = np.flatnonzero(new)
    net = np.add.reduceat(amt[order], starts)
    ukey = key[starts]
    keep = net > 0
    ukey, net = ukey[keep], net[keep]
    return Days(ukey // span, ukey % span + lo, net)


@dataclass
class Summary:
    """One row per customer with at least one purchase day up to ``end`` (ids ascending)."""

    end: date
    ids: Any
    first: Any  # epoch day of the first purchase day
    last: Any  # epoch day of the last purchase day
    n_days: Any  # purchase days
    total_minor: Any  # net over all purchase days
    repeat_minor: Any  # net over the repeat purchase days (all but the first)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def frequency(self) -> Any:
        return self.n_days - 1

    def recency(self, period_days: int) -> Any:
        return (self.last - self.first) / float(period_days)

    def age(self, period_days: int) -> Any:
        return (epoch_day(self.end) - self.first) / float(period_days)

    def monetary_minor(self) -> Any:
        """Mean net amount of the repeat purchase days (NaN without a repeat purchase)."""
        import numpy as np

        x = self.frequency
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(x > 0, self.repeat_minor / np.maximum(x, 1), np.nan)

    def index_of(self, customer_id: int) -> int | None:
        import numpy as np

        i = int(np.searchsorted(self.ids, customer_id))
        return i if i < len(self.ids) and int(self.ids[i]) == customer_id else None


def summarise(days: Days, end: date) -> Summary:
    """The summary as of ``end`` from purchase days (which must already stop at ``end``)."""
    import numpy as np

    cid, day, net = days.cid, days.day, days.net
    n = len(cid)
    if n == 0:
        z = np.zeros(0, dtype=np.int64)
        return Summary(end, z, z, z, z, z, z)
    new = np.ones(n, dtype=bool)
    new[1:] = cid[1:] != cid[:-1]
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n) - 1
    total = np.add.reduceat(net, starts)
    return Summary(end=end, ids=cid[starts], first=day[starts], last=day[ends],
                   n_days=(ends - starts + 1).astype(np.int64), total_minor=total, repeat_minor=total - net[starts])


def summary(session: Session, end: date) -> Summary:
    return summarise(fetch_days(session, end), end)
