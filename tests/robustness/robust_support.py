"""Shared machinery of the robustness tests: real `crm` subprocesses, a seeded SIGKILL harness, shop
stores generated with stdlib sqlite3, and the store invariants every test checks afterwards.

The tests in this folder have no ``__init__.py``: pytest puts this folder on ``sys.path``, so they import
this module by name (``from robust_support import ...``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

PY = sys.executable
AS_OF = "2025-06-30"
#: One seed for every randomized choice here; CRM_ROBUST_SEED replays a failing run.
SEED = int(os.environ.get("CRM_ROBUST_SEED", "20251130"))
DOCUMENTED_EXIT_CODES = {0, 1, 2, 3, 4, 5}


#: Extra environment for every crm process the crash campaign of one operation starts (its trials run in
#: threads, but a campaign runs one operation at a time): e.g. how often an import commits a step.
OPERATION_ENV: dict[str, str] = {}


def crm_env(tz: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "PYTEST_"))}
    env.update(CRM_LANG="en", NO_COLOR="1", COLUMNS="100", PYTHONDONTWRITEBYTECODE="1", **OPERATION_ENV)
    if tz is not None:
        env["TZ"] = tz
    env.update(extra)
    return env


def run_crm(db: Path, *args: str, tz: str | None = None, input: str | None = None, timeout: float = 180,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m crmcli --db DB ARGS` in a fresh process, as a user or cron would run it."""
    return subprocess.run([PY, "-m", "crmcli", "--db", str(db), *args], capture_output=True, text=True,
                          input=input, timeout=timeout, env=env or crm_env(tz))


def crm_ok(db: Path, *args: str, tz: str | None = None) -> str:
    r = run_crm(db, *args, tz=tz)
    assert r.returncode == 0, f"crm {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


# --- the kill harness --------------------------------------------------------------------------------

#: Wraps every sqlite3 connection the process opens: a progress handler counts "ticks" (every N virtual-machine
#: instructions, so also inside executemany and COMMIT) and SIGKILLs the process at tick K; ``commit`` kills
#: right before or right after the first COMMIT that wrote something ("before", "after"), or sends it SIGINT
#: (Ctrl-C) right after that COMMIT ("interrupt-after"). Nothing in crmcli knows about it.
HOOKS = r"""
import json, os, signal, sqlite3, sqlite3.dbapi2, sys, time
CFG = {"kill_at": 0, "kill_commit": "", "every": 500, "tick_file": None, "t0": time.monotonic()}
ticks = [0, None, None, 0]  # count, first tick time, last tick time, writing commits

def configure(env, restart_clock=False):
    CFG.update(kill_at=int(env.get("CRM_TEST_KILL_AT", "0")), kill_commit=env.get("CRM_TEST_KILL_COMMIT", ""),
               every=int(env.get("CRM_TEST_TICK_EVERY", "500")), tick_file=env.get("CRM_TEST_TICK_FILE"))
    if restart_clock:
        CFG["t0"] = time.monotonic()
    ticks[:] = [0, None, None, 0]
    if CFG["kill_commit"] == "interrupt-after":
        # A process started in the background by a non-interactive shell (cron, `cmd &` in a script, a CI
        # runner) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler: act like a
        # terminal's foreground process, which is what this simulates.
        signal.signal(signal.SIGINT, signal.default_int_handler)

def _die():
    os.kill(os.getpid(), signal.SIGKILL)

def _tick():
    ticks[0] += 1
    now = time.monotonic() - CFG["t0"]
    if ticks[1] is None:
        ticks[1] = now
    ticks[2] = now
    if ticks[0] == CFG["kill_at"]:
        _die()
    return 0

class _KillConnection(sqlite3.Connection):
    _seen = 0  # total_changes at the last commit: a commit that follows changes is a writing one

    def commit(self):
        writing = self.in_transaction and self.total_changes > self._seen
        if CFG["kill_commit"] == "before" and writing and ticks[3] == 0:
            _die()
        super().commit()
        self._seen = self.total_changes
        if writing:
            ticks[3] += 1
            if CFG["kill_commit"] == "after" and ticks[3] == 1:
                _die()
            if CFG["kill_commit"] == "interrupt-after" and ticks[3] == 1:  # Ctrl-C right after the first step
                os.kill(os.getpid(), signal.SIGINT)

_connect = sqlite3.dbapi2.connect
def _wrapped(*a, **k):
    k.setdefault("factory", _KillConnection)
    conn = _connect(*a, **k)
    conn.set_progress_handler(_tick, CFG["every"])
    return conn
# SQLAlchemy calls sqlite3.dbapi2.connect; crmcli's own stdlib reads call sqlite3.connect.
sqlite3.connect = sqlite3.dbapi2.connect = _wrapped

def report():
    if CFG["tick_file"]:
        with open(CFG["tick_file"], "w") as f:
            json.dump({"ticks": ticks[0], "first": ticks[1], "last": ticks[2],
                       "total": time.monotonic() - CFG["t0"]}, f)
"""

#: `python -c KILL_WRAPPER ARGS`: crmcli's real entry point in a fresh process, with the hooks.
KILL_WRAPPER = HOOKS + r"""
import atexit
configure(os.environ)
atexit.register(report)
from crmcli.cli.entry import main
main(sys.argv[1:])
"""

#: A fork server: imports crmcli and the modules commands load lazily once, then forks one child per request
#: (a JSON line: args, env, stdout/stderr files) that runs crmcli's entry point with the hooks and is killed or
#: exits. Each child is a real, separate process that dies by SIGKILL; only the ~2 s of imports are shared,
#: so hundreds of kill points fit in the slow run.
ZYGOTE = HOOKS + r"""
import importlib, traceback
os.environ["CRM_LANG"] = "en"
for name in ("crmcli.cli.app", "crmcli.store.engine", "crmcli.core.customers", "crmcli.core.purchases",
             "crmcli.core.tiers", "crmcli.core.points.operations", "crmcli.core.points.expiry",
             "crmcli.core.points.earning", "crmcli.core.points.refunds", "crmcli.cli.output",
             "crmcli.core.imports", "crmcli.core.backup", "crmcli.cli.db", "crmcli.cli.imports"):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
print("ready", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.environ.update(req["env"])
            configure(req["env"], restart_clock=True)
            for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
            from crmcli.cli.entry import main
            try:
                main(req["args"])
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            report()
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class Zygote:
    """Runs crm commands in forked children of one pre-imported process (see ZYGOTE)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc = subprocess.Popen([PY, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=crm_env())
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        self.n = 0
        self.lock = threading.Lock()

    def run(self, db: Path, args: Sequence[str], tick_file: Path, *, kill_at: int = 0, kill_commit: str = "",
            every: int = 500) -> subprocess.CompletedProcess[str]:
        with self.lock:
            return self._run(db, args, tick_file, kill_at=kill_at, kill_commit=kill_commit, every=every)

    def _run(self, db: Path, args: Sequence[str], tick_file: Path, *, kill_at: int, kill_commit: str,
             every: int) -> subprocess.CompletedProcess[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.n += 1
        out, err = self.workdir / f"z{self.n}.out", self.workdir / f"z{self.n}.err"
        env = {"CRM_TEST_KILL_AT": str(kill_at), "CRM_TEST_KILL_COMMIT": kill_commit,
               "CRM_TEST_TICK_EVERY": str(every), "CRM_TEST_TICK_FILE": str(tick_file), **OPERATION_ENV}
        self.proc.stdin.write(json.dumps({"args": ["--db", str(db), *args], "env": env, "stdout": str(out),
                                          "stderr": str(err)}) + "\n")
        self.proc.stdin.flush()
        code = json.loads(self.proc.stdout.readline())["code"]
        result = subprocess.CompletedProcess(args, code, out.read_text(), err.read_text())
        out.unlink()
        err.unlink()
        return result

    def ok(self, db: Path, *args: str) -> str:
        r = self.run(db, args, db.with_suffix(".ticks.json"))
        assert r.returncode == 0, f"crm {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r.stdout

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@dataclass
class Reference:
    """What one complete, unkilled run of an operation did."""

    ticks: int
    first: float  # seconds after start of the first SQLite work
    last: float
    total: float
    stdout: str


def run_wrapped(db: Path, args: Sequence[str], tick_file: Path, *, kill_at: int = 0, kill_commit: str = "",
                every: int = 500, timeout: float = 300, zygote: Zygote | None = None) -> subprocess.CompletedProcess[str]:
    if zygote is not None:
        return zygote.run(db, args, tick_file, kill_at=kill_at, kill_commit=kill_commit, every=every)
    env = crm_env(CRM_TEST_KILL_AT=str(kill_at), CRM_TEST_KILL_COMMIT=kill_commit, CRM_TEST_TICK_EVERY=str(every),
                  CRM_TEST_TICK_FILE=str(tick_file))
    return subprocess.run([PY, "-c", KILL_WRAPPER, "--db", str(db), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def reference_run(db: Path, args: Sequence[str], *, every: int = 500, zygote: Zygote | None = None) -> Reference:
    tick_file = db.with_suffix(".ticks.json")
    r = run_wrapped(db, args, tick_file, every=every, zygote=zygote)
    assert r.returncode == 0, f"reference run of crm {' '.join(args)} failed ({r.returncode}):\n{r.stderr}"
    data = json.loads(tick_file.read_text())
    assert data["ticks"] > 0, "the operation did no SQLite work"
    return Reference(data["ticks"], data["first"] or 0.0, data["last"] or 0.0, data["total"], r.stdout)


def kill_after(db: Path, args: Sequence[str], delay: float, timeout: float = 300) -> int | None:
    """Start `python -m crmcli ARGS`, SIGKILL it after ``delay`` seconds; its return code (-9 if killed)."""
    proc = subprocess.Popen([PY, "-m", "crmcli", "--db", str(db), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=crm_env())
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=timeout)
    return proc.returncode


@dataclass
class KillPoint:
    kind: str  # "tick", "commit-before", "commit-after", "time"
    value: float

    def __str__(self) -> str:
        return f"{self.kind}={self.value:g}"


def kill_points(ref: Reference, n_ticks: int, n_times: int, *, boundaries: bool, rnd: random.Random) -> list[KillPoint]:
    points = [KillPoint("tick", t) for t in sorted(rnd.sample(range(1, ref.ticks + 1), min(n_ticks, ref.ticks)))]
    # Time kills land in the window where the reference run talked to SQLite (plus a little either side).
    lo, hi = max(0.0, ref.first - 0.3), ref.last + 0.3
    points += [KillPoint("time", round(rnd.uniform(lo, hi), 3)) for _ in range(n_times)]
    if boundaries:
        points += [KillPoint("commit-before", 0), KillPoint("commit-after", 0)]
    return points


def execute_kill(db: Path, args: Sequence[str], point: KillPoint, *, every: int = 500,
                 zygote: Zygote | None = None) -> int | None:
    if point.kind == "time":
        return kill_after(db, args, point.value)
    tick_file = db.with_suffix(".ticks.json")
    if point.kind == "tick":
        r = run_wrapped(db, args, tick_file, kill_at=int(point.value), every=every, zygote=zygote)
    else:
        r = run_wrapped(db, args, tick_file, kill_commit=point.kind.split("-")[1], every=every, zygote=zygote)
    if r.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"crm {' '.join(args)} exited {r.returncode} at {point}:\n{r.stderr}")
    return r.returncode


# --- worker processes -------------------------------------------------------------------------------

WORKER = r"""
import contextlib, io, json, os, sys, time
import crmcli.cli.app, crmcli.core.purchases, crmcli.core.points.operations, crmcli.store.engine  # noqa
from crmcli.cli.entry import main
go, commands = sys.argv[1], json.loads(sys.argv[2])
print("ready", flush=True)
deadline = time.monotonic() + 600  # a test that failed before its start signal leaves no process behind
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit(3)
    time.sleep(0.005)
results = []
for args in commands:
    out, err = io.StringIO(), io.StringIO()
    t = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    results.append({"args": args, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
                    "seconds": time.monotonic() - t})
print(json.dumps(results), flush=True)
"""


class Workers:
    """Worker processes that start their command lists together when ``go()`` is called."""

    def __init__(self, folder: Path) -> None:
        self.go_file = folder / "go"
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, db: Path, commands: list[list[str]], tz: str | None = None) -> None:
        lists = [["--db", str(db), *c] for c in commands]
        proc = subprocess.Popen([PY, "-c", WORKER, str(self.go_file), json.dumps(lists)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=crm_env(tz))
        self.procs.append(proc)

    def go(self) -> float:
        for p in self.procs:  # every worker has imported crmcli
            assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.stderr and p.stderr.read()
        self.go_file.touch()
        return time.monotonic()

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def results(self, timeout: float = 300) -> list[list[dict[str, Any]]]:
        out = []
        for p in self.procs:
            stdout, stderr = p.communicate(timeout=timeout)
            assert p.returncode == 0, stderr
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out


# --- store contents and invariants -------------------------------------------------------------------

_VOLATILE_TYPES = ("DATETIME", "TIMESTAMP")
# The audit hashes cover the time, and each row's payload digest a random salt (core/audit.py).
_VOLATILE_COLUMNS = {("audit", "hash"), ("audit", "prev_hash"), ("audit", "payload_salt"), ("audit", "payload_digest")}


def projection(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, without the columns that record *when* something ran (wall-clock
    timestamps, the audit hashes over them, random salts), so two runs of the same command compare equal."""
    conn = sqlite3.connect(db)
    try:
        out: dict[str, list[tuple[Any, ...]]] = {}
        # class_cache_state: counters that only go up to mark the tier cache stale (m0021); an import taken back
        # after a kill deletes the purchases it had committed, which raises purchase_gen as it should, while
        # the store's data is as before. (The cache itself, class_cache, is compared: it is written with the
        # run's rows, all or nothing.)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT IN ('schema_migration', 'class_cache_state') ORDER BY name")]
        for t in tables:
            cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')
                    if not any(v in (r[2] or "").upper() for v in _VOLATILE_TYPES) and (t, r[1]) not in _VOLATILE_COLUMNS]
            select = ", ".join(f'"{c}"' for c in cols)
            out[t] = sorted(conn.execute(f'SELECT {select} FROM "{t}"').fetchall(), key=repr)
        return out
    finally:
        conn.close()


def diff_summary(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> str:
    parts = []
    for t in sorted(set(a) | set(b)):
        ra, rb = a.get(t, []), b.get(t, [])
        if ra != rb:
            parts.append(f"{t}: {len(ra)} vs {len(rb)} rows")
    return "; ".join(parts) or "equal"


def db_check_command_exists() -> bool:
    try:
        from crmcli.cli.app import GROUPS
    except ImportError:  # pragma: no cover
        return False
    return any(name == "db" for name, _m in GROUPS)


_CLI_LOCK = threading.Lock()


def store_problems(db: Path, *, as_of: str = AS_OF) -> list[str]:
    """Everything that must hold for any store, whatever was killed when: an empty list when it does.

    `crm db check` (integrity, foreign keys, audit chain) when this crmcli has it, else the same three
    checks here; then the points ledger's own invariants and the balances crmcli reports."""
    problems: list[str] = []
    if db_check_command_exists():
        from typer.testing import CliRunner

        from crmcli.cli.app import app

        with _CLI_LOCK:  # CliRunner swaps sys.stdout: one invocation at a time (trials run in threads)
            r = CliRunner().invoke(app, ["--db", str(db), "db", "check"])
        if r.exit_code != 0:
            problems.append(f"crm db check exited {r.exit_code}: {r.stdout} {r.stderr}")
    else:
        conn = sqlite3.connect(db)
        try:
            integrity = conn.execute("PRAGMA integrity_check").fetchall()
            if integrity != [("ok",)]:
                problems.append(f"integrity_check: {integrity[:5]}")
            fks = conn.execute("PRAGMA foreign_key_check").fetchall()
            if fks:
                problems.append(f"foreign_key_check: {fks[:5]}")
        finally:
            conn.close()
        problems += _audit_problems(db)
    conn = sqlite3.connect(db)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "points_ledger" in tables:
            problems += _points_problems(conn)
    finally:
        conn.close()
    if "points_ledger" in tables:
        problems += _balance_problems(db, date.fromisoformat(as_of))
    return problems


def _points_problems(conn: sqlite3.Connection) -> list[str]:
    problems = []
    orphans = conn.execute("SELECT l.id, l.purchase_id FROM points_ledger l LEFT JOIN purchase p ON p.id = l.purchase_id "
                           "WHERE l.purchase_id IS NOT NULL AND p.id IS NULL").fetchall()
    if orphans:
        problems.append(f"ledger rows without their purchase: {orphans[:5]}")
    keyed = conn.execute("SELECT l.id, l.key FROM points_ledger l WHERE l.key LIKE 'earn:%' AND NOT EXISTS "
                         "(SELECT 1 FROM purchase p WHERE p.id = CAST(substr(l.key, 6) AS INTEGER))").fetchall()
    if keyed:
        problems.append(f"earn rows keyed to a missing purchase: {keyed[:5]}")
    negative = conn.execute("SELECT customer_id, SUM(points), SUM(debt) FROM points_ledger GROUP BY customer_id "
                            "HAVING SUM(points) < 0 OR SUM(debt) < 0").fetchall()
    if negative:
        problems.append(f"negative balance or debt: {negative[:5]}")
    unbalanced = conn.execute(
        "SELECT l.id, l.points, COALESCE(SUM(a.points), 0) FROM points_ledger l "
        "LEFT JOIN points_allocation a ON a.debit_id = l.id WHERE l.points < 0 GROUP BY l.id "
        "HAVING COALESCE(SUM(a.points), 0) != -l.points").fetchall()
    if unbalanced:
        problems.append(f"debits whose allocations do not add up: {unbalanced[:5]}")
    overused = conn.execute(
        "SELECT l.id, l.points, SUM(a.points) FROM points_ledger l JOIN points_allocation a ON a.lot_id = l.id "
        "GROUP BY l.id HAVING SUM(a.points) > l.points").fetchall()
    if overused:
        problems.append(f"lots used beyond their points: {overused[:5]}")
    return problems


def _audit_problems(db: Path) -> list[str]:
    from crmcli.core import audit
    from crmcli.store.engine import open_store

    store = open_store(str(db), migrate=False)
    try:
        with store.read() as session:
            broken = audit.verify(session)
    finally:
        store.dispose()
    return [] if broken is None else [f"audit chain broken at row {broken}"]


def _balance_problems(db: Path, day: date, sample: int = 25) -> list[str]:
    """The balance crmcli reports (ledger.summary, what `points balance` shows) equals the ledger sum."""
    from crmcli.core.points import ledger
    from crmcli.store.engine import open_store

    conn = sqlite3.connect(db)
    try:
        sums = dict(((c, (p, d)) for c, p, d in conn.execute(
            "SELECT customer_id, SUM(points), SUM(debt) FROM points_ledger GROUP BY customer_id ORDER BY customer_id")))
    finally:
        conn.close()
    ids = sorted(sums)[:sample]
    problems = []
    store = open_store(str(db), migrate=False)
    try:
        with store.read() as session:
            for cid in ids:
                s = ledger.summary(session, cid, day)
                if (s.balance, s.debt) != sums[cid]:
                    problems.append(f"customer {cid}: summary says {(s.balance, s.debt)}, ledger sums {sums[cid]}")
    finally:
        store.dispose()
    return problems


# --- generated shops ---------------------------------------------------------------------------------

def generate_shop(path: Path, customers: int, purchases: int, *, seed: int = SEED, days: int = 540) -> None:
    """A migrated store (CNY, CN, Asia/Shanghai) with customers and sales/refunds written straight with
    stdlib sqlite3 (the same shape as the tier benchmark's generator, at test size)."""
    from crmcli.core.stores import init_store

    init_store(str(path), currency="CNY", region="CN", timezone="Asia/Shanghai").store.dispose()
    rnd = random.Random(seed)
    end = date.fromisoformat(AS_OF) - timedelta(days=1)
    start = end - timedelta(days=days - 1)
    stamp = f"{start.isoformat()} 00:00:00.000000"
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("INSERT INTO customer (id, code, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                         ((i, f"C{i:06d}", f"Customer {i}", stamp, stamp) for i in range(1, customers + 1)))
        rows = []
        pid = 0
        while pid < purchases:
            pid += 1
            cid = int(customers * rnd.random() ** 2) + 1
            d = start + timedelta(days=rnd.randrange(days))
            amount = int(rnd.lognormvariate(8.5, 1.0)) + 100
            rows.append((pid, cid, "sale", None, amount, f"{d} 04:00:00.000000", d.isoformat(), stamp))
            if pid < purchases and rnd.random() < 0.04:
                pid += 1
                rd = min(d + timedelta(days=rnd.randrange(1, 15)), end)
                rows.append((pid, cid, "refund", pid - 1, rnd.randint(1, amount), f"{rd} 05:00:00.000000",
                             rd.isoformat(), stamp))
        conn.executemany("INSERT INTO purchase (id, customer_id, kind, refund_of_id, amount_minor, purchased_at, "
                         "purchased_on, quantity, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)", rows)
    conn.close()


def with_points(path: Path, *, expiry: str = "90d", zygote: Zygote | None = None) -> None:
    """Switch the points programme on and earn for the generated sales, with the real commands."""
    run = zygote.ok if zygote else crm_ok
    run(path, "points", "rules", "set", "enabled", "yes")
    run(path, "points", "rules", "set", "expiry", expiry)
    run(path, "--quiet", "points", "backfill", "--as-of", AS_OF)


def write_customers_csv(path: Path, n: int, *, start: int = 1) -> None:
    """New customers with unique codes, phones and e-mails (none of them in a generated shop)."""
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("code,name,phone,email,city,tags\n")
        for i in range(start, start + n):
            f.write(f"N{i:06d},Imported {i},+86139{i:08d},imported{i}@example.com,上海,import\n")


def write_purchases_csv(path: Path, n: int, *, customers: int, seed: int = SEED) -> None:
    """Sales of customers C000001.. (a generated shop's), one order ref each, in the first half of 2025."""
    rnd = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("customer_code,amount,purchased_at,ref,product,category\n")
        for i in range(1, n + 1):
            day = date(2025, 1, 1) + timedelta(days=rnd.randrange(180))
            f.write(f"C{rnd.randrange(1, customers + 1):06d},{rnd.randrange(100, 99999) / 100:.2f},{day} 11:00,"
                    f"IMP-{i},item {i % 17},cat {i % 5}\n")


def copy_store(src: Path, dest: Path) -> Path:
    for suffix in ("-wal", "-shm"):
        assert not Path(f"{src}{suffix}").exists(), f"{src} was not closed cleanly"
    shutil.copy2(src, dest)
    return dest


def elapsed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t = time.monotonic()
    result = fn(*args, **kwargs)
    return time.monotonic() - t, result


def run_trials(name: str, trial: Any, points: list[Any], ticks: int) -> None:
    """Run a kill campaign's trials two at a time; each returns "applied", "not applied" or what went wrong."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(trial, enumerate(points)))
    failures = [r for r in results if r not in ("applied", "not applied")]
    assert not failures, "\n".join(failures)
    print(f"{name}: {len(points)} kills, {results.count('applied')} applied, "
          f"{results.count('not applied')} not applied ({ticks} ticks in a full run)")
