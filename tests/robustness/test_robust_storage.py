"""A store that cannot be written: a read-only file, a disk that fills up during a write, an output file on a
full device. Each gives one clear `Error: ...` line, exit 1, and leaves the store exactly as it was."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from robust_support import PY, crm_env, generate_shop, projection, store_problems, write_customers_csv


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("storage") / "shop.sqlite"
    generate_shop(path, customers=50, purchases=200)
    return path


# As root, file modes do not stop writes (and dropping to another user cannot reach this venv), so there the
# read-only file is simulated: every SQLite connection opens the file with mode=ro, which fails writes with
# the same "attempt to write a readonly database" a read-only file gives.
READ_ONLY = r"""
import sqlite3, sqlite3.dbapi2, sys
_connect = sqlite3.dbapi2.connect
def connect(database, *a, **k):
    if isinstance(database, str) and not database.startswith("file:") and database.endswith(".sqlite"):
        database, k["uri"] = f"file:{database}?mode=ro", True
    return _connect(database, *a, **k)
sqlite3.connect = sqlite3.dbapi2.connect = connect
from crmcli.cli.entry import main
main(sys.argv[1:])
"""


def test_read_only_store_refuses_writes_clearly(small_shop: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    store = folder / "shop.sqlite"
    shutil.copy2(small_shop, store)
    root = os.geteuid() == 0
    if not root:
        os.chmod(store, 0o444)
        os.chmod(folder, 0o555)
    before = digest(store)
    try:
        cmd = [PY, "-c", READ_ONLY] if root else [PY, "-m", "crmcli"]
        r = subprocess.run([*cmd, "--db", str(store), "customer", "add", "Ann", "--phone", "+8613800138000"],
                           capture_output=True, text=True, env=crm_env(), timeout=120)
    finally:
        os.chmod(folder, 0o755)
    assert r.returncode == 1, r.stderr
    error = one_error_line(r)
    assert "read-only" in error, error
    assert str(store) in error
    assert digest(store) == before


# Sets PRAGMA max_page_count on every connection: the store may grow by a few pages only, so a large write
# fails with SQLITE_FULL ("database or disk is full") exactly as a full disk would make it fail.
FULL_DISK = r"""
import sqlite3, sqlite3.dbapi2, sys
_connect = sqlite3.dbapi2.connect
def connect(*a, **k):
    conn = _connect(*a, **k)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    if pages:
        conn.execute(f"PRAGMA max_page_count = {pages + 8}")
    return conn
sqlite3.connect = sqlite3.dbapi2.connect = connect
from crmcli.cli.entry import main
main(sys.argv[1:])
"""


def test_disk_full_during_an_import_changes_nothing(small_shop: Path, tmp_path: Path) -> None:
    store = tmp_path / "shop.sqlite"
    shutil.copy2(small_shop, store)
    csv = tmp_path / "customers.csv"
    write_customers_csv(csv, 2000)
    before = projection(store)
    r = subprocess.run([PY, "-c", FULL_DISK, "--db", str(store), "import", "customers", str(csv)],
                       capture_output=True, text=True, env=crm_env(), timeout=300)
    assert r.returncode == 1, r.stderr
    error = one_error_line(r)
    assert "full" in error and "nothing was changed" in error, error
    assert projection(store) == before
    assert not store_problems(store)


def test_export_to_a_full_device_says_so(small_shop: Path, tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    store = tmp_path / "shop.sqlite"
    shutil.copy2(small_shop, store)
    # Through a link, so that an export that renamed a file over its target could never touch /dev/full.
    out = tmp_path / "customers.csv"
    out.symlink_to("/dev/full")
    before = projection(store)
    r = subprocess.run([PY, "-m", "crmcli", "--db", str(store), "export", "customers", str(out)],
                       capture_output=True, text=True, env=crm_env(), timeout=120)
    assert r.returncode == 1, r.stderr
    error = one_error_line(r)
    assert "No space left on device" in error or "full" in error, error
    assert projection(store) == before
