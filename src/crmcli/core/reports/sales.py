"""Sales by period (and optionally by channel or category): orders, customers, units, revenue, refunds,
net revenue and average order value. One GROUP BY for sales and one for refunds.

Definitions (docs/reports.md): an order is a sale row; revenue is the sum of sales; refunds are dated on the
refund's own business date (when the money went back) and belong to the refunded sale's channel/category;
net = revenue - refunds; AOV = revenue / orders (before refunds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlmodel import Session

from crmcli.core.reports.periods import Range, end_of, label, periods, start_of
from crmcli.core.reports.sql import period_start
from crmcli.store.models import Purchase

P = Purchase.__table__
DIMENSIONS = ("channel", "category")
NONE_LABEL = "(none)"


@dataclass
class SalesReport:
    range: Range
    by: str | None
    dimension: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: dict[str, Any] = field(default_factory=dict)


def _aov(revenue: int, orders: int) -> int:
    return round(revenue / orders) if orders else 0


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    row["net"] = row["revenue"] - row["refunds"]
    row["aov"] = _aov(row["revenue"], row["orders"])
    return row


def sales(session: Session, rng: Range, *, by: str | None = "month", dimension: str | None = None) -> SalesReport:
    """``by`` None: one row per dimension value (or one total row); otherwise one row per period (× value)."""
    if dimension is not None and dimension not in DIMENSIONS:
        raise ValueError(dimension)
    within = and_(P.c.purchased_on >= rng.since, P.c.purchased_on <= rng.until)
    keys: list[Any] = []
    if by is not None:
        keys.append(period_start(P.c.purchased_on, by).label("period"))
    if dimension is not None:
        keys.append(func.coalesce(P.c[dimension], NONE_LABEL).label("dim"))
    sale = P.c.kind == "sale"
    stmt = (select(*keys,
                   func.sum(case((sale, 1), else_=0)).label("orders"),
                   func.count(func.distinct(case((sale, P.c.customer_id), else_=None))).label("customers"),
                   func.sum(case((sale, P.c.quantity), else_=0)).label("units"),
                   func.sum(case((sale, P.c.amount_minor), else_=0)).label("revenue"),
                   func.sum(case((sale, 0), else_=P.c.amount_minor)).label("refunds"),
                   func.sum(case((sale, 0), else_=1)).label("refund_count"))
            .where(within))
    if keys:
        stmt = stmt.group_by(*[k.element for k in keys])
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in session.execute(stmt).mappings():
        period = r["period"] if by is not None else None
        dim = r["dim"] if dimension is not None else None
        if r["orders"] is None:  # no rows at all (the ungrouped total)
            continue
        found[(period, dim)] = {"orders": int(r["orders"]), "customers": int(r["customers"]),
                                "units": int(r["units"]), "revenue": int(r["revenue"]), "refunds": int(r["refunds"]),
                                "refund_count": int(r["refund_count"])}
    report = SalesReport(rng, by, dimension)
    empty = {"orders": 0, "customers": 0, "units": 0, "revenue": 0, "refunds": 0, "refund_count": 0}
    if by is not None:
        dims = sorted({d for (_p, d) in found}, key=lambda d: (d == NONE_LABEL, str(d))) if dimension else [None]
        for start in periods(rng, by):
            for dim in dims:
                values = found.get((start, dim))
                if values is None and dimension is not None:
                    continue  # only the channels/categories that sold in that period
                report.rows.append(_finish({"period": label(start, by), "start": max(start, rng.since),
                                            "end": min(end_of(start, by), rng.until),
                                            **({dimension: dim} if dimension else {}), **(values or empty)}))
    else:
        items = sorted(found.items(), key=lambda kv: (-kv[1]["revenue"] + kv[1]["refunds"], str(kv[0][1])))
        for (_p, dim), values in items:
            report.rows.append(_finish({**({dimension: dim} if dimension else {}), "start": rng.since,
                                        "end": rng.until, **values}))
    report.total = totals(session, rng)
    return report


def totals(session: Session, rng: Range) -> dict[str, Any]:
    """Orders, customers, units, revenue, refunds, net and AOV over the whole range."""
    sale = P.c.kind == "sale"
    r = session.execute(select(
        func.coalesce(func.sum(case((sale, 1), else_=0)), 0).label("orders"),
        func.count(func.distinct(case((sale, P.c.customer_id), else_=None))).label("customers"),
        func.coalesce(func.sum(case((sale, P.c.quantity), else_=0)), 0).label("units"),
        func.coalesce(func.sum(case((sale, P.c.amount_minor), else_=0)), 0).label("revenue"),
        func.coalesce(func.sum(case((sale, 0), else_=P.c.amount_minor)), 0).label("refunds"),
        func.coalesce(func.sum(case((sale, 0), else_=1)), 0).label("refund_count"),
    ).where(P.c.purchased_on >= rng.since, P.c.purchased_on <= rng.until)).mappings().one()
    return _finish({"start": rng.since, "end": rng.until, **{k: int(v) for k, v in r.items()}})
