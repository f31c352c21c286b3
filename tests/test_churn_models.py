"""BG/NBD, Gamma-Gamma and CLV: closed forms checked by hand and against the papers, gradients, units, and
clear errors (never a crash) on degenerate data."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import pytest
from crm_helpers import cli, fails, fast_cli, template_store  # noqa: F401 - fixtures (a copied store, one command tree)
from test_churn_cli import modelled  # noqa: F401 - fixture (a fitted and scored shop, built once per run)

# Published CDNOW estimates: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", section 5.
CDNOW = dict(r=0.243, alpha=4.414, a=0.793, b=2.426)


def _params() -> Any:
    from crmcli.core.churn import bgnbd

    return bgnbd.Params(**CDNOW)


# ------------------------------------------------------------------------------------ closed forms

def test_expected_purchases_matches_the_papers_worked_example() -> None:
    """The paper's example: a customer with x = 2, t_x = 30.43, T = 38.86 weeks is expected to make 1.226
    purchases in the next 39 weeks (section 5)."""
    from crmcli.core.churn import bgnbd

    value = bgnbd.conditional_expected_purchases(_params(), 39.0, [2.0], [30.43], [38.86])[0]
    assert value == pytest.approx(1.226, abs=5e-4)


def _hand_p_alive(r: float, alpha: float, a: float, b: float, x: float, tx: float, T: float) -> float:
    """Eq. 13 written out with the standard library only."""
    if x == 0:
        return 1.0
    return 1.0 / (1.0 + a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x))


def _hand_expected(r: float, alpha: float, a: float, b: float, x: float, tx: float, T: float, t: float) -> float:
    """Eq. 10 as printed (the Gaussian hypergeometric series summed term by term with plain floats), so it
    shares nothing with the implementation's Euler-transformed form."""
    z = t / (alpha + T + t)
    A, B, Cc = r + x, b + x, a + b + x - 1
    term, total, k = 1.0, 1.0, 0
    while abs(term) > 1e-16 * abs(total) or k < 5:
        term *= (A + k) * (B + k) / ((Cc + k) * (k + 1)) * z
        total += term
        k += 1
        assert k < 100_000
    bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * total
    return (a + b + x - 1) / (a - 1) * bracket * _hand_p_alive(r, alpha, a, b, x, tx, T)


@pytest.mark.parametrize("x, tx, T, t", [
    (0, 0.0, 38.86, 39.0), (1, 1.71, 38.86, 10.0), (2, 30.43, 38.86, 39.0), (7, 29.43, 38.86, 52.0),
    (14, 37.0, 38.0, 26.0), (1, 0.5, 2.0, 100.0),
])
def test_closed_forms_agree_with_the_formulas_written_out_by_hand(x: float, tx: float, T: float, t: float) -> None:
    from crmcli.core.churn import bgnbd

    p = _params()
    assert bgnbd.p_alive(p, [x], [tx], [T])[0] == pytest.approx(_hand_p_alive(**CDNOW, x=x, tx=tx, T=T), rel=1e-12)
    got = bgnbd.conditional_expected_purchases(p, t, [x], [tx], [T])[0]
    assert got == pytest.approx(_hand_expected(**CDNOW, x=x, tx=tx, T=T, t=t), rel=1e-8)


def test_p_alive_for_a_customer_without_repeat_purchases_is_one_and_falls_with_silence() -> None:
    from crmcli.core.churn import bgnbd

    p = _params()
    assert bgnbd.p_alive(p, [0], [0], [50]).tolist() == [1.0]
    values = bgnbd.p_alive(p, [3, 3, 3], [30, 20, 5], [38, 38, 38])
    assert values[0] > values[1] > values[2] > 0  # the longer since the last purchase, the less likely alive


def test_vectorised_likelihood_and_gradient_match_the_direct_formula_and_finite_differences() -> None:
    import numpy as np

    from crmcli.core.churn import bgnbd

    rng = np.random.default_rng(3)
    T = rng.uniform(5, 40, 300)
    who, when = bgnbd.simulate(_params(), T, rng)
    x, tx = bgnbd.summarise_simulation(300, who, when)
    x = np.concatenate([x, x[:50]])  # duplicates: weighted terms must count twice
    tx = np.concatenate([tx, tx[:50]])
    T = np.concatenate([T, T[:50]])
    p = bgnbd.Params(0.3, 5.0, 0.9, 2.0)
    direct = float(bgnbd.individual_log_likelihood(p, x, tx, T).sum())
    assert bgnbd.log_likelihood(p, x, tx, T) == pytest.approx(direct, rel=1e-12)
    lk = bgnbd._Likelihood(bgnbd.compress(x, tx, T))
    theta = np.log([0.3, 5.0, 0.9, 2.0])
    _v, grad = lk.value_grad(theta)
    h = 1e-6
    for i in range(4):
        e = np.zeros(4)
        e[i] = h
        numeric = (lk.value_grad(theta + e)[0] - lk.value_grad(theta - e)[0]) / (2 * h)
        assert grad[i] == pytest.approx(numeric, rel=1e-6, abs=1e-6)


def test_gamma_gamma_gradient_and_published_expected_value() -> None:
    import numpy as np

    from crmcli.core.churn import gammagamma

    # Fader & Hardie's note on CDNOW: p = 6.25, q = 3.74, γ = 15.44; E[M | x, m_x] = p(γ + x m_x)/(p x + q - 1).
    g = gammagamma.Params(6.25, 3.74, 15.44)
    assert gammagamma.expected_order_value(g, [1.0], [20.0])[0] == pytest.approx(6.25 * (15.44 + 20) / (6.25 + 2.74))
    assert gammagamma.population_mean(g) == pytest.approx(6.25 * 15.44 / 2.74)
    assert gammagamma.expected_order_value(g, [0.0], [np.nan])[0] == pytest.approx(gammagamma.population_mean(g))
    rng = np.random.default_rng(5)
    x = rng.integers(1, 8, 400).astype(float)
    m = rng.gamma(4.0, 10.0, 400)
    lk = gammagamma._Likelihood(x, m, np.ones(400))
    theta = np.log([3.0, 4.0, 12.0])
    value, grad = lk.value_grad(theta)
    assert value == pytest.approx(gammagamma.individual_log_likelihood(gammagamma.Params(3.0, 4.0, 12.0), x, m).sum())
    for i in range(3):
        e = np.zeros(3)
        e[i] = 1e-6
        numeric = (lk.value_grad(theta + e)[0] - lk.value_grad(theta - e)[0]) / 2e-6
        assert grad[i] == pytest.approx(numeric, rel=1e-6, abs=1e-6)


# ----------------------------------------------------------------------------------------- units

def test_clv_horizon_in_months_is_converted_to_the_data_period_never_the_factor_of_4_trap() -> None:
    """12 months on weekly data is 12 × 30.4375 / 7 = 52.18 weeks. The same customers described in days
    (α × 7, times × 7) must get the same CLV; reading the months as weeks (12 weeks) or as 4-week months (48
    weeks) must not."""
    import numpy as np

    from crmcli.core.churn import bgnbd, clv

    pw = _params()
    pd = pw.rescaled(1 / 7)  # the same model with time in days: α per day = 7 × α per week
    assert pd.alpha == pytest.approx(7 * pw.alpha)
    x, tx, T = np.array([0.0, 2.0, 5.0]), np.array([0.0, 30.43, 20.0]), np.array([38.86, 38.86, 38.0])
    ov = np.array([30.0, 40.0, 50.0])
    weekly = clv.clv(pw, x, tx, T, ov, months=12, discount=0.0, period_days=7)
    daily = clv.clv(pd, x, tx * 7, T * 7, ov, months=12, discount=0.0, period_days=1)
    assert weekly == pytest.approx(daily, rel=1e-9)
    # Undiscounted, the monthly sum telescopes to the expected purchases over the whole horizon.
    horizon_weeks = 12 * 30.4375 / 7
    assert clv.month_in_periods(7) * 12 == pytest.approx(horizon_weeks)
    direct = ov * bgnbd.conditional_expected_purchases(pw, horizon_weeks, x, tx, T)
    assert weekly == pytest.approx(direct, rel=1e-9)
    wrong_12_weeks = ov * bgnbd.conditional_expected_purchases(pw, 12.0, x, tx, T)
    wrong_48_weeks = ov * bgnbd.conditional_expected_purchases(pw, 48.0, x, tx, T)
    assert np.all(weekly > wrong_48_weeks * 1.02) and np.all(weekly > wrong_12_weeks * 2)
    # Discounting lowers it: at 1 % a month, by less than 1 - 1/1.01^12 overall.
    discounted = clv.clv(pw, x, tx, T, ov, months=12, discount=0.01, period_days=7)
    assert np.all(discounted < weekly) and np.all(discounted > weekly / 1.01 ** 12)


def test_fitting_in_days_or_weeks_gives_the_same_model(tmp_path: Any) -> None:
    """Time unit only rescales α: r, a, b and every prediction stay the same."""
    import numpy as np

    from crmcli.core.churn import bgnbd

    rng = np.random.default_rng(11)
    T_days = rng.integers(100, 300, 3000).astype(float)
    who, when = bgnbd.simulate(bgnbd.Params(0.5, 60.0, 0.8, 3.0), T_days, rng)
    x, tx = bgnbd.summarise_simulation(3000, who, when)
    day = bgnbd.fit(x, tx, T_days)
    week = bgnbd.fit(x, tx / 7, T_days / 7)
    assert week.params.alpha == pytest.approx(day.params.alpha / 7, rel=1e-5)
    for name in ("r", "a", "b"):
        assert getattr(week.params, name) == pytest.approx(getattr(day.params, name), rel=1e-5)
    e_day = bgnbd.conditional_expected_purchases(day.params, 90.0, x, tx, T_days)
    e_week = bgnbd.conditional_expected_purchases(week.params, 90.0 / 7, x, tx / 7, T_days / 7)
    assert e_day == pytest.approx(e_week, rel=1e-4)


# ------------------------------------------------------------------------------------ degenerate data

def _shop(store: Any, *histories: list[tuple[date, str]]) -> list[str]:
    """Customers "Person 0", "Person 1", ... each with their (day, amount) sales, written in one transaction
    through the functions behind `crm customer add` and `crm purchase add` (a hundred CLI runs would take a
    minute); returns their codes. The commands under test (`crm churn fit/score`) still run through the CLI."""
    from crmcli.core import customers, purchases
    from crmcli.core.context import StoreContext

    codes = []
    with store.write() as session:
        ctx = StoreContext.load(session, as_of=date(2025, 6, 30))
        for i, sales in enumerate(histories):
            c = customers.add_customer(session, customers.CustomerInput(name=f"Person {i}"), ctx)
            for day, amount in sales:
                purchases.add_purchase(session, c, purchases.PurchaseInput(amount=amount, at=day.isoformat()), ctx)
            codes.append(c.code)
    return codes


def test_fit_with_one_customer_is_a_clear_error_and_changes_nothing(cli: Any, store: Any, unchanged: Any) -> None:
    _shop(store, [(date(2025, 1, 1), "20"), (date(2025, 2, 1), "20")])
    check = unchanged()
    fails(cli, 1, "churn", "fit", "--as-of", "2025-06-30", says=("at least 10 customers", "the data have 1"))
    check()


def test_fit_without_any_purchase_is_a_clear_error(cli: Any) -> None:
    fails(cli, 1, "churn", "fit", "--as-of", "2025-06-30", says=("No customer has a purchase",))


def test_fit_when_nobody_repeats_is_a_clear_error(cli: Any, store: Any, unchanged: Any) -> None:
    _shop(store, *[[(date(2025, 1, 1) + timedelta(days=i), "20")] for i in range(12)])
    check = unchanged()
    fails(cli, 1, "churn", "fit", "--as-of", "2025-06-30", says=("Nobody made a repeat purchase",))
    check()


def test_fit_when_everybody_buys_on_the_same_day_is_a_clear_error(cli: Any, store: Any) -> None:
    # a second sale the same day: still one purchase
    _shop(store, *[[(date(2025, 3, 1), "20"), (date(2025, 3, 1), "5")] for _ in range(12)])
    fails(cli, 1, "churn", "fit", "--as-of", "2025-03-01", says=("first purchase on the last day",))
    fails(cli, 1, "churn", "fit", "--as-of", "2025-06-01", says=("Nobody made a repeat purchase",))


def test_everybody_repeating_in_lockstep_does_not_crash(cli: Any, store: Any) -> None:
    """Every customer buys on the same two days: the likelihood has no interior maximum. The fit must end
    with a clear error or finite parameters, never a traceback."""
    _shop(store, *[[(date(2025, 1, 1), "20"), (date(2025, 2, 1), "20")] for _ in range(12)])
    result = cli("churn", "fit", "--as-of", "2025-06-30", "--format", "json")
    assert "Traceback" not in result.stdout + result.stderr
    if result.exit_code:
        assert result.exit_code == 1 and result.stderr.startswith("Error: ") and "fit" in result.stderr
    else:
        import json

        rec = json.loads(result.stdout)
        assert all(math.isfinite(rec[k]) for k in ("r", "alpha", "a", "b"))


def test_gamma_gamma_refuses_identical_spend_and_infinite_mean() -> None:
    import numpy as np

    from crmcli.core.churn import gammagamma
    from crmcli.core.churn.bgnbd import FitError

    with pytest.raises(FitError, match="exactly the same average"):
        gammagamma.fit(np.full(50, 2.0), np.full(50, 10.0))
    with pytest.raises(FitError, match="at least 10"):
        gammagamma.fit(np.array([1.0, 2.0]), np.array([5.0, 7.0]))
    rng = np.random.default_rng(1)  # very heavy-tailed spend: q ≤ 1 has no finite mean
    x = rng.integers(1, 5, 3000).astype(float)
    m = rng.pareto(0.6, 3000) * 10 + 1
    try:
        res = gammagamma.fit(x, m)
    except FitError as e:
        assert "q" in e.message or "fit" in e.message
    else:
        assert res.params.q > 1


def test_a_failed_spend_fit_keeps_the_bgnbd_fit_and_says_why(cli: Any, store: Any, db_path: Any) -> None:
    """Every order costs the same: BG/NBD still fits; Gamma-Gamma cannot, which is reported; scores have no
    CLV (and say so)."""
    from crm_helpers import one

    start = date(2025, 1, 1)
    _shop(store, *[[(start + timedelta(days=i % 7), "20")]
                   + [(start + timedelta(days=20 + 17 * k + i % 5), "20") for k in range(i % 4)] for i in range(30)])
    result = cli("churn", "fit", "--as-of", "2025-06-30", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert "Gamma-Gamma spend model was not fitted" in result.stderr
    assert "exactly the same average amount" in result.stderr  # the reason, from gammagamma.fit
    import json

    rec = json.loads(result.stdout)
    assert rec["p"] is None and rec["gamma"] is None and "exactly the same average" in rec["gg_error"]
    assert all(math.isfinite(rec[k]) and rec[k] > 0 for k in ("r", "alpha", "a", "b"))  # the BG/NBD fit is kept
    assert rec["n_customers"] == 30 and rec["log_likelihood"] < 0
    assert one(db_path, "SELECT COUNT(*) FROM churn_fit WHERE p IS NULL AND r IS NOT NULL") == 1
    scored = cli("churn", "score", "--as-of", "2025-06-30")
    assert scored.exit_code == 0 and "no expected order values or CLV" in scored.stderr, scored.stderr + scored.stdout
    assert one(db_path, "SELECT COUNT(*) FROM churn_score WHERE clv_minor IS NULL AND p_alive > 0") == 30


def test_a_collapsed_dropout_distribution_still_gives_finite_expectations() -> None:
    """When a and b run off to millions (every customer drops out with the same p), 2F1 overflows; the
    fixed-p limit takes over, agrees with the exact bracket where both are computable, and stays finite."""
    import numpy as np

    from crmcli.core.churn import bgnbd

    x, T, t = np.array([0.0, 1, 3, 8]), np.array([20.0, 25, 30, 40]), np.full(4, 10.0)
    near = bgnbd.Params(0.8, 3.3, 900.0, 1000.0)
    exact = bgnbd._bracket(near, x, T, t)
    assert np.allclose(exact, bgnbd._bracket_fixed_p(near, x, T, t), rtol=2e-3)
    huge = bgnbd.Params(0.8, 3.3, 2.4e7, 2.5e7)
    values = bgnbd.conditional_expected_purchases(huge, 10.0, x, np.array([0.0, 10, 20, 35]), T)
    assert np.isfinite(values).all() and (values > 0).all()
    # p → a/(a+b) = 0.49; a fresh customer with x=0 at T=20: (1 - (23.3/(23.3+0.49·10))^0.8)/0.49
    p = 2.4e7 / 4.9e7
    assert values[0] == pytest.approx((1 - (23.3 / (23.3 + p * 10)) ** 0.8) / p, rel=1e-6)


def test_rescoring_updates_the_rows_in_place_and_drops_customers_no_longer_scored(modelled: Any) -> None:
    """write_scores upserts: the same scores twice leave the table as it was; a customer deleted since the last
    run loses their row; a later as-of date changes the scores; run constants come from the score run."""
    from crm_helpers import one, query
    from test_report_value import AS_OF

    cli = modelled
    first = dict((r[0], r[1:]) for r in query(cli.db, "SELECT customer_id, p_alive, expected_purchases, clv_minor "
                                                      "FROM churn_score"))
    assert len(first) == 30
    cli.ok("churn", "score", "--as-of", AS_OF.isoformat())
    again = dict((r[0], r[1:]) for r in query(cli.db, "SELECT customer_id, p_alive, expected_purchases, clv_minor "
                                                      "FROM churn_score"))
    assert again == first
    gone, code = query(cli.db, "SELECT id, code FROM customer WHERE name = 'C00'")[0]
    cli.ok("customer", "rm", code, "--yes")
    later = AS_OF + timedelta(days=30)
    cli.ok("churn", "score", "--as-of", later.isoformat(), "--horizon", "30d", "--clv-months", "6")
    after = dict((r[0], r[1:]) for r in query(cli.db, "SELECT customer_id, p_alive, expected_purchases, clv_minor "
                                                      "FROM churn_score"))
    assert set(after) == set(first) - {gone}
    assert all(after[c][1] != first[c][1] for c in after)  # 30 days less horizon: fewer purchases expected
    other = one(cli.db, "SELECT code FROM customer WHERE name = 'C01'")
    card = cli.json("card", "show", other, "--as-of", later.isoformat())["churn"]
    assert (card["scored_as_of"], card["horizon_days"], card["clv_months"]) == (later.isoformat(), 30, 6)


def test_warm_start_reaches_the_same_optimum_as_the_cold_fit(monkeypatch: Any) -> None:
    """Large fits start from the optimum of a sample (bgnbd.warm_start); made to apply to 6,000 customers
    (sample of 500) here, the estimates equal the cold fit's within the optimiser's tolerance, for both models."""
    import numpy as np

    from crmcli.core.churn import bgnbd, gammagamma

    rng = np.random.default_rng(11)
    n = 6000
    T = rng.uniform(27, 39, n)
    who, when = bgnbd.simulate(bgnbd.Params(**CDNOW), T, rng)
    x, tx = bgnbd.summarise_simulation(n, who, when)
    ggp = gammagamma.Params(6.25, 3.74, 15.44)
    cust, value = gammagamma.simulate(ggp, x, rng)
    m = np.bincount(cust, weights=value, minlength=n) / np.maximum(x, 1)
    cold_bg, cold_gg = bgnbd.fit(x, tx, T), gammagamma.fit(x, m)
    monkeypatch.setattr(bgnbd, "WARM_SAMPLE", 500)
    assert int((x > 0).sum()) >= 3 * 500  # the spend fit's warm start applies too
    assert bgnbd.warm_start(lambda sub: bgnbd._Likelihood(bgnbd.compress(x[sub], tx[sub], T[sub])).objective, n,
                            lambda sub: bgnbd._starts(bgnbd.compress(x[sub], tx[sub], T[sub])),
                            bgnbd.PARAM_NAMES, "BG/NBD") is not None
    warm_bg, warm_gg = bgnbd.fit(x, tx, T), gammagamma.fit(x, m)
    for name in bgnbd.PARAM_NAMES:
        assert getattr(warm_bg.params, name) == pytest.approx(getattr(cold_bg.params, name), rel=1e-5)
    for name in gammagamma.PARAM_NAMES:
        assert getattr(warm_gg.params, name) == pytest.approx(getattr(cold_gg.params, name), rel=1e-5)
    assert warm_bg.log_likelihood == pytest.approx(cold_bg.log_likelihood, abs=1e-6)


def test_write_scores_stores_every_value_and_null_across_statement_batches(cli: Any, store: Any,
                                                                           monkeypatch: Any) -> None:
    """Rows go in by batches of ROWS_PER_STATEMENT (made 7 here: 23 customers = 3 full batches and a short one);
    every value lands in its own row and column, non-finite CLVs and order values are NULL, a spend model
    without parameters gives NULL columns, and a second write replaces the first (fewer customers: the
    others' rows go)."""
    import numpy as np
    from crm_helpers import query

    from crmcli.core.churn import modeling

    monkeypatch.setattr(modeling, "ROWS_PER_STATEMENT", 7)
    codes = _shop(store, *[[(date(2025, 1, 1), "20")] for _ in range(23)])
    ids = np.array(sorted(r[0] for r in query(cli.db, "SELECT id FROM customer")), dtype=np.int64)
    assert len(ids) == len(codes) == 23
    n = len(ids)
    p_alive = np.linspace(0.01, 0.99, n)
    expected = np.arange(n) / 8.0
    order_value = np.arange(n) * 100.0 + 5
    clv = np.arange(n) * 1000.0 + 7
    clv[[0, 6, 7, 13, 22]] = np.nan  # at the ends of batches, across a boundary, in the short last batch
    order_value[[7, 21]] = np.inf

    def scores(sel: Any, ov: Any, cv: Any) -> Any:
        return modeling.Scores(ids[sel], None, None, None, None, p_alive[sel], expected[sel], ov, cv)

    with store.write() as session:
        modeling.write_scores(session, scores(slice(None), order_value, clv))
    rows = query(cli.db, "SELECT customer_id, p_alive, expected_purchases, order_value_minor, clv_minor FROM churn_score "
                         "ORDER BY customer_id")
    assert [r[0] for r in rows] == ids.tolist()
    assert [r[1] for r in rows] == p_alive.tolist() and [r[2] for r in rows] == expected.tolist()
    assert [r[3] for r in rows] == [None if i in (7, 21) else i * 100 + 5 for i in range(n)]
    assert [r[4] for r in rows] == [None if i in (0, 6, 7, 13, 22) else i * 1000 + 7 for i in range(n)]

    keep = np.arange(n) % 3 != 1  # a third of the customers are no longer scored
    with store.write() as session:
        modeling.write_scores(session, scores(keep, None, None))
    rows = query(cli.db, "SELECT customer_id, p_alive, order_value_minor, clv_minor FROM churn_score ORDER BY customer_id")
    assert rows == [(int(i), float(p), None, None) for i, p in zip(ids[keep], p_alive[keep])]


def test_customers_removed_by_import_undo_take_their_scores_with_them(cli: Any, store: Any, tmp_path: Any) -> None:
    """churn_score has no foreign key (m0018): the trigger on customer removes a customer's score. Customers
    imported (#1) with their purchases (#2), scored, then both imports undone: their scores are gone, the
    others' stay."""
    from crm_helpers import one, query
    from test_report_value import AS_OF, _shop_with_models

    _shop_with_models(cli, store)
    people = tmp_path / "people.csv"
    people.write_text("name,code\n" + "".join(f"Imported {i},IMP{i}\n" for i in range(3)), encoding="utf-8")
    cli.ok("import", "customers", str(people), "--as-of", AS_OF.isoformat())
    orders = tmp_path / "orders.csv"
    orders.write_text("订单号,客户编号,手机,金额,下单时间,商品,数量\n" + "".join(
        f"O{i}{k},IMP{i},,{20 + 7 * i + k},2025-0{2 + k}-1{i},茶,1\n" for i in range(3) for k in range(3)), encoding="utf-8")
    cli.ok("import", "purchases", str(orders), "--as-of", AS_OF.isoformat())
    cli.ok("churn", "score", "--as-of", AS_OF.isoformat())
    imported = [r[0] for r in query(cli.db, "SELECT id FROM customer WHERE code LIKE 'IMP%'")]
    assert len(imported) == 3 and one(cli.db, "SELECT COUNT(*) FROM churn_score") == 33
    cli.ok("import", "undo", "2", "--yes")
    cli.ok("import", "undo", "1", "--yes")
    assert one(cli.db, "SELECT COUNT(*) FROM customer WHERE code LIKE 'IMP%'") == 0
    assert one(cli.db, "SELECT COUNT(*) FROM churn_score") == 30
    assert one(cli.db, f"SELECT COUNT(*) FROM churn_score WHERE customer_id IN ({', '.join(map(str, imported))})") == 0


def test_a_customer_removed_between_the_snapshot_and_the_write_gets_no_score(cli: Any, store: Any) -> None:
    """`crm churn score` computes on a read snapshot and writes afterwards; a customer removed in between (an
    import undone meanwhile) must not be left with a score row (the trigger ran before the row was written)."""
    from sqlalchemy import text

    from crm_helpers import one
    from test_report_value import AS_OF, _shop_with_models

    from crmcli.core.churn import modeling
    from crmcli.core.context import StoreContext

    _shop_with_models(cli, store)
    with store.read() as session:
        ctx = StoreContext.load(session, as_of=AS_OF)
        prepared = modeling.prepare_scores(session, ctx, horizon_days=90, clv_months=12, discount=0.01)
    gone = int(prepared.scores.ids[3])
    with store.write() as session:  # what an undo does: the customer's rows, then the customer
        session.execute(text("DELETE FROM churn_score WHERE customer_id = :c"), {"c": gone})
        session.execute(text("DELETE FROM purchase WHERE customer_id = :c"), {"c": gone})
        session.execute(text("DELETE FROM customer WHERE id = :c"), {"c": gone})
    with store.write() as session:
        outcome = modeling.save_scores(session, prepared)
    assert outcome.customers == 30
    assert one(cli.db, "SELECT COUNT(*) FROM churn_score WHERE customer_id = ?", gone) == 0
    assert one(cli.db, "SELECT COUNT(*) FROM churn_score") == 29
