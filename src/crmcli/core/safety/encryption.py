"""Encrypting, decrypting and re-keying a store file safely.

The store is never changed in place: SQLCipher's ``sqlcipher_export`` writes a complete copy next to it
(mode 0600), the copy is checked (integrity check, same schema, same rows table by table), and only then
does ``os.replace`` swap it in, atomically. The source connection holds an exclusive lock from before the
copy until after the swap, so no other process can write in between; the source is first taken out of WAL
mode, so no ``-wal``/``-shm`` file of the old content is left next to the new one. Any failure leaves the
original file as it was and removes the half-made copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmcli.core.safety.files import fsync_dir, temp_beside
from crmcli.errors import Conflict, CrmError, StoreError
from crmcli.i18n import _
from crmcli.store import keys
from crmcli.store.engine import create_sqlite_file, store_error_from


@dataclass(frozen=True)
class Converted:
    path: Path
    tables: int
    rows: int


def _cipher_connect(path: Path, key: str | None, timeout: float) -> Any:
    """An sqlcipher3 connection even for a plain file: only SQLCipher has sqlcipher_export."""
    from sqlcipher3 import dbapi2

    conn = dbapi2.connect(str(path), timeout=timeout, isolation_level=None)
    conn.execute("PRAGMA cipher_log_level = NONE")
    if key is not None:
        conn.execute(f"PRAGMA key = {keys.pragma_value(key)}")
    return conn


def content_digest(conn: Any, schema: str = "main") -> tuple[dict[str, str], int]:
    """Per table a digest of its definition and every row (rowid order), and the total row count."""
    digests: dict[str, str] = {}
    total = 0
    tables = conn.execute(f"SELECT name, sql FROM {schema}.sqlite_master WHERE type = 'table' "
                          "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
    for name, sql in tables:
        h = hashlib.sha256((sql or "").encode("utf-8"))
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            cur = conn.execute(f"SELECT * FROM {schema}.{quoted} ORDER BY rowid")
        except keys.db_errors():  # WITHOUT ROWID: the primary key orders it
            cur = conn.execute(f"SELECT * FROM {schema}.{quoted} ORDER BY 1")
        while True:
            batch = cur.fetchmany(2000)
            if not batch:
                break
            total += len(batch)
            for row in batch:
                h.update(repr(row).encode("utf-8"))
        digests[name] = h.hexdigest()
    return digests, total


def integrity_problem(conn: Any) -> str | None:
    """None when ``PRAGMA integrity_check`` says ok, else its first complaint."""
    rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    return None if rows == ["ok"] else "; ".join(str(r) for r in rows[:3])


def lock_exclusively(conn: Any, path: Path) -> None:
    """Leave WAL mode and keep an exclusive lock until ``conn`` closes; refuse while others use the file."""
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("COMMIT")
    except keys.db_errors() as e:
        if "locked" in str(e).lower() or "busy" in str(e).lower():
            raise Conflict(_("Another program is using the store {path}.").format(path=path),
                           hint=_("Try again when the other crm commands have finished; nothing was changed.")) from e
        raise store_error_from(e, str(path)) from e
    if str(mode).lower() != "delete":
        raise Conflict(_("Another program is using the store {path}.").format(path=path),
                       hint=_("Try again when the other crm commands have finished; nothing was changed."))


def convert(path: Path, src_key: str | None, dest_key: str | None, *, timeout: float = 5.0) -> Converted:
    """Replace the store at ``path`` (key ``src_key``, None = plain) by a copy under ``dest_key``."""
    tmp = temp_beside(path, "convert")
    src = _cipher_connect(path, src_key, timeout)
    try:
        lock_exclusively(src, path)
        before, rows = content_digest(src)
        create_sqlite_file(tmp)
        shutil.copymode(path, tmp)
        try:
            src.execute(f"ATTACH DATABASE ? AS crm_dest KEY {keys.pragma_value(dest_key or '')}", (str(tmp),))
            src.execute("SELECT sqlcipher_export('crm_dest')")
            user_version = src.execute("PRAGMA main.user_version").fetchone()[0]
            src.execute(f"PRAGMA crm_dest.user_version = {int(user_version)}")
            src.execute("DETACH DATABASE crm_dest")
            check = _cipher_connect(tmp, dest_key, timeout) if dest_key else keys.connect(tmp, None, timeout=timeout)
            try:
                problem = integrity_problem(check)
                if problem:
                    raise StoreError(_("The converted copy failed its integrity check ({problem}); the store is unchanged.")
                                     .format(problem=problem))
                after, _rows = content_digest(check)
            finally:
                check.close()
            if after != before:
                changed = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
                raise StoreError(_("The converted copy differs from the store in {tables}; the store is unchanged.")
                                 .format(tables=", ".join(changed)))
            with tmp.open("rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
            fsync_dir(path.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except keys.db_errors() as e:
        raise store_error_from(e, str(path)) from e
    finally:
        src.close()
    for extra in ("-journal", "-wal", "-shm"):
        Path(str(tmp) + extra).unlink(missing_ok=True)
    return Converted(path, len(before), rows)


def store_file(location: str | None, key_file: str | None = None) -> tuple[Path, str | None]:
    """The file of the store at ``location`` and its key (None: plain), opened once first so that it is
    migrated and known to be a store."""
    from crmcli.store.engine import open_store

    store = open_store(location, key_file=key_file)
    try:
        if store.path is None and not store.is_sqlite:
            from crmcli.core.safety.server import servers_job

            raise servers_job(_("Encryption at rest"), store.location)
        if store.path is None:
            raise CrmError(_("Only a store file can be encrypted, not {location}.").format(location=store.location),
                           hint=_("Point --db at an SQLite file."))
        return store.path, store.key
    finally:
        store.dispose()


@dataclass(frozen=True)
class KeyOutcome:
    converted: Converted
    key_origin: str  # where the new key is kept ("the system keyring", "CRM_DB_KEY", "--key-file F"), "" if none


def encrypt(location: str | None, key_file: str | None = None) -> KeyOutcome:
    """Encrypt a plain store: with a key given by hand, else a new random key kept in the system keyring."""
    path, current = store_file(location, key_file)
    if current is not None:
        raise Conflict(_("The store {path} is already encrypted.").format(path=path),
                       hint=_("Use `crm db rekey` to change its key, or `crm db decrypt`."))
    given = keys.given_key(key_file)
    if given is not None:
        result = convert(path, None, given.secret)
        return KeyOutcome(result, given.origin)
    secret = keys.new_raw_key()
    previous = keys.keyring_key(path)
    # Saved (and read back) before the file is converted: an encrypted store whose key got lost is lost.
    if not keys.save_in_keyring(path, secret) or (keys.keyring_key(path) or keys.Key("", "")).secret != secret:
        raise StoreError(_("No key to encrypt {path} with, and no system keyring to keep a new one in.").format(path=path),
                         hint=_("Set CRM_DB_KEY, or pass --key-file FILE (a file of mode 0600)."))
    return _convert_restoring_keyring(path, None, secret, previous)


def _convert_restoring_keyring(path: Path, old: str | None, secret: str, previous: "keys.Key | None") -> KeyOutcome:
    """Convert to ``secret`` (already saved in the keyring); if the conversion fails, the keyring gets back
    the key that still opens the file."""
    try:
        result = convert(path, old, secret)
    except BaseException:
        if previous is not None:
            keys.save_in_keyring(path, previous.secret)
        else:
            keys.forget_in_keyring(path)
        raise
    return KeyOutcome(result, _("the system keyring"))


def decrypt(location: str | None, key_file: str | None = None) -> Converted:
    path, key = store_file(location, key_file)
    if key is None:
        raise Conflict(_("The store {path} is not encrypted.").format(path=path), hint=_("Nothing to do."))
    result = convert(path, key, None)
    keys.forget_in_keyring(path)
    return result


def rekey(location: str | None, key_file: str | None = None, new_key_file: str | None = None) -> KeyOutcome:
    """A new key: from --new-key-file, else a new random key kept in the system keyring."""
    path, old = store_file(location, key_file)
    if old is None:
        raise Conflict(_("The store {path} is not encrypted.").format(path=path),
                       hint=_("Encrypt it with `crm db encrypt`."))
    if new_key_file:
        new = keys.read_key_file(new_key_file)
        result = convert(path, old, new.secret)
        keys.forget_in_keyring(path)  # it would hold the old key
        return KeyOutcome(result, new.origin)
    secret = keys.new_raw_key()
    previous = keys.keyring_key(path)
    if not keys.save_in_keyring(path, secret):
        raise StoreError(_("No system keyring to keep a new key for {path} in.").format(path=path),
                         hint=_("Pass --new-key-file FILE (a file of mode 0600) with the new key."))
    return _convert_restoring_keyring(path, old, secret, previous)
