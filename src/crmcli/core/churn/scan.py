"""Rule-based churn warnings: `crm churn scan`, `crm churn list`, and the risk part of the card.

Every customer with a purchase day on or before the as-of date D is assessed (thresholds: churn.*,
crmcli.core.churn.rules). The figures behind each rule:

- interval / recency: days since the last purchase day; with at least ``churn.min_history`` purchase days
  the customer's usual interval u = (last - first) / (purchase days - 1) is used (rule ``interval``,
  ratio = days / u), otherwise the fixed days of ``churn.recency``;
- spend_drop: net spend (refunds taken off the sale they belong to) in the last ``churn.spend_window``
  days W up to D against the W days before; only for customers whose first purchase is at least 2W days
  old, so that a new customer is not "down 100 %" on a window they were not yet a customer in;
- nps / csat: the customer's latest NPS (0-10) and latest CSAT (1-5) answer from the last
  ``churn.satisfaction_days`` days (survey_response);
- complaints: complaints with status open, opened on or before D (feedback);
- no_contact: days since the last interaction on or before D (since the first purchase when there is none).

The surveys/feedback tables are read only when they exist (they belong to the surveys feature); otherwise
those rules are skipped and the scan says so. Risk = the highest level of any rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Sequence

from sqlalchemy import delete, func, select
from sqlmodel import Session

from crmcli.core.churn import rules as rules_mod
from crmcli.core.churn.rules import LEVELS, Rules
from crmcli.core.churn.summary import epoch_day, fetch_days, from_epoch_day, summarise
from crmcli.core.clock import start_of_day_utc, utc_to_local
from crmcli.core.context import StoreContext
from crmcli.i18n import N_, Message, _
from crmcli.store.models import Interaction
from crmcli.store.models_churn import ChurnRisk

RISK = ChurnRisk.__table__
INTER = Interaction.__table__
RULE_ORDER = ("complaints", "nps", "csat", "interval", "recency", "spend_drop", "no_contact")


@dataclass
class Assessment:
    as_of: date
    ids: Any  # customers with purchases, ascending
    rank: Any  # 0..3 per customer
    reasons: dict[int, list[dict[str, Any]]]  # customer id → fired rules, strongest first
    skipped: list[str] = field(default_factory=list)  # rule keys not evaluated (tables missing)

    def counts(self) -> dict[str, int]:
        import numpy as np

        return {LEVELS[k]: int(np.sum(self.rank == k)) for k in range(4)}


def feedback_tables(session: Session) -> tuple[Any, Any] | None:
    """(survey_response, feedback) Core tables when the surveys feature's tables exist, else None."""
    try:
        from sqlalchemy import inspect

        from crmcli.store.models_feedback import Feedback, SurveyResponse
    except ImportError:
        return None
    insp = inspect(session.connection())
    if not (insp.has_table("survey_response") and insp.has_table("feedback")):
        return None
    return SurveyResponse.__table__, Feedback.__table__


def _chunks(ids: Sequence[int], size: int = 500) -> list[list[int]]:
    values = list(ids)
    return [values[i:i + size] for i in range(0, len(values), size)]


def _restricted(session: Session, stmt: Any, col: Any, customers: Sequence[int] | None) -> list[Any]:
    """Rows of ``stmt``, for the given customers only (chunked IN lists) or for everybody."""
    if customers is None:
        return list(session.execute(stmt).all())
    out: list[Any] = []
    for chunk in _chunks(customers):
        out.extend(session.execute(stmt.where(col.in_(chunk))).all())
    return out


def assess(session: Session, ctx: StoreContext, rules: Rules | None = None, *,
           customers: Sequence[int] | None = None) -> Assessment:
    """Risk level and reasons of each customer with purchases as of ctx.today (or of ``customers`` only)."""
    import numpy as np

    rules = rules or rules_mod.load(session)
    D = ctx.today
    d = epoch_day(D)
    days = fetch_days(session, D, customers=customers)
    s = summarise(days, D)
    n = len(s)
    ids = s.ids
    levels: dict[str, Any] = {}
    figures: dict[str, Any] = {}

    # Recency against the customer's own rhythm (or fixed days with too little history).
    recency = d - s.last
    with np.errstate(invalid="ignore", divide="ignore"):
        usual = np.where(s.n_days >= 2, (s.last - s.first) / np.maximum(s.n_days - 1, 1), np.nan)
        ratio = recency / usual
    enough = s.n_days >= max(rules.min_history, 2)
    levels["interval"] = np.where(enough, rules.levels("interval", np.where(enough, ratio, np.nan)), 0)
    levels["recency"] = np.where(enough, 0, rules.levels("recency", recency))

    # Spend in the last window against the window before (refunds already taken off their sale's day).
    W = rules.spend_window
    pos = np.searchsorted(ids, days.cid)
    recent_mask = days.day > d - W
    prev_mask = (days.day > d - 2 * W) & ~recent_mask
    recent = np.bincount(pos[recent_mask], weights=days.net[recent_mask], minlength=n)
    previous = np.bincount(pos[prev_mask], weights=days.net[prev_mask], minlength=n)
    established = s.first <= d - 2 * W + 1
    with np.errstate(invalid="ignore", divide="ignore"):
        drop = np.where(established & (previous > 0), (1.0 - recent / previous) * 100.0, np.nan)
    levels["spend_drop"] = rules.levels("spend_drop", drop)

    skipped: list[str] = []
    tables = feedback_tables(session)
    nps_score = np.full(n, np.nan)
    nps_on: dict[int, date] = {}
    csat_score = np.full(n, np.nan)
    csat_on: dict[int, date] = {}
    complaints = np.zeros(n)
    if tables is None:
        skipped = list(rules_mod.FEEDBACK_RULES)
    elif n:
        R, F = tables
        since = D - timedelta(days=rules.satisfaction_days - 1)
        stmt = (select(R.c.customer_id, R.c.kind, R.c.score, R.c.responded_on)
                .where(R.c.kind.in_(("nps", "csat")), R.c.score.is_not(None), R.c.responded_on <= D,
                       R.c.responded_on >= since)
                .order_by(R.c.customer_id, R.c.kind, R.c.responded_at.desc(), R.c.id.desc()))
        seen: set[tuple[int, str]] = set()
        for cid, kind, score, on in _restricted(session, stmt, R.c.customer_id, customers):
            if (cid, kind) in seen:
                continue
            seen.add((cid, kind))
            i = s.index_of(cid)
            if i is None:
                continue
            if kind == "nps":
                nps_score[i], nps_on[i] = score, on
            else:
                csat_score[i], csat_on[i] = score, on
        until = start_of_day_utc(D + timedelta(days=1), ctx.tz)
        stmt = (select(F.c.customer_id, func.count()).where(F.c.kind == "complaint", F.c.status == "open",
                                                             F.c.opened_at < until).group_by(F.c.customer_id))
        for cid, count in _restricted(session, stmt, F.c.customer_id, customers):
            i = s.index_of(cid)
            if i is not None:
                complaints[i] = count
    levels["nps"] = rules.levels("nps", nps_score)
    levels["csat"] = rules.levels("csat", csat_score)
    levels["complaints"] = rules.levels("complaints", np.where(complaints > 0, complaints, np.nan))

    # Days since the last interaction (since the first purchase when there is none).
    until = start_of_day_utc(D + timedelta(days=1), ctx.tz)
    last_contact = np.full(n, -1, dtype=np.int64)
    stmt = (select(INTER.c.customer_id, func.max(INTER.c.occurred_at)).where(INTER.c.occurred_at < until)
            .group_by(INTER.c.customer_id))
    for cid, at in _restricted(session, stmt, INTER.c.customer_id, customers):
        i = s.index_of(cid)
        if i is not None and at is not None:
            if isinstance(at, str):
                from datetime import datetime

                at = datetime.fromisoformat(at)
            last_contact[i] = epoch_day(utc_to_local(at, ctx.tz).date())
    contacted = last_contact >= 0
    no_contact_days = np.where(contacted, d - last_contact, d - s.first)
    levels["no_contact"] = rules.levels("no_contact", no_contact_days)
    for rule in skipped:
        levels[rule] = np.zeros(n, dtype=np.int8)

    rank = np.zeros(n, dtype=np.int8)
    for rule in RULE_ORDER:
        rank = np.maximum(rank, levels[rule])
    figures = dict(recency=recency, usual=usual, ratio=ratio, n_days=s.n_days, recent=recent, previous=previous,
                   drop=drop, nps=nps_score, nps_on=nps_on, csat=csat_score, csat_on=csat_on, complaints=complaints,
                   no_contact=no_contact_days, contacted=contacted, last_contact=last_contact)
    reasons: dict[int, list[dict[str, Any]]] = {}
    for i in np.flatnonzero(rank > 0).tolist():
        reasons[int(ids[i])] = _reasons(i, levels, figures, W)
    return Assessment(D, ids, rank, reasons, skipped)


def _reasons(i: int, levels: dict[str, Any], f: dict[str, Any], window: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for rule in RULE_ORDER:
        code = int(levels[rule][i])
        if code == 0:
            continue
        r: dict[str, Any] = {"rule": rule, "level": LEVELS[code]}
        if rule == "interval":
            r.update(days=int(f["recency"][i]), usual_days=round(float(f["usual"][i]), 1),
                     ratio=round(float(f["ratio"][i]), 1))
        elif rule == "recency":
            r.update(days=int(f["recency"][i]), purchase_days=int(f["n_days"][i]))
        elif rule == "spend_drop":
            r.update(window_days=window, recent_minor=int(f["recent"][i]), previous_minor=int(f["previous"][i]),
                     drop_pct=int(round(float(f["drop"][i]))))
        elif rule in ("nps", "csat"):
            r.update(score=int(f[rule][i]), date=f[f"{rule}_on"][i].isoformat()
                     if hasattr(f[f"{rule}_on"][i], "isoformat") else str(f[f"{rule}_on"][i]))
        elif rule == "complaints":
            r.update(open=int(f["complaints"][i]))
        elif rule == "no_contact":
            last = int(f["last_contact"][i])
            r.update(days=int(f["no_contact"][i]), last=from_epoch_day(last).isoformat() if last >= 0 else None)
        out.append(r)
    out.sort(key=lambda r: -LEVELS.index(r["level"]))  # stable: rule order within a level
    return out


def reason_text(r: dict[str, Any], currency: str) -> Message:
    """A reason for people, with its figures: English as data (JSON/CSV are the same in every language),
    translated where it is shown."""
    from crmcli.core.money import MoneyText

    rule = r["rule"]
    if rule == "interval":
        return Message(N_("no purchase for {days} days, {ratio}× their usual interval of {usual} days"),
                       days=r["days"], ratio=f"{r['ratio']:.1f}", usual=f"{r['usual_days']:g}")
    if rule == "recency":
        n = r.get("purchase_days", 1)
        if n == 1:
            return Message(N_("no purchase for {days} days (one purchase so far)"), days=r["days"])
        return Message(N_("no purchase for {days} days (only {n} purchase days so far)"), days=r["days"], n=n)
    if rule == "spend_drop":
        return Message(N_("spend in the last {w} days down {pct} % on the {w} days before ({recent} vs {previous})"),
                       w=r["window_days"], pct=r["drop_pct"], recent=MoneyText(r["recent_minor"], currency),
                       previous=MoneyText(r["previous_minor"], currency))
    if rule == "nps":
        return Message(N_("NPS {score} on {date}"), score=r["score"], date=r["date"])
    if rule == "csat":
        return Message(N_("CSAT {score} on {date}"), score=r["score"], date=r["date"])
    if rule == "complaints":
        if r["open"] == 1:
            return Message(N_("{n} complaint open"), n=1)
        return Message(N_("{n} complaints open"), n=r["open"])
    if rule == "no_contact":
        if r.get("last"):
            return Message(N_("no contact for {days} days"), days=r["days"])
        return Message(N_("no contact on record (a customer for {days} days)"), days=r["days"])
    return Message(rule)  # pragma: no cover - every rule has its text


def skipped_text(skipped: list[str]) -> str | None:
    if not skipped:
        return None
    return _("Rules {rules} skipped: the survey and feedback tables are not in this store (or their module is "
             "missing).").format(rules=", ".join(skipped))


# ------------------------------------------------------------------------------------------ storing

def store_scan(session: Session, a: Assessment, rules: Rules) -> int:
    """Replace churn_risk with this assessment (one executemany, COPY on PostgreSQL) and record the run."""
    from crmcli.core.churn.modeling import new_run

    run_id = new_run(session, "scan", a.as_of, {"rules": rules.as_dict(), "skipped": a.skipped}, a.counts())
    session.execute(delete(RISK))
    n = len(a.ids)
    if n:
        ids = a.ids.tolist()
        ranks = a.rank.tolist()
        conn = session.connection()
        rows = [(cid, LEVELS[k], k, json.dumps(a.reasons.get(cid, []), ensure_ascii=False), a.as_of.isoformat(), run_id)
                for cid, k in zip(ids, ranks)]
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("INSERT INTO churn_risk (customer_id, risk, rank, reasons, as_of, run_id) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", rows)
        else:  # PostgreSQL: COPY (an INSERT of many rows costs its server ~140 us a row, COPY a few)
            from crmcli.store.bulk import copy_rows

            copy_rows(conn, RISK, ("customer_id", "risk", "rank", "reasons", "as_of", "run_id"),
                      ((*r[:4], a.as_of, r[5]) for r in rows))
    return run_id


def last_scan(session: Session) -> dict[str, Any] | None:
    from crmcli.store.models_churn import ChurnRun

    run = ChurnRun.__table__
    row = session.execute(select(run).where(run.c.kind == "scan").order_by(run.c.id.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    params = json.loads(row["params"]) if row["params"] else {}
    return {"as_of": row["as_of"], "at": row["at"], "skipped": params.get("skipped", [])}
