"""PostgreSQL scales at least as well as SQLite (issue #11: "bulk paths use what PostgreSQL is fast at ... so
imports and recomputes scale at least as well as on SQLite").

For a small and a 4x larger shop (CRM_BENCH_PG_CUSTOMERS customers, default 5,000, with 4 purchases each),
the real `crm` commands run in child processes against a fresh SQLite file and a fresh PostgreSQL database
(CRM_BENCH_PG): `import customers`, `import purchases`, `tier recompute`. Growth = time at 4N / time at N, by
wall time (the server's work happens in its own processes, so the client's CPU time would flatter
PostgreSQL). It prints every time and both growth factors; it fails when PostgreSQL's growth exceeds
SQLite's by more than GROWTH_TOLERANCE (timing noise on a shared machine), or when rows are missing.

CRM_BENCH_PG names the server like CRM_TEST_PG does (CRM_TEST_PG itself would turn the run into the suite's
PostgreSQL run, which skips tests that open no store through the fixtures):

    CRM_BENCH_PG=postgresql+psycopg://postgres@localhost:55432/postgres \
        pytest tests/benchmarks/test_pg_scaling_bench.py -m benchmark -s

Measured 2026-11-30 (2 shared cores, the server on the same machine; see docs/postgresql.md for the table).
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
GROWTH_TOLERANCE = 1.25
CRM = str(Path(sys.executable).with_name("crm"))
STEPS = (("import customers", ("import", "customers", "{customers}", "--format", "json")),
         ("import purchases", ("import", "purchases", "{purchases}", "--format", "json")),
         ("tier recompute", ("tier", "recompute", "--as-of", "2026-06-30")))


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


def run_shop(db: str, files: dict[str, str], n: int) -> dict[str, float]:
    env = {**os.environ, "CRM_LANG": "en", "NO_COLOR": "1"}
    subprocess.run([CRM, "--db", db, "init", "--currency", "CNY", "--region", "CN", "--timezone", "Asia/Shanghai"],
                   check=True, capture_output=True, env=env)
    times: dict[str, float] = {}
    for label, args in STEPS:
        started = time.perf_counter()
        done = subprocess.run([CRM, "--db", db, *(a.format(**files) for a in args)], capture_output=True, text=True,
                              env=env)
        times[label] = time.perf_counter() - started
        assert done.returncode == 0, f"{label} on {db}: {done.stderr}"
        if label.startswith("import"):
            expected = n if label.endswith("customers") else 4 * n
            assert json.loads(done.stdout)["created"] == expected, done.stdout
    return times


def test_postgresql_grows_no_faster_than_sqlite(tmp_path: Path) -> None:
    sizes = (BASE, 4 * BASE)
    results: dict[tuple[str, int], dict[str, float]] = {}
    for n in sizes:
        files = write_files(tmp_path, n)
        results[("sqlite", n)] = run_shop(str(tmp_path / f"shop-{n}.sqlite"), files, n)
        results[("postgresql", n)] = run_shop(new_pg_database(f"crm_bench_{n}"), files, n)
    print(f"\nload average {os.getloadavg()[0]:.1f}; customers {sizes[0]:,} -> {sizes[1]:,} "
          f"(purchases {4 * sizes[0]:,} -> {4 * sizes[1]:,}); wall seconds")
    print(f"{'step':18} {'SQLite N':>9} {'SQLite 4N':>10} {'growth':>7}   {'PG N':>7} {'PG 4N':>7} {'growth':>7}")
    worse = []
    for label, _args in STEPS:
        s1, s4 = results[("sqlite", sizes[0])][label], results[("sqlite", sizes[1])][label]
        p1, p4 = results[("postgresql", sizes[0])][label], results[("postgresql", sizes[1])][label]
        print(f"{label:18} {s1:9.2f} {s4:10.2f} {s4 / s1:6.2f}x   {p1:7.2f} {p4:7.2f} {p4 / p1:6.2f}x")
        if p4 / p1 > GROWTH_TOLERANCE * (s4 / s1):
            worse.append(f"{label}: PostgreSQL {p4 / p1:.2f}x vs SQLite {s4 / s1:.2f}x")
    assert not worse, "PostgreSQL grows faster than SQLite: " + "; ".join(worse)
