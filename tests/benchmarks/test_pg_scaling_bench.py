"""PostgreSQL scales at least as well as SQLite (issue #11: "bulk paths use what PostgreSQL is fast at ... so
imports and recomputes scale at least as well as on SQLite").

Three shop sizes, N, 2N and 4N customers (CRM_BENCH_PG_CUSTOMERS = N, default 5,000) with 4 purchases each;
the real `crm` commands run in child processes against a fresh SQLite file and a fresh PostgreSQL database
(CRM_BENCH_PG): `import customers`, `import purchases`, and the recomputes `tier recompute`, `tier rfm`,
`churn scan`; each size twice (CRM_BENCH_PG_RUNS), the faster run kept. Scaling
is measured by the marginal cost per row: m1 = (t(2N) - t(N)) / N and m2 = (t(4N) - t(2N)) / 2N.
A linear cost gives m2/m1 = 1; a cost that grows with the data (the nested-loop lookups PostgreSQL ran
before its statistics were refreshed) gives m2/m1 >> 1. Start-up and other fixed costs cancel out, which a
plain t(4N)/t(N) would not (SQLite's fixed share is larger, so its ratio looked better). Wall time: the
server's work happens in its own processes. It prints every time and both m2/m1; it fails when PostgreSQL's
m2/m1 exceeds SQLite's (at least 1; 1 when SQLite's is not a plausible measurement) by more than
MARGINAL_TOLERANCE (timing noise on a shared machine), or when rows are missing. Run on the code before
COPY and the statistics refresh (commit 07c8804, N = 2,000) it fails: PostgreSQL's customer import took
5.7 / 9.8 / 65.5 s (m2/m1 6.75) and its purchase import m2/m1 was 12.5.

CRM_BENCH_PG names the server like CRM_TEST_PG does (CRM_TEST_PG itself would turn the run into the suite's
PostgreSQL run, which skips tests that open no store through the fixtures):

    CRM_BENCH_PG=postgresql+psycopg://postgres@localhost:55432/postgres \
        pytest tests/benchmarks/test_pg_scaling_bench.py -m benchmark -s

Measured 2026-11-30 (2 shared cores, the server on the same machine, load average ~3), N = 20,000, one run:
  import customers  SQLite 4.52 / 5.40 / 8.35 s (m2/m1 1.66), PostgreSQL 7.96 / 13.46 / 26.27 s (1.17);
  import purchases  SQLite 11.46 / 23.18 / 55.07 s (1.36), PostgreSQL 15.61 / 28.81 / 59.75 s (1.17);
  tier recompute    SQLite 2.95 / 3.85 / 4.98 s (0.63), PostgreSQL 7.30 / 14.29 / 27.67 s (0.96).
At N = 5,000 the differences drown in noise (a 5k run slower than the 10k one); use N >= 20,000.

Since the second session of 2026-11-30 the steps are judged by CPU seconds of the crm process plus the
PostgreSQL server (the postmaster, its reaped backends and its running children, from /proc; the server must run
on this machine), which a loaded machine disturbs far less than wall time; both are printed. A step whose time
grows by less than MIN_GROWTH from N to 4N has no measurable per-row cost and is not judged. Run at N = 20,000
(load ~2, best of 2), it fails:
  CPU  import customers  SQLite 3.84 / 5.82 / 8.22 (0.61)   PostgreSQL 7.11 / 10.28 / 25.26 (2.36)
       import purchases  SQLite 9.08 / 16.70 / 28.35 (0.76) PostgreSQL 14.12 / 23.98 / 50.68 (1.35)
       tier recompute    SQLite 3.00 / 2.69 / 4.17 (-)      PostgreSQL 8.97 / 13.02 / 23.78 (1.33)
       churn scan        SQLite 3.57 / 4.19 / 4.33 (-)      PostgreSQL 6.13 / 9.50 / 20.55 (1.64)
The customer import's growth on PostgreSQL between 40k and 80k was real (wall 2.06 and 3.29 in two runs): the
per-batch lookups by phone and e-mail were one `IN (...)` list of 900 values, for which the planner chose a
sequential scan of the contact table below ~100,000 rows (2.9 ms per lookup at 20k customers, 30 ms at 80k).
Each value is now one index probe (core/io/lookups.py), and the recomputes write with COPY. Run again on
2026-11-30 (third session; N = 20,000, best of 2, load average 3-4.5 with two other engineers' tests) it passes:
  CPU  import customers  SQLite 3.05 / 5.45 / 9.09 (0.76)   PostgreSQL 7.40 / 12.40 / 19.77 (0.74)
       import purchases  SQLite 7.69 / 13.67 / 34.70 (1.76) PostgreSQL 15.32 / 27.54 / 54.88 (1.12)
       tier recompute    SQLite 2.40 / 2.99 / 3.78 (0.66)   PostgreSQL 5.63 / 8.96 / 14.58 (0.84)
       tier rfm          SQLite 1.96 / 2.13 / 2.49 (-)      PostgreSQL 3.02 / 3.47 / 3.55 (-)
       churn scan        SQLite 2.59 / 3.66 / 4.85 (0.56)   PostgreSQL 4.88 / 7.96 / 13.03 (0.82)
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.benchmark,
              pytest.mark.skipif(not os.environ.get("CRM_BENCH_PG"), reason="needs CRM_BENCH_PG (a PostgreSQL server)")]

BASE = int(os.environ.get("CRM_BENCH_PG_CUSTOMERS", "5000"))
MARGINAL_TOLERANCE = 1.5
MIN_GROWTH = 0.5  # t(4N) / t(N) - 1 below this: the step's per-row cost is too small to compare
RUNS = int(os.environ.get("CRM_BENCH_PG_RUNS", "2"))
CRM = str(Path(sys.executable).with_name("crm"))
STEPS = (("import customers", ("import", "customers", "{customers}", "--format", "json")),
         ("import purchases", ("import", "purchases", "{purchases}", "--format", "json")),
         ("tier recompute", ("tier", "recompute", "--as-of", "2026-06-30")),
         ("tier rfm", ("tier", "rfm", "--as-of", "2026-06-30")),
         ("churn scan", ("churn", "scan", "--as-of", "2026-06-30")))
# Not `churn fit`/`score`: these uniformly random purchases have no BG/NBD pattern, and the fit rightly refuses
# them (tests/benchmarks/test_churn_bench.py simulates the model's own data, on SQLite).


def write_files(folder: Path, n: int) -> dict[str, str]:
    rnd = random.Random(n)
    customers, purchases = folder / f"customers-{n}.csv", folder / f"purchases-{n}.csv"
    with open(customers, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["code", "姓名", "手机", "邮箱", "城市"])
        for i in range(1, n + 1):
            w.writerow([f"B{i:07d}", f"顾客{i}", f"139{i:08d}", f"guest{i}@example.com", rnd.choice(["上海", "北京"])])
    with open(purchases, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["订单号", "客户编号", "金额", "下单时间"])
        for i in range(4 * n):
            w.writerow([f"ORD{i:08d}", f"B{rnd.randint(1, n):07d}", f"{rnd.randint(5, 800)}.{rnd.randint(0, 99):02d}",
                        f"2026-{rnd.randint(1, 6):02d}-{rnd.randint(1, 28):02d}"])
    return {"customers": str(customers), "purchases": str(purchases)}


def new_pg_database(name: str) -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(os.environ["CRM_BENCH_PG"])
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def _ticks(pid: int) -> int:
    """CPU clock ticks of a process and of its children it has reaped (utime, stime, cutime, cstime)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return sum(int(x) for x in fields[11:15])


def server_cpu(postmaster: int | None) -> float:
    """CPU seconds the PostgreSQL server has used so far: the postmaster, the children it has reaped (the
    backends of finished connections) and the children still running (checkpointer, autovacuum, ...)."""
    if postmaster is None:
        return 0.0
    total = _ticks(postmaster)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                if int(fields[1]) == postmaster:
                    total += _ticks(int(entry.name))
            except (OSError, IndexError, ValueError):  # gone meanwhile
                continue
    return total / os.sysconf("SC_CLK_TCK")


def find_postmaster(db: str) -> int | None:
    """The server's main process when it runs on this machine (its CPU is then measurable), else None."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(db).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    try:
        with open(f"/proc/{backend}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except OSError:
        return None


def children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_shop(db: str, files: dict[str, str], n: int) -> dict[str, tuple[float, float]]:
    """(wall seconds, CPU seconds of the crm process plus the database server) per step."""
    env = {**os.environ, "CRM_LANG": "en", "NO_COLOR": "1"}
    subprocess.run([CRM, "--db", db, "init", "--currency", "CNY", "--region", "CN", "--timezone", "Asia/Shanghai"],
                   check=True, capture_output=True, env=env)
    postmaster = find_postmaster(db) if "://" in db else None
    times: dict[str, tuple[float, float]] = {}
    for label, args in STEPS:
        started, cpu = time.perf_counter(), children_cpu() + server_cpu(postmaster)
        done = subprocess.run([CRM, "--db", db, *(a.format(**files) for a in args)], capture_output=True, text=True,
                              env=env)
        wall = time.perf_counter() - started
        time.sleep(0.2)  # the server reaps the command's backends
        times[label] = (wall, children_cpu() + server_cpu(postmaster) - cpu)
        assert done.returncode == 0, f"{label} on {db}: {done.stderr}"
        if label.startswith("import"):
            expected = n if label.endswith("customers") else 4 * n
            assert json.loads(done.stdout)["created"] == expected, done.stdout
    return times


def test_postgresql_scales_at_least_as_well_as_sqlite(tmp_path: Path) -> None:
    sizes = (BASE, 2 * BASE, 4 * BASE)
    best: dict[tuple[str, int], dict[str, float]] = {}
    for run in range(RUNS):
        for n in sizes:
            files = write_files(tmp_path, n)
            for kind in ("sqlite", "postgresql"):
                db = (str(tmp_path / f"shop-{n}-{run}.sqlite") if kind == "sqlite"
                      else new_pg_database(f"crm_bench_{n}_{run}"))
                times = run_shop(db, files, n)
                old = best.setdefault((kind, n), times)
                best[(kind, n)] = {k: min(v, old[k], key=lambda t: t[1]) for k, v in times.items()}
    print(f"\nload average {os.getloadavg()[0]:.1f}; customers {sizes[0]:,} / {sizes[1]:,} / {sizes[2]:,} with 4 "
          f"purchases each; best of {RUNS} by CPU; m2/m1 = marginal cost per row 2N..4N over N..2N")
    worse = []
    for measure, index in (("wall seconds", 0), ("CPU seconds (crm + server)", 1)):
        print(f"{measure:26} {'SQLite':>22} {'m2/m1':>6}   {'PostgreSQL':>22} {'m2/m1':>6}")
        for label, _args in STEPS:
            ratio, cells, growth = {}, {}, {}
            for kind in ("sqlite", "postgresql"):
                t = [best[(kind, n)][label][index] for n in sizes]
                m1, m2 = (t[1] - t[0]) / sizes[0], (t[2] - t[1]) / (2 * sizes[0])
                ratio[kind] = m2 / m1 if m1 > 0 else float("inf")
                growth[kind] = (t[2] - t[0]) / t[0] if t[0] > 0 else float("inf")
                cells[kind] = " / ".join(f"{x:5.2f}" for x in t)
            print(f"{label:26} {cells['sqlite']:>22} {ratio['sqlite']:6.2f}   {cells['postgresql']:>22} "
                  f"{ratio['postgresql']:6.2f}")
            if index == 0:
                continue  # judged by CPU: wall time swings with whatever else the machine runs
            # SQLite's own ratio is the reference when it is a measurement (a noisy run can make m1 <= 0 or the
            # ratio absurd; then linear, 1, is). A step whose time hardly grows from N to 4N (start-up and fixed
            # costs dominate) has no measurable marginal cost to compare.
            reference = ratio["sqlite"] if 1.0 <= ratio["sqlite"] <= 3.0 else 1.0
            if ratio["postgresql"] > MARGINAL_TOLERANCE * reference and growth["postgresql"] > MIN_GROWTH:
                worse.append(f"{label}: PostgreSQL m2/m1 {ratio['postgresql']:.2f} vs SQLite {ratio['sqlite']:.2f}")
    assert not worse, "PostgreSQL's cost per row grows with the data faster than SQLite's: " + "; ".join(worse)
