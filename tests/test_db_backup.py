"""`crm db backup | restore | check`: online backups (consistent while another process writes), timestamped
names and pruning, encrypted backups, verified restores that keep the replaced file, refused bad backups."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import snapshot_db
from crm_helpers import cli, fails, fast_cli, from_template, one, template_store  # noqa: F401 (fixtures)

from crmcli.store import keys

AS_OF = "2024-06-15"
NAME = re.compile(r"^shop-\d{8}-\d{6}(-\d+)?\.sqlite$")


def build(cli: Any) -> None:
    cli.ok("customer", "add", "Ann Lee", "--phone", "13800138000")
    cli.ok("customer", "add", "Bob Li", "--phone", "13900139000")
    cli.ok("purchase", "add", "Ann", "100", "--at", "2024-06-01", "--as-of", AS_OF)


@pytest.fixture
def shop(cli: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return from_template("backup-shop", cli, tmp_path_factory, build)


def test_backup_names_checks_and_prunes(shop, db_path):
    folder = db_path.with_name("shop-backups")
    made = []
    for _ in range(3):
        result = shop.ok("db", "backup", "--keep", "2")
        made.append(Path(result.stdout.strip()))
        assert "integrity ok" in result.stderr
    assert all(NAME.match(p.name) and p.parent == folder for p in made)
    assert len(set(made)) == 3  # same second: a counter keeps the names apart
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in made[1:])
    assert "Deleted the old backup" in shop.ok("db", "backup", "--keep", "1").stderr
    (kept,) = folder.iterdir()
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    assert snapshot_db(kept) == snapshot_db(db_path)
    (folder / "notes.txt").write_text("mine")
    shop.ok("db", "backup", "--keep", "1")
    assert (folder / "notes.txt").exists()  # only timestamped backups are pruned

    other = db_path.parent / "elsewhere"
    other.mkdir()
    named = Path(shop.ok("db", "backup", str(other)).stdout.strip())
    assert named.parent == other and NAME.match(named.name)
    target = db_path.parent / "copy.sqlite"
    assert shop.ok("db", "backup", str(target)).stdout.strip() == str(target)
    fails(shop, 4, "db", "backup", str(target), says=["already exists"])
    fails(shop, 2, "db", "backup", str(db_path.parent / "x.sqlite"), "--keep", "2", says=["--keep"])
    fails(shop, 5, "db", "backup", "--keep", "0", says=["--keep"])


def test_an_encrypted_store_gives_an_encrypted_backup(shop, db_path, memory_keyring):
    shop.ok("db", "encrypt")
    backup = Path(shop.ok("db", "backup").stdout.strip())
    assert keys.is_encrypted(backup)
    secret = memory_keyring.data[("crmcli", str(db_path.absolute()))]
    conn = keys.connect(backup, secret)
    assert conn.execute("SELECT count(*) FROM customer").fetchone()[0] == 2
    conn.close()
    shop.ok("customer", "add", "Cat Wu")
    shop.ok("db", "restore", str(backup), "--yes")  # the store's key opens its backup
    assert [c["name"] for c in shop.json("customer", "list")] == ["Ann Lee", "Bob Li"]
    assert keys.is_encrypted(db_path)


WRITER = textwrap.dedent("""
    import sys, time
    from crmcli.core import customers, purchases
    from crmcli.core.context import StoreContext
    from crmcli.store.engine import open_store
    from pathlib import Path
    store = open_store(sys.argv[1])
    stop = Path(sys.argv[2])
    n = 0
    while not stop.exists():
        with store.write() as session:
            ctx = StoreContext.load(session)
            ann = customers.get(session, 1)
            for _ in range(5):
                purchases.add_purchase(session, ann, purchases.PurchaseInput(amount="1.00"), ctx)
        n += 1
        if n == 1:
            print("writing", flush=True)
    print(n)
""")


def test_a_backup_taken_while_another_process_writes_is_consistent(shop, db_path, tmp_path):
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db_path), str(stop)], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "CRM_LANG": "en"})
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        backups = [Path(shop.ok("db", "backup").stdout.strip()) for _ in range(3)]
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0 and int(out) > 0
    counts = []
    for b in backups:
        # every transaction is all in or all out: 5 purchases and their 5 audit rows at a time
        sales = one(b, "SELECT count(*) FROM purchase")
        assert (sales - 1) % 5 == 0
        assert one(b, "SELECT count(*) FROM audit WHERE entity = 'purchase'") == sales
        assert one(b, "PRAGMA integrity_check") == "ok"
        counts.append(sales)
        check = shop("--db", str(b), "db", "check")
        assert check.exit_code == 0, check.stderr
    assert counts == sorted(counts) and counts[-1] > 1


def test_restore_round_trip_keeps_the_replaced_store(shop, db_path):
    before = snapshot_db(db_path)
    backup = Path(shop.ok("db", "backup").stdout.strip())
    shop.ok("customer", "add", "Cat Wu")
    shop.ok("purchase", "add", "Cat", "5", "--as-of", AS_OF)
    changed = snapshot_db(db_path)
    fails(shop, 2, "db", "restore", str(backup), says=["--yes"])  # not on a terminal
    result = shop.ok("db", "restore", str(backup), "--yes")
    assert snapshot_db(db_path) == before
    kept = Path(re.search(r"kept as (\S+)\.", result.stderr).group(1))  # type: ignore[union-attr]
    assert kept.name.endswith("-pre-restore.sqlite") and snapshot_db(kept) == changed
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    assert [c["name"] for c in shop.json("customer", "list")] == ["Ann Lee", "Bob Li"]
    shop.ok("db", "check")
    # pruning leaves the kept file alone
    shop.ok("db", "backup", "--keep", "1")
    assert kept.exists()


def test_damaged_or_foreign_backups_are_refused(shop, db_path, tmp_path):
    before = snapshot_db(db_path)
    backup = Path(shop.ok("db", "backup").stdout.strip())
    data = bytearray(backup.read_bytes())
    page = 4096
    for i in range(page * 2, min(len(data), page * 6)):  # scribble over a few pages
        data[i] = (data[i] * 7 + 13) % 256
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(bytes(data))
    fails(shop, 1, "db", "restore", str(bad), "--yes", says=[str(bad), "not restored"])
    text = tmp_path / "text.sqlite"
    text.write_text("hello")
    fails(shop, 1, "db", "restore", str(text), "--yes", says=["not restored"])
    import sqlite3

    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    fails(shop, 1, "db", "restore", str(other), "--yes", says=["not a crmcli store"])
    fails(shop, 1, "db", "restore", str(tmp_path / "missing.sqlite"), "--yes", says=["No backup file"])
    assert snapshot_db(db_path) == before
    assert not db_path.with_name("shop-backups").joinpath("x").exists()
    assert [p for p in db_path.with_name("shop-backups").iterdir() if "pre-restore" in p.name] == []


def test_check_passes_on_a_good_store_and_names_broken_references(shop, db_path):
    result = shop.ok("db", "check", "--format", "json")
    assert [(c["check"], c["ok"]) for c in json.loads(result.stdout)] == [
        ("integrity", True), ("foreign_keys", True), ("audit", True), ("encryption", True)]
    import sqlite3

    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("UPDATE purchase SET customer_id = 99")
    conn.commit()
    conn.close()
    bad = shop("db", "check")
    assert bad.exit_code == 1
    assert "failed foreign_keys" in bad.stderr and "purchase row 1 points to a missing customer" in bad.stderr


def test_check_on_a_damaged_file_exits_non_zero(shop, db_path):
    data = bytearray(db_path.read_bytes())
    data[100:4096 * 3] = bytes(len(data[100:4096 * 3]))
    db_path.write_bytes(bytes(data))
    result = shop("db", "check")
    assert result.exit_code != 0 and "Error:" in result.stderr and "Traceback" not in result.stderr
