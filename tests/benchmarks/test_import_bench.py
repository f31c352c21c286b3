"""Import throughput against a floor measured in the same run (issue: CSV and vCard pipelines, "Scale").

Generates, with a fixed seed, CRM_BENCH_CUSTOMERS customers (default 1,000,000) and CRM_BENCH_PURCHASES
purchases (default 5,000,000) as CSV, then measures:

* the floor: stdlib ``csv`` + ``sqlite3.executemany`` inserting the same rows (customers with their phone and
  e-mail contact rows; purchases) into a copy of the same store, in one transaction, without validation;
* ``crm import customers`` and ``crm import purchases`` (the real command, in a child process), which validate
  every row (phone, e-mail, date, amount ...), write audit rows and run the purchase hooks.

Prints rows/s, the ratio to the floor (by wall time and by CPU time: on a machine whose cores other work shares,
the CPU ratio is the meaningful one) and the child's peak RSS. Aims (the issue's targets): purchases at least
0.5x the floor, customers at least 0.3x; peak memory under 300 MB whatever the size. The test fails only on
the memory bound or on rows not imported (timings depend on the machine); the figures go to
docs/import-export.md.

    CRM_BENCH_CUSTOMERS=100000 CRM_BENCH_PURCHASES=500000 pytest tests/benchmarks/test_import_bench.py -m benchmark -s

Measured 2026-11-30 (2 shared cores; ratios wall / CPU; CPU is the meaningful one on the shared machine):
  after the purchase work (96 MB page cache for an importing connection, quick path for shop-export times,
  stored forms of times/dates, row checks without per-column calls; commit 0b50bcf, load 5.6-7.5):
  purchases   500,000: floor 48.9 s CPU (49.6 s measured again after), crm 71.2 s CPU -> 0.59x / 0.69x (aim 0.5x:
    met), 201 MB; the code before it, same run: 122.7 s CPU -> 0.40x; the floor given the same page cache
    (CRM_BENCH_FLOOR_CACHE=1): 21.9 s CPU (crm is 0.31x of that one);
  customers 1,000,000 (full size, with the page cache, commit 95a49d5, load 3.8): floor 47.7 s CPU, crm 133.6 s CPU
    -> 0.48x / 0.36x (aim 0.3x: met), 204 MB;
  purchases 5,000,000 (full size, same run, commit 95a49d5, load 2-5): floor 2,173.4 s wall, 896.1 s CPU; crm
    1,803.1 s wall, 1,106.4 s CPU (2,773 rows/s) -> 1.21x / 0.81x (aim 0.5x: met), 189 MB.
  after the import throughput work (plain-row quick check, collector thresholds, shared caches, DBAPI lookups):
  customers 1,000,000 (full size, commit c9ec515, load 2.0): floor 42.7 s CPU, crm 114.2 s CPU
    -> 0.45x / 0.37x (aim 0.3x: met), 89 MB;
  customers   100,000 (commit 1cddeb8, load 2.9): floor 3.5 s CPU, crm 13.2 s CPU -> 0.25x / 0.27x (NOT met;
    the ~2 s CPU start-up of the crm process is ~15% of it at this size), 81 MB;
  purchases   500,000 (same run, load 3.9): floor 39.5 s CPU, crm 98.6 s CPU -> 0.33x / 0.40x (aim 0.5x: NOT met),
    124 MB.
  before it: customers 1,000,000 0.32x / 0.21x (272.9 s CPU); 100,000 0.16-0.18x CPU (25.2 s); purchases 500,000
  0.34-0.46x CPU (100-119 s).
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import resource

import pytest

pytestmark = pytest.mark.benchmark

N_CUSTOMERS = int(os.environ.get("CRM_BENCH_CUSTOMERS", "1000000"))
N_PURCHASES = int(os.environ.get("CRM_BENCH_PURCHASES", "5000000"))
SEED = 20240301
CRM = str(Path(sys.executable).with_name("crm"))
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "芳伟娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"
LATIN = ["Ann", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry"]
CITIES = ["上海", "北京", "广州", "深圳", "杭州", "成都", "Wuhan", "Nanjing"]
PRODUCTS = [("拿铁", "drinks"), ("美式", "drinks"), ("蛋糕", "bakery"), ("可颂", "bakery"), ("Tea", "drinks")]
MOBILE = ["138", "139", "135", "158", "186", "177", "150", "188"]


def generate(folder: Path) -> tuple[Path, Path]:
    rnd = random.Random(SEED)
    customers = folder / "customers.csv"
    with open(customers, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["姓名", "手机", "邮箱", "城市", "生日", "标签"])
        for i in range(N_CUSTOMERS):
            if rnd.random() < 0.7:
                name = rnd.choice(SURNAMES) + "".join(rnd.choice(GIVEN) for _ in range(rnd.randint(1, 2)))
            else:
                name = f"{rnd.choice(LATIN)} {rnd.choice(LATIN)}son"
            phone = MOBILE[i % len(MOBILE)] + f"{i:08d}"
            email = f"user{i}.{rnd.randint(0, 99)}@example{i % 97}.com" if rnd.random() < 0.8 else ""
            birthday = f"{rnd.randint(1950, 2005)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"
            tags = "vip" if rnd.random() < 0.1 else ""
            w.writerow([name, phone, email, rnd.choice(CITIES), birthday, tags])
    purchases = folder / "purchases.csv"
    with open(purchases, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["订单号", "客户编号", "金额", "下单时间", "商品", "品类"])
        for i in range(N_PURCHASES):
            product, category = rnd.choice(PRODUCTS)
            w.writerow([f"ORD{i:09d}", f"C{rnd.randint(1, N_CUSTOMERS):06d}",
                        f"{rnd.randint(5, 500)}.{rnd.randint(0, 99):02d}",
                        f"2023-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d} {rnd.randint(8, 21):02d}:{rnd.randint(0, 59):02d}",
                        product, category])
    return customers, purchases


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Timer:
    """Wall and CPU seconds of a block in this process (CPU time stays meaningful when other work shares the
    machine's cores; wall time does not)."""

    def __enter__(self) -> "Timer":
        self.wall, self.cpu = time.perf_counter(), cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, cpu() - self.cpu


def floor_customers(db: Path, path: Path) -> Timer:
    conn = sqlite3.connect(db, isolation_level=None)
    now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    timer = Timer().__enter__()
    conn.execute("BEGIN")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        customers, contacts = [], []
        for i, (name, phone, email, city, birthday, _tags) in enumerate(reader, 1):
            customers.append((i, f"C{i:06d}", name, city, birthday, now, now))
            contacts.append((i, "phone", phone, 0))
            if email:
                contacts.append((i, "email", email, 1))
            if len(customers) >= 10000:
                _flush_customers(conn, customers, contacts)
        _flush_customers(conn, customers, contacts)
    conn.execute("COMMIT")
    timer.__exit__()
    conn.close()
    return timer


def _flush_customers(conn: sqlite3.Connection, customers: list, contacts: list) -> None:
    conn.executemany("INSERT INTO customer (id, code, name, city, birthday, created_at, updated_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", customers)
    conn.executemany("INSERT INTO contact_point (customer_id, kind, value, position) VALUES (?, ?, ?, ?)", contacts)
    customers.clear()
    contacts.clear()


def floor_purchases(db: Path, path: Path, cache_kib: int | None = None) -> Timer:
    conn = sqlite3.connect(db, isolation_level=None)
    if cache_kib is not None:
        conn.execute(f"PRAGMA cache_size = -{cache_kib}")
    now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    timer = Timer().__enter__()
    ids = dict(conn.execute("SELECT code, id FROM customer"))
    conn.execute("BEGIN")
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for ref, code, amount, at, product, category in reader:
            rows.append((ids[code], "sale", int(amount.replace(".", "")), at, at[:10], product, category, 1, ref, now))
            if len(rows) >= 10000:
                _flush_purchases(conn, rows)
        _flush_purchases(conn, rows)
    conn.execute("COMMIT")
    timer.__exit__()
    conn.close()
    return timer


def _flush_purchases(conn: sqlite3.Connection, rows: list) -> None:
    conn.executemany("INSERT INTO purchase (customer_id, kind, amount_minor, purchased_at, purchased_on, product, "
                     "category, quantity, ref, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    rows.clear()


def crm(db: Path, *args: str) -> tuple[float, float, float]:
    """Run the real command; (wall seconds, CPU seconds, peak RSS in MB) of that child process."""
    start = time.perf_counter()
    proc = subprocess.Popen([CRM, "--db", str(db), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "CRM_LANG": "en"})
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, err
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def report(what: str, rows: int, floor: Timer, wall: float, cpu_s: float, rss: float, aim: float) -> None:
    by_wall, by_cpu = floor.wall / wall, floor.cpu / cpu_s
    print(f"\n{what}: {rows:,} rows | floor {floor.wall:.1f} s wall, {floor.cpu:.1f} s CPU "
          f"({rows / floor.wall:,.0f} rows/s) | crm import {wall:.1f} s wall, {cpu_s:.1f} s CPU "
          f"({rows / wall:,.0f} rows/s) | ratio {by_wall:.2f}x wall, {by_cpu:.2f}x CPU "
          f"(aim >= {aim}x: {'met' if max(by_wall, by_cpu) >= aim else 'NOT met'}) | peak RSS {rss:.0f} MB "
          f"| load average {os.getloadavg()[0]:.1f}")


def test_import_throughput(tmp_path: Path) -> None:
    customers_csv, purchases_csv = generate(tmp_path)
    base = tmp_path / "base.sqlite"
    subprocess.run([CRM, "--db", str(base), "init", "--currency", "CNY", "--region", "CN", "--timezone",
                    "Asia/Shanghai"], check=True, capture_output=True)
    floor_db, ours_db = tmp_path / "floor.sqlite", tmp_path / "ours.sqlite"
    shutil.copy2(base, floor_db)
    shutil.copy2(base, ours_db)

    floor_c = floor_customers(floor_db, customers_csv)
    wall_c, cpu_c, rss_c = crm(ours_db, "import", "customers", str(customers_csv))
    report("customers", N_CUSTOMERS, floor_c, wall_c, cpu_c, rss_c, 0.3)
    conn = sqlite3.connect(ours_db)
    assert conn.execute("SELECT COUNT(*) FROM customer").fetchone()[0] == N_CUSTOMERS
    conn.close()

    if os.environ.get("CRM_BENCH_FLOOR_CACHE"):
        # For comparison only: the floor with the page cache crm gives its importing connection (the issue's
        # floor is the plain one above).
        from crmcli.core.io.rowfields import IMPORT_PAGE_CACHE_KIB

        cached_db = tmp_path / "floor-cached.sqlite"
        shutil.copy2(floor_db, cached_db)
        cached = floor_purchases(cached_db, purchases_csv, IMPORT_PAGE_CACHE_KIB)
        print(f"\npurchases floor with crm's page cache ({IMPORT_PAGE_CACHE_KIB // 1024} MB): {cached.wall:.1f} s wall, "
              f"{cached.cpu:.1f} s CPU")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{cached_db}{suffix}").unlink(missing_ok=True)
    floor_p = floor_purchases(floor_db, purchases_csv)
    wall_p, cpu_p, rss_p = crm(ours_db, "import", "purchases", str(purchases_csv))
    report("purchases", N_PURCHASES, floor_p, wall_p, cpu_p, rss_p, 0.5)
    conn = sqlite3.connect(ours_db)
    assert conn.execute("SELECT COUNT(*) FROM purchase").fetchone()[0] == N_PURCHASES
    conn.close()
    assert rss_c < 300 and rss_p < 300, (rss_c, rss_p)
