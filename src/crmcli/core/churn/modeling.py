"""Fitting, scoring and validating the statistical models against the store (`crm churn fit/score/holdout`).

- ``fit_models``: summary as of the calibration end → BG/NBD (+ Gamma-Gamma) → one ``churn_fit`` row.
  A Gamma-Gamma failure does not lose the BG/NBD fit: it is stored without p, q, γ and the reason is
  reported (CLV then needs a successful spend fit).
- ``score``: with the newest fit, for every customer with purchases as of the as-of date: P(alive),
  expected purchases in the horizon, expected order value and CLV, written in bulk to ``churn_score``
  (the previous scores are replaced). ``prepare_scores`` computes on a read snapshot and ``save_scores``
  writes, so the CLI holds the write lock only while the rows are stored (issue 10); likewise
  ``fit_models(store=False)`` + ``store_fit`` for `crm churn fit`.
- ``holdout``: fit on the purchases up to the calibration end and compare the predicted with the actual
  repeat purchase days after it, per calibration frequency (0, 1, ..., 7+) and in total.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import delete, insert, select
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core.churn import bgnbd, gammagamma
from crmcli.core.churn.bgnbd import FitError
from crmcli.core.churn.summary import PERIODS, Summary, epoch_day, fetch_days, summarise
from crmcli.core.clock import utcnow
from crmcli.core.context import StoreContext
from crmcli.errors import InvalidInput, NotFound
from crmcli.i18n import _
from crmcli.store.models import Customer
from crmcli.store.models_churn import ChurnFit, ChurnRun, ChurnScore

FIT = ChurnFit.__table__
SCORE = ChurnScore.__table__
RUN = ChurnRun.__table__
CUSTOMER = Customer.__table__
HOLDOUT_GROUPS = 7  # frequency groups 0..6 and "7+", as in Fader, Hardie & Lee (2005), Figure 4


def parse_period(text: str) -> str:
    value = text.strip().lower()
    aliases = {"d": "day", "days": "day", "daily": "day", "w": "week", "weeks": "week", "weekly": "week",
               "天": "day", "周": "week"}
    value = aliases.get(value, value)
    if value not in PERIODS:
        raise InvalidInput(_("'{value}' is not a period.").format(value=text), field="--period", value=text,
                           hint=_("Use day or week."))
    return value


def new_run(session: Session, kind: str, as_of: date, params: dict[str, Any] | None = None,
            counts: dict[str, Any] | None = None) -> int:
    result = session.execute(insert(RUN).values(kind=kind, as_of=as_of, at=utcnow(), actor=audit.actor(),
                                                params=json.dumps(params, default=str) if params is not None else None,
                                                counts=json.dumps(counts, default=str) if counts is not None else None))
    run_id = int(result.inserted_primary_key[0])
    audit.record(session, entity="churn_run", entity_id=run_id, action=kind,
                 after={"as_of": as_of, **(params or {}), **(counts or {})})
    return run_id


@dataclass
class Arrays:
    """The model inputs of a summary in one period unit."""

    x: Any
    tx: Any
    T: Any
    tx_days: Any
    T_days: Any
    period_days: int


def model_arrays(s: Summary, period_days: int) -> Arrays:
    import numpy as np

    tx_days = s.last - s.first
    T_days = epoch_day(s.end) - s.first
    return Arrays(x=s.frequency.astype(np.float64), tx=tx_days / float(period_days), T=T_days / float(period_days),
                  tx_days=tx_days, T_days=T_days, period_days=period_days)


def _major(minor: Any, currency: str) -> Any:
    from crmcli.core.money import precision

    return minor / float(10 ** precision(currency))


# ---------------------------------------------------------------------------------------------- fit

@dataclass
class FitOutcome:
    fit_id: int | None
    calibration_end: date
    period: str
    bg: bgnbd.FitResult
    gg: gammagamma.FitResult | None
    gg_error: str | None
    timings: dict[str, float] = field(default_factory=dict)


def fit_bgnbd(s: Summary, period: str) -> tuple[bgnbd.FitResult, Arrays]:
    if len(s) == 0:
        raise FitError(_("No customer has a purchase on or before {date}.").format(date=s.end),
                       hint=_("Record purchases first, or choose a later date."))
    a = model_arrays(s, PERIODS[period])
    compressed = bgnbd.compress_days(s.frequency, a.tx_days, a.T_days, a.period_days)
    return bgnbd.fit(a.x, a.tx, a.T, compressed=compressed), a


def fit_models(session: Session, ctx: StoreContext, *, end: date, period: str, store: bool = True) -> FitOutcome:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    s = summarise(fetch_days(session, end), end)
    timings["summary"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bg, a = fit_bgnbd(s, period)
    timings["bgnbd"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gg: gammagamma.FitResult | None = None
    gg_error: str | None = None
    try:
        gg = gammagamma.fit(a.x, _major(s.monetary_minor(), ctx.currency))
    except FitError as e:
        gg_error = e.message + (" " + e.hint if e.hint else "")
    timings["gamma_gamma"] = time.perf_counter() - t0
    outcome = FitOutcome(None, end, period, bg, gg, gg_error, timings)
    if store:
        t0 = time.perf_counter()
        outcome.fit_id = store_fit(session, ctx, outcome)
        timings["store"] = time.perf_counter() - t0
    return outcome


def store_fit(session: Session, ctx: StoreContext, o: FitOutcome) -> int:
    """The write half of `crm churn fit`: its churn_run and churn_fit rows (audited)."""
    params = {"period": o.period, "calibration_end": o.calibration_end}
    counts = {"n_customers": o.bg.n_customers, "gg_customers": o.gg.n_customers if o.gg else None}
    run_id = new_run(session, "fit", o.calibration_end, params, counts)
    detail = {"se": {**o.bg.se, **(o.gg.se if o.gg else {})}, "iterations": o.bg.iterations,
              "gg_iterations": o.gg.iterations if o.gg else None,
              "corr_frequency_monetary": o.gg.corr_frequency_monetary if o.gg else None,
              "gg_error": o.gg_error, "warnings": o.bg.warnings + (o.gg.warnings if o.gg else []),
              "seconds": {k: round(v, 4) for k, v in o.timings.items()}}
    p = o.bg.params
    values = dict(fitted_at=utcnow(), calibration_end=o.calibration_end, period=o.period,
                  period_days=PERIODS[o.period], n_customers=o.bg.n_customers, r=p.r, alpha=p.alpha, a=p.a, b=p.b,
                  log_likelihood=o.bg.log_likelihood, gg_customers=o.gg.n_customers if o.gg else None,
                  p=o.gg.params.p if o.gg else None, q=o.gg.params.q if o.gg else None,
                  gamma=o.gg.params.gamma if o.gg else None, gg_log_likelihood=o.gg.log_likelihood if o.gg else None,
                  currency=ctx.currency, detail=json.dumps(detail), run_id=run_id)
    fit_id = int(session.execute(insert(FIT).values(**values)).inserted_primary_key[0])
    audit.record(session, entity="churn_fit", entity_id=fit_id, action="add",
                 after={k: v for k, v in values.items() if k not in ("detail", "fitted_at")})
    return fit_id


def fit_record(row: Any) -> dict[str, Any]:
    """A stored fit with the documented JSON keys (docs/churn.md, "crm churn fit")."""
    detail = json.loads(row.detail) if row.detail else {}
    return {"id": row.id, "r": row.r, "alpha": row.alpha, "a": row.a, "b": row.b, "p": row.p, "q": row.q,
            "gamma": row.gamma, "log_likelihood": row.log_likelihood, "n_customers": row.n_customers,
            "gg_log_likelihood": row.gg_log_likelihood, "gg_customers": row.gg_customers,
            "date": row.calibration_end, "period": row.period, "period_days": row.period_days,
            "currency": row.currency, "fitted_at": row.fitted_at, "se": detail.get("se", {}),
            "corr_frequency_monetary": detail.get("corr_frequency_monetary"), "gg_error": detail.get("gg_error"),
            "warnings": detail.get("warnings", [])}


def latest_fit(session: Session) -> Any:
    row = session.execute(select(FIT).order_by(FIT.c.id.desc()).limit(1)).first()
    if row is None:
        raise NotFound(_("No model has been fitted yet."),
                       hint=_("Run `crm churn fit` first (e.g. crm churn fit --period week)."))
    return row


def get_fit(session: Session, fit_id: int) -> Any:
    row = session.execute(select(FIT).where(FIT.c.id == fit_id)).first()
    if row is None:
        raise NotFound(_("No fit #{id}.").format(id=fit_id), hint=_("See `crm churn fit`."))
    return row


def bg_params(row: Any) -> bgnbd.Params:
    return bgnbd.Params(row.r, row.alpha, row.a, row.b)


def gg_params(row: Any) -> gammagamma.Params | None:
    if row.p is None or row.q is None or row.gamma is None:
        return None
    return gammagamma.Params(row.p, row.q, row.gamma)


# -------------------------------------------------------------------------------------------- score

@dataclass
class ScoreOutcome:
    fit_id: int
    as_of: date
    customers: int
    horizon_days: int
    clv_months: int
    discount: float
    with_clv: bool
    totals: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Scores:
    ids: Any
    x: Any
    tx: Any
    T: Any
    monetary_minor: Any
    p_alive: Any
    expected: Any
    order_value_minor: Any | None
    clv_minor: Any | None


def _int_pairs(u: Any, v: Any) -> tuple[Any, Any, Any]:
    """Distinct pairs of two non-negative integer arrays: (u values, v values, inverse index). A dense table
    of the possible keys when that is small (no sort: x and T in days span a few hundred values each),
    np.unique otherwise."""
    import numpy as np

    base = int(v.max()) + 1
    key = u * base + v
    size = int(key.max()) + 1
    if size <= 4 * len(key) + 4096:
        present = np.zeros(size, dtype=bool)
        present[key] = True
        ukey = np.flatnonzero(present)
        slot = np.zeros(size, dtype=np.int64)
        slot[ukey] = np.arange(len(ukey))
        inverse = slot[key]
    else:
        ukey, inverse = np.unique(key, return_inverse=True)
    return ukey // base, ukey % base, inverse.reshape(-1)


def _p_alive_days(params: bgnbd.Params, x: Any, tx_days: Any, T_days: Any, period_days: int) -> Any:
    """bgnbd.p_alive for whole-day recency and age: log(α + t) and log(b + x - 1) are looked up in tables of
    the few hundred distinct days and counts instead of being computed for every customer (same values)."""
    import numpy as np
    from scipy.special import expit

    days = np.arange(int(T_days.max()) + 1) / float(period_days)
    log_at = np.log(params.alpha + days)
    with np.errstate(divide="ignore"):
        log_bx = np.log(np.maximum(params.b + np.arange(int(x.max()) + 1) - 1.0, 1e-300))
    d = np.log(params.a) - log_bx[x] + (params.r + x) * (log_at[T_days] - log_at[tx_days])
    return np.where(x > 0, expit(-d), 1.0)


def compute_scores(s: Summary, fit: Any, *, horizon_days: int, clv_months: int, discount: float,
                   currency: str) -> Scores:
    """The scores of every customer in the summary, vectorised (no loop over customers): P(alive) once per
    customer, the hypergeometric brackets of E[X] and CLV once per distinct (x, T) (bgnbd and clv modules
    give the same numbers customer by customer)."""
    import numpy as np

    from crmcli.core.churn import clv as clv_mod
    from crmcli.core.money import precision

    params = bg_params(fit)
    a = model_arrays(s, int(fit.period_days))
    x_int = s.frequency
    T_days = np.asarray(a.T_days, dtype=np.int64)
    if len(x_int):
        pa = _p_alive_days(params, x_int, np.asarray(a.tx_days, dtype=np.int64), T_days, a.period_days)
        ux, uT, inv = _int_pairs(x_int, T_days)
        ux, uT = ux.astype(np.float64), uT / float(a.period_days)
    else:
        pa = np.zeros(0)
        ux = uT = np.zeros(0)
        inv = np.zeros(0, dtype=np.int64)
    expected = pa * bgnbd._bracket(params, ux, uT, horizon_days / float(a.period_days))[inv]
    monetary = s.monetary_minor()
    ggp = gg_params(fit)
    order_value = clv_minor = None
    if ggp is not None:
        scale = float(10 ** precision(currency))
        ov_major = gammagamma.expected_order_value(ggp, a.x, monetary / scale)
        order_value = np.round(ov_major * scale)
        per_group = clv_mod.discounted_bracket(params, ux, uT, months=clv_months, discount=discount,
                                               period_days=a.period_days)
        clv_minor = np.round(ov_major * (pa * per_group[inv]) * scale)
    return Scores(s.ids, a.x, a.tx, a.T, monetary, pa, expected, order_value, clv_minor)


@dataclass
class PreparedScores:
    """Scores computed from a read snapshot, ready to be written in a short write transaction."""

    fit_id: int
    as_of: date
    horizon_days: int
    clv_months: int
    discount: float
    scores: Scores
    timings: dict[str, float] = field(default_factory=dict)
    customers_seen: tuple[int, int] | None = None  # COUNT(*), MAX(id) of customer on the read snapshot


def prepare_scores(session: Session, ctx: StoreContext, *, horizon_days: int, clv_months: int,
                   discount: float) -> PreparedScores:
    """Everything `crm churn score` computes; reads only, so it can run outside the write transaction."""
    if horizon_days < 1 or horizon_days > 36_500:
        raise InvalidInput(_("The horizon must be from 1 to 36500 days."), field="--horizon", value=horizon_days)
    if not 0 <= clv_months <= 1200:
        raise InvalidInput(_("--clv-months must be from 0 to 1200."), field="--clv-months", value=clv_months)
    if not 0 <= discount < 1:
        raise InvalidInput(_("The monthly discount rate {value} is out of range (0 to below 1, e.g. 0.01 for 1 %).")
                           .format(value=discount), field="--discount", value=discount)
    fit = latest_fit(session)
    end = ctx.today
    if end < fit.calibration_end:
        raise InvalidInput(_("--as-of {date} is before the fit's calibration end {end}.").format(
            date=end, end=fit.calibration_end), field="--as-of", value=end,
            hint=_("Score as of {end} or later, or fit again with an earlier --as-of.").format(end=fit.calibration_end))
    if fit.currency != ctx.currency and fit.p is not None:
        raise InvalidInput(_("The fit was made in {fit}, the store now uses {store}.").format(
            fit=fit.currency, store=ctx.currency), field="currency", hint=_("Fit again: crm churn fit"))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    s = summarise(fetch_days(session, end), end)
    timings["summary"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sc = compute_scores(s, fit, horizon_days=horizon_days, clv_months=clv_months, discount=discount,
                        currency=ctx.currency)
    timings["score"] = time.perf_counter() - t0
    return PreparedScores(int(fit.id), end, horizon_days, clv_months, discount, sc, timings,
                          customers_seen(session))


def customers_seen(session: Session) -> tuple[int, int]:
    """COUNT(*) and MAX(id) of customer: equal on the snapshot and at the write, no scored customer can have
    been removed in between (a new customer gets an id above the largest)."""
    from sqlalchemy import func

    count, top = session.execute(select(func.count(), func.max(CUSTOMER.c.id)).select_from(CUSTOMER)).one()
    return int(count), int(top or 0)


def save_scores(session: Session, prep: PreparedScores) -> ScoreOutcome:
    """The write half of `crm churn score`: one churn_run row and the scores replacing the previous ones."""
    import numpy as np

    sc = prep.scores
    n = len(sc.ids)
    get_fit(session, prep.fit_id)  # still there (a fit is never removed, but the store may have been restored)
    t0 = time.perf_counter()
    new_run(session, "score", prep.as_of, {"fit_id": prep.fit_id, "horizon_days": prep.horizon_days,
                                           "clv_months": prep.clv_months, "discount": prep.discount},
            {"customers": n})
    write_scores(session, sc)
    if prep.customers_seen is not None and customers_seen(session) != prep.customers_seen:
        # Customers came or went after the snapshot (an import undone meanwhile?): the trigger that removes a
        # customer's score ran before these rows were written, so drop the rows of customers that no longer exist.
        session.execute(delete(SCORE).where(~select(CUSTOMER.c.id).where(CUSTOMER.c.id == SCORE.c.customer_id).exists()))
    timings = {**prep.timings, "store": time.perf_counter() - t0}
    totals = {"p_alive_mean": float(sc.p_alive.mean()) if n else 0.0,
              "expected_purchases": float(sc.expected.sum()),
              "clv_minor": float(np.nansum(sc.clv_minor)) if sc.clv_minor is not None else 0.0}
    return ScoreOutcome(prep.fit_id, prep.as_of, n, prep.horizon_days, prep.clv_months, prep.discount,
                        sc.clv_minor is not None, totals, timings)


def score(session: Session, ctx: StoreContext, *, horizon_days: int, clv_months: int, discount: float) -> ScoreOutcome:
    """Compute and save in one transaction (the CLI splits the two: see cli/churn.py score_cmd)."""
    return save_scores(session, prepare_scores(session, ctx, horizon_days=horizon_days, clv_months=clv_months,
                                               discount=discount))


def last_score_run(session: Session) -> dict[str, Any] | None:
    """As-of date, fit, horizon and CLV months of the scores in churn_score (the newest score run)."""
    row = session.execute(select(RUN).where(RUN.c.kind == "score").order_by(RUN.c.id.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    params = json.loads(row["params"]) if row["params"] else {}
    return {"as_of": row["as_of"], "fit_id": params.get("fit_id"), "horizon_days": params.get("horizon_days"),
            "clv_months": params.get("clv_months"), "discount": params.get("discount")}


SCORE_COLUMNS = ("customer_id", "p_alive", "expected_purchases", "order_value_minor", "clv_minor")
ROWS_PER_STATEMENT = 5000  # rows of one multi-row INSERT on SQLite (fewer when the driver allows fewer parameters)


def _int_column(values: Any, n: int) -> tuple[Any, Any]:
    """(int64 array or None when the whole column is NULL, sorted positions of the NULLs (non-finite values))."""
    import numpy as np

    if values is None:
        return None, np.zeros(0, dtype=np.int64)
    arr = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(arr)
    return np.where(finite, arr, 0).astype(np.int64), np.flatnonzero(~finite)


def _score_columns(sc: Scores) -> list[tuple[Any, Any]]:
    """The SCORE_COLUMNS of every row as (numpy array or None, positions that are NULL)."""
    import numpy as np

    n = len(sc.ids)
    none = np.zeros(0, dtype=np.int64)
    return [(np.asarray(sc.ids, dtype=np.int64), none), (np.asarray(sc.p_alive, dtype=np.float64), none),
            (np.asarray(sc.expected, dtype=np.float64), none), _int_column(sc.order_value_minor, n),
            _int_column(sc.clv_minor, n)]


def _fill_rows(buf: list[Any], columns: list[tuple[Any, Any]], a: int, b: int) -> None:
    """Write rows a..b-1 into ``buf`` row after row (the flat parameter list of a multi-row VALUES), as plain
    Python values. Made one batch at a time: tolist() of a few thousand values and strided stores into a list
    that stays in the CPU cache cost a third of converting whole columns and interleaving 5 million entries."""
    import numpy as np

    k = len(columns)
    for j, (col, nulls) in enumerate(columns):
        buf[j::k] = col[a:b].tolist() if col is not None else [None] * (b - a)
        if len(nulls):
            for i in nulls[np.searchsorted(nulls, a):np.searchsorted(nulls, b)].tolist():
                buf[(i - a) * k + j] = None


def write_scores(session: Session, sc: Scores) -> None:
    """Make churn_score hold exactly these rows.

    On SQLite: multi-row ``INSERT ... VALUES ... ON CONFLICT DO UPDATE`` statements of as many rows as the
    driver allows bound parameters (twice as fast as executemany, which steps and resets a statement per
    row), the parameters of each statement one flat list of plain Python values made just before it; then
    the rows of customers no longer scored are deleted (none, usually: a COUNT tells). Updating in place
    beats DELETE + INSERT, and a row whose scores did not change is not written at all (SQLite compares the
    new record with the old before touching the page). churn_score has no foreign key (m0018: SQLite would
    check one for every inserted row); a trigger removes a customer's score with the customer."""
    import numpy as np

    n = len(sc.ids)
    if n == 0:
        session.execute(delete(SCORE))
        return
    columns = _score_columns(sc)
    k = len(columns)
    conn = session.connection()
    if conn.dialect.name != "sqlite":  # PostgreSQL: replace the rows through COPY
        from crmcli.store.bulk import copy_rows

        flat: list[Any] = [None] * (n * k)
        _fill_rows(flat, columns, 0, n)
        session.execute(delete(SCORE))
        copy_rows(conn, SCORE, SCORE_COLUMNS, (flat[i:i + k] for i in range(0, n * k, k)))
        return
    import sqlite3

    dbapi = conn.connection.dbapi_connection
    limit = dbapi.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if hasattr(dbapi, "getlimit") else 999
    per = max(1, min(limit // k, ROWS_PER_STATEMENT))
    head = f"INSERT INTO churn_score ({', '.join(SCORE_COLUMNS)}) VALUES "
    tail = " ON CONFLICT (customer_id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in SCORE_COLUMNS[1:])
    row = "(" + ", ".join("?" * k) + ")"
    cursor = dbapi.cursor()
    try:
        # Into an empty table (the first scoring) the n distinct ids make exactly n rows: no COUNT afterwards
        # (which reads every page of the table).
        was_empty = cursor.execute("SELECT NOT EXISTS (SELECT 1 FROM churn_score)").fetchone()[0]
        full = head + ", ".join([row] * per) + tail
        buf: list[Any] = [None] * (per * k)
        for a in range(0, n, per):
            b = min(a + per, n)
            if b - a < per:  # the last, shorter statement
                buf = [None] * ((b - a) * k)
                full = head + ", ".join([row] * (b - a)) + tail
            _fill_rows(buf, columns, a, b)
            cursor.execute(full, buf)  # bound (and run) before the next batch overwrites buf
        if not was_empty and cursor.execute("SELECT COUNT(*) FROM churn_score").fetchone()[0] != n:
            stored = np.fromiter((r[0] for r in cursor.execute("SELECT customer_id FROM churn_score")), dtype=np.int64)
            stale = np.setdiff1d(stored, sc.ids)
            cursor.executemany("DELETE FROM churn_score WHERE customer_id = ?", [(v,) for v in stale.tolist()])
    finally:
        cursor.close()


# ------------------------------------------------------------------------------------------ holdout

@dataclass
class Holdout:
    calibration_end: date
    end: date
    period: str
    holdout_periods: float
    fit: bgnbd.FitResult
    groups: list[dict[str, Any]]
    total: dict[str, Any]


def holdout(session: Session, ctx: StoreContext, *, calibration_end: date, end: date, period: str) -> Holdout:
    import numpy as np

    if calibration_end >= end:
        raise InvalidInput(_("The calibration end {cal} must be before the end of the holdout period {end}.").format(
            cal=calibration_end, end=end), field="--calibration-end", value=calibration_end,
            hint=_("Pick a date that leaves some weeks of purchases after it, or a later --as-of."))
    days = fetch_days(session, end)
    cal = summarise(days.until(calibration_end), calibration_end)
    fit, a = fit_bgnbd(cal, period)
    after = days.between(date.fromordinal(calibration_end.toordinal() + 1), end)
    pos = np.searchsorted(cal.ids, after.cid)
    pos_c = np.minimum(pos, max(len(cal.ids) - 1, 0))
    known = (pos < len(cal.ids)) & (cal.ids[pos_c] == after.cid) if len(cal.ids) else np.zeros(len(after.cid), bool)
    actual = np.bincount(pos_c[known], minlength=len(cal.ids)).astype(np.float64)
    t_star = (end - calibration_end).days / float(PERIODS[period])
    predicted = bgnbd.conditional_expected_purchases(fit.params, t_star, a.x, a.tx, a.T)
    group = np.minimum(cal.frequency, HOLDOUT_GROUPS)
    rows = []
    for g in range(HOLDOUT_GROUPS + 1):
        sel = group == g
        n = int(sel.sum())
        rows.append({"frequency": f"{g}+" if g == HOLDOUT_GROUPS else str(g), "customers": n,
                     "actual": float(actual[sel].mean()) if n else None,
                     "predicted": float(predicted[sel].mean()) if n else None,
                     "actual_total": float(actual[sel].sum()), "predicted_total": float(predicted[sel].sum())})
    act, pred = float(actual.sum()), float(predicted.sum())
    total = {"frequency": "total", "customers": len(cal), "actual": act / len(cal), "predicted": pred / len(cal),
             "actual_total": act, "predicted_total": pred,
             "error_pct": (pred - act) / act * 100 if act else None}
    return Holdout(calibration_end, end, period, t_star, fit, rows, total)
