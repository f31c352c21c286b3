"""Satisfaction surveys: definitions (NPS 0–10, CSAT 1–5, CES 1–7, custom questions), responses recorded by
command or imported from a file, results, and the latest score on the customer card.

Every response keeps one answer per question (table ``survey_answer``); the first scored answer is also kept
on the response (``kind``, ``score``) for the card and quick listings. A detractor — NPS 0–6 or CSAT 1–2 —
opens a follow-up feedback item linked to the response (setting ``survey.followup_priority``).
Invitations live in crmcli.core.invites; the formulas in crmcli.core.survey_stats.
"""

from __future__ import annotations

import csv
import json
import re
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, case, exists, extract, func, insert, select, update
from sqlmodel import Session

from crmcli.core import audit, hooks
from crmcli.core import feedback as fb
from crmcli.core.clock import local_to_utc, start_of_day_utc, utc_to_local, utcnow
from crmcli.core.context import StoreContext
from crmcli.core.customers import clean_text
from crmcli.errors import Conflict, CrmError, InvalidInput, NotFound
from crmcli.i18n import N_, _
from crmcli.store.models import ContactPoint, Customer
from crmcli.store.models_feedback import Survey, SurveyAnswer, SurveyInvite, SurveyQuestion, SurveyResponse

KINDS = ("nps", "csat", "ces", "custom")
QUESTION_KINDS = ("nps", "csat", "ces", "scale", "choice", "text")
SCALES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
SCORED = ("nps", "csat", "ces", "scale")
DEFAULT_QUESTIONS = {
    "nps": N_("How likely are you to recommend us to a friend or colleague?"),
    "csat": N_("How satisfied were you with your purchase?"),
    "ces": N_("How easy was it to get what you needed from us?"),
}
PLACEHOLDERS = ("name", "code", "survey", "question", "scale", "token", "link")
MAX_COMMENT = 5_000

S = Survey.__table__
Q = SurveyQuestion.__table__
I = SurveyInvite.__table__  # noqa: E741
R = SurveyResponse.__table__
A = SurveyAnswer.__table__
C = Customer.__table__
CP = ContactPoint.__table__


# ----------------------------------------------------------------------------------------- definitions

@dataclass
class QuestionSpec:
    kind: str
    text: str
    scale_min: int | None = None
    scale_max: int | None = None
    choices: list[str] | None = None

    def bounds(self) -> tuple[int, int]:
        if self.kind in SCALES:
            return SCALES[self.kind]
        assert self.scale_min is not None and self.scale_max is not None
        return self.scale_min, self.scale_max


_QSPEC = re.compile(r"^\s*(?P<kind>nps|csat|ces|text|scale\s*\(\s*(?P<lo>-?\d+)\s*-\s*(?P<hi>-?\d+)\s*\)"
                    r"|choice\s*\((?P<choices>[^)]*)\))\s*[:：]\s*(?P<text>.*)$", re.IGNORECASE | re.DOTALL)

QUESTION_HINT = N_("Write TYPE:QUESTION with TYPE one of nps, csat, ces, text, scale(1-10) or choice(A|B|C), "
                   "e.g. 'scale(1-10):How was the food?' or 'choice(Lunch|Dinner):Which meal?'.")


def parse_question(text: str) -> QuestionSpec | None:
    """'scale(1-10):How was the food?' → QuestionSpec; a text without a type prefix → None."""
    m = _QSPEC.match(text)
    if not m:
        return None
    kind = m["kind"].split("(")[0].strip().lower()
    body = clean_text(m["text"], "question", max_len=500)
    if not body:
        raise InvalidInput(_("The question '{value}' has no text.").format(value=text), field="question", value=text,
                           hint=_(QUESTION_HINT))
    if kind == "scale":
        lo, hi = int(m["lo"]), int(m["hi"])
        if not (0 <= lo < hi <= 100):
            raise InvalidInput(_("The scale of '{value}' must run upwards within 0-100, e.g. scale(1-10).").format(
                value=text), field="question", value=text)
        return QuestionSpec("scale", body, lo, hi)
    if kind == "choice":
        choices = [clean_text(c, "choice", max_len=100) for c in m["choices"].split("|")]
        choices = [c for c in choices if c]
        if len(choices) < 2 or len({c.casefold() for c in choices}) != len(choices):
            raise InvalidInput(_("'{value}' needs at least two different choices separated by |.").format(value=text),
                               field="question", value=text, hint=_(QUESTION_HINT))
        return QuestionSpec("choice", body, choices=choices)
    return QuestionSpec(kind, body)


def _questions_for(kind: str, raw: list[str]) -> list[QuestionSpec]:
    if kind == "custom":
        if not raw:
            raise InvalidInput(_("A custom survey needs at least one --question."), field="question",
                               hint=_(QUESTION_HINT))
        out = []
        for text in raw:
            spec = parse_question(text)
            if spec is None:
                raise InvalidInput(_("'{value}' does not say what kind of question it is.").format(value=text),
                                   field="question", value=text, hint=_(QUESTION_HINT))
            out.append(spec)
        return out
    main: str | None = None
    extra: list[QuestionSpec] = []
    for text in raw:
        spec = parse_question(text)
        if spec is not None:
            extra.append(spec)
        elif main is None:
            main = clean_text(text, "question", max_len=500)
        else:
            raise InvalidInput(_("Only one --question may reword the main {kind} question.").format(kind=kind.upper()),
                               field="question", value=text,
                               hint=_("Extra questions need a type, e.g. 'text:What could we do better?'."))
    return [QuestionSpec(kind, main or _(DEFAULT_QUESTIONS[kind])), *extra]


def parse_kind(value: str) -> str:
    v = value.strip().lower()
    if v not in KINDS:
        raise InvalidInput(_("'{value}' is not a survey kind.").format(value=value), field="kind", value=value,
                           hint=_("Use one of: {choices}.").format(choices=", ".join(KINDS)))
    return v


def check_template(template: str, field: str = "message") -> str:
    text = clean_text(template, field, max_len=5_000)
    try:
        names = {f for _lit, f, _spec, _conv in string.Formatter().parse(text) if f is not None}
    except ValueError as e:
        raise InvalidInput(_("The {field} template is not valid ({error}).").format(field=field, error=e),
                           field=field, value=template, hint=_("Write placeholders as {{name}}; a literal brace as {{{{."))
    unknown = sorted(n for n in names if n not in PLACEHOLDERS)
    if unknown:
        raise InvalidInput(_("The {field} template uses an unknown placeholder {{{name}}}.").format(
            field=field, name=unknown[0]), field=field, value=template,
            hint=_("Known placeholders: {names}.").format(names=", ".join("{" + p + "}" for p in PLACEHOLDERS)))
    return text


def create_survey(session: Session, name: str, kind: str, *, questions: list[str] | None = None,
                  message: str | None = None, link: str | None = None) -> Survey:
    title = clean_text(name, "name", max_len=80)
    if not title:
        raise InvalidInput(_("The survey name must not be empty."), field="name", value=name)
    if title.isdigit():
        raise InvalidInput(_("A survey name cannot be only digits (numbers are survey ids)."), field="name",
                           value=name, hint=_("Add a word, e.g. 'NPS 2025'."))
    k = parse_kind(kind)
    specs = _questions_for(k, questions or [])
    if len(specs) > 50:
        raise InvalidInput(_("A survey has at most 50 questions."), field="question")
    if session.execute(select(S.c.id).where(func.lower(S.c.name) == title.lower())).first():
        raise Conflict(_("A survey named '{name}' already exists.").format(name=title),
                       hint=_("Choose another name, or see it with `crm survey show '{name}'`.").format(name=title))
    tmpl = check_template(message) if message else None
    url = None
    if link:
        url = check_template(link, "link")
        if "{token}" not in url:
            raise InvalidInput(_("The link must contain {token}, so each answer can be matched to its invitation."),
                               field="link", value=link, hint=_("e.g. https://forms.example.com/s?t={token}"))
    survey = Survey(name=title, kind=k, status="open", message=tmpl, link=url, created_at=utcnow())
    session.add(survey)
    session.flush()
    assert survey.id is not None
    session.execute(insert(Q), [{"survey_id": survey.id, "position": i + 1, "kind": q.kind, "text": q.text,
                                 "scale_min": q.scale_min, "scale_max": q.scale_max,
                                 "choices": json.dumps(q.choices, ensure_ascii=False) if q.choices else None}
                                for i, q in enumerate(specs)])
    audit.record(session, entity="survey", entity_id=survey.id, action="add",
                 after={"name": title, "kind": k, "questions": [f"{q.kind}:{q.text}" for q in specs],
                        "message": tmpl, "link": url})
    return survey


def get_survey(session: Session, ref: str) -> Survey:
    text = ref.strip()
    row = None
    if text.isdigit():
        row = session.get(Survey, int(text))
    if row is None:
        row = session.execute(select(Survey).where(func.lower(Survey.name) == text.lower())).scalars().first()
    if row is None:
        raise NotFound(_("No survey '{ref}'.").format(ref=ref), hint=_("See the surveys with `crm survey list`."))
    return row


def questions(session: Session, survey_id: int) -> list[dict[str, Any]]:
    return [{"id": r.id, "position": r.position, "kind": r.kind, "text": r.text,
             "scale_min": SCALES[r.kind][0] if r.kind in SCALES else r.scale_min,
             "scale_max": SCALES[r.kind][1] if r.kind in SCALES else r.scale_max,
             "choices": json.loads(r.choices) if r.choices else None}
            for r in session.execute(select(Q).where(Q.c.survey_id == survey_id).order_by(Q.c.position))]


def set_status(session: Session, survey: Survey, status: str) -> bool:
    if survey.status == status:
        return False
    before = survey.status
    survey.status = status
    survey.closed_at = utcnow() if status == "closed" else None
    session.add(survey)
    session.flush()
    audit.record(session, entity="survey", entity_id=survey.id, action="close" if status == "closed" else "reopen",
                 before={"status": before}, after={"status": status})
    return True


def counts(session: Session, survey_ids: list[int] | None = None) -> dict[int, dict[str, int]]:
    """Per survey: invitations (not failed), invitations answered, responses."""
    out: dict[int, dict[str, int]] = {}
    inv = select(I.c.survey_id, func.count(), func.count(R.c.id)).select_from(
        I.outerjoin(R, R.c.invite_id == I.c.id)).where(I.c.status != "failed").group_by(I.c.survey_id)
    for sid, n, answered in session.execute(inv):
        out.setdefault(sid, {"invited": 0, "answered": 0, "responses": 0}).update(invited=n, answered=answered)
    for sid, n in session.execute(select(R.c.survey_id, func.count()).group_by(R.c.survey_id)):
        out.setdefault(sid, {"invited": 0, "answered": 0, "responses": 0})["responses"] = n
    if survey_ids is not None:
        return {i: out.get(i, {"invited": 0, "answered": 0, "responses": 0}) for i in survey_ids}
    return out


def list_surveys(session: Session, *, include_closed: bool = True) -> list[dict[str, Any]]:
    stmt = select(S).order_by(S.c.created_at.desc(), S.c.id.desc())
    if not include_closed:
        stmt = stmt.where(S.c.status == "open")
    rows = list(session.execute(stmt).mappings())
    stats = counts(session, [r["id"] for r in rows])
    nq = dict(session.execute(select(Q.c.survey_id, func.count()).group_by(Q.c.survey_id)).all())
    out = []
    for r in rows:
        c = stats[r["id"]]
        head = headline_score(session, r["id"], r["kind"])
        out.append({"id": r["id"], "name": r["name"], "kind": r["kind"], "status": r["status"],
                    "questions": int(nq.get(r["id"], 0)), "invited": c["invited"], "responses": c["responses"],
                    "response_rate": _rate(c["answered"], c["invited"]), "score": head,
                    "created_at": r["created_at"], "closed_at": r["closed_at"]})
    return out


def _rate(answered: int, invited: int) -> float | None:
    return round(100 * answered / invited, 1) if invited else None


def headline_score(session: Session, survey_id: int, kind: str) -> float | None:
    from crmcli.core import survey_stats

    if kind == "custom":
        return None
    hist = dict(session.execute(select(R.c.score, func.count()).where(R.c.survey_id == survey_id,
                                                                      R.c.score.is_not(None)).group_by(R.c.score)).all())
    value = survey_stats.headline(kind, survey_stats.metric(kind, hist))
    return round(value, 1) if value is not None else None


def scale_text(q: dict[str, Any]) -> str:
    if q["kind"] in SCORED:
        return f"{q['scale_min']}-{q['scale_max']}"
    if q["kind"] == "choice":
        return " / ".join(q["choices"] or [])
    return ""


def survey_info(session: Session, survey: Survey) -> dict[str, Any]:
    assert survey.id is not None
    qs = questions(session, survey.id)
    c = counts(session, [survey.id])[survey.id]
    return {"id": survey.id, "name": survey.name, "kind": survey.kind, "status": survey.status,
            "created_at": survey.created_at, "closed_at": survey.closed_at, "message": survey.message,
            "link": survey.link, "questions": qs, "invited": c["invited"], "answered_invites": c["answered"],
            "responses": c["responses"], "response_rate": _rate(c["answered"], c["invited"]),
            "score": headline_score(session, survey.id, survey.kind)}


# ------------------------------------------------------------------------------------------ answers

def _bad(field: str, value: Any, message: str, hint: str | None = None) -> InvalidInput:
    return InvalidInput(message, field=field, value=value, hint=hint)


def parse_answer(q: dict[str, Any], raw: str, field: str) -> dict[str, Any]:
    """One raw answer → {'score'|'choice'|'text': value}; InvalidInput naming the question otherwise."""
    value = raw.strip()
    if q["kind"] in SCORED:
        lo, hi = q["scale_min"], q["scale_max"]
        label = q["kind"].upper() if q["kind"] in SCALES else _("scale")
        if not re.fullmatch(r"[+-]?\d{1,4}", value):
            raise _bad(field, raw, _("'{value}' is not a whole number for question {n} ({kind} {lo}-{hi}).").format(
                value=raw, n=q["position"], kind=label, lo=lo, hi=hi),
                _("Give a whole number from {lo} to {hi}.").format(lo=lo, hi=hi))
        score = int(value)
        if not lo <= score <= hi:
            raise _bad(field, raw, _("{value} is outside the {kind} scale {lo}-{hi} of question {n}.").format(
                value=score, kind=label, lo=lo, hi=hi, n=q["position"]),
                _("Give a whole number from {lo} to {hi}.").format(lo=lo, hi=hi))
        return {"score": score}
    if q["kind"] == "choice":
        for choice in q["choices"] or []:
            if choice.casefold() == value.casefold():
                return {"choice": choice}
        raise _bad(field, raw, _("'{value}' is not one of the choices of question {n}.").format(value=raw, n=q["position"]),
                   _("Use one of: {choices}.").format(choices=", ".join(q["choices"] or [])))
    return {"text": clean_text(raw, field, max_len=MAX_COMMENT) or None}


@dataclass
class ResponseInput:
    score: str | None = None  # the answer to question 1
    answers: dict[int, str] = field(default_factory=dict)  # question position → raw answer
    comment: str | None = None
    channel: str | None = None
    at: str | None = None
    token: str | None = None


def parse_answer_option(text: str) -> tuple[int, str]:
    """'2=Lunch' → (2, 'Lunch')."""
    pos, sep, value = text.partition("=")
    if not sep or not pos.strip().lstrip("qQ").isdigit():
        raise InvalidInput(_("'{value}' is not an answer.").format(value=text), field="answer", value=text,
                           hint=_("Write N=ANSWER with N the question number, e.g. --answer 2=Lunch."))
    return int(pos.strip().lstrip("qQ")), value


def build_answers(qs: list[dict[str, Any]], data: ResponseInput, *, kind: str,
                  field_of: Any = None) -> tuple[dict[int, dict[str, Any]], str | None]:
    """Validated answers by question id, and the cleaned comment."""
    by_pos = {q["position"]: q for q in qs}
    raw: dict[int, str] = {}
    if data.score is not None and data.score.strip() != "":
        raw[1] = data.score
    for pos, value in data.answers.items():
        if pos not in by_pos:
            raise InvalidInput(_("The survey has no question {n}.").format(n=pos),
                               field=field_of(pos) if field_of else "answer", value=value,
                               hint=_("Its questions are numbered 1 to {n}.").format(n=len(qs)))
        if pos == 1 and 1 in raw and value.strip() != raw[1].strip():
            raise InvalidInput(_("Question 1 is answered twice ('{a}' and '{b}').").format(a=raw[1], b=value),
                               field="answer", value=value)
        if value.strip() != "":
            raw[pos] = value
    answers: dict[int, dict[str, Any]] = {}
    for pos, value in raw.items():
        q = by_pos[pos]
        parsed = parse_answer(q, value, field_of(pos) if field_of else ("score" if pos == 1 else f"answer {pos}"))
        if any(v is not None for v in parsed.values()):
            answers[q["id"]] = {"position": pos, "kind": q["kind"], **parsed}
    comment = clean_text(data.comment, "comment", max_len=MAX_COMMENT) or None if data.comment else None
    if kind != "custom" and by_pos[1]["id"] not in answers:
        lo, hi = by_pos[1]["scale_min"], by_pos[1]["scale_max"]
        raise InvalidInput(_("{kind} responses need a score from {lo} to {hi}.").format(kind=kind.upper(), lo=lo, hi=hi),
                           field="score", value=data.score,
                           hint=_("e.g. crm survey record SURVEY CUSTOMER {hi} --comment 'Great service'.").format(hi=hi))
    if not answers and not comment:
        raise InvalidInput(_("The response has no answers."), field="answer",
                           hint=_("Give the answer to question 1, --answer N=ANSWER, or --comment."))
    return answers, comment


def primary(answers: dict[int, dict[str, Any]]) -> tuple[str | None, int | None]:
    scored = sorted((a for a in answers.values() if a.get("score") is not None), key=lambda a: a["position"])
    return (scored[0]["kind"], scored[0]["score"]) if scored else (None, None)


def detractor(answers: dict[int, dict[str, Any]]) -> tuple[str, int] | None:
    """The first NPS 0–6 or CSAT 1–2 answer, which calls for a follow-up."""
    for a in sorted(answers.values(), key=lambda a: a["position"]):
        s = a.get("score")
        if s is None:
            continue
        if (a["kind"] == "nps" and s <= 6) or (a["kind"] == "csat" and s <= 2):
            return a["kind"], s
    return None


def _check_open(survey: Survey) -> None:
    if survey.status != "open":
        raise Conflict(_("The survey '{name}' is closed.").format(name=survey.name),
                       hint=_("Reopen it to record answers: crm survey reopen '{name}'").format(name=survey.name))


def find_invite(session: Session, survey: Survey, token: str) -> Any:
    row = session.execute(select(I).where(func.upper(I.c.token) == token.strip().upper())).mappings().first()
    if row is None or row["survey_id"] != survey.id:
        raise NotFound(_("No invitation of survey '{name}' has the token '{token}'.").format(name=survey.name, token=token),
                       hint=_("Check the code the customer gave; tokens are in the invitation CSV."))
    return row


def _answered(session: Session, invite_id: int) -> int | None:
    return session.execute(select(R.c.id).where(R.c.invite_id == invite_id)).scalar()


def _open_invite(session: Session, survey_id: int, customer_id: int) -> int | None:
    """The customer's latest unanswered invitation to this survey."""
    return session.execute(
        select(I.c.id).where(I.c.survey_id == survey_id, I.c.customer_id == customer_id, I.c.status != "failed",
                             ~exists().where(R.c.invite_id == I.c.id))
        .order_by(I.c.invited_at.desc(), I.c.id.desc()).limit(1)).scalar()


@dataclass
class Recorded:
    response_id: int
    customer_id: int
    kind: str | None
    score: int | None
    followup_id: int | None
    invite_id: int | None


def record_response(session: Session, survey: Survey, customer: Customer | None, data: ResponseInput,
                    ctx: StoreContext) -> Recorded:
    """Record one response (by command). ``customer`` may be None when ``data.token`` names the invitation."""
    assert survey.id is not None
    _check_open(survey)
    invite = None
    if data.token:
        invite = find_invite(session, survey, data.token)
        if customer is not None and customer.id != invite["customer_id"]:
            raise Conflict(_("The token '{token}' was sent to another customer.").format(token=data.token),
                           hint=_("Leave out the customer or the token."))
        if customer is None:
            customer = session.get(Customer, invite["customer_id"])
    if customer is None or customer.id is None:
        raise InvalidInput(_("Say who answered: a customer or --token."), field="customer")
    if customer.erased_at is not None or customer.deleted_at is not None:
        raise Conflict(_("{customer} is deleted.").format(customer=customer.code))
    invite_id = invite["id"] if invite else _open_invite(session, survey.id, customer.id)
    if invite_id is not None:
        done = _answered(session, invite_id)
        if done:
            raise Conflict(_("That invitation was already answered (response #{id}).").format(id=done),
                           hint=_("Each invitation takes one response."))
    qs = questions(session, survey.id)
    answers, comment = build_answers(qs, data, kind=survey.kind)
    when = fb.moment(data.at, ctx)
    channel = fb.parse_channel(data.channel) if data.channel else None
    if channel is None and invite_id is not None:
        channel = session.execute(select(I.c.channel).where(I.c.id == invite_id)).scalar()
    kind, score = primary(answers)
    row = {"survey_id": survey.id, "customer_id": customer.id, "invite_id": invite_id, "kind": kind, "score": score,
           "comment": comment, "channel": channel, "source": "command", "responded_at": when,
           "responded_on": utc_to_local(when, ctx.tz).date(), "created_at": utcnow()}
    rid = _insert_responses(session, [row], [answers])[0]
    audit.record(session, entity="survey_response", entity_id=rid, customer_id=customer.id, action="add",
                 after={"survey": survey.name, "score": score, "kind": kind, "comment": comment,
                        "answers": {str(a["position"]): a.get("score", a.get("choice", a.get("text")))
                                    for a in answers.values()}})
    followup = None
    bad = detractor(answers)
    if bad:
        ids = fb.open_followups(session, [{"customer_id": customer.id, "response_id": rid,
                                           "text": fb.followup_text(bad[0], bad[1], survey.name, comment)}],
                                fb.now_for(ctx))
        followup = ids[0] if ids else None
    return Recorded(rid, customer.id, kind, score, followup, invite_id)


def _insert_responses(session: Session, rows: list[dict[str, Any]], answers: list[dict[int, dict[str, Any]]]) -> list[int]:
    if not rows:
        return []
    ids = [r[0] for r in session.execute(insert(R).returning(R.c.id, sort_by_parameter_order=True), rows)]
    answer_rows = [{"response_id": rid, "question_id": qid, "score": a.get("score"), "choice": a.get("choice"),
                    "text": a.get("text")}
                   for rid, ans in zip(ids, answers) for qid, a in ans.items()]
    if answer_rows:
        session.execute(insert(A), answer_rows)
    return ids


# ------------------------------------------------------------------------------------------- import

HEADER_ALIASES = {
    "token": ("token", "responsetoken", "responsecode", "令牌", "回复码", "问卷码", "邀请码"),
    "code": ("code", "customer", "customercode", "customerid", "客户", "客户编号", "编号", "会员号"),
    "phone": ("phone", "mobile", "tel", "telephone", "phonenumber", "手机", "电话", "手机号", "手机号码"),
    "email": ("email", "e-mail", "mail", "emailaddress", "邮箱", "电子邮件", "邮件"),
    "score": ("score", "rating", "nps", "csat", "ces", "分数", "评分", "打分"),
    "comment": ("comment", "comments", "feedback", "remarks", "评论", "意见", "留言", "备注", "建议"),
    "date": ("date", "respondedat", "respondedon", "time", "timestamp", "submittedat", "日期", "时间", "提交时间"),
    "channel": ("channel", "渠道", "方式"),
}


def _norm_header(text: str) -> str:
    return re.sub(r"[\s_\-.]+", "", text.strip().lower().lstrip("\ufeff"))


def map_headers(headers: list[str], qs: list[dict[str, Any]]) -> tuple[dict[int, str], list[str]]:
    """Column index → field ('token', 'score', 'q2', ...); and the ignored headers."""
    alias = {_norm_header(a): f for f, names in HEADER_ALIASES.items() for a in names}
    by_text = {_norm_header(q["text"]): f"q{q['position']}" for q in qs}
    mapping: dict[int, str] = {}
    ignored: list[str] = []
    for i, h in enumerate(headers):
        key = _norm_header(h)
        m = re.fullmatch(r"(?:q|question|问题)(\d{1,3})", key)
        positions = {q["position"] for q in qs}
        if m:
            target = f"q{int(m[1])}" if int(m[1]) in positions else None
        else:
            target = alias.get(key) or by_text.get(key)
        if target and target not in mapping.values():
            mapping[i] = target
        else:
            ignored.append(h)
    return mapping, ignored


@dataclass
class Reject:
    line: int
    column: str | None
    value: Any
    reason: str
    row: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    read: int = 0
    created: int = 0
    unchanged: int = 0
    rejected: int = 0
    followups: int = 0
    rejects: list[Reject] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    written: bool = False


def read_rows(path: str, *, encoding: str | None = None, delimiter: str | None = None,
              stdin: Any = None) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """Headers and (line number, cells) of a CSV/TSV file ('-' = stdin). UTF-8 (with or without BOM) by
    default, GB18030 (Excel in China) when the file is not UTF-8; the delimiter is sniffed."""
    import io
    import sys

    if path == "-":
        data = (stdin or sys.stdin.buffer).read()
    else:
        data = Path(path).read_bytes()
    text = None
    for enc in ([encoding] if encoding else ["utf-8-sig", "gb18030"]):
        try:
            text = data.decode(enc)
            break
        except (UnicodeDecodeError, LookupError) as e:
            if encoding:
                raise InvalidInput(_("{path} cannot be read as {encoding} ({error}).").format(
                    path=path, encoding=encoding, error=e), field="encoding", value=encoding,
                    hint=_("Try --encoding utf-8 or --encoding gb18030.")) from None
    if text is None:
        raise InvalidInput(_("{path} is neither UTF-8 nor GB18030 text.").format(path=path), field="encoding",
                           hint=_("Pass --encoding, e.g. --encoding utf-16."))
    if text.startswith("\ufeff"):
        text = text[1:]
    if delimiter is None:
        first = text.split("\n", 1)[0]
        delimiter = max((",", ";", "\t"), key=first.count) if first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        headers = next(reader)
    except StopIteration:
        raise InvalidInput(_("{path} is empty.").format(path=path), field="file", value=path) from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        line = reader.line_num + 1
        for cells in reader:
            start, line = line, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            yield start, cells

    return headers, rows()


def _chunks(values: Iterable[Any], size: int = 500) -> Iterator[list[Any]]:
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start:start + size]


class _Lookups:
    """Everything the rows of one import refer to, loaded with a few IN queries (not one query per row)."""

    def __init__(self, session: Session, survey_id: int, rows: list[dict[str, str]], region: str | None) -> None:
        from crmcli.core.contacts import normalize_email, try_normalize_phone
        from crmcli.errors import InvalidInput as _Invalid

        self.phone_of: dict[str, str | None] = {}
        self.email_of: dict[str, str | None] = {}
        tokens, codes = set(), set()
        for v in rows:
            if v.get("token", "").strip():
                tokens.add(v["token"].strip().upper())
            if v.get("code", "").strip():
                codes.add(v["code"].strip())
            raw = v.get("phone", "").strip()
            if raw and raw not in self.phone_of:
                self.phone_of[raw] = try_normalize_phone(raw, region)
            raw = v.get("email", "").strip()
            if raw and raw not in self.email_of:
                try:
                    self.email_of[raw] = normalize_email(raw).lower()
                except _Invalid:
                    self.email_of[raw] = None
        live = and_(C.c.deleted_at.is_(None), C.c.erased_at.is_(None))
        self.invites: dict[str, Any] = {}
        for chunk in _chunks(tokens):
            for r in session.execute(select(I).where(I.c.token.in_(chunk))).mappings():
                self.invites[r["token"].upper()] = r
        self.codes: dict[str, list[int]] = {}
        wanted = {c.upper() for c in codes}
        for chunk in _chunks(codes | wanted):  # exact (indexed) first, then any case for the rest
            for cid, code in session.execute(select(C.c.id, C.c.code).where(C.c.code.in_(chunk), live)):
                self.codes.setdefault(code.upper(), []).append(cid)
        for chunk in _chunks(wanted - set(self.codes)):
            for cid, code in session.execute(select(C.c.id, C.c.code).where(func.upper(C.c.code).in_(chunk), live)):
                self.codes.setdefault(code.upper(), []).append(cid)
        self.phones: dict[str, set[int]] = {}
        for chunk in _chunks({p for p in self.phone_of.values() if p}):
            for cid, value in session.execute(select(CP.c.customer_id, CP.c.value).join(C, C.c.id == CP.c.customer_id)
                                              .where(CP.c.kind == "phone", CP.c.value.in_(chunk), live)):
                self.phones.setdefault(value, set()).add(cid)
        self.emails: dict[str, set[int]] = {}
        for chunk in _chunks({e for e in self.email_of.values() if e}):
            for cid, value in session.execute(select(CP.c.customer_id, CP.c.value).join(C, C.c.id == CP.c.customer_id)
                                              .where(CP.c.kind == "email", func.lower(CP.c.value).in_(chunk), live)):
                self.emails.setdefault(value.lower(), set()).add(cid)
        # This survey's stored responses, to recognise a re-import.
        self.answered: dict[int, tuple[int, int | None, str | None]] = {}
        self.with_date: set[tuple[Any, ...]] = set()
        self.without_date: set[tuple[Any, ...]] = set()
        for r in session.execute(select(R.c.id, R.c.invite_id, R.c.customer_id, R.c.score, R.c.comment, R.c.responded_on)
                                 .where(R.c.survey_id == survey_id)):
            if r.invite_id is not None:
                self.answered[r.invite_id] = (r.id, r.score, r.comment)
            self.with_date.add((r.customer_id, r.score, r.comment, r.responded_on))
            self.without_date.add((r.customer_id, r.score, r.comment))
        # Unanswered invitations, latest first per customer: rows matched by code/phone/e-mail answer them.
        self.open_invites: dict[int, list[int]] = {}
        for inv_id, cid in session.execute(
                select(I.c.id, I.c.customer_id).where(I.c.survey_id == survey_id, I.c.status != "failed",
                                                      ~exists().where(R.c.invite_id == I.c.id))
                .order_by(I.c.invited_at.desc(), I.c.id.desc())):
            self.open_invites.setdefault(cid, []).append(inv_id)

    def customer(self, key: str, raw: str) -> int:
        if key == "code":
            ids: Iterable[int] = self.codes.get(raw.upper(), [])
        elif key == "phone":
            norm = self.phone_of.get(raw)
            if norm is None:
                raise InvalidInput(_("not a valid phone number"), field="phone", value=raw)
            ids = self.phones.get(norm, set())
        else:
            norm = self.email_of.get(raw)
            if norm is None:
                from crmcli.core.contacts import normalize_email

                normalize_email(raw)  # raises with the reason
            ids = self.emails.get(norm or "", set())
        found = sorted(set(ids))
        if len(found) > 1:
            raise InvalidInput(_("matches {n} customers").format(n=len(found)), field=key, value=raw)
        if not found:
            raise InvalidInput(_("no customer has this {what}").format(what=_(key)), field=key, value=raw)
        return found[0]


def import_responses(session: Session, survey: Survey, headers: list[str], rows: Iterable[tuple[int, list[str]]],
                     ctx: StoreContext, *, partial: bool = False, dry_run: bool = False,
                     date_format: str | None = None) -> ImportResult:
    """Validate every row, then write all of them (or, with ``partial``, the good ones) in this transaction.
    Nothing is written when a row is rejected (unless ``partial``) or with ``dry_run``."""
    from crmcli.core.dates import parse_datetime

    assert survey.id is not None
    _check_open(survey)
    qs = questions(session, survey.id)
    mapping, ignored = map_headers(headers, qs)
    result = ImportResult(ignored_columns=ignored, headers=headers)
    fields = set(mapping.values())
    if not fields & {"token", "code", "phone", "email"}:
        raise InvalidInput(_("The file has no column to find the customer by."), field="file",
                           hint=_("Add a token, code, phone or email column."))
    if survey.kind != "custom" and not fields & {"score", "q1"}:
        raise InvalidInput(_("The file has no score column."), field="file", hint=_("Add a column named score."))
    col_name = {f: headers[i] for i, f in mapping.items()}
    table = [(line, cells, {f: (cells[i] if i < len(cells) else "") for i, f in mapping.items()})
             for line, cells in rows]
    look = _Lookups(session, survey.id, [v for _l, _c, v in table], ctx.region)
    new_rows: list[dict[str, Any]] = []
    new_answers: list[dict[int, dict[str, Any]]] = []
    followups: list[dict[str, Any]] = []
    seen_tokens: dict[int, int] = {}
    seen_rows: set[tuple[Any, ...]] = set()
    now = fb.now_for(ctx)
    created = utcnow()

    for line, cells, values in table:
        result.read += 1

        def reject(column_field: str | None, value: Any, reason: str) -> None:
            result.rejected += 1
            result.rejects.append(Reject(line, col_name.get(column_field or "", column_field), value, reason, cells))

        try:
            # Who answered: token, then code, phone, e-mail.
            customer_id: int | None = None
            invite: Any = None
            token = values.get("token", "").strip()
            if token:
                invite = look.invites.get(token.upper())
                if invite is None or invite["survey_id"] != survey.id:
                    reject("token", token, _("no invitation of this survey has this token"))
                    continue
                customer_id = invite["customer_id"]
                if invite["id"] in seen_tokens:
                    reject("token", token, _("the same token is on line {line}").format(line=seen_tokens[invite["id"]]))
                    continue
            else:
                for key in ("code", "phone", "email"):
                    raw = values.get(key, "").strip()
                    if raw:
                        customer_id = look.customer(key, raw)
                        break
                if customer_id is None:
                    reject(None, None, _("no token, code, phone or e-mail to find the customer by"))
                    continue
            answers_raw = {int(f[1:]): v for f, v in values.items() if re.fullmatch(r"q\d+", f)}
            data = ResponseInput(score=values.get("score"), answers=answers_raw, comment=values.get("comment"))
            answers, comment = build_answers(
                qs, data, kind=survey.kind,
                field_of=lambda pos: "score" if pos == 1 and "score" in values and "q1" not in values else f"q{pos}")
            raw_date = values.get("date", "").strip()
            if raw_date:
                local = parse_datetime(raw_date, today=ctx.today, field="date", date_format=date_format)
                if local.date() > ctx.today:
                    raise InvalidInput(_("in the future"), field="date", value=raw_date)
                when = local_to_utc(local, ctx.tz)
            else:
                when = now
            raw_channel = values.get("channel", "").strip()
            channel = fb.parse_channel(raw_channel) if raw_channel else (invite["channel"] if invite else None)
        except InvalidInput as e:
            reject(e.field, e.value, e.message.rstrip("."))
            continue
        kind, score = primary(answers)
        on = utc_to_local(when, ctx.tz).date()
        # Re-importing the same file is a no-op: an identical response already stored is "unchanged".
        if invite is not None:
            existing = look.answered.get(invite["id"])
            if existing is not None:
                if existing[1] == score and (existing[2] or None) == comment:
                    result.unchanged += 1
                else:
                    reject("token", token, _("this invitation was already answered differently (response #{id})").format(
                        id=existing[0]))
                continue
            seen_tokens[invite["id"]] = line
        else:
            key = (customer_id, score, comment, on if raw_date else None)
            stored = (customer_id, score, comment, on) in look.with_date if raw_date else \
                (customer_id, score, comment) in look.without_date
            if key in seen_rows or stored:
                result.unchanged += 1
                continue
            seen_rows.add(key)
        new_rows.append({"survey_id": survey.id, "customer_id": customer_id, "invite_id": invite["id"] if invite else None,
                         "kind": kind, "score": score, "comment": comment, "channel": channel, "source": "import",
                         "responded_at": when, "responded_on": on, "created_at": created})
        new_answers.append(answers)
        bad = detractor(answers)
        followups.append({"customer_id": customer_id,
                          "text": fb.followup_text(bad[0], bad[1], survey.name, comment)} if bad else {})

    result.created = len(new_rows)  # written below, or (dry run, rejected rows) what would have been
    if dry_run or (result.rejected and not partial) or not new_rows:
        return result
    # Rows matched by code/phone/e-mail answer the customer's latest unanswered invitation, if any.
    used = {r["invite_id"] for r in new_rows if r["invite_id"] is not None}
    for r in new_rows:
        if r["invite_id"] is None:
            free = [i for i in look.open_invites.get(r["customer_id"], []) if i not in used]
            if free:
                r["invite_id"] = free[0]
                used.add(free[0])
    ids = _insert_responses(session, new_rows, new_answers)
    audit.record_many(session, [{"entity": "survey_response", "entity_id": rid, "customer_id": r["customer_id"],
                                 "action": "import", "after": {"survey": survey.name, "score": r["score"],
                                                               "kind": r["kind"], "comment": r["comment"]}}
                                for rid, r in zip(ids, new_rows)])
    todo = [{**f, "response_id": rid} for rid, f in zip(ids, followups) if f]
    result.followups = len(fb.open_followups(session, todo, now))
    result.written = True
    return result


# ------------------------------------------------------------------------------------------ results

GROUPINGS = ("tier", "segment", "month", "channel")


def _tiers_module() -> Any:
    """crmcli.core.tiers (the classification feature), or None when this build does not have it."""
    try:
        from crmcli.core import tiers
    except ImportError:
        return None
    return tiers if hasattr(tiers, "class_filter") else None


def _unavailable(key: str) -> CrmError:
    return CrmError(_("Customer {what}s are not available in this crmcli.").format(what=_(key)),
                    hint=_("They come with the tiers feature (crm tier); meanwhile select by --tag or purchases."))


def class_condition(session: Session, customer_col: Any, *, tiers: list[str], segments: list[str]) -> Any:
    """An SQL condition: the customer is in one of ``tiers`` and one of ``segments`` (as last computed by
    `crm tier recompute` / `crm tier rfm`)."""
    from sqlalchemy import or_

    mod = _tiers_module()
    if mod is None:
        raise _unavailable("tier" if tiers else "segment")
    conds = []
    if tiers:
        conds.append(or_(*[mod.class_filter(session, customer_col, tier=t) for t in tiers]))
    if segments:
        conds.append(or_(*[mod.class_filter(session, customer_col, segment=s) for s in segments]))
    return and_(*conds)


def classification(session: Session, customer_ids: Iterable[int], key: str) -> dict[int, str | None]:
    """Tier or RFM segment key per customer: from the tiers feature's customer_class table, else (tier only)
    through hooks.CLASSIFICATION; a clear error when neither exists."""
    ids = list(customer_ids)
    if _tiers_module() is not None:
        from crmcli.store.models_tiers import CustomerClass

        cc = CustomerClass.__table__
        col = cc.c.tier if key == "tier" else cc.c.segment
        out: dict[int, str | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            out.update({cid: v for cid, v in session.execute(select(cc.c.customer_id, col)
                                                             .where(cc.c.customer_id.in_(chunk)))})
        return out
    spec = hooks.CLASSIFICATION
    if not spec or key != "tier":
        raise _unavailable(key)
    fn = hooks.load(spec)
    return {cid: ((fn(session, cid) or {}).get("tier") or None) for cid in ids}


def _period(stmt: Any, col: Any, since: date | None, until: date | None, *, is_date: bool, tz: Any) -> Any:
    if since:
        stmt = stmt.where(col >= (since if is_date else start_of_day_utc(since, tz)))
    if until:
        stmt = stmt.where(col <= until if is_date else col < start_of_day_utc(until + timedelta(days=1), tz))
    return stmt


def _month(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def results(session: Session, survey: Survey, ctx: StoreContext, *, by: str | None = None,
            since: date | None = None, until: date | None = None, comments: int = 20) -> dict[str, Any]:
    """Everything `crm survey results` shows (see docs/surveys.md, 'JSON keys')."""
    from crmcli.core import survey_stats

    assert survey.id is not None
    if by is not None and by not in GROUPINGS:
        raise InvalidInput(_("'{value}' is not a grouping.").format(value=by), field="by", value=by,
                           hint=_("Use one of: {choices}.").format(choices=", ".join(GROUPINGS)))
    qs = questions(session, survey.id)
    scored = [q for q in qs if q["kind"] in SCORED]
    main = scored[0] if scored else None

    # Invitations (not failed) in the period, with whether they were answered; bucketed in Python by the
    # invitation's local month, channel or customer class.
    inv_stmt = (select(I.c.id, I.c.customer_id, I.c.channel, I.c.invited_at, R.c.id.label("rid"))
                .select_from(I.outerjoin(R, R.c.invite_id == I.c.id))
                .where(I.c.survey_id == survey.id, I.c.status != "failed"))
    inv_stmt = _period(inv_stmt, I.c.invited_at, since, until, is_date=False, tz=ctx.tz)
    invites = session.execute(inv_stmt).all()

    resp_base = select(R.c.id).where(R.c.survey_id == survey.id)
    resp_base = _period(resp_base, R.c.responded_on, since, until, is_date=True, tz=ctx.tz)
    n_responses = int(session.execute(select(func.count()).select_from(resp_base.subquery())).scalar() or 0)

    def histogram(question_id: int, group: Any = None) -> list[Any]:
        cols = [A.c.score, func.count()]
        stmt = select(*([group] if group is not None else []), *cols).select_from(
            A.join(R, R.c.id == A.c.response_id)).where(A.c.question_id == question_id, A.c.score.is_not(None),
                                                        R.c.survey_id == survey.id)
        stmt = _period(stmt, R.c.responded_on, since, until, is_date=True, tz=ctx.tz)
        group_by = ([group] if group is not None else []) + [A.c.score]
        return list(session.execute(stmt.group_by(*group_by)).all())

    doc: dict[str, Any] = {
        "survey": survey.name, "id": survey.id, "kind": survey.kind, "status": survey.status,
        "since": since, "until": until,
        "invited": len(invites), "answered_invites": sum(1 for r in invites if r.rid is not None),
        "responses": n_responses,
        "response_rate": _rate(sum(1 for r in invites if r.rid is not None), len(invites)),
        "metric": None, "questions": [], "groups": [], "trend": [], "comments": [],
    }
    for q in qs:
        entry: dict[str, Any] = {"position": q["position"], "kind": q["kind"], "text": q["text"]}
        if q["kind"] in SCORED:
            hist = {s: c for s, c in histogram(q["id"])}
            entry["summary"] = rounded(q["kind"], survey_stats.metric(q["kind"], hist, q["scale_min"], q["scale_max"]))
        elif q["kind"] == "choice":
            stmt = select(A.c.choice, func.count()).select_from(A.join(R, R.c.id == A.c.response_id)).where(
                A.c.question_id == q["id"], A.c.choice.is_not(None))
            stmt = _period(stmt, R.c.responded_on, since, until, is_date=True, tz=ctx.tz)
            got = dict(session.execute(stmt.group_by(A.c.choice)).all())
            entry["summary"] = {"n": sum(got.values()), "counts": {c: int(got.get(c, 0)) for c in q["choices"] or []}}
        else:
            stmt = select(func.count()).select_from(A.join(R, R.c.id == A.c.response_id)).where(
                A.c.question_id == q["id"], A.c.text.is_not(None))
            stmt = _period(stmt, R.c.responded_on, since, until, is_date=True, tz=ctx.tz)
            entry["summary"] = {"n": int(session.execute(stmt).scalar() or 0)}
        doc["questions"].append(entry)
    if main:
        doc["metric"] = {"kind": main["kind"], "question": main["position"], **doc["questions"][main["position"] - 1]["summary"]}

        # Monthly trend of the main metric (the chart on a terminal).
        year, month = extract("year", R.c.responded_on), extract("month", R.c.responded_on)
        per_month: dict[str, dict[int, int]] = {}
        tstmt = (select(year, month, A.c.score, func.count()).select_from(A.join(R, R.c.id == A.c.response_id))
                 .where(A.c.question_id == main["id"], A.c.score.is_not(None), R.c.survey_id == survey.id))
        tstmt = _period(tstmt, R.c.responded_on, since, until, is_date=True, tz=ctx.tz).group_by(year, month, A.c.score)
        for y, m, score, n in session.execute(tstmt):
            per_month.setdefault(f"{int(y):04d}-{int(m):02d}", {})[score] = n
        for key in sorted(per_month):
            summary = survey_stats.metric(main["kind"], per_month[key], main["scale_min"], main["scale_max"])
            doc["trend"].append({"month": key, "n": summary["n"],
                                 "value": _round(survey_stats.headline(main["kind"], summary))})

        if by:
            doc["groups"] = _groups(session, survey, main, by, ctx, invites, since, until)

    cstmt = (select(R.c.responded_at, R.c.score, R.c.kind, R.c.comment, C.c.code, C.c.name)
             .join(C, C.c.id == R.c.customer_id)
             .where(R.c.survey_id == survey.id, R.c.comment.is_not(None), R.c.comment != ""))
    cstmt = _period(cstmt, R.c.responded_on, since, until, is_date=True, tz=ctx.tz)
    doc["comments"] = [{"at": r.responded_at, "customer_code": r.code, "customer_name": r.name, "score": r.score,
                        "comment": r.comment}
                       for r in session.execute(cstmt.order_by(R.c.responded_at.desc(), R.c.id.desc()).limit(comments))]
    return doc


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


PERCENT_KEYS = ("nps", "csat", "easy_share")


def rounded(kind: str, summary: dict[str, Any]) -> dict[str, Any]:
    """Percentages to 1 decimal, means and their intervals to 2 decimals."""
    percent = set(PERCENT_KEYS) | ({"ci_low", "ci_high"} if kind in ("nps", "csat") else set())
    return {k: (round(v, 1) if k in percent else round(v, 2)) if isinstance(v, float) else v
            for k, v in summary.items()}


def _groups(session: Session, survey: Survey, main: dict[str, Any], by: str, ctx: StoreContext, invites: list[Any],
            since: date | None, until: date | None) -> list[dict[str, Any]]:
    from crmcli.core import survey_stats

    none = "-"
    hist: dict[str, dict[int, int]] = {}
    invited: dict[str, int] = {}
    answered: dict[str, int] = {}
    if by in ("month", "channel"):
        if by == "month":
            year, month = extract("year", R.c.responded_on), extract("month", R.c.responded_on)
            keys = [year, month]
        else:
            keys = [R.c.channel]
        stmt = (select(*keys, A.c.score, func.count()).select_from(A.join(R, R.c.id == A.c.response_id))
                .where(A.c.question_id == main["id"], A.c.score.is_not(None), R.c.survey_id == survey.id))
        stmt = _period(stmt, R.c.responded_on, since, until, is_date=True, tz=ctx.tz).group_by(*keys, A.c.score)
        for row in session.execute(stmt):
            key = f"{int(row[0]):04d}-{int(row[1]):02d}" if by == "month" else (row[0] or none)
            hist.setdefault(key, {})[row[-2]] = row[-1]
        for inv in invites:
            key = _month(utc_to_local(inv.invited_at, ctx.tz).date()) if by == "month" else (inv.channel or none)
            invited[key] = invited.get(key, 0) + 1
            answered[key] = answered.get(key, 0) + (inv.rid is not None)
    else:
        stmt = (select(R.c.customer_id, A.c.score, func.count()).select_from(A.join(R, R.c.id == A.c.response_id))
                .where(A.c.question_id == main["id"], A.c.score.is_not(None), R.c.survey_id == survey.id))
        stmt = _period(stmt, R.c.responded_on, since, until, is_date=True, tz=ctx.tz).group_by(R.c.customer_id, A.c.score)
        rows = list(session.execute(stmt))
        classes = classification(session, {r[0] for r in rows} | {inv.customer_id for inv in invites}, by)
        for cid, score, n in rows:
            h = hist.setdefault(classes.get(cid) or none, {})
            h[score] = h.get(score, 0) + n
        for inv in invites:
            key = classes.get(inv.customer_id) or none
            invited[key] = invited.get(key, 0) + 1
            answered[key] = answered.get(key, 0) + (inv.rid is not None)
    out = []
    for key in sorted(set(hist) | set(invited), key=lambda k: (k == none, k)):
        summary = rounded(main["kind"], survey_stats.metric(main["kind"], hist.get(key, {}), main["scale_min"],
                                                            main["scale_max"]))
        out.append({"group": key, "invited": invited.get(key, 0), "response_rate": _rate(answered.get(key, 0),
                                                                                         invited.get(key, 0)),
                    **summary})
    return out


def score_summary(session: Session, kind: str = "nps", since: date | None = None, until: date | None = None,
                  survey_id: int | None = None) -> dict[str, Any]:
    """For reports: the NPS (or CSAT/CES) of every answer of that type given between two business dates
    (inclusive; None = unbounded), across all surveys or one; the same keys as `survey results` metric."""
    from crmcli.core import survey_stats

    if kind not in SCALES:
        raise InvalidInput(_("'{value}' is not a survey kind.").format(value=kind), field="kind", value=kind,
                           hint=_("Use one of: {choices}.").format(choices=", ".join(SCALES)))
    stmt = (select(A.c.score, func.count()).select_from(A.join(R, R.c.id == A.c.response_id)
                                                         .join(Q, Q.c.id == A.c.question_id))
            .where(Q.c.kind == kind, A.c.score.is_not(None)))
    if survey_id is not None:
        stmt = stmt.where(R.c.survey_id == survey_id)
    stmt = _period(stmt, R.c.responded_on, since, until, is_date=True, tz=None).group_by(A.c.score)
    hist = {score: n for score, n in session.execute(stmt)}
    return {"kind": kind, **rounded(kind, survey_stats.metric(kind, hist, *SCALES[kind]))}


def responses(session: Session, survey: Survey, ctx: StoreContext, *, since: date | None = None,
              until: date | None = None, detractors: bool = False, limit: int | None = None) -> list[dict[str, Any]]:
    stmt = (select(R, C.c.code, C.c.name, I.c.token).join(C, C.c.id == R.c.customer_id)
            .outerjoin(I, I.c.id == R.c.invite_id).where(R.c.survey_id == survey.id))
    stmt = _period(stmt, R.c.responded_on, since, until, is_date=True, tz=ctx.tz)
    if detractors:
        stmt = stmt.where(((R.c.kind == "nps") & (R.c.score <= 6)) | ((R.c.kind == "csat") & (R.c.score <= 2)))
    stmt = stmt.order_by(R.c.responded_at.desc(), R.c.id.desc())
    if limit:
        stmt = stmt.limit(limit)
    rows = list(session.execute(stmt).mappings())
    ids = [r["id"] for r in rows]
    answers: dict[int, dict[str, Any]] = {}
    followups: dict[int, int] = {}
    if ids:
        for a in session.execute(select(A, Q.c.position).join(Q, Q.c.id == A.c.question_id)
                                 .where(A.c.response_id.in_(ids))).mappings():
            answers.setdefault(a["response_id"], {})[str(a["position"])] = (
                a["score"] if a["score"] is not None else a["choice"] if a["choice"] is not None else a["text"])
        from crmcli.store.models_feedback import Feedback

        F = Feedback.__table__
        followups = dict(session.execute(select(F.c.response_id, F.c.id).where(F.c.response_id.in_(ids))).all())
    return [{"id": r["id"], "at": r["responded_at"], "customer_code": r["code"], "customer_name": r["name"],
             "kind": r["kind"], "score": r["score"], "comment": r["comment"], "channel": r["channel"],
             "source": r["source"], "token": r["token"], "answers": answers.get(r["id"], {}),
             "followup": followups.get(r["id"])} for r in rows]


# -------------------------------------------------------------------------------- the card and privacy

def score_style(kind: str | None, score: int | None, scale_max: int | None = None) -> str | None:
    if kind is None or score is None:
        return None
    if kind == "nps":
        return "good" if score >= 9 else "warn" if score >= 7 else "bad"
    if kind == "csat":
        return "good" if score >= 4 else "warn" if score == 3 else "bad"
    if kind == "ces":
        return "good" if score >= 5 else "warn" if score == 4 else "bad"
    return None


def card_slot(session: Session, customer_id: int, ctx: StoreContext) -> Any:
    """hooks.CARD_SLOTS['satisfaction']: the latest score, and open/overdue feedback."""
    from crmcli.core.card import Slot
    from crmcli.store.models_feedback import Feedback

    row = session.execute(
        select(R.c.kind, R.c.score, R.c.responded_at, S.c.name, R.c.survey_id)
        .join(S, S.c.id == R.c.survey_id)
        .where(R.c.customer_id == customer_id, R.c.score.is_not(None))
        .order_by(R.c.responded_at.desc(), R.c.id.desc()).limit(1)).first()
    F = Feedback.__table__
    now = utcnow()
    open_, overdue = session.execute(select(
        func.count(), func.coalesce(func.sum(case((and_(F.c.due_at.is_not(None), F.c.due_at < now), 1), else_=0)), 0))
        .where(F.c.customer_id == customer_id, F.c.status == "open")).one()
    if row is None and not open_:
        return None
    data: dict[str, Any] = {"kind": None, "score": None, "scale_max": None, "at": None, "survey": None,
                            "open_feedback": int(open_), "overdue_feedback": int(overdue or 0)}
    parts = []
    style = None
    if row is not None:
        scale_max = SCALES[row.kind][1] if row.kind in SCALES else session.execute(
            select(Q.c.scale_max).where(Q.c.survey_id == row.survey_id, Q.c.kind == row.kind)
            .order_by(Q.c.position).limit(1)).scalar()
        at = utc_to_local(row.responded_at, ctx.tz)
        data.update(kind=row.kind, score=row.score, scale_max=scale_max, at=at, survey=row.name)
        label = row.kind.upper() if row.kind in SCALES else _("Score")
        parts.append(f"{label} {row.score}" + (f"/{scale_max}" if row.kind != "nps" and scale_max else "")
                     + f" ({at.date().isoformat()})")
        style = score_style(row.kind, row.score)
    if open_:
        parts.append(_("{n} open").format(n=int(open_)) + (" " + _("({n} overdue)").format(n=int(overdue)) if overdue else ""))
        if overdue:
            style = "bad"
        elif style is None:
            style = "warn"
    return Slot(text=" · ".join(parts), data=data, style=style)


def customer_data(session: Session, customer_id: int) -> tuple[str, Any]:
    """hooks.CUSTOMER_DATA: the customer's invitations and responses with every answer."""
    invites = [{"survey": r.name, "token": r.token, "channel": r.channel, "method": r.method, "status": r.status,
                "invited_at": r.invited_at}
               for r in session.execute(select(I.c.token, I.c.channel, I.c.method, I.c.status, I.c.invited_at, S.c.name)
                                        .join(S, S.c.id == I.c.survey_id).where(I.c.customer_id == customer_id)
                                        .order_by(I.c.invited_at))]
    resp = []
    for r in session.execute(select(R, S.c.name.label("survey")).join(S, S.c.id == R.c.survey_id)
                             .where(R.c.customer_id == customer_id).order_by(R.c.responded_at)).mappings():
        answers = {str(a["position"]): {"question": a["text_q"], "score": a["score"], "choice": a["choice"],
                                        "text": a["text"]}
                   for a in session.execute(select(A, Q.c.position, Q.c.text.label("text_q"))
                                            .join(Q, Q.c.id == A.c.question_id)
                                            .where(A.c.response_id == r["id"])).mappings()}
        resp.append({"survey": r["survey"], "at": r["responded_at"], "kind": r["kind"], "score": r["score"],
                     "comment": r["comment"], "channel": r["channel"], "source": r["source"], "answers": answers})
    return "surveys", {"invitations": invites, "responses": resp}


def erase_customer(session: Session, customer_id: int) -> None:
    """hooks.CUSTOMER_ERASE: clear free-text comments and text answers; scores stay (anonymous results)."""
    ids = [r[0] for r in session.execute(select(R.c.id).where(R.c.customer_id == customer_id))]
    if not ids:
        return
    session.execute(update(R).where(R.c.id.in_(ids)).values(comment=None))
    session.execute(update(A).where(A.c.response_id.in_(ids)).values(text=None))


__all__ = ["KINDS", "create_survey", "get_survey", "record_response", "import_responses", "results", "score_summary",
           "card_slot"]
