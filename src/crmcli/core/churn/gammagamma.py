"""The Gamma-Gamma model of spend per order: Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves
for Customer Base Analysis", Journal of Marketing Research 42(4), 415-430 (with Fader & Hardie's note
"The Gamma-Gamma Model of Monetary Value", 2013).

A customer's order values z are Gamma(p, ν) (shape p, rate ν); across customers ν ~ Gamma(q, γ). The data
of a customer with x ≥ 1 repeat purchases is their mean repeat order value m_x, with density

    f(m_x | p, q, γ; x) = Γ(px+q) / (Γ(px) Γ(q)) · γ^q · m_x^(px-1) · x^(px) / (γ + x m_x)^(px+q)

Only customers with at least one repeat purchase (and a positive mean) enter the fit, exactly as in the
paper. Amounts are in currency units (not minor units), so γ reads like the paper's dollars.

Fitting: BFGS over log(p, q, γ) with the analytic gradient; the sums Σ x ln m, Σ ln m and Σ x ln x are
computed once, the Γ terms once per distinct x, so an iteration costs one pass of log(γ + x m) and of
1/(γ + x m). Large data start from the optimum of a sample (bgnbd.warm_start). Amounts
are divided by their mean while fitting (γ is scaled back), which keeps the optimiser well conditioned.

Expected average order value (paper, eq. 2 of the note):

    E[M | p, q, γ, m_x, x] = p (γ + x m_x) / (p x + q - 1)     (x = 0: p γ / (q - 1)); needs q > 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crmcli.core.churn.bgnbd import BLAS_THREADED, MIN_CUSTOMERS, FitError, dot, minimize_warm_or_cold
from crmcli.i18n import _

PARAM_NAMES = ("p", "q", "gamma")


@dataclass(frozen=True)
class Params:
    p: float
    q: float
    gamma: float

    def as_dict(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "gamma": self.gamma}


@dataclass
class FitResult:
    params: Params
    log_likelihood: float
    n_customers: int  # customers with a repeat purchase (the ones the model is fitted on)
    iterations: int
    se: dict[str, float] = field(default_factory=dict)
    corr_frequency_monetary: float | None = None  # the model assumes none; shown as a check
    warnings: list[str] = field(default_factory=list)


class _Likelihood:
    def __init__(self, x: Any, m: Any, w: Any) -> None:
        import numpy as np

        self.x, self.m, self.w = x, m, w
        self.ux, inv = np.unique(x, return_inverse=True)
        self.wx = np.bincount(inv, weights=w, minlength=len(self.ux))
        self.W = float(w.sum())
        lm = np.log(m)
        self.S_xlm = dot(w, x * lm)
        self.S_lm = dot(w, lm)
        self.S_xlx = dot(w, x * np.log(x))
        self.n = self.W
        self.xm = x * m
        self.wxx = w * x

    def value_grad(self, theta: Any) -> tuple[float, Any]:
        import numpy as np
        from scipy.special import digamma, gammaln

        p, q, g = np.exp(theta)
        ux, wx = self.ux, self.wx
        pxq = p * ux + q
        lgx = gammaln(pxq) - gammaln(p * ux)
        if len(self.x) <= BLAS_THREADED:
            # Small data: the expressions as first written, rounding included. A few shops sit on a ridge of the
            # likelihood (q and γ running off together) where the optimiser's path, and so whether it stops at
            # a proper optimum, depends on the last bit of these sums.
            x, m, w = self.x, self.m, self.w
            lgm = np.log(g + x * m)
            ll = (float(wx @ lgx) - self.W * gammaln(q) + self.W * q * np.log(g) + p * self.S_xlm - self.S_lm
                  + p * self.S_xlx - float(w @ ((p * x + q) * lgm)))
            dp = float(wx @ (ux * (digamma(pxq) - digamma(p * ux)))) + self.S_xlm + self.S_xlx - float(w @ (x * lgm))
            dq = float(wx @ digamma(pxq)) - self.W * digamma(q) + self.W * np.log(g) - float(w @ lgm)
            dg = self.W * q / g - float(w @ ((p * x + q) / (g + x * m)))
            return ll, np.array([dp * p, dq * q, dg * g])
        # The only per-customer work: log(γ + x m) and 1/(γ + x m), then four weighted sums of them.
        t = g + self.xm
        lgm = np.log(t)
        inv = 1.0 / t
        S_xlgm, S_lgm = dot(self.wxx, lgm), dot(self.w, lgm)
        S_xinv, S_inv = dot(self.wxx, inv), dot(self.w, inv)
        ll = (float(wx @ lgx) - self.W * gammaln(q) + self.W * q * np.log(g) + p * self.S_xlm - self.S_lm
              + p * self.S_xlx - p * S_xlgm - q * S_lgm)
        dp = float(wx @ (ux * (digamma(pxq) - digamma(p * ux)))) + self.S_xlm + self.S_xlx - S_xlgm
        dq = float(wx @ digamma(pxq)) - self.W * digamma(q) + self.W * np.log(g) - S_lgm
        dg = self.W * q / g - (p * S_xinv + q * S_inv)
        return ll, np.array([dp * p, dq * q, dg * g])

    def objective(self, theta: Any) -> tuple[float, Any]:
        import numpy as np

        if not np.all(np.isfinite(theta)):
            return np.inf, np.zeros(3)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ll, g = self.value_grad(theta)
        if not np.isfinite(ll) or not np.all(np.isfinite(g)):
            return np.inf, np.zeros(3)
        return -ll / self.n, -g / self.n


def individual_log_likelihood(params: Params, x: Any, m: Any) -> Any:
    """log f(m_x | p, q, γ; x) per customer, straight from the formula (tests and diagnostics)."""
    import numpy as np
    from scipy.special import gammaln

    p, q, g = params.p, params.q, params.gamma
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    return (gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(g) + (p * x - 1) * np.log(m)
            + p * x * np.log(x) - (p * x + q) * np.log(g + x * m))


def fit(x: Any, m: Any) -> FitResult:
    """Maximum-likelihood Gamma-Gamma parameters from the repeat buyers' (x, mean repeat order value)."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    keep = (x > 0) & np.isfinite(m) & (m > 0)
    x, m = x[keep], m[keep]
    n = len(x)
    if n < MIN_CUSTOMERS:
        raise FitError(_("The Gamma-Gamma spend model needs at least {min} customers with a repeat purchase of "
                         "positive value; the data have {n}.").format(min=MIN_CUSTOMERS, n=n),
                       hint=_("Record more purchases, or choose a later --calibration-end."))
    if np.ptp(m) == 0:
        raise FitError(_("Every repeat buyer spent exactly the same average amount: the spread of spend per order "
                         "cannot be estimated."),
                       hint=_("The Gamma-Gamma model needs varying order values."))
    scale = float(m.mean())
    ms = m / scale
    lk = _Likelihood(x, ms, np.ones(n))
    g0 = 1.0  # scaled mean spend is 1: p γ / (q - 1) = 1
    starts = [np.log([2.0, 3.0, 2.0 * g0 / 2.0]), np.log([1.0, 2.0, g0]), np.log([6.0, 4.0, 0.5 * g0]),
              np.log([0.5, 5.0, 8.0 * g0])]
    # Large data: from the optimum of a sample of the repeat buyers (bgnbd.warm_start), else from the starts.
    theta, H, nit = minimize_warm_or_cold(
        lk.objective, lambda sub: _Likelihood(x[sub], ms[sub], np.ones(len(sub))).objective, n, lambda sub: starts,
        starts, PARAM_NAMES, "Gamma-Gamma", exhaustive=n < 50_000)
    p, q, g = (float(v) for v in np.exp(theta))
    ll_scaled = lk.value_grad(theta)[0]
    ll = float(ll_scaled - n * np.log(scale))  # densities of m, not of m / scale
    params = Params(p, q, g * scale)
    se: dict[str, float] = {}
    try:
        cov = np.linalg.inv(H * lk.n)
        for i, name in enumerate(PARAM_NAMES):
            se[name] = float(np.exp(theta[i]) * np.sqrt(max(cov[i, i], 0.0))) * (scale if name == "gamma" else 1.0)
    except np.linalg.LinAlgError:  # pragma: no cover - H was checked positive definite
        pass
    if q <= 1:
        raise FitError(_("The Gamma-Gamma fit gives q = {q:.3f} ≤ 1: spend per order then has no finite average, "
                         "so expected order values and CLV cannot be computed.").format(q=q),
                       hint=_("A few extreme orders usually cause this; check large amounts with `crm purchase list`."))
    corr = float(np.corrcoef(x, m)[0, 1]) if n > 2 and np.ptp(x) > 0 else None
    return FitResult(params, ll, n, nit, se, corr)


def expected_order_value(params: Params, x: Any, m: Any) -> Any:
    """E[M | x, m_x]: a weighted mean of the population mean p γ/(q-1) and the customer's own m_x
    (the population mean for customers without a repeat purchase)."""
    import numpy as np

    p, q, g = params.p, params.q, params.gamma
    x = np.asarray(x, dtype=np.float64)
    m = np.nan_to_num(np.asarray(m, dtype=np.float64), nan=0.0)
    return np.where(x > 0, p * (g + x * m) / (p * x + q - 1), p * g / (q - 1))


def population_mean(params: Params) -> float:
    return params.p * params.gamma / (params.q - 1)


def simulate(params: Params, x: Any, rng: Any) -> tuple[Any, Any]:
    """Order values of x repeat purchases per customer: returns (customer index, value) per order."""
    import numpy as np

    x = np.asarray(x, dtype=np.int64)
    n = len(x)
    nu = rng.gamma(params.q, 1.0 / params.gamma, n)
    who = np.repeat(np.arange(n), x)
    return who, rng.gamma(params.p, 1.0 / nu[who])
