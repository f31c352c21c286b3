"""Cohort retention: customers grouped by the month (or quarter) of their first purchase ever; for each
later period, the share of the cohort that bought in it (the classic triangle).

Period 0 is the acquisition period itself (100% by definition). A customer counts once per period
however many purchases they made in it; refunds do not undo a purchase. Cohorts shown are those acquired
between --since and --until; purchases are counted up to --until, so later periods stay empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlmodel import Session

from crmcli.core.reports.periods import Range, label, start_of
from crmcli.core.reports.sql import period_index
from crmcli.store.models import Purchase

P = Purchase.__table__
COHORT_BYS = ("month", "quarter")


@dataclass
class CohortReport:
    range: Range
    by: str
    width: int  # number of period columns (0 .. width-1)
    rows: list[dict[str, Any]] = field(default_factory=list)


def _index(year: int, month: int, by: str) -> int:
    return year * 12 + month - 1 if by == "month" else year * 4 + (month - 1) // 3


def cohorts(session: Session, rng: Range, *, by: str = "month") -> CohortReport:
    if by not in COHORT_BYS:
        raise ValueError(by)
    sale = P.c.kind == "sale"
    first = (select(P.c.customer_id.label("cid"), func.min(P.c.purchased_on).label("first_on"))
             .where(sale).group_by(P.c.customer_id).subquery("first"))
    cohort_ix = period_index(first.c.first_on, by)
    offset = period_index(P.c.purchased_on, by) - cohort_ix
    stmt = (select(cohort_ix.label("cohort"), offset.label("k"), func.count(func.distinct(P.c.customer_id)).label("n"))
            .select_from(P.join(first, first.c.cid == P.c.customer_id))
            .where(sale, first.c.first_on >= rng.since, first.c.first_on <= rng.until, P.c.purchased_on <= rng.until)
            .group_by(cohort_ix, offset))
    counts: dict[int, dict[int, int]] = {}
    for r in session.execute(stmt):
        counts.setdefault(int(r.cohort), {})[int(r.k)] = int(r.n)
    last = _index(rng.until.year, rng.until.month, by)
    step = relativedelta(months=1 if by == "month" else 3)
    report = CohortReport(rng, by, 0)
    start = start_of(rng.since, by)
    while start <= rng.until:
        ix = _index(start.year, start.month, by)
        found = counts.get(ix, {})
        size = found.get(0, 0)
        span = last - ix + 1  # periods observed so far, the cohort's own included
        report.width = max(report.width, span)
        customers = [found.get(k, 0) for k in range(span)]
        retention = [round(n * 100.0 / size, 1) if size else None for n in customers]
        report.rows.append({"cohort": label(start, by), "start": start, "size": size, "customers": customers,
                            "retention": retention})
        start = start + step
    return report
