"""NPS, CSAT and CES formulas and their 95 % intervals on hand-computed cases (docs/surveys.md)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmcli.core import survey_stats as s


def test_nps_hand_computed() -> None:
    # 10 answers: 10 10 9 9 9 | 8 7 7 | 6 3 → 5 promoters, 3 passives, 2 detractors.
    out = s.nps({10: 2, 9: 3, 8: 1, 7: 2, 6: 1, 3: 1})
    assert (out["n"], out["promoters"], out["passives"], out["detractors"]) == (10, 5, 3, 2)
    assert out["nps"] == pytest.approx(30.0)
    assert out["mean"] == pytest.approx(7.8)
    # Adjusted Wald: ñ = 13, p̃ = 5.75/13, d̃ = 2.75/13, centre 3/13,
    # variance p̃ + d̃ − (p̃ − d̃)² = 8.5/13 − (3/13)² = 0.600592, se = √(0.600592/13) = 0.214940.
    p, d = 5.75 / 13, 2.75 / 13
    se = math.sqrt((p + d - (p - d) ** 2) / 13)
    assert se == pytest.approx(0.214940, abs=1e-6)
    assert out["ci_low"] == pytest.approx(100 * (3 / 13 - 1.959964 * se), abs=1e-4)
    assert out["ci_low"] == pytest.approx(-19.05, abs=0.01)
    assert out["ci_high"] == pytest.approx(65.20, abs=0.01)


def test_nps_small_and_extreme_samples() -> None:
    # One promoter: NPS 100, but the interval is wide and does not collapse to a point.
    one = s.nps({10: 1})
    assert one["nps"] == 100.0
    assert one["ci_low"] == pytest.approx(-48.50, abs=0.01) and one["ci_high"] == pytest.approx(98.50, abs=0.01)
    # Large all-detractor sample: clipped at −100.
    low = s.nps({0: 1000})
    assert low["nps"] == -100.0 and low["ci_low"] == -100.0 and low["ci_high"] < -98
    empty = s.nps({})
    assert empty["n"] == 0 and empty["nps"] is None and empty["ci_low"] is None


def test_nps_boundaries_6_7_8_9() -> None:
    out = s.nps({6: 1, 7: 1, 8: 1, 9: 1})
    assert (out["detractors"], out["passives"], out["promoters"]) == (1, 2, 1)
    assert out["nps"] == 0.0


def test_csat_hand_computed_with_wilson_interval() -> None:
    # 5 5 4 4 4 3 2 1 → 5 of 8 satisfied = 62.5 %.
    out = s.csat({5: 2, 4: 3, 3: 1, 2: 1, 1: 1})
    assert out["csat"] == pytest.approx(62.5)
    assert out["satisfied"] == 5 and out["mean"] == pytest.approx(3.5)
    # Wilson: centre (p + z²/2n)/(1 + z²/n) = 0.584450, half-width 0.278712.
    assert out["ci_low"] == pytest.approx(30.57, abs=0.01)
    assert out["ci_high"] == pytest.approx(86.32, abs=0.01)
    assert out["distribution"] == {"1": 1, "2": 1, "3": 1, "4": 3, "5": 2}


def test_ces_mean_with_t_interval() -> None:
    # 7 6 6 5 3: mean 5.4, squared deviations 9.2, s² = 2.3, t(0.975, 4) = 2.776.
    out = s.ces({7: 1, 6: 2, 5: 1, 3: 1})
    assert out["mean"] == pytest.approx(5.4)
    assert out["sd"] == pytest.approx(math.sqrt(2.3))
    half = 2.776 * math.sqrt(2.3) / math.sqrt(5)
    assert out["ci_low"] == pytest.approx(5.4 - half) and out["ci_high"] == pytest.approx(5.4 + half)
    assert out["easy_share"] == pytest.approx(80.0)
    assert out["distribution"] == {"1": 0, "2": 0, "3": 1, "4": 0, "5": 1, "6": 2, "7": 1}
    single = s.ces({4: 1})
    assert single["mean"] == 4 and single["sd"] is None and single["ci_low"] is None


def test_t_quantiles_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 5, 10, 29, 30, 35, 45, 59, 61, 100, 119, 121, 500, 10_000):
        assert s.t975(df) == pytest.approx(float(stats.t.ppf(0.975, df)), abs=0.004), df


scores = st.dictionaries(st.integers(0, 10), st.integers(0, 50), max_size=11)


@settings(max_examples=200, deadline=None)
@given(scores)
def test_nps_properties(hist: dict[int, int]) -> None:
    out = s.nps(hist)
    n = sum(hist.values())
    assert out["n"] == n == out["promoters"] + out["passives"] + out["detractors"]
    if n:
        assert -100 <= out["nps"] <= 100
        assert -100 <= out["ci_low"] <= out["ci_high"] <= 100
        # The adjusted estimate (the interval's centre) lies between 0 and the raw NPS.
        centre = 100 * ((out["promoters"] + 0.75) - (out["detractors"] + 0.75)) / (n + 3)
        assert min(0, out["nps"]) - 1e-9 <= centre <= max(0, out["nps"]) + 1e-9


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.integers(1, 5), st.integers(0, 40), max_size=5))
def test_csat_interval_contains_the_share(hist: dict[int, int]) -> None:
    out = s.csat(hist)
    if out["n"]:
        assert 0 <= out["ci_low"] <= out["csat"] <= out["ci_high"] <= 100
