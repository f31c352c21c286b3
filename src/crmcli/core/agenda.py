"""The daily agenda: what to do today and in the next days, grouped by section.

Window: from the as-of date through ``days - 1`` days later (``--days 7``: today and the next six days).
Sections (rows with stable keys: section, date, in_days, customer_id, code, name, detail, contact, status):
- birthday: birthdays celebrated in the window (29 February → 28 February in common years); status 'sent'
  when the birthday greeting of that year has gone out.
- anniversary: anniversaries of the first purchase (1 year or more) in the window, same 29 February rule.
- follow_up: the customer's next follow-up date, and next dates set on interactions with no later contact
  since, due by the end of the window (earlier ones are 'overdue').
- holiday: holidays from the care calendar in the window (no customer).
- Sections of other features, when they are installed: points_expiring (points that expire in the window),
  feedback_overdue (open feedback past its deadline, or due in the window), churn_risk (tier A customers at
  high churn risk today, assessed live with the `crm churn scan` rules; status 'logged' after a win-back
  follow-up in the last 14 days), survey_due (complaints resolved in the last 30 days whose customer has not
  been invited to a survey about it yet).
Post-purchase survey invitations have no schedule in the store: they are chosen when
`crm survey invite --after-purchase 3d` runs (put that in cron).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlmodel import Session

from crmcli.core import care
from crmcli.core.context import StoreContext
from crmcli.i18n import N_, Message, _
from crmcli.store.models import Customer, Interaction, Purchase

C = Customer.__table__
I = Interaction.__table__  # noqa: E741
P = Purchase.__table__

SECTIONS: dict[str, str] = {
    "follow_up": N_("Follow-ups"),
    "feedback_overdue": N_("Overdue feedback"),
    "churn_risk": N_("Tier A at high churn risk"),
    "birthday": N_("Birthdays"),
    "anniversary": N_("First-purchase anniversaries"),
    "holiday": N_("Holidays"),
    "points_expiring": N_("Points expiring"),
    "survey_due": N_("Surveys due"),
}


def _row(section: str, today: date, day: date | None, *, customer_id: int | None = None, code: str | None = None,
         name: str | None = None, detail: str = "", contact: str | None = None, status: str | None = None) -> dict[str, Any]:
    return {"section": section, "date": day, "in_days": (day - today).days if day else None,
            "customer_id": customer_id, "code": code, "name": name, "detail": detail, "contact": contact,
            "status": status}


def _alive() -> Any:
    return and_(C.c.deleted_at.is_(None), C.c.erased_at.is_(None))


def birthdays(session: Session, today: date, end: date) -> list[dict[str, Any]]:
    due = care.birthdays_due(session, today, end)
    sent = care.sent_occasions(session, [g.customer_id for g in due], sorted({g.occasion for g in due}))
    rows = []
    for g in due:
        born = g.extra["born"]
        detail = Message(N_("turns {age}"), age=g.extra["age"])
        if (born.month, born.day) == (2, 29) and g.day.day == 28:
            detail = Message(N_("{detail} {note}"), detail=detail,
                             note=Message(N_("(born on 29 February, celebrated on the 28th)")))
        rows.append(_row("birthday", today, g.day, customer_id=g.customer_id, code=g.code, name=g.name, detail=detail,
                         status="sent" if (g.customer_id, g.occasion) in sent else None))
    rows.sort(key=lambda x: (x["date"], x["code"] or ""))
    return rows


def anniversaries(session: Session, today: date, end: date) -> list[dict[str, Any]]:
    first = (select(P.c.customer_id.label("cid"), func.min(P.c.purchased_on).label("first_on"))
             .where(P.c.kind == "sale").group_by(P.c.customer_id)
             .having(care.month_day_condition(func.min(P.c.purchased_on), today, end)).subquery("first"))
    rows = []
    for r in session.execute(select(C.c.id, C.c.code, C.c.name, first.c.first_on)
                             .select_from(C.join(first, first.c.cid == C.c.id)).where(_alive()).order_by(C.c.code)):
        day = care.occurrence_in(r.first_on, today, end)
        if day is None or day.year <= r.first_on.year:
            continue
        years = day.year - r.first_on.year
        rows.append(_row("anniversary", today, day, customer_id=r.id, code=r.code, name=r.name,
                         detail=Message(N_("{years} year(s) since the first purchase on {date}"), years=years,
                                        date=r.first_on)))
    return rows


def follow_ups(session: Session, today: date, end: date) -> list[dict[str, Any]]:
    rows = []
    listed: set[tuple[int, date]] = set()
    for r in session.execute(select(C.c.id, C.c.code, C.c.name, C.c.next_follow_up)
                             .where(_alive(), C.c.next_follow_up.is_not(None), C.c.next_follow_up <= end)
                             .order_by(C.c.next_follow_up, C.c.code)):
        listed.add((r.id, r.next_follow_up))
        overdue = r.next_follow_up < today
        rows.append(_row("follow_up", today, r.next_follow_up, customer_id=r.id, code=r.code, name=r.name,
                         detail=Message(N_("follow-up planned")), status="overdue" if overdue else None))
    later = I.alias("later")
    pending = (select(I.c.customer_id, I.c.next_date, I.c.summary, C.c.code, C.c.name)
               .join(C, C.c.id == I.c.customer_id)
               .where(_alive(), I.c.next_date.is_not(None), I.c.next_date <= end,
                      ~select(later.c.id).where(later.c.customer_id == I.c.customer_id,
                                                later.c.occurred_at > I.c.occurred_at).exists())
               .order_by(I.c.next_date, C.c.code))
    for r in session.execute(pending):
        if (r.customer_id, r.next_date) in listed:
            continue
        listed.add((r.customer_id, r.next_date))
        summary = r.summary if len(r.summary) <= 60 else r.summary[:59] + "…"
        rows.append(_row("follow_up", today, r.next_date, customer_id=r.customer_id, code=r.code, name=r.name,
                         detail=Message(N_("after: {summary}"), summary=summary),
                         status="overdue" if r.next_date < today else None))
    rows.sort(key=lambda x: (x["date"], x["code"] or ""))
    return rows


def holidays(session: Session, today: date, end: date) -> list[dict[str, Any]]:
    return [_row("holiday", today, h["date"], detail=h["title"], code=None, name=None, status=None)
            for h in care.occurrences(session, today, end)]


def agenda(session: Session, ctx: StoreContext, days: int = 7, *,
           sections: list[str] | None = None) -> list[dict[str, Any]]:
    """Every row of the agenda, section by section (SECTIONS order), with contacts filled in."""
    from crmcli.core.customers import primary_contacts
    from crmcli.core.reports import features

    today = ctx.today
    end = today + timedelta(days=max(days, 1) - 1)
    found: dict[str, list[dict[str, Any]]] = {
        "follow_up": follow_ups(session, today, end),
        "birthday": birthdays(session, today, end),
        "anniversary": anniversaries(session, today, end),
        "holiday": holidays(session, today, end),
    }
    found.update(features.agenda_sections(session, ctx, today, end))
    rows = [r for key in SECTIONS if key in found and (not sections or key in sections) for r in found[key]]
    ids = sorted({r["customer_id"] for r in rows if r["customer_id"] is not None})
    contacts = primary_contacts(session, ids)
    for r in rows:
        if r["customer_id"] is not None and not r["contact"]:
            c = contacts.get(r["customer_id"], {})
            r["contact"] = c.get("phone") or c.get("email")
    return rows


def available_sections() -> list[str]:
    return list(SECTIONS)
