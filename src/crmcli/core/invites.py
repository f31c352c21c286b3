"""Survey invitations: who to invite, their unique response tokens, personalised messages, and the
mail-merge CSV.

Selection (all given criteria must hold): live customers; tags (all of them); tier / segment (any of them,
through hooks.CLASSIFICATION); a sale between two dates; a sale exactly N days ago (post-purchase surveys,
``grace`` extra days to catch up after a missed cron run); a complaint resolved in the last N days.

Exclusions, each person counted once under the first that applies:
1. ``already_surveyed`` — already invited to this survey for the same purchase or the same resolved complaint;
2. ``recently_invited`` — invited to any survey in the last N days (default 30; 0 turns it off);
3. ``no_consent`` — no granted consent for the channel (no consent recorded counts as no);
4. ``no_contact`` — no address for the channel (e-mail; phone for sms and phone; a WeChat handle).
Failed e-mail sends do not count as invitations.
"""

from __future__ import annotations

import csv
import os
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import exists, func, insert, or_, select, update
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core import feedback as fb
from crmcli.core.clock import start_of_day_utc
from crmcli.core.context import StoreContext
from crmcli.core.customers import CONSENT_CHANNELS, parse_tag
from crmcli.core.surveys import check_template, questions, scale_text
from crmcli.errors import Conflict, InvalidInput
from crmcli.i18n import N_, _
from crmcli.store.models import Consent, ContactPoint, Customer, CustomerTag, Purchase
from crmcli.store.models_feedback import Feedback, Survey, SurveyInvite

C = Customer.__table__
CP = ContactPoint.__table__
TAG = CustomerTag.__table__
P = Purchase.__table__
CON = Consent.__table__
I = SurveyInvite.__table__  # noqa: E741
F = Feedback.__table__

TOKEN_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"  # no 0/O, 1/I/L or U: easy to read out on the phone
TOKEN_LENGTH = 8
EXCLUSIONS = ("already_surveyed", "recently_invited", "no_consent", "no_contact")
DEFAULT_MESSAGE = N_("Hello {name}, thank you for shopping with us! {question}")
DEFAULT_SCALE = N_("Please answer {scale}.")
DEFAULT_CODE = N_("Your response code: {token}")
CSV_COLUMNS = ("code", "name", "channel", "contact", "token", "link", "message")


@dataclass
class Selection:
    channel: str = "email"
    tags: list[str] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    customer_ids: list[int] | None = None
    purchased_since: date | None = None
    purchased_until: date | None = None
    after_purchase_days: int | None = None
    grace_days: int = 0
    resolved_within_days: int | None = None
    skip_invited_within_days: int = 30
    limit: int | None = None


@dataclass
class Candidate:
    customer_id: int
    code: str
    name: str
    contact: str | None = None
    purchase_id: int | None = None
    feedback_id: int | None = None


@dataclass
class SelectionResult:
    candidates: list[Candidate]
    matched: int
    excluded: dict[str, int]
    over_limit: int = 0


@dataclass
class Invitation:
    id: int
    token: str
    candidate: Candidate
    link: str
    message: str


def parse_channel(value: str) -> str:
    v = value.strip().lower()
    if v not in CONSENT_CHANNELS:
        raise InvalidInput(_("'{value}' is not an invitation channel.").format(value=value), field="channel", value=value,
                           hint=_("Use one of: {choices}.").format(choices=", ".join(CONSENT_CHANNELS)))
    return v


def select_candidates(session: Session, survey: Survey, sel: Selection, ctx: StoreContext) -> SelectionResult:
    assert survey.id is not None
    channel = parse_channel(sel.channel)
    today = ctx.today
    cols: list[Any] = [C.c.id, C.c.code, C.c.name]
    stmt_from: Any = C
    already: list[Any] = []
    conditions: list[Any] = [C.c.deleted_at.is_(None), C.c.erased_at.is_(None)]
    for tag in sel.tags:
        t = parse_tag(tag)
        conditions.append(exists().where(TAG.c.customer_id == C.c.id, func.lower(TAG.c.tag) == t.lower()))
    if sel.customer_ids is not None:
        conditions.append(C.c.id.in_(sel.customer_ids))
    if sel.tiers or sel.segments:
        from crmcli.core.surveys import class_condition

        conditions.append(class_condition(session, C.c.id, tiers=sel.tiers, segments=sel.segments))
    if sel.purchased_since or sel.purchased_until:
        cond = [P.c.customer_id == C.c.id, P.c.kind == "sale"]
        if sel.purchased_since:
            cond.append(P.c.purchased_on >= sel.purchased_since)
        if sel.purchased_until:
            cond.append(P.c.purchased_on <= sel.purchased_until)
        conditions.append(exists().where(*cond))
    if sel.after_purchase_days is not None:
        if sel.after_purchase_days < 0 or sel.grace_days < 0:
            raise InvalidInput(_("Days after purchase cannot be negative."), field="after-purchase",
                               value=sel.after_purchase_days)
        hi = today - timedelta(days=sel.after_purchase_days)
        lo = hi - timedelta(days=sel.grace_days)
        sale = (select(P.c.customer_id.label("cid"), func.max(P.c.id).label("pid"))
                .where(P.c.kind == "sale", P.c.purchased_on >= lo, P.c.purchased_on <= hi)
                .group_by(P.c.customer_id).subquery("sale"))
        stmt_from = stmt_from.join(sale, sale.c.cid == C.c.id)
        cols.append(sale.c.pid.label("purchase_id"))
        already.append(exists().where(I.c.survey_id == survey.id, I.c.purchase_id == sale.c.pid, I.c.status != "failed"))
    if sel.resolved_within_days is not None:
        if sel.resolved_within_days < 1:
            raise InvalidInput(_("--resolved-within must be at least one day."), field="resolved-within",
                               value=sel.resolved_within_days)
        since = start_of_day_utc(today - timedelta(days=sel.resolved_within_days), ctx.tz)
        until = start_of_day_utc(today + timedelta(days=1), ctx.tz)
        done = (select(F.c.customer_id.label("cid"), func.max(F.c.id).label("fid"))
                .where(F.c.kind == fb.FOLLOWUP_KIND, F.c.status != "open", F.c.resolved_at.is_not(None),
                       F.c.resolved_at >= since, F.c.resolved_at < until)
                .group_by(F.c.customer_id).subquery("done"))
        stmt_from = stmt_from.join(done, done.c.cid == C.c.id)
        cols.append(done.c.fid.label("feedback_id"))
        already.append(exists().where(I.c.survey_id == survey.id, I.c.feedback_id == done.c.fid, I.c.status != "failed"))
    flags: list[Any] = [or_(*already).label("already")] if already else []
    if sel.skip_invited_within_days < 0:
        raise InvalidInput(_("--skip-invited-within cannot be negative."), field="skip-invited-within",
                           value=sel.skip_invited_within_days)
    if sel.skip_invited_within_days:
        cutoff = start_of_day_utc(today - timedelta(days=sel.skip_invited_within_days - 1), ctx.tz)
        flags.append(exists().where(I.c.customer_id == C.c.id, I.c.status != "failed",
                                    I.c.invited_at >= cutoff).label("recent"))
    flags.append(exists().where(CON.c.customer_id == C.c.id, CON.c.channel == channel,
                                CON.c.granted.is_(True)).label("consent"))
    stmt = select(*cols, *flags).select_from(stmt_from).where(*conditions).order_by(C.c.code)
    rows = list(session.execute(stmt).mappings())

    excluded = dict.fromkeys(EXCLUSIONS, 0)
    keep = []
    for r in rows:
        if r.get("already"):
            excluded["already_surveyed"] += 1
        elif r.get("recent"):
            excluded["recently_invited"] += 1
        elif not r["consent"]:
            excluded["no_consent"] += 1
        else:
            keep.append(r)
    contacts = contacts_for(session, [r["id"] for r in keep], channel)
    candidates = []
    for r in keep:
        contact = contacts.get(r["id"])
        if not contact:
            excluded["no_contact"] += 1
            continue
        candidates.append(Candidate(r["id"], r["code"], r["name"], contact, r.get("purchase_id"), r.get("feedback_id")))
    over = 0
    if sel.limit is not None and len(candidates) > sel.limit:
        over = len(candidates) - sel.limit
        candidates = candidates[: sel.limit]
    return SelectionResult(candidates, matched=len(rows), excluded=excluded, over_limit=over)


def contacts_for(session: Session, ids: list[int], channel: str) -> dict[int, str]:
    """The first address of each customer for the channel (chunked IN lists)."""
    kind, label = {"email": ("email", None), "sms": ("phone", None), "phone": ("phone", None),
                   "wechat": ("social", "wechat")}[channel]
    out: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        stmt = (select(CP.c.customer_id, CP.c.value).where(CP.c.customer_id.in_(chunk), CP.c.kind == kind)
                .order_by(CP.c.customer_id, CP.c.position, CP.c.id))
        if label:
            stmt = stmt.where(CP.c.label == label)
        for cid, value in session.execute(stmt):
            out.setdefault(cid, value)
    return out


def new_tokens(session: Session, n: int) -> list[str]:
    tokens: list[str] = []
    taken: set[str] = set()
    while len(tokens) < n:
        batch = {"".join(secrets.choice(TOKEN_ALPHABET) for _i in range(TOKEN_LENGTH)) for _j in range(n - len(tokens))}
        batch -= taken
        for start in range(0, len(batch), 500):
            chunk = list(batch)[start:start + 500]
            taken |= {r[0] for r in session.execute(select(I.c.token).where(I.c.token.in_(chunk)))}
        fresh = [t for t in batch if t not in taken]
        taken |= set(fresh)
        tokens.extend(fresh)
    return tokens[:n]


def template_for(survey: Survey, message: str | None) -> str:
    if message:
        return check_template(message)
    if survey.message:
        return survey.message
    return ""


def render(template: str, survey: Survey, q1: dict[str, Any], candidate: Candidate, token: str) -> tuple[str, str]:
    """(link, message) for one person; an empty template gives the default message in the interface language."""
    link = survey.link.format(token=token) if survey.link else ""
    scale = scale_text(q1)
    values = {"name": candidate.name, "code": candidate.code, "survey": survey.name, "question": q1["text"],
              "scale": scale, "token": token, "link": link}
    if template:
        return link, template.format(**values)
    parts = [_(DEFAULT_MESSAGE).format(**values)]
    if scale and q1["kind"] != "text":
        parts.append(_(DEFAULT_SCALE).format(**values))
    if link:
        parts.append(link)
    parts.append(_(DEFAULT_CODE).format(**values))
    return link, " ".join(parts)


def create_invites(session: Session, survey: Survey, candidates: list[Candidate], ctx: StoreContext, *,
                   channel: str, method: str, status: str, message: str | None = None) -> list[Invitation]:
    """Record one invitation per candidate (with a fresh token) and render their messages."""
    assert survey.id is not None
    if survey.status != "open":
        raise Conflict(_("The survey '{name}' is closed.").format(name=survey.name),
                       hint=_("Reopen it first: crm survey reopen '{name}'").format(name=survey.name))
    template = template_for(survey, message)
    if not candidates:
        return []
    q1 = questions(session, survey.id)[0]
    tokens = new_tokens(session, len(candidates))
    at = fb.now_for(ctx)
    rows = [{"survey_id": survey.id, "customer_id": c.customer_id, "token": t, "channel": channel, "method": method,
             "status": status, "error": None, "invited_at": at, "purchase_id": c.purchase_id,
             "feedback_id": c.feedback_id} for c, t in zip(candidates, tokens)]
    ids = [r[0] for r in session.execute(insert(I).returning(I.c.id, sort_by_parameter_order=True), rows)]
    audit.record_many(session, [{"entity": "survey_invite", "entity_id": i, "customer_id": r["customer_id"],
                                 "action": "invite", "after": {"survey": survey.name, "channel": channel,
                                                               "method": method, "status": status}}
                                for i, r in zip(ids, rows)])
    out = []
    for i, c, t in zip(ids, candidates, tokens):
        link, text = render(template, survey, q1, c, t)
        out.append(Invitation(i, t, c, link, text))
    return out


def mark_sent(session: Session, outcomes: Iterable[tuple[int, str | None]]) -> None:
    """After sending: (invite id, error or None) → status sent / failed."""
    items = list(outcomes)
    for invite_id, error in items:
        session.execute(update(I).where(I.c.id == invite_id).values(
            status="failed" if error else "sent", error=(error or None) and error[:300]))
    audit.record_many(session, [{"entity": "survey_invite", "entity_id": i, "action": "send",
                                 "after": {"status": "failed" if e else "sent", "error": e}} for i, e in items])


def _cell(value: str) -> str:
    """Neutralise spreadsheet formulas (=, +, -, @, tab, CR at the start) with a leading apostrophe; a phone
    number in E.164 (+ and digits only) stays as it is so mail-merge and SMS tools can use it."""
    if value and value[0] in "=+-@\t\r" and not (value[0] == "+" and value[1:].isdigit()):
        return "'" + value
    return value


def write_csv(invitations: list[Invitation], channel: str, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for inv in invitations:
        writer.writerow([_cell(v) for v in (inv.candidate.code, inv.candidate.name, channel,
                                            inv.candidate.contact or "", inv.token, inv.link, inv.message)])


def write_csv_file(path: Path, invitations: list[Invitation], channel: str) -> None:
    """Write atomically (a temporary file renamed into place), readable by the owner only."""
    directory = path.resolve().parent
    fd, tmp = tempfile.mkstemp(prefix=".crm-invites-", suffix=".csv", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as f:
            write_csv(invitations, channel, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def subject_for(survey: Survey, subject: str | None) -> str:
    if subject:
        from crmcli.core.customers import clean_text

        text = clean_text(subject, "subject", max_len=200)
        if "\n" in text:
            raise InvalidInput(_("The subject must be one line."), field="subject", value=subject)
        return text
    return _("A quick question from us: {survey}").format(survey=survey.name)


__all__ = ["Selection", "Candidate", "SelectionResult", "Invitation", "select_candidates", "create_invites",
           "mark_sent", "write_csv", "write_csv_file", "subject_for", "EXCLUSIONS"]
