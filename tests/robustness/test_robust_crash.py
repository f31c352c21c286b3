"""Crash safety: a real `crm` process SIGKILLed at seeded random moments during an operation leaves a
store that passes every check, with the operation either fully applied or not applied at all.

Kill points: "tick" = inside SQLite work (a progress handler fires every 500 VM instructions and the
process kills itself at tick K, K drawn at random from the ticks a complete run makes — so kills land
inside executemany and COMMIT too); "time" = plain `python -m crmcli` killed from outside after a random
delay within the window where the reference run did SQLite work; "commit-before/after" = right before or
after the first writing COMMIT.

Default run: a random tick and the moment right after COMMIT for each operation, plus one kill from outside
in time (tier recompute). The slow variant (`pytest -m slow tests/robustness/test_robust_crash.py`) runs 54
kill points per operation (40 ticks, 12 times, both sides of COMMIT) and, after every kill that left the
store unchanged, runs the operation again to the end.
Replay a failure with CRM_ROBUST_SEED=<seed printed in the failure>.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path

import pytest

import robust_support
from robust_support import (AS_OF, SEED, KillPoint, Zygote, copy_store, diff_summary, execute_kill,
                            generate_shop, kill_points, projection, reference_run, run_wrapped, store_problems,
                            with_points, write_customers_csv, write_purchases_csv)


@pytest.fixture(scope="session")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    z = Zygote(tmp_path_factory.mktemp("zygote"))
    yield z
    z.close()


@pytest.fixture(scope="session")
def crash_shop(tmp_path_factory: pytest.TempPathFactory, zygote: Zygote) -> Path:
    """250 customers, ~1,550 purchases, points earned with a 90-day expiry (so `expire` has work)."""
    path = tmp_path_factory.mktemp("crash") / "shop.sqlite"
    generate_shop(path, customers=250, purchases=1500)
    with_points(path, zygote=zygote)
    zygote.ok(path, "points", "earn", "C000001", "500", "--reason", "spendable points for the redeem campaign")
    return path


@pytest.fixture(scope="session")
def import_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """customers.csv: 500 new customers; purchases.csv: 1,000 sales of the shop's customers (they earn
    points through the purchase hooks); upsert.csv: 200 of the shop's customers changed (city, notes, a new
    e-mail and tag), each followed by a new customer."""
    folder = tmp_path_factory.mktemp("import-files")
    write_customers_csv(folder / "customers.csv", 500)
    with (folder / "upsert.csv").open("w", encoding="utf-8", newline="") as f:
        f.write("code,name,email,city,notes,tags\n")
        for i in range(1, 201):
            f.write(f"C{i:06d},Renamed {i},moved{i}@example.com,杭州,moved in 2025,upserted\n")
            f.write(f"U{i:06d},Upserted {i},new{i}@example.com,上海,,new\n")
    write_purchases_csv(folder / "purchases.csv", 1000, customers=250)
    return folder


@dataclass(frozen=True)
class Operation:
    name: str
    args: tuple[str, ...]  # "{files}" is the folder of import_files, "{dest}" a new file name per trial
    every: int = 500  # VM instructions per tick: small transactions need finer ticks
    prepare: tuple[tuple[str, ...], ...] = ()  # commands run on the base store before it is copied
    backup: bool = False  # the store must stay unchanged; the copy at {dest} is whole or absent
    env: tuple[tuple[str, str], ...] = ()  # extra environment of its crm processes
    # Commits in several steps: the first COMMIT is not the last, and a kill after it must be taken back by the
    # next crm command (core/io/rollback.py), so "commit-after" ends as "not applied".
    stepped: bool = False


ONE_STEP = (("CRM_IMPORT_STEP_SECONDS", "3600"),)  # the whole import in one transaction, whatever the load
STEP_EACH_BATCH = (("CRM_IMPORT_STEP_SECONDS", "0"),)  # a step after every (smallest) batch


OPERATIONS = [
    Operation("tier-recompute", ("tier", "recompute", "--as-of", AS_OF)),
    Operation("points-expire", ("points", "expire", "--as-of", AS_OF)),
    # A sale of a customer with points: the purchase, its earn row (and refund settlement) and the audit
    # rows are one transaction.
    Operation("purchase-add", ("purchase", "add", "C000003", "1288.50", "--at", "2025-06-20 10:00",
                               "--ref", "KILL-1", "--product", "crash test"), every=50),
    Operation("points-redeem", ("points", "redeem", "C000001", "150", "--reason", "crash test"), every=50),
    Operation("import-customers", ("import", "customers", "{files}/customers.csv", "--as-of", AS_OF), every=2000,
              env=ONE_STEP),
    Operation("import-purchases", ("import", "purchases", "{files}/purchases.csv", "--as-of", AS_OF), every=2000,
              env=ONE_STEP),
    Operation("import-customers-stepped", ("import", "customers", "{files}/customers.csv", "--as-of", AS_OF),
              every=2000, env=STEP_EACH_BATCH, stepped=True),
    Operation("import-purchases-stepped", ("import", "purchases", "{files}/purchases.csv", "--as-of", AS_OF),
              every=2000, env=STEP_EACH_BATCH, stepped=True),
    # Changes existing customers too: a kill after a step must put them back from their before-images.
    Operation("import-upsert-stepped", ("import", "customers", "{files}/upsert.csv", "--mode", "upsert",
                                        "--match", "code", "--as-of", AS_OF), every=2000, env=STEP_EACH_BATCH,
              stepped=True),
    Operation("db-backup", ("db", "backup", "{dest}"), every=20, backup=True),
]


def run_campaign(op: Operation, shop: Path, files: Path, work: Path, zygote: Zygote, *, n_ticks: int,
                 n_times: int, boundaries: bool, after_commit: bool, retry: bool) -> None:
    robust_support.OPERATION_ENV.clear()
    robust_support.OPERATION_ENV.update(op.env)
    try:
        _campaign(op, shop, files, work, zygote, n_ticks=n_ticks, n_times=n_times, boundaries=boundaries,
                  after_commit=after_commit, retry=retry)
    finally:
        robust_support.OPERATION_ENV.clear()


def _campaign(op: Operation, shop: Path, files: Path, work: Path, zygote: Zygote, *, n_ticks: int,
              n_times: int, boundaries: bool, after_commit: bool, retry: bool) -> None:
    def args(dest: Path) -> list[str]:
        return [a.format(files=files, dest=dest) for a in op.args]

    base = copy_store(shop, work / "base.sqlite")
    for prep in op.prepare:
        zygote.ok(base, *prep)
    before = projection(base)
    assert not store_problems(base)
    done = copy_store(base, work / "reference.sqlite")
    # Time kills need the timing of a plain process (imports included); tick kills only need the tick count.
    ref = reference_run(done, args(work / "reference-copy.sqlite"), every=op.every,
                        zygote=None if n_times else zygote)
    after = projection(done)
    assert not store_problems(done)
    if op.backup:
        assert after == before and projection(work / "reference-copy.sqlite") == before
    else:
        assert after != before, f"{op.name} changed nothing: the campaign would prove nothing"

    seed = SEED + sum(map(ord, op.name))
    points = kill_points(ref, n_ticks, n_times, boundaries=boundaries, rnd=random.Random(seed))
    if after_commit:
        points.append(KillPoint("commit-after", 0))

    def trial(i_point: tuple[int, KillPoint]) -> str:
        i, point = i_point
        db = copy_store(base, work / f"trial-{i}.sqlite")
        dest = work / f"trial-{i}-copy.sqlite"
        code = execute_kill(db, args(dest), point, every=op.every, zygote=zygote)
        where = f"{op.name} killed at {point} (exit {code}; CRM_ROBUST_SEED={SEED})"
        problems = store_problems(db)
        if problems:
            return f"{where}: {problems}"
        state = projection(db)
        if op.backup:
            if state != before:
                return f"{where}: the backup changed the store ({diff_summary(before, state)})"
            if not dest.exists():
                outcome = "not applied"
            elif store_problems(dest) or projection(dest) != before:
                return f"{where}: a partial or damaged backup under its final name"
            else:
                outcome = "applied"
        elif state == after:
            outcome = "applied"
        elif state == before:
            outcome = "not applied"
        else:
            return f"{where}: half applied ({diff_summary(before, state)} before; {diff_summary(after, state)} after)"
        if outcome == "not applied" and retry:  # the store is usable: running again finishes the job
            r = run_wrapped(db, args(dest), db.with_suffix(".retry.json"), every=op.every, zygote=zygote)
            finished = dest.exists() and projection(dest) == before if op.backup else projection(db) == after
            if r.returncode != 0 or not finished:
                return f"{where}: the retry did not complete ({r.returncode}: {r.stderr.strip()})"
        if point.kind == "commit-after" and op.stepped and outcome != "not applied":
            return f"{where}: the first step of a killed import was not taken back"
        if point.kind == "commit-after" and outcome != "applied" and not op.backup and not op.stepped:
            return f"{where}: a committed operation was lost"
        if point.kind == "commit-before" and outcome != "not applied" and not op.backup:
            return f"{where}: an uncommitted operation survived"
        for leftover in work.glob(f"*trial-{i}*"):
            leftover.unlink()
        return outcome

    robust_support.run_trials(op.name, trial, points, ref.ticks)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda o: o.name)
def test_sigkill_leaves_operation_whole_or_absent(op: Operation, crash_shop: Path, import_files: Path,
                                                  tmp_path: Path, zygote: Zygote) -> None:
    # A random tick and the moment after COMMIT; one operation also gets a kill from outside in time.
    run_campaign(op, crash_shop, import_files, tmp_path, zygote, n_ticks=1, n_times=1 if op is OPERATIONS[0] else 0,
                 boundaries=False, after_commit=True, retry=False)


@pytest.mark.slow
@pytest.mark.parametrize("op", OPERATIONS, ids=lambda o: o.name)
def test_sigkill_many_points(op: Operation, crash_shop: Path, import_files: Path, tmp_path: Path,
                             zygote: Zygote) -> None:
    run_campaign(op, crash_shop, import_files, tmp_path, zygote, n_ticks=40, n_times=12, boundaries=True, after_commit=False,
                 retry=True)
