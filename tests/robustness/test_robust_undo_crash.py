"""Crash safety of the stepped `crm import undo` and of the stepped taking back of a failed import (issue #10):
a real `crm` process SIGKILLed at seeded random moments (the kill harness of test_robust_crash.py: inside SQLite
work, from outside after a delay, right around the first COMMIT) leaves a store that passes every check, and
the operation ends either not applied or — once the next crm command has finished what the killed process
began — exactly as a complete run ends.

An undo rolls forward: a kill after its first step leaves the run ``undoing``, and the next command (here the
`crm db check` of ``store_problems``) finishes it. So the reference is a complete, unkilled run, compared
without the audit rows' ``command`` (the command that finished the undo is another one). A failed import
rolls back: whatever the kill, the store ends as it was before the import.

Default run: two random ticks and the moment after the first COMMIT per operation. Slow
(`pytest -m slow tests/robustness/test_robust_undo_crash.py`): 30 ticks, 8 kills in time and both sides of
COMMIT per operation, and every kill that left the store as before is followed by a rerun that must complete.
"""

from __future__ import annotations

import json
import random
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import robust_support
from robust_support import (AS_OF, SEED, KillPoint, Zygote, copy_store, diff_summary, generate_shop, kill_after,
                            kill_points, projection, run_wrapped, store_problems, with_points, write_customers_csv,
                            write_purchases_csv)

STEP_RECORDS = "50"  # 300 customers: 6 steps; 400 purchases: 8 steps


@dataclass(frozen=True)
class Operation:
    name: str
    args: tuple[str, ...]  # "{files}": the folder of the test files
    code: int = 0  # the exit code of a complete run
    env: tuple[tuple[str, str], ...] = ()


OPERATIONS = [
    Operation("undo-customers", ("import", "undo", "1", "--yes")),
    Operation("undo-purchases", ("import", "undo", "2", "--yes")),
    # 300 customers committed in steps, then a bad row: they are taken back in steps.
    Operation("failed-import-taken-back", ("import", "customers", "{files}/bad.csv", "--as-of", AS_OF), code=5,
              env=(("CRM_IMPORT_STEP_SECONDS", "0"),)),
]


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    z = Zygote(tmp_path_factory.mktemp("undo-zygote"))
    yield z
    z.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("undo-files")
    write_customers_csv(folder / "customers.csv", 300)
    write_purchases_csv(folder / "purchases.csv", 400, customers=100)
    write_customers_csv(folder / "bad.csv", 300, start=1001)
    with (folder / "bad.csv").open("a", encoding="utf-8") as f:
        f.write("N999999,Broken,not-a-phone,,,\n")
    return folder


@pytest.fixture(scope="module")
def undo_shop(tmp_path_factory: pytest.TempPathFactory, zygote: Zygote, files: Path) -> Path:
    """100 customers with ~400 purchases and points; import #1: 300 customers; import #2: 400 sales of the
    shop's customers, which earn points."""
    path = tmp_path_factory.mktemp("undo-shop") / "shop.sqlite"
    generate_shop(path, customers=100, purchases=400)
    with_points(path, zygote=zygote)
    zygote.ok(path, "import", "customers", str(files / "customers.csv"), "--as-of", AS_OF)
    zygote.ok(path, "import", "purchases", str(files / "purchases.csv"), "--as-of", AS_OF)
    return path


@pytest.fixture
def same_step_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The `crm db check` of store_problems runs in this process and finishes a killed undo: with the same
    step size as the crm processes, so its steps are the ones a complete run makes. The command that wrote an
    audit row is not compared (the rest of a killed undo is written by another command)."""
    monkeypatch.setenv("CRM_UNDO_STEP_RECORDS", STEP_RECORDS)
    monkeypatch.setattr(robust_support, "_VOLATILE_COLUMNS", robust_support._VOLATILE_COLUMNS | {("audit", "command")})


def run_campaign(op: Operation, shop: Path, files: Path, work: Path, zygote: Zygote, *, n_ticks: int,
                 n_times: int, boundaries: bool, after_commit: bool, retry: bool) -> None:
    robust_support.OPERATION_ENV.clear()
    robust_support.OPERATION_ENV.update({"CRM_UNDO_STEP_RECORDS": STEP_RECORDS, **dict(op.env)})
    try:
        _campaign(op, shop, files, work, zygote, n_ticks=n_ticks, n_times=n_times, boundaries=boundaries,
                  after_commit=after_commit, retry=retry)
    finally:
        robust_support.OPERATION_ENV.clear()


def _campaign(op: Operation, shop: Path, files: Path, work: Path, zygote: Zygote, *, n_ticks: int, n_times: int,
              boundaries: bool, after_commit: bool, retry: bool) -> None:
    args = [a.format(files=files) for a in op.args]
    every = 200  # VM instructions per tick: a few hundred kill points over a run
    base = copy_store(shop, work / "base.sqlite")
    before = projection(base)
    assert not store_problems(base)
    done = copy_store(base, work / "reference.sqlite")
    tick_file = done.with_suffix(".ticks.json")
    r = run_wrapped(done, args, tick_file, every=every, zygote=None if n_times else zygote)
    assert r.returncode == op.code, f"reference run of crm {' '.join(args)}: {r.returncode}\n{r.stderr}"
    ticks = json.loads(tick_file.read_text())
    ref = robust_support.Reference(ticks["ticks"], ticks["first"] or 0.0, ticks["last"] or 0.0, ticks["total"],
                                   r.stdout)
    after = projection(done)
    assert not store_problems(done)
    if op.code == 0:
        assert after != before, f"{op.name} changed nothing: the campaign would prove nothing"
    else:
        assert "not-a-phone" in r.stderr and after == before, diff_summary(before, after)

    points = kill_points(ref, n_ticks, n_times, boundaries=boundaries,
                         rnd=random.Random(SEED + sum(map(ord, op.name))))
    if after_commit:
        points.append(KillPoint("commit-after", 0))

    def trial(i_point: tuple[int, KillPoint]) -> str:
        i, point = i_point
        db = copy_store(base, work / f"trial-{i}.sqlite")
        if point.kind == "time":
            code = kill_after(db, args, point.value)
        elif point.kind == "tick":
            code = run_wrapped(db, args, db.with_suffix(".ticks.json"), kill_at=int(point.value), every=every,
                               zygote=zygote).returncode
        else:
            code = run_wrapped(db, args, db.with_suffix(".ticks.json"), kill_commit=point.kind.split("-")[1],
                               every=every, zygote=zygote).returncode
        where = f"{op.name} killed at {point} (exit {code}; CRM_ROBUST_SEED={SEED})"
        if code not in (op.code, -signal.SIGKILL):
            return f"{where}: unexpected exit"
        problems = store_problems(db)  # its `crm db check` finishes a killed undo or take-back first
        if problems:
            return f"{where}: {problems}"
        state = projection(db)
        left = [row for row in state["import_run"] if "undoing" in row or "running" in row]
        if left:
            return f"{where}: the next command did not finish the run: {left}"
        if state == before:  # a failed import's reference run ends as before too: "not applied" in every case
            outcome = "not applied"
        elif state == after:
            outcome = "applied"
        else:
            return f"{where}: half applied ({diff_summary(before, state)} before; {diff_summary(after, state)} after)"
        if point.kind == "commit-after" and op.code == 0 and outcome != "applied":
            return f"{where}: an undo whose first step was committed was not finished"
        if point.kind == "commit-before" and outcome != "not applied":
            return f"{where}: an uncommitted operation survived"
        if outcome == "not applied" and retry:
            r = run_wrapped(db, args, db.with_suffix(".retry.json"), every=every, zygote=zygote)
            if r.returncode != op.code or projection(db) != after:
                return f"{where}: the rerun did not complete ({r.returncode}: {r.stderr.strip()})"
        for leftover in work.glob(f"trial-{i}*"):
            leftover.unlink()
        return outcome

    robust_support.run_trials(op.name, trial, points, ref.ticks)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda o: o.name)
def test_a_killed_stepped_undo_or_take_back_ends_whole(op: Operation, undo_shop: Path, files: Path, tmp_path: Path,
                                                       zygote: Zygote, same_step_size: None) -> None:
    run_campaign(op, undo_shop, files, tmp_path, zygote, n_ticks=2, n_times=0, boundaries=False, after_commit=True,
                 retry=False)


@pytest.mark.slow
@pytest.mark.parametrize("op", OPERATIONS, ids=lambda o: o.name)
def test_a_stepped_undo_or_take_back_killed_at_many_points(op: Operation, undo_shop: Path, files: Path,
                                                           tmp_path: Path, zygote: Zygote, same_step_size: None) -> None:
    run_campaign(op, undo_shop, files, tmp_path, zygote, n_ticks=30, n_times=8, boundaries=True, after_commit=False,
                 retry=True)
