"""Encryption at rest: `crm db encrypt | decrypt | rekey`, keys from the keyring, CRM_DB_KEY or --key-file,
and every command working the same on an encrypted store."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import snapshot_db
from crm_helpers import cli, fails, fast_cli, from_template, template_store  # noqa: F401 (fixtures)

from crmcli.store import keys

AS_OF = "2024-06-15"
# Raw 256-bit keys open instantly; passphrases go through SQLCipher's slow key derivation (one test uses one).
RAW = "x'" + "ab" * 32 + "'"
OTHER_RAW = "x'" + "cd" * 32 + "'"


def build(cli: Any) -> None:
    cli.ok("customer", "add", "王芳", "--phone", "13800138000", "--email", "fang@example.com", "--city", "上海",
           "--consent", "sms=yes", "--tag", "vip", "--notes", "likes oat milk")
    cli.ok("customer", "add", "Bob Li", "--phone", "13900139000")
    cli.ok("purchase", "add", "王芳", "128.50", "--at", "2024-06-01", "--product", "拿铁", "--ref", "R1", "--as-of", AS_OF)
    cli.ok("purchase", "add", "Bob", "30", "--at", "2024-06-02", "--as-of", AS_OF)
    cli.ok("purchase", "refund", "1", "8.50", "--as-of", AS_OF)
    cli.ok("customer", "log", "王芳", "-c", "phone", "-s", "asked about beans", "--as-of", AS_OF)


@pytest.fixture
def shop(cli: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return from_template("encryption-shop", cli, tmp_path_factory, build)


def plain_sqlite_refuses(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.DatabaseError):
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        conn.close()


READS = [("customer", "list", "--format", "json"), ("card", "show", "王芳", "--format", "json", "--as-of", AS_OF),
         ("purchase", "list", "--format", "json"), ("customer", "search", "oat", "--format", "json"),
         ("report", "summary", "--as-of", AS_OF, "--format", "json"), ("db", "audit", "--format", "json")]


def test_encrypt_every_command_works_then_decrypt_gives_identical_data(shop, db_path, memory_keyring):
    cli = shop
    before = snapshot_db(db_path)
    outputs = [cli.ok(*args).stdout for args in READS]

    result = cli.ok("db", "encrypt")
    assert "the key is in the system keyring" in result.stderr
    secret = memory_keyring.data[("crmcli", str(db_path.absolute()))]
    assert secret.startswith("x'") and len(secret) == 67  # a raw 256-bit key
    assert db_path.read_bytes()[:16] != keys.SQLITE_HEADER and keys.is_encrypted(db_path)
    assert oct(db_path.stat().st_mode & 0o777) == "0o600"
    plain_sqlite_refuses(db_path)
    assert not any(p.name.endswith(".tmp") for p in db_path.parent.iterdir())

    assert [cli.ok(*args).stdout for args in READS] == outputs  # every read the same
    assert "audit" in cli.ok("db", "check").stdout
    cli.ok("db", "audit", "--verify")

    cli.ok("db", "decrypt")
    assert not keys.is_encrypted(db_path) and ("crmcli", str(db_path.absolute())) not in memory_keyring.data
    assert snapshot_db(db_path) == before
    assert [cli.ok(*args).stdout for args in READS] == outputs


def test_writes_on_an_encrypted_store_are_kept(shop, db_path, memory_keyring):
    cli = shop
    cli.ok("db", "encrypt")
    cli.ok("customer", "add", "Cat Wu", "--phone", "13700137000")
    cli.ok("purchase", "add", "Cat", "12", "--as-of", AS_OF, "--at", "2024-06-10")
    cli.ok("customer", "edit", "Bob", "--city", "北京")
    cli.ok("config", "set", "privacy.mask", "on")
    assert json.loads(cli.ok("customer", "list", "--format", "json").stdout)[0]["phone"] == "+86138****8000"
    cli.ok("db", "decrypt")
    names = [r[0] for r in sqlite3.connect(db_path).execute("SELECT name FROM customer ORDER BY id")]
    assert names == ["王芳", "Bob Li", "Cat Wu"]
    cli.ok("db", "audit", "--verify")


def test_missing_and_wrong_keys_are_clear_errors(shop, db_path, memory_keyring, monkeypatch):
    cli = shop
    monkeypatch.setenv("CRM_DB_KEY", RAW)
    cli.ok("db", "encrypt")
    assert not memory_keyring.data.get(("crmcli", str(db_path.absolute())))  # a given key is not copied anywhere
    assert len(cli.json("customer", "list")) == 2
    monkeypatch.delenv("CRM_DB_KEY")
    error = fails(cli, 1, "customer", "list", says=["is encrypted and no key was found"])
    for option in ("system keyring", "CRM_DB_KEY", "--key-file FILE"):
        assert option in error
    monkeypatch.setenv("CRM_DB_KEY", OTHER_RAW)
    fails(cli, 1, "customer", "list", says=["Wrong key", "CRM_DB_KEY", str(db_path.absolute())])
    fails(cli, 1, "db", "check", says=["Wrong key"])
    # a stale keyring entry does not hide a right key given by hand
    memory_keyring.data[("crmcli", str(db_path.absolute()))] = "stale"
    monkeypatch.setenv("CRM_DB_KEY", RAW)
    assert len(cli.json("customer", "list")) == 2


def test_key_files_must_be_private(shop, db_path, tmp_path, monkeypatch):
    cli = shop
    key = tmp_path / "crm.key"
    key.write_text("a passphrase with 'quotes'\n")
    key.chmod(0o644)
    fails(cli, 5, "db", "encrypt", "--key-file", str(key), says=["may be read by others", "chmod 600"])
    assert not keys.is_encrypted(db_path)
    key.chmod(0o600)
    cli.ok("db", "encrypt", "--key-file", str(key))
    assert keys.is_encrypted(db_path)
    fails(cli, 1, "customer", "list", says=["no key was found"])
    assert len(cli.json("--key-file", str(key), "customer", "list")) == 2
    monkeypatch.setenv("CRM_DB_KEY_FILE", str(key))
    assert len(cli.json("customer", "list")) == 2
    key.chmod(0o640)
    fails(cli, 5, "customer", "list", says=["may be read by others"])
    key.chmod(0o600)
    fails(cli, 4, "db", "encrypt", says=["already encrypted"])


def test_without_a_keyring_a_key_must_be_given(shop, db_path, monkeypatch):
    import keyring
    from keyring.backends import fail

    cli = shop
    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    before = snapshot_db(db_path)
    error = fails(cli, 1, "db", "encrypt", says=["no system keyring"])
    assert "CRM_DB_KEY" in error and "--key-file FILE" in error
    assert not keys.is_encrypted(db_path) and snapshot_db(db_path) == before


def test_rekey_to_a_new_keyring_key_and_to_a_key_file(shop, db_path, tmp_path, memory_keyring, monkeypatch):
    cli = shop
    cli.ok("db", "encrypt")
    entry = ("crmcli", str(db_path.absolute()))
    first = memory_keyring.data[entry]
    cli.ok("db", "rekey")
    second = memory_keyring.data[entry]
    assert second != first and keys.opens(db_path, second) and not keys.opens(db_path, first)
    new = tmp_path / "new.key"
    new.write_text(OTHER_RAW + "\n")
    new.chmod(0o600)
    cli.ok("db", "rekey", "--new-key-file", str(new))
    assert entry not in memory_keyring.data  # the keyring would hold the old key
    assert keys.opens(db_path, OTHER_RAW) and not keys.opens(db_path, second)
    assert len(cli.json("--key-file", str(new), "customer", "list")) == 2
    fails(cli, 4, "db", "encrypt", "--key-file", str(new), says=["already encrypted"])
    cli.ok("--key-file", str(new), "db", "decrypt")
    fails(cli, 4, "db", "decrypt", says=["not encrypted"])
    fails(cli, 4, "db", "rekey", says=["not encrypted"])


def test_encryption_leaves_no_journal_of_the_old_content(shop, db_path):
    cli = shop
    cli.ok("db", "encrypt")
    leftovers = [p.name for p in db_path.parent.iterdir() if p.name != db_path.name and not p.name.endswith("-backups")]
    assert leftovers == []
    cli.ok("customer", "list")  # reopened: WAL again
    conn = keys.connect(db_path, keys.keyring_key(db_path.absolute()).secret)  # type: ignore[union-attr]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert os.stat(db_path).st_size % 1024 == 0


def test_db_help_does_not_import_sqlalchemy_or_sqlcipher():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "crmcli", "db", "--help"], capture_output=True,
                          text=True, env={**os.environ, "CRM_LANG": "en"}, timeout=60)
    assert proc.returncode == 0 and "encrypt" in proc.stdout
    modules = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert not any(m.split(".")[0] in ("sqlalchemy", "sqlmodel", "sqlcipher3", "keyring") for m in modules)
