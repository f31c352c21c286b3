"""Benchmark: the churn models on a simulated shop (issue 7: 1,000,000 customers, fixed seed).

Targets from the issue (measured there against lifetimes 0.11.3, about 18 s to fit BG/NBD on 1,000,000
customers and 0.8 s to score them): fit BG/NBD in at most 2 s with the same estimates, and Gamma-Gamma plus
the scoring of every customer plus storing the scores in at most 2 s more.

Phases, each timed in CPU seconds of this process (time.process_time: the machine is shared, and a loaded
machine inflates wall-clock times several-fold) and in wall-clock seconds [in brackets]; the in-process
phases run CRM_BENCH_REPEAT times (default 3) and the median is what the targets are checked against:
- summary: the purchase scan and the per-customer summary (fetch_days + summarise; not part of either target);
- fit: the BG/NBD maximum likelihood fit (target 1: ≤ FIT_TARGET);
- gg, score, store: the Gamma-Gamma fit, P(alive)/E[X]/E[M]/CLV for every customer, and writing them to
  churn_score (target 2: their sum ≤ REST_TARGET). "store" is measured twice: into an empty churn_score
  (first scoring of a store), and as a re-score one day later, which changes every row (the usual case).
  The store phase is the whole of the write transaction of `crm churn score`, BEGIN and COMMIT included
  (issue 10: how long other writers wait; until 2026-11-30 the commit, about 0.05 CPU s, was left out).

When run with 1,000,000 customers or more the test FAILS if a target is missed; at smaller sizes it only
prints. It always fails when the estimates differ from the reference or the fit is not at least CEILING
times faster than it.

Reference: a straightforward implementation of the same model — the paper's per-customer log-likelihood
(crmcli.core.churn.bgnbd.individual_log_likelihood, one term per customer, no gradient) minimised with
scipy's Nelder-Mead from log-parameters 0. Its estimates are "the same estimates" (relative difference of
every parameter ≤ 1e-3, log-likelihood within 1e-6 per customer). It takes minutes at 1,000,000 customers,
so its result is cached next to a reused store (see CRM_BENCH_STORE).

Run:  pytest tests/benchmarks/test_churn_bench.py -m benchmark -s
Size: CRM_BENCH_CUSTOMERS (default 1,000,000) simulated customers (CDNOW-like parameters, see
tests/test_churn_sim.py), written straight into a migrated store.
Reuse: CRM_BENCH_STORE=/path/churn-1m.sqlite builds the store there once (about 2 minutes for 1,000,000)
and reuses it (and the cached reference fit, path + ".reference.json") on later runs; each run works on
a copy, so the reused store stays as built.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

SEED = 20050101
FIT_TARGET = 2.0  # seconds, BG/NBD fit (issue 7)
REST_TARGET = 2.0  # seconds more: Gamma-Gamma + scoring + storing
CEILING = 3.0  # the fit must be at least this many times faster than the reference, else the test fails

FLOOR_SQL = ("SELECT customer_id, COUNT(DISTINCT purchased_on), MIN(purchased_on), MAX(purchased_on) "
             "FROM purchase WHERE kind = 'sale' AND purchased_on <= ? GROUP BY customer_id")


def reference_fit(x, tx, T):  # type: ignore[no-untyped-def]
    """(params, log-likelihood, seconds): per-customer likelihood, Nelder-Mead, no tricks."""
    import numpy as np
    from scipy.optimize import minimize

    from crmcli.core.churn import bgnbd

    n = len(x)

    def objective(theta):  # type: ignore[no-untyped-def]
        r, alpha, a, b = np.exp(theta)
        value = -float(np.sum(bgnbd.individual_log_likelihood(bgnbd.Params(r, alpha, a, b), x, tx, T))) / n
        return value if np.isfinite(value) else 1e300

    t = time.process_time()
    res = minimize(objective, np.zeros(4), method="Nelder-Mead",
                   options={"xatol": 1e-7, "fatol": 1e-12, "maxiter": 20_000, "maxfev": 20_000})
    seconds = time.process_time() - t
    r, alpha, a, b = (float(v) for v in np.exp(res.x))
    return bgnbd.Params(r, alpha, a, b), -res.fun * n, seconds, res.nfev


def sql_floor(path: Path, end: str) -> float:
    conn = sqlite3.connect(path)
    try:
        best = float("inf")
        for _ in range(2):
            t = time.process_time()
            conn.execute(FLOOR_SQL, (end,)).fetchall()
            best = min(best, time.process_time() - t)
        return best
    finally:
        conn.close()


def cli_seconds(path: Path, *args: str) -> float:
    env = {**os.environ, "CRM_LANG": "en"}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "crmcli", "--db", str(path), *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return time.perf_counter() - t


def prepared_store(tmp_path: Path, n: int) -> tuple[Path, Any, Path | None]:
    """(store to work on, end date, reference cache or None): a fresh simulated store, or a copy of the one
    at CRM_BENCH_STORE (built there first if missing)."""
    import shutil

    from test_churn_sim import END, build_store

    from crmcli.core.stores import init_store

    keep = os.environ.get("CRM_BENCH_STORE")
    target = Path(keep) if keep else tmp_path / "churn.sqlite"
    marker = target.with_name(target.name + f".built-{n}-{SEED}")
    if keep and target.exists() and not marker.exists():
        pytest.fail(f"{target} exists but was not built by this benchmark for {n:,} customers (no {marker.name}); "
                    "give CRM_BENCH_STORE a new path")
    if not (keep and target.exists()):
        target.with_name(target.name + ".reference.json").unlink(missing_ok=True)
        init_store(str(target), currency="CNY", region="CN", timezone="Asia/Shanghai").store.dispose()
        t = time.perf_counter()
        build_store(target, n, SEED)
        print(f"\n  simulated {n:,} customers up to {END} in {time.perf_counter() - t:.1f} s")
        marker.touch()
    if not keep:
        return target, END, None
    work = tmp_path / "churn.sqlite"
    shutil.copyfile(target, work)
    return work, END, target.with_name(target.name + ".reference.json")


def cached_reference(cache: Path | None, x: Any, tx: Any, T: Any) -> tuple[Any, float, float, int, bool]:
    from crmcli.core.churn import bgnbd

    if cache is not None and cache.exists():
        data = json.loads(cache.read_text())
        return bgnbd.Params(**data["params"]), data["ll"], data["seconds"], data["nfev"], True
    ref, ll, seconds, nfev = reference_fit(x, tx, T)
    if cache is not None:
        cache.write_text(json.dumps({"params": ref.as_dict(), "ll": ll, "seconds": seconds, "nfev": nfev}))
    return ref, ll, seconds, nfev, False


@pytest.mark.benchmark
def test_churn_fit_and_score_against_the_reference(tmp_path: Path) -> None:
    from datetime import timedelta
    from statistics import median

    from crmcli.core.churn import gammagamma, modeling
    from crmcli.core.churn.summary import fetch_days, summarise
    from crmcli.core.context import StoreContext
    from crmcli.core.money import precision
    from crmcli.store.engine import open_store

    n = int(os.environ.get("CRM_BENCH_CUSTOMERS", "1000000"))
    repeat = max(1, int(os.environ.get("CRM_BENCH_REPEAT", "3")))
    path, end, cache = prepared_store(tmp_path, n)
    load_before = os.getloadavg()[0]  # CPU seconds grow with the machine's load (shared caches, hyper-threads)

    import scipy.optimize  # noqa: F401 - imported before the clock starts: the stages, not the imports, are timed
    import scipy.special  # noqa: F401

    precision("CNY")  # babel's currency data, loaded once per process, not per phase
    cpu: dict[str, list[float]] = {k: [] for k in ("summary", "fit", "gg", "score", "store_new", "rescore", "store")}
    wall: dict[str, list[float]] = {k: [] for k in cpu}

    def timed(name: str, fn: Any) -> Any:
        c, w = time.process_time(), time.perf_counter()
        result = fn()
        cpu[name].append(time.process_time() - c)
        wall[name].append(time.perf_counter() - w)
        return result

    store = open_store(str(path))

    def store_scores(scores: Any) -> None:
        """The write transaction of `crm churn score` (BEGIN IMMEDIATE, the rows, COMMIT)."""
        with store.write() as session:
            modeling.write_scores(session, scores)

    try:
        for _round in range(repeat):
            with store.write() as session:
                session.connection().exec_driver_sql("DELETE FROM churn_score")  # first scoring of a store: an empty table
            with store.read() as session:
                ctx = StoreContext.load(session, as_of=end)
                s = timed("summary", lambda: summarise(fetch_days(session, end), end))
            bg, arrays = timed("fit", lambda: modeling.fit_bgnbd(s, "week"))
            gg = timed("gg", lambda: gammagamma.fit(arrays.x, modeling._major(s.monetary_minor(), ctx.currency)))
            outcome = modeling.FitOutcome(None, end, "week", bg, gg, None, {})
            with store.write() as session:
                fit_row = modeling.get_fit(session, modeling.store_fit(session, ctx, outcome))
            sc = timed("score", lambda: modeling.compute_scores(s, fit_row, horizon_days=90, clv_months=12,
                                                                discount=0.01, currency=ctx.currency))
            timed("store_new", lambda: store_scores(sc))
            # A re-score the next day: every customer is a day older, so every row changes.
            later = end + timedelta(days=1)
            with store.read() as session:
                s2 = summarise(fetch_days(session, later), later)
            sc2 = timed("rescore", lambda: modeling.compute_scores(s2, fit_row, horizon_days=90, clv_months=12,
                                                                   discount=0.01, currency=ctx.currency))
            timed("store", lambda: store_scores(sc2))
        with store.read() as session:
            stored = session.connection().exec_driver_sql("SELECT COUNT(*), SUM(p_alive) FROM churn_score").fetchone()
    finally:
        store.dispose()
    assert stored[0] == len(s2) and abs(stored[1] - float(sc2.p_alive.sum())) < 1e-6 * len(s2)

    ref, ref_ll, t_ref, nfev, was_cached = cached_reference(cache, arrays.x, arrays.tx, arrays.T)
    floor_sql = sql_floor(path, end.isoformat())
    cli_fit = cli_seconds(path, "churn", "fit", "--as-of", end.isoformat())
    cli_score = cli_seconds(path, "churn", "score", "--as-of", end.isoformat())

    def med(name: str) -> float:
        return median(cpu[name])

    def line(label: str, name: str, extra: str = "") -> str:
        return (f"  {label:38s}{med(name):6.2f} s  (min {min(cpu[name]):.2f}, max {max(cpu[name]):.2f}) "
                f"[{median(wall[name]):6.2f}]  {extra}")

    fit_cpu = med("fit")
    rest_new = med("gg") + med("score") + med("store_new")
    rest = med("gg") + med("rescore") + med("store")
    p = bg.params
    print(f"\n  {n:,} customers ({len(s):,} with purchases), {repeat} rounds; CPU seconds of this process, median "
          f"(min, max) [wall-clock median]; load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"  crmcli BG/NBD     r={p.r:.5f} alpha={p.alpha:.5f} a={p.a:.5f} b={p.b:.5f} LL={bg.log_likelihood:.3f} "
          f"({bg.iterations} iterations)")
    print(f"  reference BG/NBD  r={ref.r:.5f} alpha={ref.alpha:.5f} a={ref.a:.5f} b={ref.b:.5f} LL={ref_ll:.3f} "
          f"({nfev} evaluations, {t_ref:.1f} s{', cached from an earlier run' if was_cached else ''})")
    print(f"  Gamma-Gamma       p={gg.params.p:.4f} q={gg.params.q:.4f} gamma={gg.params.gamma:.4f}")
    print(line("summary (scan + summarise)", "summary", f"SQL floor {floor_sql:.2f} s"))
    print(line("BG/NBD fit", "fit", f"{t_ref / fit_cpu:.0f}x faster than the reference; target {FIT_TARGET} s "
                                   f"{'met' if fit_cpu <= FIT_TARGET else 'MISSED'}"))
    print(line("Gamma-Gamma fit", "gg"))
    print(line("scoring (P(alive), E[X], E[M], CLV)", "score"))
    print(line("storing into an empty churn_score", "store_new"))
    print(line("re-scoring the next day", "rescore"))
    print(line("storing the re-score (every row new)", "store"))
    print(f"  Gamma-Gamma + scoring + storing       {rest_new:6.2f} s first scoring, {rest:6.2f} s re-score; "
          f"target {REST_TARGET} s {'met' if max(rest, rest_new) <= REST_TARGET else 'MISSED'}")
    print(f"  end to end: crm churn fit {cli_fit:.2f} s, crm churn score {cli_score:.2f} s wall-clock "
          f"(process start, imports and the summary included)")

    for name in ("r", "alpha", "a", "b"):
        mine, theirs = getattr(p, name), getattr(ref, name)
        assert abs(mine - theirs) <= 1e-3 * abs(theirs), f"{name}: {mine} vs reference {theirs}"
    assert bg.log_likelihood >= ref_ll - 1e-6 * n, (bg.log_likelihood, ref_ll)
    assert t_ref / fit_cpu >= CEILING, f"the fit is only {t_ref / fit_cpu:.1f}x faster than the reference"
    if n >= 1_000_000:
        assert fit_cpu <= FIT_TARGET, f"BG/NBD fit {fit_cpu:.2f} CPU s > {FIT_TARGET} s"
        assert rest_new <= REST_TARGET, f"Gamma-Gamma + scoring + storing (first) {rest_new:.2f} CPU s > {REST_TARGET} s"
        assert rest <= REST_TARGET, f"Gamma-Gamma + scoring + storing (re-score) {rest:.2f} CPU s > {REST_TARGET} s"
