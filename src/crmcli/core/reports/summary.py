"""The one-screen dashboard: customers, sales this period against the previous one, top customers, and the
sections other features provide (tier mix, NPS, points outstanding, feedback) when they are installed.

Definitions: total = customers not deleted, known by --until (created by then, or with a purchase by then,
as imported history has later creation times); new = customers created in the range; active = customers who
bought in the range; at risk = customers whose last purchase is at least ``lifecycle.at_risk_days`` (90) and
less than ``lifecycle.lost_days`` (180) days before --until; lost = longer ago than that.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select
from sqlmodel import Session

from crmcli.core.clock import start_of_day_utc
from crmcli.core.context import StoreContext
from crmcli.core.reports import sales as sales_mod
from crmcli.core.reports.periods import Range, change_percent
from crmcli.store.models import Customer, Purchase

C = Customer.__table__
P = Purchase.__table__


def setting_int(session: Session, key: str, default: int) -> int:
    from crmcli.core import settings

    if key not in settings.SPECS:
        return default
    try:
        return int(settings.get(session, key))
    except (TypeError, ValueError):
        return default


def customers_block(session: Session, ctx: StoreContext, rng: Range) -> dict[str, Any]:
    alive = and_(C.c.deleted_at.is_(None), C.c.erased_at.is_(None))
    prev = rng.previous()

    def created_between(r: Range) -> Any:
        return and_(C.c.created_at >= start_of_day_utc(r.since, ctx.tz),
                    C.c.created_at < start_of_day_utc(r.until + timedelta(days=1), ctx.tz))

    row = session.execute(select(
        func.count().label("total"),
        func.coalesce(func.sum(case((created_between(rng), 1), else_=0)), 0).label("new"),
        func.coalesce(func.sum(case((created_between(prev), 1), else_=0)), 0).label("new_previous"),
    ).where(alive, or_(C.c.created_at < start_of_day_utc(rng.until + timedelta(days=1), ctx.tz),
                       exists().where(P.c.customer_id == C.c.id, P.c.purchased_on <= rng.until)))).mappings().one()
    sale = P.c.kind == "sale"

    def active(r: Range) -> int:
        return int(session.execute(select(func.count(func.distinct(P.c.customer_id))).where(
            sale, P.c.purchased_on >= r.since, P.c.purchased_on <= r.until)).scalar_one())

    at_risk_days = setting_int(session, "lifecycle.at_risk_days", 90)
    lost_days = setting_int(session, "lifecycle.lost_days", 180)
    last = (select(P.c.customer_id.label("cid"), func.max(P.c.purchased_on).label("last_on"))
            .where(sale, P.c.purchased_on <= rng.until).group_by(P.c.customer_id).subquery("last"))
    risk_edge = rng.until - timedelta(days=at_risk_days)
    lost_edge = rng.until - timedelta(days=lost_days)
    risk = session.execute(select(
        func.coalesce(func.sum(case((and_(last.c.last_on <= risk_edge, last.c.last_on > lost_edge), 1), else_=0)), 0),
        func.coalesce(func.sum(case((last.c.last_on <= lost_edge, 1), else_=0)), 0),
    ).select_from(last.join(C, C.c.id == last.c.cid)).where(alive)).one()
    return {"total": int(row["total"]), "new": int(row["new"]), "new_previous": int(row["new_previous"]),
            "active": active(rng), "active_previous": active(prev), "at_risk": int(risk[0]), "lost": int(risk[1]),
            "at_risk_days": at_risk_days, "lost_days": lost_days}


def top_customers(session: Session, rng: Range, limit: int = 5) -> list[dict[str, Any]]:
    sale = P.c.kind == "sale"
    net = func.sum(case((sale, P.c.amount_minor), else_=-P.c.amount_minor))
    stmt = (select(C.c.id, C.c.code, C.c.name, func.sum(case((sale, 1), else_=0)).label("orders"), net.label("net"))
            .select_from(P.join(C, C.c.id == P.c.customer_id))
            .where(P.c.purchased_on >= rng.since, P.c.purchased_on <= rng.until, C.c.erased_at.is_(None))
            .group_by(C.c.id, C.c.code, C.c.name).order_by(net.desc(), C.c.code).limit(limit))
    return [{"rank": i, "id": r.id, "code": r.code, "name": r.name, "orders": int(r.orders), "net": int(r.net)}
            for i, r in enumerate(session.execute(stmt), 1)]


def sales_block(session: Session, rng: Range) -> dict[str, Any]:
    current = sales_mod.totals(session, rng)
    previous = sales_mod.totals(session, rng.previous())
    keys = ("orders", "customers", "revenue", "refunds", "net", "aov")
    return {"current": {k: current[k] for k in keys}, "previous": {k: previous[k] for k in keys},
            "change": {k: change_percent(current[k], previous[k]) for k in keys}}


def summary(session: Session, ctx: StoreContext, rng: Range, *, top: int = 5) -> dict[str, Any]:
    from crmcli.core.reports import features

    return {"as_of": ctx.today.isoformat(), "currency": ctx.currency, "period": rng.as_dict(),
            "previous": rng.previous().as_dict(), "customers": customers_block(session, ctx, rng),
            "sales": sales_block(session, rng), "top_customers": top_customers(session, rng, top),
            **features.dashboard_sections(session, ctx, rng)}
