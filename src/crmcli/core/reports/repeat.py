"""Repeat purchasing, in SQL.

- Purchase days: a customer's purchases on the same business date count once (as in the churn models).
- Repeat-purchase rate: among customers who bought between --since and --until, the share with two or more
  purchase days in that range.
- Average interval: the mean number of days between a customer's consecutive purchase days in the range,
  over every such gap of every repeat customer (= total span / total gaps), and the mean of the customers'
  own average intervals.
- Second-purchase conversion: among customers whose first purchase ever falls in the range, the share whose
  second purchase day came by --until; "within N days" counts only the customers who have had N days since
  their first purchase (the others could still convert), so recent customers do not drag the figure down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Float, case, cast, func, select
from sqlmodel import Session

from crmcli.core.reports.periods import Range
from crmcli.core.reports.sql import days_between
from crmcli.store.models import Purchase

P = Purchase.__table__
WINDOWS = (30, 60, 90)
BUCKETS = ((1, 1, "1"), (2, 2, "2"), (3, 3, "3"), (4, 5, "4-5"), (6, 10, "6-10"), (11, None, "11+"))


@dataclass
class RepeatReport:
    range: Range
    customers: int = 0
    repeaters: int = 0
    repeat_rate: float | None = None
    purchase_days: int = 0
    orders: int = 0
    orders_per_customer: float | None = None
    avg_interval_days: float | None = None
    avg_customer_interval_days: float | None = None
    new_customers: int = 0
    converted: int = 0
    conversion_rate: float | None = None
    avg_days_to_second: float | None = None
    within: list[dict[str, Any]] = field(default_factory=list)
    distribution: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.range.since.isoformat(), "until": self.range.until.isoformat(),
                "customers": self.customers, "repeat_customers": self.repeaters, "repeat_rate": self.repeat_rate,
                "orders": self.orders, "purchase_days": self.purchase_days,
                "orders_per_customer": self.orders_per_customer, "avg_interval_days": self.avg_interval_days,
                "avg_customer_interval_days": self.avg_customer_interval_days,
                "second_purchase": {"new_customers": self.new_customers, "converted": self.converted,
                                    "rate": self.conversion_rate, "avg_days_to_second": self.avg_days_to_second,
                                    "within": self.within},
                "distribution": self.distribution}


def _pct(n: int, d: int) -> float | None:
    return round(n * 100.0 / d, 1) if d else None


def repeat(session: Session, rng: Range) -> RepeatReport:
    sale = P.c.kind == "sale"
    in_range = (P.c.purchased_on >= rng.since, P.c.purchased_on <= rng.until)
    per = (select(P.c.customer_id.label("cid"), func.count(func.distinct(P.c.purchased_on)).label("days"),
                  func.count().label("orders"), func.min(P.c.purchased_on).label("first_on"),
                  func.max(P.c.purchased_on).label("last_on"))
           .where(sale, *in_range).group_by(P.c.customer_id).subquery("per"))
    span = days_between(per.c.first_on, per.c.last_on)
    repeater = per.c.days >= 2
    r = session.execute(select(
        func.count().label("customers"),
        func.coalesce(func.sum(case((repeater, 1), else_=0)), 0).label("repeaters"),
        func.coalesce(func.sum(per.c.days), 0).label("days"),
        func.coalesce(func.sum(per.c.orders), 0).label("orders"),
        func.coalesce(func.sum(case((repeater, span), else_=0)), 0).label("span"),
        func.avg(case((repeater, cast(span, Float) / (per.c.days - 1)), else_=None)).label("avg_own"),
    )).mappings().one()
    report = RepeatReport(rng, customers=int(r["customers"]), repeaters=int(r["repeaters"]),
                          purchase_days=int(r["days"]), orders=int(r["orders"]))
    report.repeat_rate = _pct(report.repeaters, report.customers)
    gaps = report.purchase_days - report.customers
    report.avg_interval_days = round(int(r["span"]) / gaps, 1) if gaps else None
    report.avg_customer_interval_days = round(float(r["avg_own"]), 1) if r["avg_own"] is not None else None
    report.orders_per_customer = round(report.orders / report.customers, 2) if report.customers else None
    counts = {int(n): int(c) for n, c in session.execute(select(per.c.days, func.count()).group_by(per.c.days))}
    for low, high, name in BUCKETS:
        n = sum(c for d, c in counts.items() if d >= low and (high is None or d <= high))
        report.distribution.append({"purchase_days": name, "customers": n, "share": _pct(n, report.customers)})
    _second_purchase(session, rng, report)
    return report


def _second_purchase(session: Session, rng: Range, report: RepeatReport) -> None:
    sale = P.c.kind == "sale"
    first = (select(P.c.customer_id.label("cid"), func.min(P.c.purchased_on).label("first_on"))
             .where(sale).group_by(P.c.customer_id).subquery("first"))
    second = (select(first.c.cid, first.c.first_on, func.min(P.c.purchased_on).label("second_on"))
              .select_from(first.outerjoin(P, (P.c.customer_id == first.c.cid) & sale
                                           & (P.c.purchased_on > first.c.first_on) & (P.c.purchased_on <= rng.until)))
              .where(first.c.first_on >= rng.since, first.c.first_on <= rng.until)
              .group_by(first.c.cid, first.c.first_on).subquery("second"))
    gap = days_between(second.c.first_on, second.c.second_on)
    columns = [func.count().label("new"),
               func.coalesce(func.sum(case((second.c.second_on.is_not(None), 1), else_=0)), 0).label("converted"),
               func.avg(case((second.c.second_on.is_not(None), cast(gap, Float)), else_=None)).label("avg_gap")]
    for days in WINDOWS:
        eligible = second.c.first_on <= rng.until - timedelta(days=days)
        columns.append(func.coalesce(func.sum(case((eligible, 1), else_=0)), 0).label(f"eligible_{days}"))
        columns.append(func.coalesce(func.sum(case((eligible & second.c.second_on.is_not(None) & (gap <= days), 1),
                                                   else_=0)), 0).label(f"within_{days}"))
    r = session.execute(select(*columns)).mappings().one()
    report.new_customers = int(r["new"])
    report.converted = int(r["converted"])
    report.conversion_rate = _pct(report.converted, report.new_customers)
    report.avg_days_to_second = round(float(r["avg_gap"]), 1) if r["avg_gap"] is not None else None
    report.within = [{"days": d, "eligible": int(r[f"eligible_{d}"]), "converted": int(r[f"within_{d}"]),
                      "rate": _pct(int(r[f"within_{d}"]), int(r[f"eligible_{d}"]))} for d in WINDOWS]
