"""Customer lifetime value over a horizon in months, from BG/NBD and Gamma-Gamma (docs/churn.md, "CLV").

    CLV = E[M] · Σ_{i=1..H} (E[X(t_i)] - E[X(t_{i-1})]) / (1 + d)^i,    t_i = i · 30.4375 days / period days

E[X(t)] is the customer's expected repeat purchases in the next t periods (conditional on their history),
E[M] their expected order value, d the monthly discount rate, H the horizon in months. A month is
365.25 / 12 = 30.4375 days; the model's time unit is the fit's period (1 or 7 days), so a 12-month horizon
on weekly data is t_12 = 12 × 30.4375 / 7 = 52.18 weeks — never 12 weeks and never 48 (the classic
factor-of-4 bug). ``period_days`` must always be passed explicitly.

Because E[X(t) | x, t_x, T] = P(alive) · B(x, T, t) with B free of t_x, the sum is computed once per
distinct (x, T) and multiplied by each customer's P(alive).
"""

from __future__ import annotations

from typing import Any

from crmcli.core.churn.bgnbd import Params, _bracket, group_rows, p_alive

DAYS_PER_MONTH = 365.25 / 12


def month_in_periods(period_days: int) -> float:
    """One month in the fit's time unit (4.348 weeks, 30.4375 days)."""
    return DAYS_PER_MONTH / float(period_days)


def discounted_purchases(params: Params, x: Any, tx: Any, T: Any, *, months: int, discount: float,
                         period_days: int) -> Any:
    """Σ_i (E[X(t_i)] - E[X(t_{i-1})]) / (1+d)^i per customer: expected purchases in the horizon, each month's
    discounted back to today."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if months < 0:
        raise ValueError("months")
    (ux, uT), _w, inv = group_rows(x, T)
    total = discounted_bracket(params, ux, uT, months=months, discount=discount, period_days=period_days)
    return p_alive(params, x, tx, T) * total[inv]


def discounted_bracket(params: Params, x: Any, T: Any, *, months: int, discount: float, period_days: int) -> Any:
    """Σ_i (B(t_i) - B(t_{i-1})) / (1+d)^i for (x, T) rows, B the bgnbd bracket (E[X(t)] of an alive
    customer): the discounted expected purchases of a customer who is alive."""
    import numpy as np

    if months < 0:
        raise ValueError("months")
    total = np.zeros(len(x))
    previous = np.zeros(len(x))
    step = month_in_periods(period_days)
    for i in range(1, months + 1):
        current = _bracket(params, x, T, i * step)
        total += (current - previous) / (1.0 + discount) ** i
        previous = current
    return total


def clv(params: Params, x: Any, tx: Any, T: Any, order_value: Any, *, months: int, discount: float,
        period_days: int) -> Any:
    """CLV per customer, in the units of ``order_value``."""
    import numpy as np

    return np.asarray(order_value, dtype=np.float64) * discounted_purchases(
        params, x, tx, T, months=months, discount=discount, period_days=period_days)
