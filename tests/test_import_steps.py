"""Imports that commit in steps (issue #10): a long import lets other writers in between its steps, yet stays
all-or-nothing. CRM_IMPORT_STEP_SECONDS=0 makes every (smallest) batch a step, so these small files commit
many steps; the same files imported in one transaction must give exactly the same store."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import pg_support
from conftest import Cli
from crm_helpers import audit_rows, cli, fails, one, query, template_store  # noqa: F401

import crmcli.core.io.importer as importer
import crmcli.core.io.rollback as rollback

CUSTOMERS = 520  # the first batch (250 rows) and then more than 5 of the smallest (50)


def customers_csv(path: Path, n: int = CUSTOMERS, *, last: str | None = None) -> str:
    lines = ["name,phone,email,tags,city"]
    lines += [f"Kunde {i},+86139{i:08d},k{i}@example.com,vip;import,上海" for i in range(1, n + 1)]
    if last is not None:
        lines.append(last)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def purchases_csv(path: Path, *, last: str | None = None) -> str:
    lines = ["ref,customer_code,kind,amount,purchased_at,refund_of_ref"]
    for i in range(1, 401):
        lines.append(f"S{i},C{1 + i % 3:06d},sale,{10 + i}.50,2024-03-{1 + i % 28:02d},")
    lines += ["R1,C000002,refund,-5,2024-03-29,S1", "R2,C000003,refund,-11,2024-03-29,S2"]
    if last is not None:
        lines.append(last)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def imported(cli, *args: str, code: int = 0) -> dict:
    result = cli("import", *args, "--format", "json", "--as-of", "2024-06-30")
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every batch its own step; the list counts the steps committed."""
    monkeypatch.setenv("CRM_IMPORT_STEP_SECONDS", "0")
    commits: list[int] = []
    original = importer._Steps.commit

    def commit(self: importer._Steps) -> None:
        original(self)
        commits.append(self.committed)

    monkeypatch.setattr(importer._Steps, "commit", commit)
    return commits


def shop(cli) -> None:
    cli.ok("config", "set", "points.enabled", "true")
    for name in ("Ann", "Bob", "Cat"):
        cli.ok("customer", "add", name)


def table_rows(db: Path, table: str, columns: str) -> list[tuple]:
    return query(db, f"SELECT {columns} FROM {table} ORDER BY {columns}")


def test_a_stepped_import_gives_the_same_store_as_one_transaction(cli, tmp_path, steps, monkeypatch,
                                                                  template_store):
    path = customers_csv(tmp_path / "c.csv")
    data = imported(cli, "customers", path)
    assert (data["read"], data["created"], data["rejected"]) == (CUSTOMERS, CUSTOMERS, 0)
    assert len(steps) > 5, "the file was not imported in steps"
    assert query(cli.db, "SELECT status, owner FROM import_run") == [("done", None)]

    monkeypatch.setenv("CRM_IMPORT_STEP_SECONDS", "3600")
    steps.clear()
    other = tmp_path / "one.sqlite"
    pg_support.copy_store(template_store[0], other)
    single = Cli(other)
    assert imported(single, "customers", path)["created"] == CUSTOMERS
    assert len(steps) == 1
    for table, columns in (("customer", "id, code, name, city, import_id"),
                           ("contact_point", "customer_id, kind, value"),
                           ("customer_tag", "customer_id, tag")):
        assert table_rows(cli.db, table, columns) == table_rows(other, table, columns), table
    def trail(db: Path) -> list[tuple]:
        """The audit trail, with each batch entry spelled out per record (batches differ in size)."""
        out: list[tuple] = []
        for r in audit_rows(db):
            if r["action"] == "import-batch":
                out += [(r["entity"], i, "import-batch") for i in range(r["after"]["first_id"], r["after"]["last_id"] + 1)]
            elif r["entity"] != "setting":
                out.append((r["entity"], r["entity_id"], r["action"], json.dumps(r["after"], sort_keys=True)))
        return out

    assert trail(cli.db) == trail(other) and trail(other)
    cli.ok("db", "check")


def test_a_rejected_row_after_committed_steps_leaves_the_store_exactly_as_before(cli, tmp_path, steps, unchanged):
    cli.ok("customer", "add", "Existing", "--phone", "+8613700000001")
    check = unchanged()
    path = customers_csv(tmp_path / "c.csv", last="Late,+8613700000001,late@example.com,,北京")
    result = cli("import", "customers", path, "--as-of", "2024-06-30")
    assert result.exit_code == 5
    assert f"line {CUSTOMERS + 2}" in result.stderr and "already exists as C000001" in result.stderr
    assert len(steps) > 5  # steps were committed, then taken back
    check()
    assert one(cli.db, "SELECT COUNT(*) FROM import_run") == 0
    # and the ids it used are free again
    assert imported(cli, "customers", customers_csv(tmp_path / "d.csv", 3))["created"] == 3
    assert [r[0] for r in query(cli.db, "SELECT code FROM customer ORDER BY id")] == \
        ["C000001", "C000002", "C000003", "C000004"]


def test_purchases_with_points_and_refunds_are_taken_back_too(cli, tmp_path, steps, unchanged):
    shop(cli)
    check = unchanged()
    path = purchases_csv(tmp_path / "p.csv", last="BAD,C000099,sale,10,2024-03-01,")
    result = cli("import", "purchases", path, "--as-of", "2024-06-30")
    assert result.exit_code == 5 and "C000099" in result.stderr
    assert len(steps) > 3
    check()
    # The same file without the bad row imports, earns points, and a refund's allocation is in place.
    data = imported(cli, "purchases", purchases_csv(tmp_path / "q.csv"))
    assert data["created"] == 402
    assert one(cli.db, "SELECT COUNT(*) FROM points_ledger WHERE purchase_id IS NOT NULL") >= 402
    cli.ok("db", "check")


def test_partial_keeps_the_good_rows_of_every_step(cli, tmp_path, steps):
    cli.ok("customer", "add", "Existing", "--phone", "+8613700000001")
    path = customers_csv(tmp_path / "c.csv", last="Late,+8613700000001,late@example.com,,北京")
    data = imported(cli, "customers", path, "--partial", code=5)
    assert (data["created"], data["rejected"]) == (CUSTOMERS, 1)
    assert one(cli.db, "SELECT COUNT(*) FROM customer") == CUSTOMERS + 1
    assert query(cli.db, "SELECT status FROM import_run") == [("partial",)]


def test_ctrl_c_between_steps_takes_the_committed_steps_back(cli, tmp_path, steps, unchanged, monkeypatch):
    check = unchanged()
    original = importer._finish_step
    calls = []

    def interrupted(session, result):  # noqa: ANN001
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        original(session, result)

    monkeypatch.setattr(importer, "_finish_step", interrupted)
    result = cli("import", "customers", customers_csv(tmp_path / "c.csv"), "--as-of", "2024-06-30")
    assert result.exit_code == 130 and "Interrupted" in result.stderr
    assert len(steps) == 2
    check()


def dead_owner() -> str:
    """The owner string of a process that has ended."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    return f"{socket.gethostname()}:{int(proc.stdout)}:1"


def test_the_next_command_takes_back_an_import_whose_process_died(cli, tmp_path, steps, unchanged, monkeypatch):
    check = unchanged()

    def crash(session, run_id):  # noqa: ANN001
        raise SystemExit(137)  # as if killed: nothing takes the steps back

    with monkeypatch.context() as m:
        m.setattr(rollback, "discard", crash)
        m.setattr(importer, "_finish_step", _dying_after(2, importer._finish_step))
        assert cli("import", "customers", customers_csv(tmp_path / "c.csv"), "--as-of", "2024-06-30").exit_code == 137
    assert one(cli.db, "SELECT status FROM import_run") == "running"
    assert one(cli.db, "SELECT COUNT(*) FROM customer") > 0
    # Still its process's (this one, alive): left alone.
    assert cli.ok("customer", "list").stderr == ""
    assert one(cli.db, "SELECT COUNT(*) FROM import_run") == 1
    conn = sqlite3.connect(cli.db)  # under CRM_TEST_PG the test shim routes this to PostgreSQL
    with conn:
        conn.execute("UPDATE import_run SET owner = ?", (dead_owner(),))
    conn.close()
    result = cli.ok("customer", "list")
    assert "Import #1 was interrupted (its process ended)" in result.stderr
    assert len(result.stdout.strip().splitlines()) == 1  # the header: no customer left
    check()


def _dying_after(n: int, original):  # noqa: ANN001, ANN202
    calls = []

    def finish(session, result):  # noqa: ANN001
        calls.append(1)
        if len(calls) > n:
            raise RuntimeError("power cut")
        original(session, result)

    return finish


def test_a_record_used_meanwhile_is_kept_and_named(cli, tmp_path, steps, monkeypatch):
    """Between two steps another command adds a purchase for a customer the running import created; the
    import then fails. Its other customers are removed; that one is kept, with an audit entry."""
    original = importer._finish_step
    calls = []

    def meanwhile(session, result):  # noqa: ANN001
        original(session, result)
        calls.append(1)
        if len(calls) == 2:
            from sqlalchemy import text

            session.execute(text("INSERT INTO purchase (customer_id, kind, amount_minor, purchased_at, purchased_on, "
                                 "quantity, created_at) SELECT id, 'sale', 100, created_at, '2024-03-01', 1, created_at "
                                 "FROM customer ORDER BY id LIMIT 1"))

    monkeypatch.setattr(importer, "_finish_step", meanwhile)
    path = customers_csv(tmp_path / "c.csv", last="Broken,not-a-phone,,,")
    assert cli("import", "customers", path, "--as-of", "2024-06-30").exit_code == 5
    assert one(cli.db, "SELECT COUNT(*) FROM customer") == 1
    assert query(cli.db, "SELECT status FROM import_run") == [("failed",)]
    kept = [r for r in audit_rows(cli.db) if r["action"] == "import-kept"]
    assert [(r["entity"], r["entity_id"]) for r in kept] == [("customer", 1)]
    cli.ok("db", "check")


# ------------------------------------------------------------------ upserts: changed customers are put back
def regulars(cli) -> None:
    """Two existing customers with every part an upsert can change."""
    cli.ok("customer", "add", "Ann", "--phone", "+8613600000001", "--email", "ann@example.com", "--tag", "old",
           "--consent", "sms=no", "--pref", "size=M", "--city", "北京", "--notes", "first visit", "--as-of", "2024-01-02")
    cli.ok("customer", "add", "Bob", "--phone", "+8613600000002", "--wechat", "bob88", "--birthday", "1980-02-29",
           "--as-of", "2024-01-02")


def upsert_csv(path: Path, *, last: str | None = None) -> str:
    """New customers, with the two regulars changed in the first and in a later step."""
    lines = ["name,phone,email,tags,city,notes,consent_sms,preferences"]
    lines.append("Ann Lee,+8613600000001,ann.work@example.com,vip,上海,moved,yes,size=L;drink=tea")
    lines += [f"Kunde {i},+86139{i:08d},k{i}@example.com,import,上海,,," for i in range(1, CUSTOMERS + 1)]
    lines.append("Bob,+8613600000002,bob@example.com,vip,广州,,,")
    if last is not None:
        lines.append(last)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_a_failed_stepped_upsert_puts_the_customers_it_changed_back(cli, tmp_path, steps, unchanged):
    regulars(cli)
    check = unchanged()
    result = cli("import", "customers", upsert_csv(tmp_path / "u.csv", last="Broken,not-a-phone,,,,,,"),
                 "--mode", "upsert", "--as-of", "2024-06-30")
    assert result.exit_code == 5 and "not-a-phone" in result.stderr
    assert len(steps) > 5  # both regulars were changed in committed steps, then put back
    check()


def test_a_stepped_upsert_gives_the_same_store_as_one_transaction(cli, tmp_path, steps, monkeypatch):
    regulars(cli)
    other = tmp_path / "one.sqlite"
    pg_support.copy_store(cli.db, other)
    path = upsert_csv(tmp_path / "u.csv")
    data = imported(cli, "customers", path, "--mode", "upsert")
    assert (data["created"], data["updated"], data["rejected"]) == (CUSTOMERS, 2, 0)
    assert len(steps) > 5
    assert one(cli.db, "SELECT COUNT(*) FROM import_before") == 0  # the images went with the last step
    monkeypatch.setenv("CRM_IMPORT_STEP_SECONDS", "3600")
    assert imported(Cli(other), "customers", path, "--mode", "upsert")["updated"] == 2
    for table, columns in (("customer", "id, code, name, city, notes, import_id"),
                           ("contact_point", "customer_id, kind, value, label, position"),
                           ("customer_tag", "customer_id, tag"), ("consent", "customer_id, channel, granted"),
                           ("preference", "customer_id, key, value")):
        assert table_rows(cli.db, table, columns) == table_rows(other, table, columns), table
    ann = cli.json("customer", "show", "+8613600000001")
    assert (ann["customer"]["name"], ann["customer"]["city"]) == ("Ann Lee", "上海")
    edits = [r for r in audit_rows(cli.db, "edit") if r["entity_id"] in (1, 2)]
    assert [(r["entity_id"], r["after"].get("city")) for r in edits] == [(1, "上海"), (2, "广州")]
    cli.ok("db", "check")


def test_an_upsert_whose_process_died_is_put_back_by_the_next_command(cli, tmp_path, steps, unchanged,
                                                                       monkeypatch):
    regulars(cli)
    check = unchanged()

    def crash(session, run_id):  # noqa: ANN001
        raise SystemExit(137)

    with monkeypatch.context() as m:
        m.setattr(rollback, "discard", crash)
        m.setattr(importer, "_finish_step", _dying_after(3, importer._finish_step))
        assert cli("import", "customers", upsert_csv(tmp_path / "u.csv"), "--mode", "upsert",
                   "--as-of", "2024-06-30").exit_code == 137
    assert one(cli.db, "SELECT city FROM customer WHERE id = 1") == "上海"  # committed, not yet taken back
    assert one(cli.db, "SELECT COUNT(*) FROM import_before") == 1
    conn = sqlite3.connect(cli.db)
    with conn:
        conn.execute("UPDATE import_run SET owner = ?", (dead_owner(),))
    conn.close()
    result = cli.ok("customer", "list")
    assert "1 customers it had changed were put back as they were" in result.stderr
    check()


def test_a_customer_changed_meanwhile_by_another_command_is_kept(cli, tmp_path, steps, monkeypatch):
    """Putting Ann back would undo another command's tag too: she is kept (with the import's change and the
    other command's), named in the trail; the new customers go."""
    regulars(cli)
    original = importer._finish_step
    calls = []

    def meanwhile(session, result):  # noqa: ANN001
        original(session, result)
        calls.append(1)
        if len(calls) == 2:  # as another crm command would, with its own audit row
            from crmcli.core import audit
            from crmcli.core.customers import get, tag_customer

            token = audit.spool.set(None)
            try:
                tag_customer(session, get(session, 1), ["called"], [])
            finally:
                audit.spool.reset(token)

    monkeypatch.setattr(importer, "_finish_step", meanwhile)
    path = upsert_csv(tmp_path / "u.csv", last="Broken,not-a-phone,,,,,,")
    assert cli("import", "customers", path, "--mode", "upsert", "--as-of", "2024-06-30").exit_code == 5
    assert one(cli.db, "SELECT COUNT(*) FROM customer") == 2
    assert query(cli.db, "SELECT name, city FROM customer ORDER BY id") == [("Ann Lee", "上海"), ("Bob", None)]
    assert sorted(r[0] for r in query(cli.db, "SELECT tag FROM customer_tag WHERE customer_id = 1")) == \
        ["called", "old", "vip"]
    assert query(cli.db, "SELECT status FROM import_run") == [("failed",)]
    kept = [r for r in audit_rows(cli.db) if r["action"] == "import-kept"]
    assert [(r["entity"], r["entity_id"]) for r in kept] == [("customer", 1)]
    assert one(cli.db, "SELECT COUNT(*) FROM import_before") == 0
    cli.ok("db", "check")


def test_a_run_taken_over_by_another_machine_stops_instead_of_writing_on(cli, tmp_path, steps, monkeypatch):
    """On a shared server a command on another machine takes back a run whose row has not moved for 10 minutes
    (core/io/rollback.STALE_AFTER) and makes the run its own. The importing process must not go on: its next
    step would write rows of a run that is gone, or report success over rows taken back. Each step commits only
    while the run is still this process's."""
    original = importer._finish_step
    calls = []

    def meanwhile(session, result):  # noqa: ANN001
        original(session, result)
        calls.append(1)
        if len(calls) == 2:  # as if another machine had claimed the run after this step
            from sqlalchemy import text

            session.execute(text("UPDATE import_run SET owner = 'elsewhere:1:1'"))

    monkeypatch.setattr(importer, "_finish_step", meanwhile)
    result = cli("import", "customers", customers_csv(tmp_path / "c.csv"), "--as-of", "2024-06-30")
    assert result.exit_code == 1, result.stderr
    assert "was taken back by another crm command while it ran" in result.stderr
    assert len(calls) == 2  # the third step did not commit
    assert one(cli.db, "SELECT COUNT(*) FROM customer") == 0  # what it had committed was taken back too
    cli.ok("db", "check")
