"""Feedback and after-sales follow-up: complaints, suggestions, praise and service requests, each with a
response deadline from a policy per kind and priority kept in the store (table ``feedback_policy``).

Life cycle: open → resolved → closed, and ``reopen`` from resolved or closed (a reopened item gets a new
deadline counted from the reopening). An item is *handled* when it is resolved, or closed without a
resolution. The deadline is in clock hours (nights and weekends count).

"Missed stays missed": the ``missed`` flag is set when an item is resolved or closed after its deadline,
and never cleared — not by a later resolution, nor by reopening. An open item past its deadline is
*overdue*, and counts as missed in every statistic from that moment on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, select, update
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core.clock import local_to_utc, start_of_day_utc, utc_to_local, utcnow
from crmcli.core.context import StoreContext
from crmcli.core.customers import CHANNELS as CONTACT_CHANNELS
from crmcli.core.customers import clean_text
from crmcli.errors import Conflict, InvalidInput, NotFound
from crmcli.i18n import _
from crmcli.store.models import Customer
from crmcli.store.models_feedback import Feedback, FeedbackEvent, FeedbackPolicy, SurveyResponse

KINDS = ("complaint", "suggestion", "praise", "service")
PRIORITIES = ("low", "normal", "high", "urgent")
STATUSES = ("open", "resolved", "closed")
CHANNELS = (*CONTACT_CHANNELS, "survey", "review", "web")
FOLLOWUP_KIND = "complaint"

F = Feedback.__table__
FE = FeedbackEvent.__table__
FP = FeedbackPolicy.__table__
C = Customer.__table__


# ------------------------------------------------------------------------------------------- parsing

def _choice(value: str, choices: tuple[str, ...], field: str, what: str) -> str:
    v = value.strip().lower()
    if v not in choices:
        raise InvalidInput(_("'{value}' is not a {what}.").format(value=value, what=what), field=field, value=value,
                           hint=_("Use one of: {choices}.").format(choices=", ".join(choices)))
    return v


def parse_kind(value: str) -> str:
    return _choice(value, KINDS, "kind", _("feedback kind"))


def parse_priority(value: str) -> str:
    return _choice(value, PRIORITIES, "priority", _("priority"))


def parse_status(value: str) -> str:
    return _choice(value, STATUSES, "status", _("status"))


def parse_channel(value: str) -> str:
    return _choice(value, CHANNELS, "channel", _("channel"))


_HOURS = re.compile(r"^(\d{1,5})\s*(h|hours?|d|days?|w|weeks?|小时|天|周)?$")


def parse_hours(text: str, field: str = "deadline") -> int | None:
    """'24h', '24', '2d', '1w' → hours; 'none' (or '-') → no deadline."""
    s = text.strip().lower()
    if s in ("none", "-", "no", "无"):
        return None
    m = _HOURS.match(s)
    if not m or int(m[1]) == 0 or int(m[1]) > 24 * 366:
        raise InvalidInput(_("'{value}' is not a deadline.").format(value=text), field=field, value=text,
                           hint=_("Give hours or days, e.g. 24h, 48, 3d or 1w; or none for no deadline."))
    unit = (m[2] or "h")[0]
    factor = {"h": 1, "小": 1, "d": 24, "天": 24, "w": 168, "周": 168}[unit]
    hours = int(m[1]) * factor
    if hours > 24 * 366:
        raise InvalidInput(_("'{value}' is not a deadline.").format(value=text), field=field, value=text,
                           hint=_("At most one year."))
    return hours


def parse_ref(text: str) -> int:
    s = text.strip().lstrip("#")
    if not s.isdigit() or len(s) > 12:
        raise InvalidInput(_("'{value}' is not a feedback number.").format(value=text), field="id", value=text,
                           hint=_("Use the number shown by `crm feedback list`, e.g. 12 or #12."))
    return int(s)


# ---------------------------------------------------------------------------------------------- time

def now_for(ctx: StoreContext) -> datetime:
    """The moment a command acts at: now, or with --as-of the as-of day at the current clock time."""
    now = utcnow()
    local = utc_to_local(now, ctx.tz)
    if local.date() == ctx.today:
        return now
    return local_to_utc(datetime.combine(ctx.today, local.time().replace(microsecond=0)), ctx.tz)


def moment(text: str | None, ctx: StoreContext, field: str = "at") -> datetime:
    """--at TEXT (a local date or date and time, not in the future) → aware UTC; None → now_for(ctx)."""
    if text is None or not text.strip():
        return now_for(ctx)
    from crmcli.core.dates import parse_datetime

    local = parse_datetime(text, today=ctx.today, field=field)
    if local.date() > ctx.today:
        raise InvalidInput(_("{field} {value} is in the future.").format(field="--" + field, value=text),
                           field=field, value=text, hint=_("Give a past date and time, or pass --as-of."))
    return local_to_utc(local, ctx.tz)


def reference_time(text: str | None, ctx: StoreContext) -> datetime:
    """The 'now' of a listing: none → now; a date → the end of that day; a date and time → that moment."""
    if text is None or not text.strip():
        return utcnow()
    from crmcli.core.dates import parse_datetime

    local = parse_datetime(text, today=ctx.today, field="as-of")
    if ":" in text:
        return local_to_utc(local, ctx.tz)
    return start_of_day_utc(local.date() + timedelta(days=1), ctx.tz) - timedelta(seconds=1)


# -------------------------------------------------------------------------------------------- policy

def policy_hours(session: Session, kind: str, priority: str) -> int | None:
    row = session.execute(select(FP.c.hours).where(FP.c.kind == kind, FP.c.priority == priority)).first()
    return row[0] if row else None


def policy(session: Session) -> list[dict[str, Any]]:
    stored = {(r.kind, r.priority): r for r in session.execute(select(FP))}
    rows = []
    for kind in KINDS:
        for priority in PRIORITIES:
            r = stored.get((kind, priority))
            rows.append({"kind": kind, "priority": priority, "hours": r.hours if r else None,
                         "changed_at": r.changed_at if r else None})
    return rows


def set_policy(session: Session, kind: str, priority: str, deadline: str) -> tuple[int | None, int | None]:
    """Set the deadline of one kind/priority; returns (before, after). Open items keep their deadline."""
    k, p = parse_kind(kind), parse_priority(priority)
    hours = parse_hours(deadline)
    before = policy_hours(session, k, p)
    exists_ = session.execute(select(FP.c.kind).where(FP.c.kind == k, FP.c.priority == p)).first()
    now = utcnow()
    if exists_:
        session.execute(update(FP).where(FP.c.kind == k, FP.c.priority == p).values(hours=hours, changed_at=now))
    else:
        session.execute(insert(FP).values(kind=k, priority=p, hours=hours, changed_at=now))
    if before != hours or not exists_:
        audit.record(session, entity="feedback_policy", entity_id=None, action="set",
                     before={"kind": k, "priority": p, "hours": before}, after={"kind": k, "priority": p, "hours": hours})
    return before, hours


# --------------------------------------------------------------------------------------------- items

def _text(value: str, field: str, *, required: bool = True, max_len: int = 10_000) -> str | None:
    text = clean_text(value, field, max_len=max_len)
    if required and not text:
        raise InvalidInput(_("The {field} must not be empty.").format(field=field), field=field, value=value,
                           hint=_("Say what the customer told you, e.g. --text 'The parcel arrived damaged'."))
    return text or None


def _event(session: Session, item_id: int, at: datetime, action: str, text: str | None = None) -> None:
    session.execute(insert(FE).values(feedback_id=item_id, at=at, actor=audit.actor(), action=action, text=text))


def _view(item: Feedback) -> dict[str, Any]:
    return {k: getattr(item, k) for k in ("kind", "priority", "channel", "text", "status", "assignee", "opened_at",
                                          "due_at", "missed", "resolved_at", "resolution", "closed_at",
                                          "response_id")}


def open_item(session: Session, customer: Customer, ctx: StoreContext, *, kind: str, text: str,
              priority: str = "normal", channel: str | None = None, assignee: str | None = None,
              at: str | None = None, response_id: int | None = None) -> Feedback:
    assert customer.id is not None
    if customer.erased_at is not None:
        raise Conflict(_("{customer} has been erased.").format(customer=customer.code))
    k, p = parse_kind(kind), parse_priority(priority)
    ch = parse_channel(channel) if channel else None
    body = _text(text, "text")
    who = clean_text(assignee, "assignee", max_len=100) or None if assignee else None
    opened = moment(at, ctx)
    hours = policy_hours(session, k, p)
    now = utcnow()
    item = Feedback(customer_id=customer.id, kind=k, priority=p, channel=ch, text=body or "", status="open",
                    assignee=who, opened_at=opened, due_at=opened + timedelta(hours=hours) if hours else None,
                    missed=False, response_id=response_id, created_at=now, updated_at=now)
    session.add(item)
    session.flush()
    assert item.id is not None
    _event(session, item.id, opened, "open", None)
    if who:
        _event(session, item.id, opened, "assign", who)
    audit.record(session, entity="feedback", entity_id=item.id, customer_id=customer.id, action="add", after=_view(item))
    return item


def get_item(session: Session, ref: str | int) -> Feedback:
    item_id = ref if isinstance(ref, int) else parse_ref(ref)
    item = session.get(Feedback, item_id)
    if item is None:
        raise NotFound(_("No feedback #{id}.").format(id=item_id),
                       hint=_("See the numbers with `crm feedback list`."))
    return item


def _change(session: Session, item: Feedback, action: str, before: dict[str, Any], text: str | None, at: datetime) -> None:
    assert item.id is not None
    item.updated_at = utcnow()
    session.add(item)
    session.flush()
    _event(session, item.id, at, action, text)
    after = _view(item)
    audit.record(session, entity="feedback", entity_id=item.id, customer_id=item.customer_id, action=action,
                 before={k: v for k, v in before.items() if after.get(k) != v} or None,
                 after={k: v for k, v in after.items() if before.get(k) != v} or ({"text": text} if text else None))


def _not_before_opened(item: Feedback, at: datetime, value: str | None) -> None:
    if at < item.opened_at:
        raise InvalidInput(_("{when} is before feedback #{id} was opened ({opened}).").format(
            when=value or at.isoformat(), id=item.id, opened=item.opened_at.isoformat(timespec="minutes")),
            field="at", value=value)


def assign(session: Session, item: Feedback, who: str, ctx: StoreContext) -> None:
    if item.status == "closed":
        raise Conflict(_("Feedback #{id} is closed.").format(id=item.id),
                       hint=_("Reopen it first: crm feedback reopen {id}").format(id=item.id))
    name = clean_text(who, "assignee", max_len=100)
    if not name:
        raise InvalidInput(_("The assignee must not be empty."), field="assignee", value=who)
    if name == item.assignee:
        return
    before = _view(item)
    item.assignee = name
    _change(session, item, "assign", before, name, now_for(ctx))


def add_note(session: Session, item: Feedback, text: str, ctx: StoreContext, at: str | None = None) -> None:
    body = _text(text, "note")
    when = moment(at, ctx)
    _not_before_opened(item, when, at)
    _change(session, item, "note", _view(item), body, when)


def resolve(session: Session, item: Feedback, resolution: str, ctx: StoreContext, at: str | None = None) -> bool:
    """Resolve an open item; returns whether this resolution met the current deadline (the item's ``missed``
    flag may still be set from an earlier cycle)."""
    if item.status != "open":
        raise Conflict(_("Feedback #{id} is already {status}.").format(id=item.id, status=_(item.status)),
                       hint=_("Reopen it first: crm feedback reopen {id}").format(id=item.id))
    body = _text(resolution, "resolution")
    when = moment(at, ctx)
    _not_before_opened(item, when, at)
    before = _view(item)
    item.status, item.resolved_at, item.resolution = "resolved", when, body
    late = item.due_at is not None and when > item.due_at
    if late:
        item.missed = True
    _change(session, item, "resolve", before, body, when)
    return not late


def reopen(session: Session, item: Feedback, ctx: StoreContext, reason: str | None = None,
           at: str | None = None) -> None:
    if item.status == "open":
        raise Conflict(_("Feedback #{id} is already open.").format(id=item.id))
    body = _text(reason, "reason", required=False) if reason else None
    when = moment(at, ctx)
    last = item.closed_at or item.resolved_at or item.opened_at
    if when < last:
        raise InvalidInput(_("{when} is before the item was last handled ({last}).").format(
            when=at or when.isoformat(), last=last.isoformat(timespec="minutes")), field="at", value=at)
    before = _view(item)
    hours = policy_hours(session, item.kind, item.priority)
    item.status, item.resolved_at, item.resolution, item.closed_at = "open", None, None, None
    item.due_at = when + timedelta(hours=hours) if hours else None
    _change(session, item, "reopen", before, body, when)


def close(session: Session, item: Feedback, ctx: StoreContext, note: str | None = None, at: str | None = None) -> None:
    if item.status == "closed":
        raise Conflict(_("Feedback #{id} is already closed.").format(id=item.id))
    body = _text(note, "note", required=False) if note else None
    when = moment(at, ctx)
    _not_before_opened(item, when, at)
    if item.resolved_at is not None and when < item.resolved_at:
        raise InvalidInput(_("{when} is before the item was resolved.").format(when=at or when), field="at", value=at)
    before = _view(item)
    if item.status == "open" and item.due_at is not None and when > item.due_at:
        item.missed = True
    item.status, item.closed_at = "closed", when
    _change(session, item, "close", before, body, when)


# --------------------------------------------------------------------------------------------- reads

def state_of(status: str, due_at: datetime | None, missed: bool, now: datetime) -> tuple[str, bool]:
    """(display state, missed now): open items past their deadline are 'overdue' and count as missed."""
    overdue = status == "open" and due_at is not None and now > due_at
    return ("overdue" if overdue else status), bool(missed or overdue)


def _overdue_clause(now: datetime) -> Any:
    return and_(F.c.status == "open", F.c.due_at.is_not(None), F.c.due_at < now)


@dataclass
class ListFilter:
    open_only: bool = False
    overdue: bool = False
    missed: bool = False
    kinds: list[str] | None = None
    priorities: list[str] | None = None
    status: str | None = None
    customer_id: int | None = None
    assignee: str | None = None
    since: date | None = None
    until: date | None = None
    limit: int | None = None


def list_items(session: Session, ctx: StoreContext, now: datetime, flt: ListFilter) -> list[dict[str, Any]]:
    stmt = select(F, C.c.code, C.c.name).join(C, C.c.id == F.c.customer_id)
    if flt.open_only:
        stmt = stmt.where(F.c.status == "open")
    if flt.overdue:
        stmt = stmt.where(_overdue_clause(now))
    if flt.missed:
        stmt = stmt.where(or_(F.c.missed.is_(True), _overdue_clause(now)))
    if flt.kinds:
        stmt = stmt.where(F.c.kind.in_([parse_kind(k) for k in flt.kinds]))
    if flt.priorities:
        stmt = stmt.where(F.c.priority.in_([parse_priority(p) for p in flt.priorities]))
    if flt.status:
        stmt = stmt.where(F.c.status == parse_status(flt.status))
    if flt.customer_id is not None:
        stmt = stmt.where(F.c.customer_id == flt.customer_id)
    if flt.assignee:
        stmt = stmt.where(func.lower(F.c.assignee) == flt.assignee.strip().lower())
    if flt.since:
        stmt = stmt.where(F.c.opened_at >= start_of_day_utc(flt.since, ctx.tz))
    if flt.until:
        stmt = stmt.where(F.c.opened_at < start_of_day_utc(flt.until + timedelta(days=1), ctx.tz))
    if flt.overdue:
        stmt = stmt.order_by(F.c.due_at, F.c.id)
    else:
        stmt = stmt.order_by(case((F.c.status == "open", 0), else_=1), F.c.due_at.is_(None), F.c.due_at, F.c.id)
    if flt.limit:
        stmt = stmt.limit(flt.limit)
    return [_row(r, now) for r in session.execute(stmt).mappings()]


def _row(r: Any, now: datetime) -> dict[str, Any]:
    display, missed = state_of(r["status"], r["due_at"], r["missed"], now)
    hours_left = None
    if r["status"] == "open" and r["due_at"] is not None:
        hours_left = round((r["due_at"] - now).total_seconds() / 3600, 1)
    return {"id": r["id"], "customer_code": r["code"], "customer_name": r["name"], "kind": r["kind"],
            "priority": r["priority"], "channel": r["channel"], "status": display, "assignee": r["assignee"],
            "opened_at": r["opened_at"], "due_at": r["due_at"], "hours_left": hours_left, "missed": missed,
            "resolved_at": r["resolved_at"], "closed_at": r["closed_at"], "text": r["text"],
            "resolution": r["resolution"], "response_id": r["response_id"]}


def detail(session: Session, item: Feedback, now: datetime) -> dict[str, Any]:
    r = session.execute(select(F, C.c.code, C.c.name).join(C, C.c.id == F.c.customer_id)
                        .where(F.c.id == item.id)).mappings().one()
    data = _row(r, now)
    data["events"] = [{"at": e.at, "actor": e.actor, "action": e.action, "text": e.text} for e in session.execute(
        select(FE).where(FE.c.feedback_id == item.id).order_by(FE.c.at, FE.c.id))]
    data["response"] = None
    if item.response_id:
        from crmcli.store.models_feedback import Survey

        resp = session.execute(
            select(SurveyResponse.__table__, Survey.__table__.c.name.label("survey"))
            .join(Survey.__table__, Survey.__table__.c.id == SurveyResponse.__table__.c.survey_id)
            .where(SurveyResponse.__table__.c.id == item.response_id)).mappings().first()
        if resp:
            data["response"] = {"id": resp["id"], "survey": resp["survey"], "kind": resp["kind"],
                                "score": resp["score"], "comment": resp["comment"], "at": resp["responded_at"]}
    return data


def counts(session: Session, now: datetime) -> dict[str, int]:
    """Open and overdue items right now (for the report summary and the agenda)."""
    row = session.execute(select(
        func.coalesce(func.sum(case((F.c.status == "open", 1), else_=0)), 0),
        func.coalesce(func.sum(case((_overdue_clause(now), 1), else_=0)), 0))).one()
    return {"open": int(row[0]), "overdue": int(row[1])}


def handled_in_time(session: Session, since: date | None = None, until: date | None = None, *,
                    now: datetime | None = None) -> dict[str, Any]:
    """Share of feedback handled within its deadline, for items opened between ``since`` and ``until``
    (business dates in the store's time zone, both inclusive; None = unbounded), as of ``now``.

    Items without a deadline are left out (counted in ``no_deadline``). ``missed`` = missed before or still
    overdue now; ``in_time`` = handled (resolved or closed) and never missed; ``pending`` = open and not
    yet due. ``share`` = in_time / (in_time + missed), or None when nothing has been decided yet.
    """
    tz = StoreContext.load(session).tz
    when = now or utcnow()
    missed_now = or_(F.c.missed.is_(True), _overdue_clause(when))
    with_deadline = F.c.due_at.is_not(None)
    stmt = select(
        func.count(),
        func.coalesce(func.sum(case((and_(with_deadline, missed_now), 1), else_=0)), 0),
        func.coalesce(func.sum(case((and_(with_deadline, ~missed_now, F.c.status != "open"), 1), else_=0)), 0),
        func.coalesce(func.sum(case((and_(with_deadline, ~missed_now, F.c.status == "open"), 1), else_=0)), 0),
        func.coalesce(func.sum(case((with_deadline, 0), else_=1)), 0))
    if since:
        stmt = stmt.where(F.c.opened_at >= start_of_day_utc(since, tz))
    if until:
        stmt = stmt.where(F.c.opened_at < start_of_day_utc(until + timedelta(days=1), tz))
    total, missed, in_time, pending, no_deadline = (int(v) for v in session.execute(stmt).one())
    decided = missed + in_time
    return {"total": total, "in_time": in_time, "missed": missed, "pending": pending, "no_deadline": no_deadline,
            "share": (in_time / decided) if decided else None}


# ------------------------------------------------------------------------------- survey follow-ups

def followup_priority(session: Session) -> str | None:
    from crmcli.core import settings

    value = settings.get(session, "survey.followup_priority")
    return None if value == "none" else str(value)


def followup_text(metric: str, score: int, survey: str, comment: str | None) -> str:
    text = _("Low {metric} score {score} in survey '{survey}': call the customer back.").format(
        metric=metric.upper(), score=score, survey=survey)
    return text + (f" “{comment}”" if comment else "")


def open_followups(session: Session, items: list[dict[str, Any]], at: datetime) -> list[int]:
    """Open one follow-up per detractor response in bulk. ``items``: customer_id, response_id, text.
    Returns the new feedback ids (in order)."""
    priority = followup_priority(session)
    if not items or priority is None:
        return []
    hours = policy_hours(session, FOLLOWUP_KIND, priority)
    now = utcnow()
    due = at + timedelta(hours=hours) if hours else None
    rows = [{"customer_id": it["customer_id"], "kind": FOLLOWUP_KIND, "priority": priority,
             "channel": "survey", "text": it["text"], "status": "open", "assignee": None, "opened_at": at,
             "due_at": due, "missed": False, "resolved_at": None, "resolution": None, "closed_at": None,
             "response_id": it["response_id"], "created_at": now, "updated_at": now} for it in items]
    ids = [r[0] for r in session.execute(insert(F).returning(F.c.id, sort_by_parameter_order=True), rows)]
    for item_id, r in zip(ids, rows):
        r["id"] = item_id
    actor = audit.actor()
    session.execute(insert(FE), [{"feedback_id": r["id"], "at": at, "actor": actor, "action": "open",
                                  "text": None} for r in rows])
    audit.record_many(session, [{"entity": "feedback", "entity_id": r["id"], "customer_id": r["customer_id"],
                                 "action": "add", "after": {k: r[k] for k in ("kind", "priority", "channel", "text",
                                                                              "due_at", "response_id")}}
                                for r in rows])
    return [r["id"] for r in rows]


# ------------------------------------------------------------------------------------- privacy hooks

def customer_data(session: Session, customer_id: int) -> tuple[str, Any]:
    """hooks.CUSTOMER_DATA: the customer's feedback items with their thread."""
    items = []
    for item in session.execute(select(F).where(F.c.customer_id == customer_id).order_by(F.c.id)).mappings():
        events = [{"at": e.at, "action": e.action, "text": e.text, "actor": e.actor} for e in session.execute(
            select(FE).where(FE.c.feedback_id == item["id"]).order_by(FE.c.at, FE.c.id))]
        items.append({k: item[k] for k in ("id", "kind", "priority", "channel", "text", "status", "assignee",
                                           "opened_at", "due_at", "missed", "resolved_at", "resolution",
                                           "closed_at", "response_id")} | {"events": events})
    return "feedback", items


def erase_customer(session: Session, customer_id: int) -> None:
    """hooks.CUSTOMER_ERASE: clear the free text of the customer's feedback (kinds, dates and deadlines stay,
    so the share handled in time stays correct)."""
    ids = [r[0] for r in session.execute(select(F.c.id).where(F.c.customer_id == customer_id))]
    if not ids:
        return
    session.execute(update(F).where(F.c.id.in_(ids)).values(text="", resolution=None))
    session.execute(update(FE).where(FE.c.feedback_id.in_(ids)).values(text=None))


__all__ = ["KINDS", "PRIORITIES", "CHANNELS", "open_item", "get_item", "assign", "add_note", "resolve", "reopen",
           "close", "list_items", "detail", "counts", "handled_in_time", "policy", "set_policy"]
