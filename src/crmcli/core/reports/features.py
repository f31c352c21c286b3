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
from crmcli.i18n import N_, Joined, Message, _


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
    if installed("crmcli.core.churn.scan"):
        out["churn_risk"] = _churn_risk(session, ctx, today)
    if installed("crmcli.core.invites"):
        out["survey_due"] = _survey_due(session, ctx, today)
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
                 detail=Message(N_("{points} points expire (balance {balance})"), points=r["points"], balance=r["balance"]))
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
                         detail=Message(N_("#{id} {kind}, {priority}: {text}"), id=r["id"], kind=r["kind"],
                                        priority=r["priority"], text=text),
                         status="overdue" if late else "due"))
    return rows


def _churn_risk(session: Session, ctx: StoreContext, today: date) -> list[dict[str, Any]]:
    """Tier A customers at high churn risk today (the churn rules, assessed live like the card), with their
    reasons; status 'logged' when a win-back follow-up was logged for them in the last 14 days."""
    from datetime import timedelta

    from sqlalchemy import select

    from crmcli.core.churn import scan
    from crmcli.core.churn.rules import LEVELS
    from crmcli.core.churn.winback import WB
    from crmcli.store.models import Customer

    a = scan.assess(session, ctx)
    high = [int(cid) for cid, rank in zip(a.ids.tolist(), a.rank.tolist()) if rank == LEVELS.index("high")]
    if not high:
        return []
    tiers = _tiers(session, high)
    wanted = [cid for cid in high if (tiers.get(cid) or "").upper() == "A"]
    C = Customer.__table__
    rows = []
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        logged = set(session.execute(select(WB.c.customer_id).where(
            WB.c.customer_id.in_(chunk), WB.c.as_of >= today - timedelta(days=13))).scalars())
        for r in session.execute(select(C.c.id, C.c.code, C.c.name).where(
                C.c.id.in_(chunk), C.c.deleted_at.is_(None), C.c.erased_at.is_(None))):
            reasons = Joined([scan.reason_text(x, ctx.currency) for x in a.reasons.get(r.id, [])[:2]])
            rows.append(_row("churn_risk", today, today, customer_id=r.id, code=r.code, name=r.name,
                             detail=Message(N_("high risk: {reasons}"), reasons=reasons),
                             status="logged" if r.id in logged else None))
    rows.sort(key=lambda x: x["code"] or "")
    return rows


def _tiers(session: Session, ids: list[int]) -> dict[int, str | None]:
    """Tier per customer in one pass over the tiers feature's table (the surveys' lookup), else per customer
    through hooks.CLASSIFICATION."""
    from crmcli.core.churn.winback import tiers_of
    from crmcli.errors import CrmError

    if installed("crmcli.core.surveys"):
        from crmcli.core.surveys import classification

        try:
            return classification(session, ids, "tier")
        except CrmError:  # no tiers feature in this build
            pass
    return tiers_of(session, ids)


def _survey_due(session: Session, ctx: StoreContext, today: date, within_days: int = 30) -> list[dict[str, Any]]:
    """Complaints resolved in the last ``within_days`` days whose customer has not been asked yet how the
    complaint was handled (no survey invitation linked to the item): due today, with the command that asks."""
    from datetime import timedelta

    from sqlalchemy import select

    from crmcli.core.clock import start_of_day_utc, utc_to_local
    from crmcli.store.models import Customer
    from crmcli.store.models_feedback import Feedback, SurveyInvite

    F, INV, C = Feedback.__table__, SurveyInvite.__table__, Customer.__table__
    since = start_of_day_utc(today - timedelta(days=within_days - 1), ctx.tz)
    until = start_of_day_utc(today + timedelta(days=1), ctx.tz)
    asked = select(INV.c.id).where(INV.c.feedback_id == F.c.id, INV.c.status != "failed").exists()
    stmt = (select(F.c.id, F.c.resolved_at, C.c.id.label("cid"), C.c.code, C.c.name)
            .join(C, C.c.id == F.c.customer_id)
            .where(F.c.kind == "complaint", F.c.resolved_at.is_not(None), F.c.resolved_at >= since,
                   F.c.resolved_at < until, F.c.status != "open", C.c.deleted_at.is_(None), C.c.erased_at.is_(None),
                   ~asked)
            .order_by(F.c.resolved_at, F.c.id))
    rows = []
    for r in session.execute(stmt):
        resolved = utc_to_local(r.resolved_at, ctx.tz).date()
        rows.append(_row("survey_due", today, today, customer_id=r.cid, code=r.code, name=r.name, status="due",
                         detail=Message(N_("complaint #{id} resolved on {date}: ask how it was handled "
                                           "(crm survey invite SURVEY --resolved-within {days}d)"),
                                        id=r.id, date=resolved.isoformat(), days=within_days)))
    return rows


# ---------------------------------------------------------------------------------------- dashboard

def tiers(session: Session) -> dict[str, Any]:
    """The tiers feature's summary (as of its last recompute) and when that was."""
    from crmcli.core import tiers as tiers_mod

    return {"last_run": tiers_mod.last_run(session), "tiers": tiers_mod.summary(session)}


def segments(session: Session) -> dict[str, Any]:
    from crmcli.core import tiers as tiers_mod

    return {"last_run": tiers_mod.last_run(session), "segments": tiers_mod.segments_summary(session)}


def nps(session: Session, ctx: StoreContext, rng: Range | None) -> list[dict[str, Any]]:
    """Every NPS survey with responses in the range: NPS, its 95% interval, promoters/passives/detractors,
    invitations and response rate (the surveys feature's results), newest survey first."""
    from crmcli.core import surveys
    from crmcli.store.models_feedback import Survey

    out = []
    for info in surveys.list_surveys(session):
        if info["kind"] != "nps":
            continue
        survey = session.get(Survey, info["id"])
        doc = surveys.results(session, survey, ctx, since=rng.since if rng else None, until=rng.until if rng else None,
                              comments=0)
        metric = doc.get("metric") or {}
        out.append({"survey": info["name"], "id": info["id"], "status": info["status"],
                    "invited": doc["invited"], "responses": doc["responses"], "response_rate": doc["response_rate"],
                    "nps": metric.get("nps"), "ci_low": metric.get("ci_low"), "ci_high": metric.get("ci_high"),
                    "promoters": metric.get("promoters", 0), "passives": metric.get("passives", 0),
                    "detractors": metric.get("detractors", 0), "trend": doc.get("trend", [])})
    return out


def points(session: Session, ctx: StoreContext) -> dict[str, Any]:
    from crmcli.core.points.expiry import liability

    return liability(session, ctx)


def feedback(session: Session, ctx: StoreContext, rng: Range) -> dict[str, Any]:
    """Open and overdue items now (as of the as-of day), and the share handled within the deadline among
    items opened in the range (the feedback feature's definitions)."""
    from crmcli.core import feedback as feedback_mod

    now = feedback_mod.now_for(ctx)
    counts = feedback_mod.counts(session, now)
    handled = feedback_mod.handled_in_time(session, rng.since, rng.until, now=now)
    share = handled.get("share")
    return {**counts, "opened": handled["total"], "handled_in_time": handled["in_time"], "missed": handled["missed"],
            "pending": handled["pending"], "no_deadline": handled["no_deadline"],
            "in_time_share": round(share * 100, 1) if share is not None else None}


def dashboard_sections(session: Session, ctx: StoreContext, rng: Range) -> dict[str, Any]:
    """Tier mix, NPS, points outstanding, feedback and churn risk (last scan, CLV total of the last score) for
    `crm report summary` (features present only)."""
    out: dict[str, Any] = {}
    if installed("crmcli.core.tiers"):
        rows = tiers(session)["tiers"]
        if any(r["tier"] for r in rows):
            out["tiers"] = {"counts": {(r["tier"] or "—"): r["customers"] for r in rows}}
    if installed("crmcli.core.surveys"):
        found = [s for s in nps(session, ctx, rng) if s["responses"]]
        if found:
            latest = found[0]
            out["nps"] = {"survey": latest["survey"], "nps": round(latest["nps"], 1) if latest["nps"] is not None else None,
                          "responses": latest["responses"], "promoters": latest["promoters"],
                          "passives": latest["passives"], "detractors": latest["detractors"]}
    if installed("crmcli.core.points.expiry"):
        liab = points(session, ctx)
        if liab["outstanding"] or liab["debt"]:
            out["points"] = {"outstanding": liab["outstanding"], "value_minor": liab["value_minor"],
                             "expiring_30d": liab["expiring_30d"], "customers": liab["customers"]}
    if installed("crmcli.core.feedback"):
        fb = feedback(session, ctx, rng)
        if fb["open"] or fb["opened"]:
            out["feedback"] = {"open": fb["open"], "overdue": fb["overdue"], "in_time_share": fb["in_time_share"]}
    if installed("crmcli.core.churn.scan"):
        from crmcli.core.reports.value import dashboard_churn

        churn = dashboard_churn(session)
        if churn:
            out["churn"] = churn
    return out

