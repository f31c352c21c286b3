"""Repurchase prediction: when a customer is likely to buy next, and what (`crm churn next`, the card).

- Expected next purchase date (customers with at least two purchase days, as of D): the last purchase day
  plus the customer's own mean interval u = (last - first) / (purchase days - 1), rounded to whole days.
  A date before D means the customer is overdue by that many days.
- Likely next products, by next-purchase co-occurrence across all customers: for consecutive purchase days
  (k, k+1) of the same customer, every product A bought on day k and B bought on day k+1 make one
  transition A → B. P(B next | A) = (consecutive pairs whose first day has A and second day has B) /
  (consecutive pairs whose first day has A): "after buying A, x % bought B on their next purchase day".
  For a customer whose last purchase day contained the products L, the score of B is the largest
  P(B next | A) over A in L; the top three (score > 0) are shown with their score as a percentage. Sales refunded in full are left out;
  purchase days without product names are skipped.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any, Sequence

from sqlalchemy import String, select, type_coerce
from sqlmodel import Session

from crmcli.core.churn.summary import Summary, epoch_day, fetch_days, from_epoch_day, summarise
from crmcli.store.models import Purchase

P = Purchase.__table__
TOP = 3


@dataclass
class Transitions:
    pairs: dict[str, Counter[str]]  # A → Counter of B: next purchase days containing B after a day with A
    out: Counter[str]  # A → consecutive purchase-day pairs whose first day contains A

    def probability(self, a: str, b: str) -> float:
        """P(B on the next purchase day | A on this one)."""
        n = self.out.get(a, 0)
        return self.pairs[a][b] / n if n else 0.0

    def likely(self, basket: set[str], k: int = TOP) -> list[tuple[str, float]]:
        """The top k products by max over A in the basket of P(B next | A)."""
        score: dict[str, float] = {}
        for a in basket:
            n = self.out.get(a, 0)
            if not n:
                continue
            for b, c in self.pairs[a].items():
                score[b] = max(score.get(b, 0.0), c / n)
        ranked = sorted(((b, v) for b, v in score.items() if v > 0), key=lambda t: (-t[1], t[0]))
        return ranked[:k]


def _baskets(session: Session, end: date, customers: Sequence[int] | None = None) -> dict[int, list[tuple[int, set[str]]]]:
    """Per customer: [(epoch day, products bought that day)] in day order, fully refunded sales left out."""
    import numpy as np

    from crmcli.core.churn.summary import excluded_ids

    cond = [P.c.kind == "sale", P.c.product.is_not(None), P.c.purchased_on <= end]
    stmt = select(P.c.id, P.c.customer_id, type_coerce(P.c.purchased_on, String), P.c.product, P.c.amount_minor).where(*cond)
    rows: list[Any] = []
    if customers is not None:
        ids = list(customers)
        for start in range(0, len(ids), 500):
            rows.extend(session.execute(stmt.where(P.c.customer_id.in_(ids[start:start + 500]))).all())
    else:
        rows = list(session.execute(stmt).all())
    R = P.alias("refund")
    refunded: dict[int, int] = defaultdict(int)
    for sale_id, amount in session.execute(select(R.c.refund_of_id, R.c.amount_minor)
                                           .where(R.c.refund_of_id > 0, R.c.kind == "refund", R.c.purchased_on <= end)):
        refunded[sale_id] += amount
    gone = set(excluded_ids(session).tolist())
    per: dict[int, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    if rows:
        # str(): SQLite returns the stored text, PostgreSQL a date object
        days = np.array([str(r[2])[:10] for r in rows], dtype="datetime64[D]").astype(np.int64).tolist()
        for (sid, cid, _on, product, amount), day in zip(rows, days):
            if cid in gone or refunded.get(sid, 0) >= amount:
                continue
            per[cid][day].add(product)
    return {cid: sorted(d.items()) for cid, d in per.items()}


def transitions(session: Session, end: date) -> Transitions:
    pairs: dict[str, Counter[str]] = defaultdict(Counter)
    out: Counter[str] = Counter()
    for seq in _baskets(session, end).values():
        for (_d1, first), (_d2, second) in zip(seq, seq[1:]):
            for a in first:
                out[a] += 1
                for b in second:
                    pairs[a][b] += 1
    return Transitions(pairs, out)


@dataclass
class Expected:
    ids: Any
    last: Any  # epoch days
    usual: Any  # days (float)
    expected: Any  # epoch days
    n_days: Any


def expected_dates(s: Summary) -> Expected:
    import numpy as np

    two = s.n_days >= 2
    usual = (s.last[two] - s.first[two]) / (s.n_days[two] - 1).astype(np.float64)
    expected = s.last[two] + np.rint(usual).astype(np.int64)
    return Expected(s.ids[two], s.last[two], usual, expected, s.n_days[two])


def upcoming(session: Session, as_of: date, *, within_days: int, overdue: bool) -> list[dict[str, Any]]:
    """Customers whose expected next purchase falls in [as_of, as_of + within] (and, with ``overdue``,
    before as_of), soonest first, with their likely next products."""
    import numpy as np

    s = summarise(fetch_days(session, as_of), as_of)
    e = expected_dates(s)
    d = epoch_day(as_of)
    keep = e.expected <= d + within_days
    if not overdue:
        keep &= e.expected >= d
    idx = np.flatnonzero(keep)
    idx = idx[np.lexsort((e.ids[idx], e.expected[idx]))]
    if not len(idx):
        return []
    trans = transitions(session, as_of)
    chosen = e.ids[idx].tolist()
    baskets = _baskets(session, as_of, chosen)
    out = []
    for i in idx.tolist():
        cid = int(e.ids[i])
        seq = baskets.get(cid, [])
        last_basket = seq[-1][1] if seq else set()
        out.append({"customer_id": cid, "last_purchase": from_epoch_day(int(e.last[i])),
                    "usual_days": round(float(e.usual[i]), 1), "expected": from_epoch_day(int(e.expected[i])),
                    "in_days": int(e.expected[i]) - d, "purchase_days": int(e.n_days[i]),
                    "likely": trans.likely(last_basket)})
    return out


def for_customer(session: Session, customer_id: int, as_of: date) -> dict[str, Any] | None:
    """The card's repurchase figures for one customer (None with fewer than two purchase days)."""
    s = summarise(fetch_days(session, as_of, customers=[customer_id]), as_of)
    e = expected_dates(s)
    if not len(e.ids):
        return None
    seq = _baskets(session, as_of, [customer_id]).get(customer_id, [])
    likely = transitions(session, as_of).likely(seq[-1][1]) if seq else []
    return {"expected": from_epoch_day(int(e.expected[0])), "usual_days": round(float(e.usual[0]), 1),
            "in_days": int(e.expected[0]) - epoch_day(as_of), "likely": likely}


def likely_text(likely: list[tuple[str, float]]) -> str:
    return ", ".join(f"{name} ({round(score * 100)} %)" for name, score in likely)

