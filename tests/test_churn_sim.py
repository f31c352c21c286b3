"""Simulated shops for the churn models: purchases drawn from known BG/NBD and Gamma-Gamma parameters,
written straight into a store file (fixture set-up, not the code under test), and the parameter-recovery
tests that use them. The benchmark (tests/benchmarks/test_churn_bench.py) imports ``build_store``."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

# CDNOW's published estimates (Fader, Hardie & Lee 2005; weeks), restated per day for simulation in days.
TRUE_R, TRUE_ALPHA_WEEKS, TRUE_A, TRUE_B = 0.243, 4.414, 0.793, 2.426
TRUE_P, TRUE_Q, TRUE_GAMMA = 6.25, 3.74, 15.44
START = date(2024, 1, 1)
COHORT_DAYS = 84  # first purchases spread over 12 weeks, as in CDNOW
OBSERVE_DAYS = 273  # 39 more weeks of observation
END = START + timedelta(days=COHORT_DAYS + OBSERVE_DAYS)


@dataclass
class Simulated:
    n: int
    first: Any  # day offset of each customer's first purchase
    x_days: Any  # repeat purchase days actually written (same-day arrivals merged)
    end: date


def simulate(n: int, seed: int) -> tuple[Any, list[tuple[int, int, int]]]:
    """(first-day offsets, [(customer index, day offset, amount_minor)]) drawn from the true parameters."""
    import numpy as np

    from crmcli.core.churn import bgnbd, gammagamma

    rng = np.random.default_rng(seed)
    first = rng.integers(0, COHORT_DAYS, n)
    T_days = (COHORT_DAYS + OBSERVE_DAYS - first).astype(np.float64)
    params = bgnbd.Params(TRUE_R, TRUE_ALPHA_WEEKS * 7, TRUE_A, TRUE_B)  # α per day
    who, when = bgnbd.simulate(params, T_days, rng)
    day = first[who] + np.floor(when).astype(np.int64)
    # One amount per purchase (the first included), from the customer's own Gamma(p, ν).
    nu = rng.gamma(TRUE_Q, 1.0 / TRUE_GAMMA, n)
    first_amount = rng.gamma(TRUE_P, 1.0 / nu)
    repeat_amount = rng.gamma(TRUE_P, 1.0 / nu[who])
    cust = np.concatenate([np.arange(n), who])
    days = np.concatenate([first, day])
    minor = np.maximum(np.round(np.concatenate([first_amount, repeat_amount]) * 100).astype(np.int64), 1)
    return first, list(zip(cust.tolist(), days.tolist(), minor.tolist()))


def build_store(db: Path, n: int, seed: int) -> Simulated:
    """Write n simulated customers and their purchases into the (initialised) store at ``db``."""
    import numpy as np

    first, purchases = simulate(n, seed)
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN "
                               "('customer', 'purchase') AND sql IS NOT NULL").fetchall()
        with conn:
            for name, _sql in indexes:
                conn.execute(f'DROP INDEX "{name}"')
            stamp = "2024-01-01 00:00:00.000000"
            conn.executemany(
                "INSERT INTO customer (id, code, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                ((i + 1, f"S{i + 1:07d}", f"Sim {i + 1}", stamp, stamp) for i in range(n)))
            dates = [(START + timedelta(days=k)).isoformat() for k in range(COHORT_DAYS + OBSERVE_DAYS + 1)]
            conn.executemany(
                "INSERT INTO purchase (customer_id, kind, amount_minor, purchased_at, purchased_on, quantity, "
                "created_at) VALUES (?, 'sale', ?, ?, ?, 1, ?)",
                ((c + 1, a, dates[d] + " 04:00:00.000000", dates[d], stamp) for c, d, a in purchases))
            for _name, sql in indexes:
                conn.execute(sql)
        conn.execute("ANALYZE")
        days = {(c, d) for c, d, _a in purchases}
        per = np.bincount(np.array([c for c, _d in days], dtype=np.int64), minlength=n)
        return Simulated(n=n, first=first, x_days=per - 1, end=END)
    finally:
        conn.close()


# ------------------------------------------------------------------------------ parameter recovery

def _within(estimate: float, true: float, se: float, k: float = 4.0) -> bool:
    return abs(estimate - true) <= k * se


def test_bgnbd_and_gamma_gamma_recover_known_parameters_from_simulated_data() -> None:
    """Pure model level, continuous time: 5,000 customers observed 39 weeks from known parameters.

    Tolerance: 4 standard errors from the fit's own observed information (a correctly specified MLE is
    within that of the truth with probability > 99.99 % per parameter), and the standard errors must be
    small enough (relative SE < 50 %) that the check means something. The seed is fixed."""
    import numpy as np

    from crmcli.core.churn import bgnbd, gammagamma

    rng = np.random.default_rng(20240601)
    n = 5000
    T = rng.uniform(27, 39, n)  # weeks
    true = bgnbd.Params(TRUE_R, TRUE_ALPHA_WEEKS, TRUE_A, TRUE_B)
    who, when = bgnbd.simulate(true, T, rng)
    x, tx = bgnbd.summarise_simulation(n, who, when)
    res = bgnbd.fit(x, tx, T)
    for name in ("r", "alpha", "a", "b"):
        est, se, tv = getattr(res.params, name), res.se[name], getattr(true, name)
        assert se / tv < 0.5, (name, se)
        assert _within(est, tv, se), (name, est, tv, se)
    # The fitted log-likelihood is at least that of the true parameters (it is the maximum).
    assert res.log_likelihood >= bgnbd.log_likelihood(true, x, tx, T) - 1e-6

    gtrue = gammagamma.Params(TRUE_P, TRUE_Q, TRUE_GAMMA)
    owho, values = gammagamma.simulate(gtrue, x, rng)
    total = np.bincount(owho, weights=values, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = total / x
    gres = gammagamma.fit(x, m)
    assert gres.n_customers == int((x > 0).sum())
    for name in ("p", "q", "gamma"):
        est, se, tv = getattr(gres.params, name), gres.se[name], getattr(gtrue, name)
        assert se / tv < 0.5, (name, se)
        assert _within(est, tv, se), (name, est, tv, se)
    assert gres.log_likelihood >= gammagamma.individual_log_likelihood(gtrue, x[x > 0], m[x > 0]).sum() - 1e-6


@pytest.fixture
def simulated(cli: Any, db_path: Path) -> Simulated:
    return build_store(db_path, 5000, seed=7)


def test_fit_through_the_store_recovers_the_parameters(cli: Any, simulated: Simulated) -> None:
    """End to end: purchases in the store → summary query → `crm churn fit` → stored parameters.

    Purchases are whole days here (arrivals on the same day merge, as the definitions require), so the
    data deviate slightly from the continuous-time model; the truth must still be within 4 standard
    errors. The day fit's α is per day, the week fit's per week: the same model, α differing by 7."""
    day = cli.json("churn", "fit", "--as-of", simulated.end.isoformat(), "--period", "day")
    week = cli.json("churn", "fit", "--as-of", simulated.end.isoformat(), "--period", "week")
    assert day["n_customers"] == week["n_customers"] == simulated.n
    se = day["se"]
    assert _within(day["r"], TRUE_R, se["r"]), day
    assert _within(day["alpha"], TRUE_ALPHA_WEEKS * 7, se["alpha"]), day
    assert _within(day["a"], TRUE_A, se["a"]), day
    assert _within(day["b"], TRUE_B, se["b"]), day
    for name in ("p", "q", "gamma"):
        assert _within(day[name], {"p": TRUE_P, "q": TRUE_Q, "gamma": TRUE_GAMMA}[name], se[name]), (name, day)
    assert week["alpha"] == pytest.approx(day["alpha"] / 7, rel=1e-5)
    for name in ("r", "a", "b", "p", "q", "gamma"):
        assert week[name] == pytest.approx(day[name], rel=1e-5), name
    # Same data, other time unit: L is a density in the x purchase times, so L_week = 7^x · L_day per
    # customer and the log-likelihoods differ by Σx · log 7 exactly (at the maxima, which correspond).
    import math

    total_repeats = int(simulated.x_days.sum())
    assert week["log_likelihood"] == pytest.approx(day["log_likelihood"] + total_repeats * math.log(7), abs=1e-3)
