"""Survey statistics from a score histogram ({score: count}); pure functions, documented in docs/surveys.md.

- NPS = % promoters (9–10) − % detractors (0–6), from −100 to +100. 95 % interval: adjusted Wald
  (Rocks 2016, The American Statistician 70(4)): add ¾ of a response to the promoters and to the
  detractors and 3 to n (ñ = n + 3, p̃ = (P + ¾)/ñ, d̃ = (D + ¾)/ñ); the variance of the difference of the two
  proportions is p̃ + d̃ − (p̃ − d̃)², so the interval is 100·[(p̃ − d̃) ± 1.96·√((p̃ + d̃ − (p̃ − d̃)²)/ñ)],
  clipped to [−100, 100]. It stays sensible for small samples and all-promoter results, where the plain
  Wald interval collapses to a point.
- CSAT = % of responses that are 4 or 5 on the 1–5 scale; 95 % Wilson score interval.
- CES (1–7, higher = easier) and other scales: mean, sample standard deviation, and a 95 % Student-t
  interval for the mean (mean ± t(0.975, n−1)·s/√n).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

Z95 = 1.959963984540054

# Two-sided 95 % Student t quantiles t(0.975, df); between table points we interpolate linearly in 1/df.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
         29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t975(df: int) -> float:
    if df < 1:
        raise ValueError("df must be at least 1")
    if df in _T975:
        return _T975[df]
    keys = sorted(_T975)
    if df > keys[-1]:
        lo_df, lo_t, hi_inv, hi_t = keys[-1], _T975[keys[-1]], 0.0, Z95
    else:
        lo_df = max(k for k in keys if k < df)
        hi_df = min(k for k in keys if k > df)
        lo_t, hi_inv, hi_t = _T975[lo_df], 1 / hi_df, _T975[hi_df]
    lo_inv = 1 / lo_df
    return hi_t + (lo_t - hi_t) * (1 / df - hi_inv) / (lo_inv - hi_inv)


def _n(hist: Mapping[int, int]) -> int:
    return sum(hist.values())


def mean_sd(hist: Mapping[int, int]) -> tuple[float | None, float | None]:
    n = _n(hist)
    if n == 0:
        return None, None
    mean = sum(s * c for s, c in hist.items()) / n
    if n == 1:
        return mean, None
    var = sum(c * (s - mean) ** 2 for s, c in hist.items()) / (n - 1)
    return mean, math.sqrt(var)


def nps(hist: Mapping[int, int]) -> dict[str, Any]:
    n = _n(hist)
    promoters = sum(c for s, c in hist.items() if s >= 9)
    detractors = sum(c for s, c in hist.items() if s <= 6)
    passives = n - promoters - detractors
    out: dict[str, Any] = {"n": n, "promoters": promoters, "passives": passives, "detractors": detractors,
                           "nps": None, "ci_low": None, "ci_high": None, "mean": mean_sd(hist)[0]}
    if n == 0:
        return out
    out["nps"] = 100 * (promoters - detractors) / n
    nt = n + 3
    p, d = (promoters + 0.75) / nt, (detractors + 0.75) / nt
    centre = p - d
    se = math.sqrt(max(p + d - centre ** 2, 0.0) / nt)
    out["ci_low"] = max(-100.0, 100 * (centre - Z95 * se))
    out["ci_high"] = min(100.0, 100 * (centre + Z95 * se))
    return out


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | tuple[None, None]:
    if n == 0:
        return None, None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact bounds at 0 and n (no rounding noise)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def csat(hist: Mapping[int, int]) -> dict[str, Any]:
    n = _n(hist)
    satisfied = sum(c for s, c in hist.items() if s >= 4)
    low, high = wilson(satisfied, n)
    return {"n": n, "satisfied": satisfied, "csat": 100 * satisfied / n if n else None,
            "ci_low": 100 * low if low is not None else None, "ci_high": 100 * high if high is not None else None,
            "mean": mean_sd(hist)[0], "distribution": distribution(hist, 1, 5)}


def mean_interval(hist: Mapping[int, int]) -> dict[str, Any]:
    n = _n(hist)
    mean, sd = mean_sd(hist)
    low = high = None
    if mean is not None and sd is not None:
        half = t975(n - 1) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
    return {"n": n, "mean": mean, "sd": sd, "ci_low": low, "ci_high": high}


def ces(hist: Mapping[int, int]) -> dict[str, Any]:
    out = mean_interval(hist)
    n = out["n"]
    easy = sum(c for s, c in hist.items() if s >= 5)
    out.update({"easy": easy, "easy_share": 100 * easy / n if n else None, "distribution": distribution(hist, 1, 7)})
    return out


def scale(hist: Mapping[int, int], low: int, high: int) -> dict[str, Any]:
    out = mean_interval(hist)
    out["distribution"] = distribution(hist, low, high)
    return out


def distribution(hist: Mapping[int, int], low: int, high: int) -> dict[str, int]:
    return {str(s): int(hist.get(s, 0)) for s in range(low, high + 1)}


def metric(kind: str, hist: Mapping[int, int], low: int = 0, high: int = 10) -> dict[str, Any]:
    """The summary of one scored question: NPS, CSAT, CES or a plain scale."""
    if kind == "nps":
        out = nps(hist)
        out["distribution"] = distribution(hist, 0, 10)
        return out
    if kind == "csat":
        return csat(hist)
    if kind == "ces":
        return ces(hist)
    return scale(hist, low, high)


def headline(kind: str, summary: Mapping[str, Any]) -> float | None:
    """The one number for a question: NPS, CSAT %, or the mean."""
    return summary.get({"nps": "nps", "csat": "csat"}.get(kind, "mean"))
