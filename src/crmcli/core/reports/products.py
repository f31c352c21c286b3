"""Best sellers and products bought together (market-basket pairs), in SQL.

Basket: all of one customer's sales on one business date (``purchased_on``), taken as a set of distinct
products (rows without a product are left out; quantity does not matter). With N baskets in the range and
n(X) the baskets holding X:
- support(A, B)     = n(A and B) / N
- confidence(A → B) = n(A and B) / n(A)
- lift(A, B)        = n(A and B) · N / (n(A) · n(B))   (> 1: bought together more often than by chance)
Pairs seen in fewer than ``min_count`` baskets are left out (default 2): one shared basket proves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, literal, select
from sqlmodel import Session

from crmcli.core.reports.periods import Range
from crmcli.store.models import Purchase

P = Purchase.__table__
SORTS = ("net", "revenue", "units", "orders", "customers")
PAIR_SORTS = ("count", "lift", "confidence")
NO_PRODUCT = "(none)"


@dataclass
class ProductsReport:
    range: Range
    baskets: int = 0
    best: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[dict[str, Any]] = field(default_factory=list)


def best_sellers(session: Session, rng: Range, *, sort: str = "net", limit: int | None = 10) -> list[dict[str, Any]]:
    sale = P.c.kind == "sale"
    product = func.coalesce(P.c.product, NO_PRODUCT).label("product")
    revenue = func.sum(case((sale, P.c.amount_minor), else_=0))
    refunds = func.sum(case((sale, 0), else_=P.c.amount_minor))
    stmt = (select(product,
                   func.sum(case((sale, 1), else_=0)).label("orders"),
                   func.sum(case((sale, P.c.quantity), else_=0)).label("units"),
                   func.count(func.distinct(case((sale, P.c.customer_id), else_=None))).label("customers"),
                   revenue.label("revenue"), refunds.label("refunds"), (revenue - refunds).label("net"))
            .where(P.c.purchased_on >= rng.since, P.c.purchased_on <= rng.until)
            .group_by(product))
    key = {"net": revenue - refunds, "revenue": revenue, "units": func.sum(case((sale, P.c.quantity), else_=0)),
           "orders": func.sum(case((sale, 1), else_=0)),
           "customers": func.count(func.distinct(case((sale, P.c.customer_id), else_=None)))}[sort]
    stmt = stmt.order_by(key.desc(), product)
    if limit:
        stmt = stmt.limit(limit)
    total = session.execute(select(func.coalesce(func.sum(case((P.c.kind == "sale", P.c.amount_minor),
                                                                else_=-P.c.amount_minor)), 0))
                            .where(P.c.purchased_on >= rng.since, P.c.purchased_on <= rng.until)).scalar_one()
    rows = []
    for rank, r in enumerate(session.execute(stmt).mappings(), 1):
        net = int(r["net"])
        rows.append({"rank": rank, "product": r["product"], "orders": int(r["orders"]), "units": int(r["units"]),
                     "customers": int(r["customers"]), "revenue": int(r["revenue"]), "refunds": int(r["refunds"]),
                     "net": net, "share": round(net * 100.0 / int(total), 1) if total else None})
    return rows


def pairs(session: Session, rng: Range, *, min_count: int = 2, sort: str = "count",
          limit: int | None = 10) -> tuple[int, list[dict[str, Any]]]:
    """(number of baskets, pairs with count, support, confidence both ways and lift)."""
    bp = (select(P.c.customer_id.label("cid"), P.c.purchased_on.label("day"), P.c.product.label("product"))
          .where(P.c.kind == "sale", P.c.product.is_not(None), P.c.purchased_on >= rng.since,
                 P.c.purchased_on <= rng.until)
          .distinct().subquery("bp"))
    baskets = session.execute(select(func.count()).select_from(
        select(bp.c.cid, bp.c.day).distinct().subquery("b"))).scalar_one()
    if not baskets:
        return 0, []
    single = select(bp.c.product, func.count().label("n")).group_by(bp.c.product).subquery("single")
    a, b = bp.alias("a"), bp.alias("b")
    together = (select(a.c.product.label("pa"), b.c.product.label("pb"), func.count().label("n"))
                .select_from(a.join(b, and_(a.c.cid == b.c.cid, a.c.day == b.c.day, a.c.product < b.c.product)))
                .group_by(a.c.product, b.c.product).having(func.count() >= min_count).subquery("together"))
    sa_, sb = single.alias("sa"), single.alias("sb")
    n_ab = cast(together.c.n, Float)
    confidence_ab = n_ab / sa_.c.n
    confidence_ba = n_ab / sb.c.n
    lift = n_ab * literal(baskets) / (cast(sa_.c.n, Float) * sb.c.n)
    stmt = (select(together.c.pa, together.c.pb, together.c.n, sa_.c.n.label("na"), sb.c.n.label("nb"),
                   confidence_ab.label("conf_ab"), confidence_ba.label("conf_ba"), lift.label("lift"))
            .select_from(together.join(sa_, sa_.c.product == together.c.pa).join(sb, sb.c.product == together.c.pb)))
    order = {"count": (together.c.n.desc(), lift.desc()), "lift": (lift.desc(), together.c.n.desc()),
             "confidence": (case((confidence_ab >= confidence_ba, confidence_ab), else_=confidence_ba).desc(),
                            together.c.n.desc())}[sort]
    stmt = stmt.order_by(*order, together.c.pa, together.c.pb)
    if limit:
        stmt = stmt.limit(limit)
    rows = []
    for r in session.execute(stmt).mappings():
        rows.append({"product_a": r["pa"], "product_b": r["pb"], "baskets": int(r["n"]),
                     "baskets_a": int(r["na"]), "baskets_b": int(r["nb"]),
                     "support": round(int(r["n"]) * 100.0 / baskets, 2),
                     "confidence_ab": round(float(r["conf_ab"]) * 100.0, 1),
                     "confidence_ba": round(float(r["conf_ba"]) * 100.0, 1), "lift": round(float(r["lift"]), 2)})
    return int(baskets), rows


def products(session: Session, rng: Range, *, sort: str = "net", limit: int | None = 10, min_count: int = 2,
             pair_sort: str = "count") -> ProductsReport:
    report = ProductsReport(rng)
    report.best = best_sellers(session, rng, sort=sort, limit=limit)
    report.baskets, report.pairs = pairs(session, rng, min_count=min_count, sort=pair_sort, limit=limit)
    return report
