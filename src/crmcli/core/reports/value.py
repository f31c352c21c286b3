"""`crm report clv` and `crm report churn`: customer value and churn risk in one place.

Historical value = a customer's net spend (sales minus refunds, refunds on their own business date) with
``purchased_on`` from --since (default: all history) to --until. Predicted value = the CLV saved by the last
`crm churn score` (BG/NBD × Gamma-Gamma, crmcli.core.churn.clv), with its P(alive) and expected purchases;
absent (None) until the models were fitted and scored.

Distribution: customers ordered by value, highest first, cut into ten groups of (nearly) equal size
(deciles; group 1 = the top 10 %); each with its customers, total value, share of all value, and the lowest
and highest value in it. ``top20_share`` = share of all value held by the top 20 % of customers.

Churn: risk levels assessed live as of the as-of date with the `crm churn scan` rules (nothing is saved),
counted per level, per tier (tiers feature) and per rule that fired; plus the saved model scores' totals.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import case, func, select
from sqlmodel import Session

from crmcli.core.context import StoreContext
from crmcli.store.models import Customer, Purchase

C = Customer.__table__
P = Purchase.__table__


def _historical(session: Session, since: date | None, until: date) -> dict[int, int]:
    net = func.sum(case((P.c.kind == "sale", P.c.amount_minor), else_=-P.c.amount_minor))
    stmt = (select(P.c.customer_id, net).join(C, C.c.id == P.c.customer_id)
            .where(P.c.purchased_on <= until, C.c.deleted_at.is_(None), C.c.erased_at.is_(None))
            .group_by(P.c.customer_id))
    if since is not None:
        stmt = stmt.where(P.c.purchased_on >= since)
    return {int(cid): int(v) for cid, v in session.execute(stmt)}


def _stats(values: Any) -> dict[str, Any]:
    import numpy as np

    v = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    n = len(v)
    if n == 0:
        return {"customers": 0, "total": 0, "mean": None, "median": None, "p90": None, "max": None,
                "top20_share": None}
    total = float(v.sum())
    top = int(np.ceil(n * 0.2))
    return {"customers": n, "total": int(round(total)), "mean": int(round(total / n)),
            "median": int(round(float(np.median(v)))), "p90": int(round(float(np.quantile(v, 0.9)))),
            "max": int(round(float(v[0]))),
            "top20_share": round(float(v[:top].sum()) * 100 / total, 1) if total > 0 else None}


def deciles(values: Any) -> list[dict[str, Any]]:
    """Ten groups of customers by value, highest first (fewer customers than ten: one group each)."""
    import numpy as np

    v = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    n = len(v)
    if n == 0:
        return []
    total = float(v.sum())
    out = []
    for k, part in enumerate(np.array_split(v, min(10, n)), 1):
        out.append({"decile": k, "customers": int(len(part)), "total": int(round(float(part.sum()))),
                    "share": round(float(part.sum()) * 100 / total, 1) if total > 0 else None,
                    "min": int(round(float(part[-1]))), "max": int(round(float(part[0])))})
    return out


def clv_report(session: Session, ctx: StoreContext, *, since: date | None, until: date, top: int = 10) -> dict[str, Any]:
    from crmcli.core.churn.modeling import SCORE, last_score_run

    hist = _historical(session, since, until)
    run = last_score_run(session)  # as-of date, horizon and CLV months of the stored scores
    scores = {int(r.customer_id): r for r in session.execute(
        select(SCORE.c.customer_id, SCORE.c.clv_minor, SCORE.c.p_alive, SCORE.c.expected_purchases,
               SCORE.c.order_value_minor)
        .join(C, C.c.id == SCORE.c.customer_id).where(C.c.deleted_at.is_(None), C.c.erased_at.is_(None)))}
    predicted = {cid: int(r.clv_minor) for cid, r in scores.items() if r.clv_minor is not None}
    first = next(iter(scores.values()), None)
    ranked = sorted(set(hist) | set(predicted),
                    key=lambda cid: (-(predicted.get(cid, -1) if predicted else hist.get(cid, 0)), -hist.get(cid, 0), cid))
    chosen = ranked[:top]
    names = {}
    for start in range(0, len(chosen), 500):
        names.update({r.id: (r.code, r.name) for r in session.execute(
            select(C.c.id, C.c.code, C.c.name).where(C.c.id.in_(chosen[start:start + 500])))})
    rows = []
    for i, cid in enumerate(chosen, 1):
        s = scores.get(cid)
        rows.append({"rank": i, "code": names[cid][0], "name": names[cid][1], "historical": hist.get(cid, 0),
                     "predicted": predicted.get(cid),
                     "p_alive": round(float(s.p_alive), 4) if s is not None else None,
                     "expected_purchases": round(float(s.expected_purchases), 3) if s is not None else None,
                     "order_value": int(s.order_value_minor) if s is not None and s.order_value_minor is not None else None})
    return {"as_of": ctx.today, "since": since, "until": until, "currency": ctx.currency,
            "scored_as_of": run["as_of"] if first is not None and run else None,
            "clv_months": run["clv_months"] if first is not None and predicted and run else None,
            "horizon_days": run["horizon_days"] if first is not None and run else None,
            "historical": _stats(list(hist.values())),
            "predicted": _stats(list(predicted.values())) if predicted else None,
            "distribution": {"historical": deciles(list(hist.values())),
                             "predicted": deciles(list(predicted.values())) if predicted else None},
            "top_customers": rows}


def churn_report(session: Session, ctx: StoreContext) -> dict[str, Any]:
    from crmcli.core.churn import scan
    from crmcli.core.churn.modeling import SCORE, last_score_run
    from crmcli.core.churn.rules import LEVELS
    from crmcli.core.reports.features import _tiers

    a = scan.assess(session, ctx)
    ids = a.ids.tolist()
    ranks = a.rank.tolist()
    alive = set()
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        alive.update(int(i) for (i,) in session.execute(select(C.c.id).where(
            C.c.id.in_(chunk), C.c.deleted_at.is_(None), C.c.erased_at.is_(None))))
    pairs = [(int(cid), int(rank)) for cid, rank in zip(ids, ranks) if int(cid) in alive]
    counts = dict.fromkeys(LEVELS, 0)
    for _cid, rank in pairs:
        counts[LEVELS[rank]] += 1
    n = len(pairs)
    tiers = _tiers(session, [cid for cid, _r in pairs]) if pairs else {}
    by_tier: dict[str, dict[str, int]] = {}
    for cid, rank in pairs:
        key = (tiers.get(cid) or "-").upper()
        row = by_tier.setdefault(key, dict.fromkeys(LEVELS, 0))
        row[LEVELS[rank]] += 1
    reasons: dict[str, dict[str, int]] = {}
    for cid, _rank in pairs:
        for r in a.reasons.get(cid, []):
            entry = reasons.setdefault(r["rule"], {"customers": 0, "high": 0})
            entry["customers"] += 1
            entry["high"] += r["level"] == "high"
    score = session.execute(select(func.count(), func.avg(SCORE.c.p_alive), func.sum(SCORE.c.expected_purchases),
                                   func.sum(SCORE.c.clv_minor), func.count(SCORE.c.clv_minor))
                            .join(C, C.c.id == SCORE.c.customer_id)
                            .where(C.c.deleted_at.is_(None), C.c.erased_at.is_(None))).one()
    scores = None
    run = last_score_run(session) if score[0] else None  # as-of date, horizon and CLV months of the scores
    if score[0]:
        scores = {"as_of": run["as_of"] if run else None, "customers": int(score[0]),
                  "p_alive_mean": round(float(score[1]), 4), "expected_purchases": round(float(score[2]), 1),
                  "horizon_days": run["horizon_days"] if run else None,
                  "clv_total": int(score[3]) if score[4] else None,
                  "clv_months": run["clv_months"] if score[4] and run else None}
    return {"as_of": ctx.today, "customers": n, "counts": counts,
            "shares": {k: (round(v * 100 / n, 1) if n else None) for k, v in counts.items()},
            "by_tier": [{"tier": t, **by_tier[t], "total": sum(by_tier[t].values())}
                        for t in sorted(by_tier, key=lambda t: (t == "-", t))],
            "reasons": [{"rule": rule, **reasons[rule]} for rule in scan.RULE_ORDER if rule in reasons],
            "skipped_rules": a.skipped, "scores": scores}


def dashboard_churn(session: Session) -> dict[str, Any] | None:
    """Risk counts of the last `crm churn scan` (saved, so the dashboard stays quick) and the saved CLV total."""
    from crmcli.core.churn import scan
    from crmcli.core.churn.modeling import SCORE, last_score_run
    from crmcli.core.churn.rules import LEVELS

    run = scan.last_scan(session)
    clv = session.execute(select(func.sum(SCORE.c.clv_minor), func.count(SCORE.c.clv_minor))
                          .join(C, C.c.id == SCORE.c.customer_id).where(C.c.erased_at.is_(None))).one()
    if run is None and not clv[1]:
        return None
    out: dict[str, Any] = {}
    if run is not None:
        R = scan.RISK
        found = dict(session.execute(select(R.c.risk, func.count()).join(C, C.c.id == R.c.customer_id)
                                     .where(C.c.deleted_at.is_(None), C.c.erased_at.is_(None)).group_by(R.c.risk)).all())
        out["scanned_as_of"] = run["as_of"]
        out["counts"] = {level: int(found.get(level, 0)) for level in reversed(LEVELS)}
    if clv[1]:
        out["clv_total"] = int(clv[0])
    return out
