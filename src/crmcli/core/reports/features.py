"""Sections of reports and of the agenda that come from other features (tiers, points, surveys, feedback,
churn), each read through that feature's own core functions, and only when the feature is installed in this
build (``importlib.util.find_spec``). A missing feature leaves its section out: never a made-up figure."""

from __future__ import annotations

import importlib.util
from datetime import date, datetime, time
from typing import Any

from sqlmodel import Session

from crmcli.core.context import StoreContext
from crmcli.core.reports.periods import Range
from crmcli.i18n import _


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _end_of_day(day: date, ctx: StoreContext) -> datetime:
    from crmcli.core.clock import local_to_utc

    return local_to_utc(datetime.combine(day, time(23, 59, 59)), ctx.tz)


def _ids_by_code(session: Session, codes: list[str]) -> dict[str, int]:
    from sqlalchemy import select

    from crmcli.store.models import Customer

    C = Customer.__table__
    out: dict[str, int] = {}
    for start in range(0, len(codes), 5000):
        part = codes[start:start + 5000]
        out.update({code: int(i) for i, code in session.execute(select(C.c.id, C.c.code).where(C.c.code.in_(part)))})
    return out


# ------------------------------------------------------------------------------------------- agenda

def agenda_sections(session: Session, ctx: StoreContext, today: date, end: date) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    if installed("crmcli.core.points.expiry"):
        out["points_expiring"] = _points_expiring(session, ctx, today, end)
    if installed("crmcli.core.feedback"):
        out["feedback_overdue"] = _feedback_overdue(session, ctx, today, end)
    return out


def _row(section: str, today: date, day: date | None, **values: Any) -> dict[str, Any]:
    base = {"section": section, "date": day, "in_days": (day - today).days if day else None, "customer_id": None,
            "code": None, "name": None, "detail": "", "contact": None, "status": None}
    base.update(values)
    return base


def _points_expiring(session: Session, ctx: StoreContext, today: date, end: date) -> list[dict[str, Any]]:
    from crmcli.core.points.expiry import expiring

    found = expiring(session, ctx, (end - today).days)
    ids = _ids_by_code(session, sorted({r["code"] for r in found}))
    return [_row("points_expiring", today, r["expires_on"], customer_id=ids.get(r["code"]), code=r["code"],
                 name=r["name"], contact=r.get("phone") or r.get("email"),
                 detail=_("{points} points expire (balance {balance})").format(points=r["points"], balance=r["balance"]))
            for r in found]


def _feedback_overdue(session: Session, ctx: StoreContext, today: date, end: date) -> list[dict[str, Any]]:
    """Open feedback past its deadline now, and open feedback whose deadline falls in the window."""
    from crmcli.core import feedback
    from crmcli.core.clock import utc_to_local

    now = feedback.now_for(ctx)
    items = feedback.list_items(session, ctx, _end_of_day(end, ctx), feedback.ListFilter(overdue=True))
    ids = _ids_by_code(session, sorted({r["customer_code"] for r in items}))
    rows = []
    for r in items:
        due = utc_to_local(r["due_at"], ctx.tz) if r["due_at"] else None
        late = r["due_at"] is not None and r["due_at"] < now
        text = (r.get("text") or "").replace("\n", " ")
        if len(text) > 50:
            text = text[:49] + "…"
        rows.append(_row("feedback_overdue", today, due.date() if due else None, customer_id=ids.get(r["customer_code"]),
                         code=r["customer_code"], name=r["customer_name"],
                         detail=_("#{id} {kind}, {priority}: {text}").format(id=r["id"], kind=r["kind"],
                                                                              priority=r["priority"], text=text),
                         status="overdue" if late else "due"))
    return rows


# ---------------------------------------------------------------------------------------- dashboard

def dashboard_sections(session: Session, ctx: StoreContext, rng: Range) -> dict[str, Any]:
    return {}

