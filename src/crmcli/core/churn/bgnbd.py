"""The BG/NBD model: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative to
the Pareto/NBD Model", Marketing Science 24(2), 275-284.

While active, a customer buys at Poisson rate λ; after each repeat purchase they drop out with
probability p. Across customers λ ~ Gamma(r, α) (shape r, rate α) and p ~ Beta(a, b).

Data per customer (time in periods, see crmcli.core.churn.summary): x repeat purchases, the last at t_x,
observed for T since the first purchase. Likelihood (paper, eq. 6):

    L = B(a, b+x)/B(a, b) · Γ(r+x)/Γ(r) · α^r/(α+T)^(r+x)
        + δ(x>0) · B(a+1, b+x-1)/B(a, b) · Γ(r+x)/Γ(r) · α^r/(α+t_x)^(r+x)

Fitting maximises Σ log L by BFGS over θ = log(r, α, a, b) with the analytic gradient below; customers
with identical (x, t_x, T) are one term with a weight, and terms that depend on x alone are computed once
per distinct x. The optimum is checked (finite, away from the bounds, small gradient, positive-definite
Hessian by central differences of the analytic gradient, which also gives standard errors); anything else
raises FitError rather than returning numbers that do not describe the data.

Closed forms (paper eqs. 10 and 13, with Euler's transformation of 2F1 for numerical stability):

    P(alive | x, t_x, T) = 1 / (1 + δ(x>0) · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x))
    E[X(t) | x, t_x, T] = P(alive) · (a+b+x-1)/(a-1) · [1 - (1-z)^(a-1) · 2F1(a+b-1-r, a-1; a+b+x-1; z)],
                          z = t/(α+T+t)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crmcli.errors import CrmError
from crmcli.i18n import _

PARAM_NAMES = ("r", "alpha", "a", "b")
LOG_BOUND = 18.0  # |log parameter| limit: e^18 ≈ 6.6e7; an optimum on the bound means no finite estimate
MIN_CUSTOMERS = 10
# a + b beyond this: Beta(a, b) is a point to the data and 2F1 loses all precision (NaN from a + b ≈ 4000
# on); the fixed-p limit is used, within 1e-4 (relative) of the exact bracket already at a + b = 2000.
DEGENERATE_BETA = 2e3


class FitError(CrmError):
    """The data cannot support the model, or the optimiser found no proper maximum (exit code 1)."""


@dataclass(frozen=True)
class Params:
    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}

    def rescaled(self, factor: float) -> "Params":
        """The same model with time measured in units ``factor`` times longer (α scales, the rest not)."""
        return Params(self.r, self.alpha / factor, self.a, self.b)


@dataclass
class FitResult:
    params: Params
    log_likelihood: float
    n_customers: int
    iterations: int
    se: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Compressed:
    """Distinct (x, t_x, T) rows with their counts; ``inverse`` maps each input row to its distinct row."""

    x: Any
    tx: Any
    T: Any
    w: Any
    inverse: Any


def group_rows(*cols: Any) -> tuple[list[Any], Any, Any]:
    """Distinct rows of equal-length 1-D arrays: (distinct columns, counts, inverse index)."""
    import numpy as np

    n = len(cols[0])
    if n == 0:
        return [c[:0] for c in cols], np.zeros(0), np.zeros(0, dtype=np.int64)
    order = np.lexsort(tuple(reversed(cols)))
    srt = [c[order] for c in cols]
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for c in srt:
        new[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, n)).astype(np.float64)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return [c[starts] for c in srt], counts, inverse


def compress(x: Any, tx: Any, T: Any) -> Compressed:
    import numpy as np

    x, tx, T = (np.asarray(v, dtype=np.float64) for v in (x, tx, T))
    (ux, utx, uT), w, inverse = group_rows(x, tx, T)
    return Compressed(ux, utx, uT, w, inverse)


def compress_days(x: Any, tx_days: Any, T_days: Any, period_days: int) -> Compressed:
    """``compress`` for whole-day recency and age (the store's data): one sort of an integer key."""
    import numpy as np

    x = np.asarray(x, dtype=np.int64)
    tx_days = np.asarray(tx_days, dtype=np.int64)
    T_days = np.asarray(T_days, dtype=np.int64)
    if len(x) == 0:
        return compress(x, tx_days, T_days)
    base = int(T_days.max()) + 1
    key = (x * base + tx_days) * base + T_days
    ukey, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    uT = ukey % base
    utx = (ukey // base) % base
    ux = ukey // (base * base)
    return Compressed(ux.astype(np.float64), utx / float(period_days), uT / float(period_days),
                      counts.astype(np.float64), inverse.reshape(-1))


# --------------------------------------------------------------------------------------- likelihood

BLAS_THREADED = 10_000  # OpenBLAS computes longer dot products on several threads


def dot(u: Any, v: Any) -> float:
    """Σ u·v without BLAS. OpenBLAS spreads dot products of more than 10,000 terms over threads whose
    start-up and busy-waiting cost more CPU than the sum: a 26,000-row likelihood evaluation took 7 ms of
    CPU with ``@`` and 0.3 ms with this on the shared 2-core benchmark machine."""
    import numpy as np

    if len(u) <= BLAS_THREADED:  # single-threaded in OpenBLAS: keep its rounding (small fits stay as they were)
        return float(u @ v)
    return float(np.einsum("i,i->", u, v))


class _Likelihood:
    """Σ w·log L and its gradient in θ = log(r, α, a, b), with per-x terms computed once per distinct x.

    Rows with x > 0 carry the only term that is not a sum of per-value pieces, log(e^A3 + e^A4); the logs
    of α+T, α+t_x and b+x-1 are taken once per distinct T, t_x and x and gathered by index, and the sums that
    are linear in them (Σ w(r+x) log(α+T) ...) come from per-T totals, so an evaluation makes a dozen cheap
    passes over the distinct rows and one exp and one log1p."""

    def __init__(self, d: Compressed) -> None:
        import numpy as np

        self.ux, xinv = np.unique(d.x, return_inverse=True)
        self.wx = np.bincount(xinv, weights=d.w, minlength=len(self.ux))
        rep = d.x > 0
        self.T0, self.w0 = d.T[~rep], d.w[~rep]
        x1, tx1, T1, w1 = d.x[rep], d.tx[rep], d.T[rep], d.w[rep]
        self.x1, self.w1 = x1, w1
        self.uT1, self.iT = np.unique(T1, return_inverse=True)
        self.utx1, self.itx = np.unique(tx1, return_inverse=True)
        self.ux1, self.ix = np.unique(x1, return_inverse=True)
        self.iT, self.itx, self.ix = (v.reshape(-1) for v in (self.iT, self.itx, self.ix))
        nT = len(self.uT1)
        self.W1_T = np.bincount(self.iT, weights=w1, minlength=nT)  # Σ w per distinct T
        self.WX1_T = np.bincount(self.iT, weights=w1 * x1, minlength=nT)  # Σ w·x per distinct T
        self.n = float(d.w.sum())

    def value_grad(self, theta: Any) -> tuple[float, Any]:
        import numpy as np
        from scipy.special import digamma, gammaln

        r, alpha, a, b = np.exp(theta)
        ux, wx = self.ux, self.wx
        # Terms of x alone: log Γ(r+x)/Γ(r) + r log α + log B(a, b+x)/B(a, b).
        lg = (gammaln(r + ux) - gammaln(r) + r * np.log(alpha) + gammaln(a + b) + gammaln(b + ux) - gammaln(b)
              - gammaln(a + b + ux))
        ll = float(wx @ lg)
        g = np.array([
            wx @ (digamma(r + ux) - digamma(r) + np.log(alpha)),
            wx.sum() * r / alpha,
            wx @ (digamma(a + b) - digamma(a + b + ux)),
            wx @ (digamma(a + b) + digamma(b + ux) - digamma(b) - digamma(a + b + ux)),
        ])
        # x = 0: log L = (terms above) - r log(α+T).
        if len(self.T0):
            lT0 = np.log(alpha + self.T0)
            ll -= r * dot(self.w0, lT0)
            g[0] -= dot(self.w0, lT0)
            g[1] -= r * dot(self.w0, 1.0 / (alpha + self.T0))
        # x > 0: log(e^A3 + e^A4) = A3 + softplus(d), d = A4 - A3 = log a - log(b+x-1) + (r+x)(log(α+T) - log(α+t_x)).
        if len(self.x1):
            x, w = self.x1, self.w1
            lTu = np.log(alpha + self.uT1)
            invTu = 1.0 / (alpha + self.uT1)
            ltxu = np.log(alpha + self.utx1)
            invtxu = 1.0 / (alpha + self.utx1)
            bx1u = b + self.ux1 - 1.0
            rwT = r * self.W1_T + self.WX1_T  # Σ w(r+x) per distinct T
            D = lTu[self.iT] - ltxu[self.itx]
            rx = x + r
            d = (np.log(a) - np.log(bx1u))[self.ix] + rx * D
            e = np.exp(-np.abs(d))
            pos = d > 0
            ll += -dot(rwT, lTu) + dot(w, np.maximum(d, 0.0) + np.log1p(e))
            ws = w * np.where(pos, 1.0, e) / (1.0 + e)  # w · expit(d): share of the "dropped out after t_x" term
            wsrx = ws * rx
            g[0] += -dot(self.W1_T, lTu) + dot(ws, D)
            g[1] += -dot(rwT, invTu) + dot(wsrx, invTu[self.iT] - invtxu[self.itx])
            g[2] += ws.sum() / a
            g[3] -= dot(np.bincount(self.ix, weights=ws, minlength=len(bx1u)), 1.0 / bx1u)
        grad_theta = g * np.array([r, alpha, a, b])
        return ll, grad_theta

    def objective(self, theta: Any) -> tuple[float, Any]:
        """-log L per customer and its gradient (what the optimiser minimises)."""
        import numpy as np

        if not np.all(np.isfinite(theta)):
            return np.inf, np.zeros(4)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ll, g = self.value_grad(theta)
        if not np.isfinite(ll) or not np.all(np.isfinite(g)):
            return np.inf, np.zeros(4)
        return -ll / self.n, -g / self.n


def log_likelihood(params: Params, x: Any, tx: Any, T: Any) -> float:
    """Σ log L over the customers (no compression shortcuts beyond the exact ones)."""
    import numpy as np

    lk = _Likelihood(compress(x, tx, T))
    theta = np.log([params.r, params.alpha, params.a, params.b])
    return lk.value_grad(theta)[0]


def individual_log_likelihood(params: Params, x: Any, tx: Any, T: Any) -> Any:
    """log L per customer, straight from the paper's formula (for tests and diagnostics)."""
    import numpy as np
    from scipy.special import betaln, gammaln

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, tx, T = (np.asarray(v, dtype=np.float64) for v in (x, tx, T))
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    t1 = betaln(a, b + x) - betaln(a, b) + common - (r + x) * np.log(alpha + T)
    with np.errstate(invalid="ignore", divide="ignore"):
        t2 = betaln(a + 1, np.maximum(b + x - 1, 1e-300)) - betaln(a, b) + common - (r + x) * np.log(alpha + tx)
    return np.where(x > 0, np.logaddexp(t1, np.where(x > 0, t2, -np.inf)), t1)


# ---------------------------------------------------------------------------------------------- fit

def check_data(x: Any, tx: Any, T: Any) -> None:
    """Refuse data the model cannot be fitted to, with a message that says why."""
    import numpy as np

    n = len(x)
    if n < MIN_CUSTOMERS:
        raise FitError(_("The BG/NBD model needs at least {min} customers with purchases; the data have {n}.")
                       .format(min=MIN_CUSTOMERS, n=n),
                       hint=_("Record more purchases, or choose a later --calibration-end."))
    if not np.all(np.isfinite(tx)) or not np.all(np.isfinite(T)) or np.any(x < 0) or np.any(tx < 0) or np.any(tx > T):
        raise FitError(_("The purchase summary is inconsistent (negative counts or a last purchase after the end)."),
                       hint=_("This is a bug in crmcli; run again with --debug and report it."))
    if not np.any(T > 0):
        raise FitError(_("Every customer made their first purchase on the last day of the data: no time has passed "
                         "in which to observe repeat purchases."),
                       hint=_("Choose a later --calibration-end (or --as-of)."))
    if not np.any(x > 0):
        raise FitError(_("Nobody made a repeat purchase (all {n} customers bought on one day only): the purchase "
                         "rate and the dropout cannot be estimated.").format(n=n),
                       hint=_("Fit again once some customers have come back (or choose a later --calibration-end)."))


def _starts(d: Compressed) -> list[Any]:
    import numpy as np

    n = d.w.sum()
    mean_x = dot(d.w, d.x) / n
    mean_T = dot(d.w, d.T) / n
    # Poisson-gamma without dropout: E[x] = r T / α, so α ≈ r · mean T / mean x.
    scale = max(mean_T, 1e-6) / max(mean_x, 1e-3)
    return [np.log([1.0, scale, 1.0, 1.0]), np.log([0.5, 0.5 * scale, 0.5, 3.0]),
            np.log([0.2, 0.1 * scale, 1.5, 5.0]), np.log([2.0, 4.0 * scale, 0.3, 0.5])]


def numeric_hessian(fun: Any, theta: Any, h: float = 1e-4) -> Any:
    """Central differences of an analytic gradient ``fun(theta) -> (value, grad)``, symmetrised."""
    import numpy as np

    k = len(theta)
    H = np.empty((k, k))
    for j in range(k):
        e = np.zeros(k)
        e[j] = h
        H[:, j] = (fun(theta + e)[1] - fun(theta - e)[1]) / (2 * h)
    return (H + H.T) / 2


def minimize_checked(fun: Any, starts: list[Any], names: tuple[str, ...], model: str, *,
                     exhaustive: bool = True, hess_inv0: Any = None) -> tuple[Any, Any, int]:
    """Minimise ``fun`` (value and gradient in log space) by BFGS from the starts, polish with Newton steps,
    and return (θ, Hessian of fun, iterations) of the best proper optimum; raise FitError when there is none.
    ``exhaustive``: try every start and keep the best (else stop at the first proper optimum);
    ``hess_inv0``: BFGS's first inverse Hessian (from a fit to a sample: see ``warm_start``)."""
    import numpy as np
    from scipy.optimize import minimize

    k = len(names)
    best: Any = None
    problems: list[str] = []
    for theta0 in starts:
        if best is not None and not exhaustive:
            break
        value0, _g = fun(theta0)
        if not np.isfinite(value0):
            continue
        # BFGS rather than L-BFGS-B: with 3-4 parameters its dense update is cheap, and L-BFGS-B's BLAS calls
        # pay a thread wake-up on every iteration (10-40x slower here). Bounds are checked afterwards.
        with np.errstate(all="ignore"):
            options: dict[str, Any] = {"maxiter": 1000, "gtol": 1e-7}
            if hess_inv0 is not None:
                options["hess_inv0"] = hess_inv0
            res = minimize(fun, theta0, jac=True, method="BFGS", options=options)
        theta = np.asarray(res.x, dtype=np.float64)
        value, grad = fun(theta)
        # Newton polish with the finite-difference Hessian of the analytic gradient (quadratic convergence
        # from where BFGS stopped); the Hessian is recomputed only after a large step.
        H = numeric_hessian(fun, theta) if np.isfinite(value) else None
        for _step in range(4):
            if H is None or not np.isfinite(value):
                break
            try:
                step = np.linalg.solve(H, grad)
            except np.linalg.LinAlgError:
                break
            if not np.all(np.isfinite(step)) or np.max(np.abs(step)) < 1e-12:
                break
            candidate = theta - step
            v2, g2 = fun(candidate)
            if not (np.isfinite(v2) and v2 <= value + 1e-15):
                break
            theta, value, grad = candidate, v2, g2
            if np.max(np.abs(step)) > 1e-3:
                H = numeric_hessian(fun, theta)
        if not np.isfinite(value):
            problems.append("nonfinite")
            continue
        at_bound = [names[i] for i in range(k) if abs(theta[i]) >= LOG_BOUND]
        if at_bound:
            problems.append("bound:" + ",".join(at_bound))
            continue
        try:
            eig = np.linalg.eigvalsh(H)
        except np.linalg.LinAlgError:
            eig = np.array([-1.0])
        if not np.all(np.isfinite(eig)) or eig.min() <= 0:
            problems.append("hessian")
            continue
        if np.max(np.abs(grad)) > 1e-4:
            problems.append("gradient")
            continue
        if best is None or value < best[1]:
            best = (theta, value, H, int(res.nit))
    if best is None:
        if any(p.startswith("bound:") for p in problems):
            which = next(p for p in problems if p.startswith("bound:")).removeprefix("bound:")
            raise FitError(_("The {model} fit did not converge to finite parameters ({names} ran off to 0 or "
                             "infinity): the data do not identify the model.").format(model=model, names=which),
                           hint=_("This happens with very little data or data without the pattern the model "
                                  "describes; wait for more purchases or use the rule-based `crm churn scan`."))
        raise FitError(_("The {model} fit failed: the optimiser found no proper maximum of the likelihood.")
                       .format(model=model),
                       hint=_("Check the data (crm churn holdout shows how the model fits), or use the rule-based "
                              "`crm churn scan`."))
    theta, _value, H, nit = best
    return theta, H, nit


WARM_SAMPLE = 25_000  # customers in the sample fit that gives large fits their starting point


def warm_start(objective_of: Any, n: int, starts_of: Any, names: tuple[str, ...], model: str) -> tuple[Any, Any] | None:
    """(θ, inverse Hessian) of the fit to every k-th customer (k = n // WARM_SAMPLE), for data of at least
    3 × WARM_SAMPLE customers; None for smaller data or when the sample has no proper optimum.

    A sample of 25,000 customers puts θ within a few of its standard errors (~2 %) of the full-data optimum, and
    its Hessian of the mean log-likelihood per customer is the full data's to the same accuracy, so BFGS
    on all the data starts with the right curvature and needs a handful of full evaluations instead of
    thirty. The optimum found is the full data's own (same gradient and Hessian checks), not the sample's."""
    import numpy as np

    if n < 3 * WARM_SAMPLE:
        return None
    sub = np.arange(0, n, n // WARM_SAMPLE)
    try:
        theta, H, _nit = minimize_checked(objective_of(sub), starts_of(sub), names, model, exhaustive=False)
        H_inv = np.linalg.inv(H)
        H_inv = (H_inv + H_inv.T) / 2
        np.linalg.cholesky(H_inv)  # what BFGS requires; the check on H does not guarantee it after rounding
        return theta, H_inv
    except (FitError, np.linalg.LinAlgError):
        return None


def minimize_warm_or_cold(objective: Any, sample_objective_of: Any, n: int, sample_starts_of: Any, starts: Any,
                          names: tuple[str, ...], model: str, *, exhaustive: bool) -> tuple[Any, Any, int]:
    """The full data's optimum: from the sample's optimum (warm_start) when there is one and it leads to a proper
    optimum, else from the usual starts (every start when ``exhaustive``)."""
    warm = warm_start(sample_objective_of, n, sample_starts_of, names, model)
    if warm is not None:
        try:
            return minimize_checked(objective, [warm[0]], names, model, exhaustive=False, hess_inv0=warm[1])
        except FitError:
            pass
    return minimize_checked(objective, starts() if callable(starts) else starts, names, model, exhaustive=exhaustive)


def fit(x: Any, tx: Any, T: Any, *, compressed: Compressed | None = None) -> FitResult:
    """Maximum-likelihood BG/NBD parameters for the customers' (x, t_x, T)."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    tx = np.asarray(tx, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    check_data(x, tx, T)
    d = compressed if compressed is not None else compress(x, tx, T)
    lk = _Likelihood(d)
    # Small data: every start, keep the best. Large data: the first proper optimum (each start costs ~1 s),
    # searched from the optimum of a sample of the customers (see warm_start).
    theta, H, nit = minimize_warm_or_cold(
        lk.objective, lambda sub: _Likelihood(compress(x[sub], tx[sub], T[sub])).objective, len(x),
        lambda sub: _starts(compress(x[sub], tx[sub], T[sub])), lambda: _starts(d), PARAM_NAMES, "BG/NBD",
        exhaustive=len(d.w) < 50_000)
    r, alpha, a, b = (float(v) for v in np.exp(theta))
    params = Params(r, alpha, a, b)
    ll = lk.value_grad(theta)[0]
    se: dict[str, float] = {}
    try:
        cov = np.linalg.inv(H * lk.n)
        for i, name in enumerate(PARAM_NAMES):
            se[name] = float(np.exp(theta[i]) * np.sqrt(max(cov[i, i], 0.0)))
    except np.linalg.LinAlgError:  # pragma: no cover - H was checked positive definite
        pass
    warnings: list[str] = []
    if abs(a - 1.0) < 1e-6:
        warnings.append(_("a is almost exactly 1; expected purchases are computed from a limit."))
    return FitResult(params, float(ll), int(len(x)), nit, se, warnings)


# ------------------------------------------------------------------------------------ closed forms

def log_alive_odds(params: Params, x: Any, tx: Any, T: Any) -> Any:
    """log of a/(b+x-1) · ((α+T)/(α+t_x))^(r+x) (the odds of 'dropped out' against 'alive'); -inf for x = 0."""
    import numpy as np

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = np.asarray(x, dtype=np.float64)
    tx = np.asarray(tx, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log(a) - np.log(np.maximum(b + x - 1.0, 1e-300)) + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))
    return np.where(x > 0, d, -np.inf)


def p_alive(params: Params, x: Any, tx: Any, T: Any) -> Any:
    """P(still active | x, t_x, T) (paper, eq. 13). Customers without a repeat purchase get 1."""
    from scipy.special import expit

    return expit(-log_alive_odds(params, x, tx, T))


def _bracket(params: Params, x: Any, T: Any, t: Any) -> Any:
    """(a+b+x-1)/(a-1) · [1 - (1-z)^(a-1) · 2F1(a+b-1-r, a-1; a+b+x-1; z)], z = t/(α+T+t): the expected
    number of purchases in (T, T+t] of a customer who is alive at T."""
    import numpy as np
    from scipy.special import hyp2f1

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = np.asarray(x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)

    def at(a_: float) -> Any:
        z = t / (alpha + T + t)
        c = a_ + b + x - 1.0
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            f = hyp2f1(a_ + b - 1.0 - r, a_ - 1.0, c, z)
            return c / (a_ - 1.0) * (1.0 - np.exp((a_ - 1.0) * np.log1p(-z)) * f)

    if a + b > DEGENERATE_BETA:
        return _bracket_fixed_p(params, x, T, t)
    if abs(a - 1.0) < 1e-7:  # removable singularity at a = 1: the mean of both sides
        exact = (at(1.0 - 1e-6) + at(1.0 + 1e-6)) / 2
    else:
        exact = at(a)
    bad = ~np.isfinite(exact)
    if bad.any():  # 2F1 overflowed: Beta(a, b) is narrow enough for the fixed-p limit to be accurate
        exact = np.where(bad, _bracket_fixed_p(params, x, T, t), exact)
    return exact


def _bracket_fixed_p(params: Params, x: Any, T: Any, t: Any) -> Any:
    """The bracket's limit when Beta(a, b) collapses onto p = a/(a+b) (a, b → ∞ with the ratio fixed), where
    2F1 of such parameters overflows. With a fixed dropout p, an alive customer of rate λ makes
    (1 - e^{-λpt})/p purchases in t on average; over λ ~ Gamma(r+x, α+T) that is
    (1 - ((α+T)/(α+T+pt))^{r+x}) / p. The error against the exact bracket is O(1/(a+b))."""
    import numpy as np

    p = params.a / (params.a + params.b)
    shape = params.r + x
    rate = params.alpha + T
    return -np.expm1(shape * (np.log(rate) - np.log(rate + p * t))) / p


def conditional_expected_purchases(params: Params, t: Any, x: Any, tx: Any, T: Any) -> Any:
    """E[X(T, T+t] | x, t_x, T]: expected repeat purchases in the next t periods (paper, eq. 10).

    The hypergeometric part depends on (x, T) only: it is computed once per distinct pair."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    t_arr = np.broadcast_to(np.asarray(t, dtype=np.float64), x.shape)
    (ux, uT, ut), _w, inv = group_rows(x, T, np.ascontiguousarray(t_arr))
    bracket = _bracket(params, ux, uT, ut)[inv]
    return p_alive(params, x, tx, T) * bracket


def expected_purchases(params: Params, t: Any) -> Any:
    """E[X(t)]: expected repeat purchases in (0, t] of a new customer (paper, eq. 9)."""
    import numpy as np
    from scipy.special import hyp2f1

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t = np.asarray(t, dtype=np.float64)
    z = t / (alpha + t)
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z))


# -------------------------------------------------------------------------------------- simulation

def simulate(params: Params, T: Any, rng: Any) -> tuple[Any, Any]:
    """Repeat purchases of customers observed for T periods each since a first purchase at time 0:
    returns (customer index, time) of every repeat purchase, time-ordered within each customer."""
    import numpy as np

    T = np.asarray(T, dtype=np.float64)
    n = len(T)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    t = np.zeros(n)
    active = np.flatnonzero(lam > 0)
    who: list[Any] = []
    when: list[Any] = []
    while active.size:
        t_new = t[active] + rng.exponential(1.0 / lam[active])
        ok = t_new <= T[active]
        active, t_new = active[ok], t_new[ok]
        t[active] = t_new
        who.append(active)
        when.append(t_new)
        active = active[rng.random(active.size) >= p[active]]
    if not who:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(who), np.concatenate(when)


def summarise_simulation(n: int, who: Any, when: Any) -> tuple[Any, Any]:
    """(x, t_x) per customer from ``simulate``'s output."""
    import numpy as np

    x = np.bincount(who, minlength=n).astype(np.float64)
    tx = np.zeros(n)
    np.maximum.at(tx, who, when)
    return x, tx
