"""Backups with SQLite's online backup API, and restoring one.

A backup is one consistent snapshot even while other processes write (the backup step copies every page
under one read transaction; in WAL mode writers go on meanwhile). It is written to a hidden temporary file
(mode 0600) beside its final name, switched out of WAL so it is one self-contained file, checked with
``PRAGMA integrity_check`` and only then renamed. An encrypted store is copied by SQLCipher with the same
key, so its backup is encrypted too. Names carry a local timestamp, ``shop-20240615-103000.sqlite``;
``--keep N`` deletes the oldest of those in the same folder (other files are never touched).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from crmcli.core.safety.encryption import integrity_problem, lock_exclusively
from crmcli.core.safety.files import fsync_dir, temp_beside
from crmcli.errors import Conflict, CrmError, InvalidInput, StoreError, UsageError
from crmcli.i18n import _
from crmcli.store import keys, migrations
from crmcli.store.engine import Store, backup_into, remove_sqlite_file, store_error_from

STAMP = "%Y%m%d-%H%M%S"


@dataclass
class BackupResult:
    path: Path
    size: int
    encrypted: bool
    pruned: list[Path] = field(default_factory=list)


def default_folder(store_path: Path) -> Path:
    """``shop-backups`` beside ``shop.sqlite``: one folder per store, so pruning never mixes stores."""
    return store_path.with_name(f"{store_path.stem}-backups")


def _pattern(store_path: Path) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(store_path.stem)}-\d{{8}}-\d{{6}}(-\d+)?{re.escape(store_path.suffix)}$")


def timestamped(folder: Path, store_path: Path, now: datetime | None = None, tag: str = "") -> Path:
    stamp = (now or datetime.now()).strftime(STAMP)
    base = f"{store_path.stem}-{stamp}{tag}"
    candidate = folder / f"{base}{store_path.suffix}"
    n = 1
    while candidate.exists():
        candidate = folder / f"{base}-{n}{store_path.suffix}"
        n += 1
    return candidate


def copy_database(src_conn: Any, dest: Path, key: str | None) -> None:
    """Online-backup ``src_conn`` into ``dest`` (created 0600), one self-contained checked file, else nothing."""
    dst = backup_into(src_conn, dest, key)
    try:
        try:
            dst.execute("PRAGMA journal_mode = DELETE")
            problem = integrity_problem(dst)
        finally:
            dst.close()
        if problem:
            raise StoreError(_("The backup copy failed its integrity check ({problem}).").format(problem=problem),
                             hint=_("Run `crm db check` on the store; nothing was kept."))
        with dest.open("rb+") as f:
            os.fsync(f.fileno())
    except BaseException:
        remove_sqlite_file(dest)
        raise


def backup(store: Store, dest: str | None = None, keep: int | None = None, now: datetime | None = None) -> BackupResult:
    if store.path is None:  # PostgreSQL: pg_dump, or the server's own tools
        from crmcli.core.safety.server import pg_dump_backup

        dumped, size, pruned = pg_dump_backup(store, dest, keep, now)
        return BackupResult(dumped, size, False, pruned)
    if keep is not None and keep < 1:
        raise InvalidInput(_("--keep must be at least 1, not {n}.").format(n=keep), field="--keep", value=keep,
                           hint=_("Give how many backups to keep, e.g. --keep 7."))
    folder: Path
    if dest is None:
        folder = default_folder(store.path)
        folder.mkdir(mode=0o700, exist_ok=True)
        target = timestamped(folder, store.path, now)
    else:
        given = Path(dest).expanduser().absolute()
        if given.is_dir() or dest.endswith(os.sep):
            folder = given
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            target = timestamped(folder, store.path, now)
        else:
            if keep is not None:
                raise UsageError(_("--keep works with a folder of timestamped backups, not with the file {file}.")
                                 .format(file=given), hint=_("Give a folder as DEST, or leave out --keep."))
            if given.exists():
                raise Conflict(_("{file} already exists; a backup never overwrites a file.").format(file=given),
                               hint=_("Choose another name, or give a folder for a timestamped name."))
            if not given.parent.is_dir():
                raise StoreError(_("The directory {dir} does not exist.").format(dir=given.parent),
                                 hint=_("Create it first (mkdir -p {dir}).").format(dir=given.parent))
            folder, target = given.parent, given
    tmp = temp_beside(target, "backup")
    try:
        src = keys.connect(store.path, store.key)
        try:
            copy_database(src, tmp, store.key)
        finally:
            src.close()
        os.replace(tmp, target)
        fsync_dir(folder)
    except keys.db_errors() as e:
        raise store_error_from(e, str(store.path)) from e
    result = BackupResult(target, target.stat().st_size, store.key is not None)
    if keep is not None:
        result.pruned = prune(folder, store.path, keep)
    return result


def prune(folder: Path, store_path: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest timestamped backups of this store in ``folder``."""
    pattern = _pattern(store_path)
    found = sorted((p for p in folder.iterdir() if p.is_file() and pattern.match(p.name)),
                   key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    gone = found[keep:]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


@dataclass(frozen=True)
class Verified:
    path: Path
    key: str | None
    migrations: int


def verify_file(path: Path, store_path: Path, key_file: str | None = None) -> Verified:
    """Refuse anything that is not an intact crmcli store this version can read (before it replaces one)."""
    if not path.is_file():
        raise StoreError(_("No backup file at {path}.").format(path=path), hint=_("Check the path."))
    key: str | None = None
    if keys.is_encrypted(path):
        key = _unlock_backup(path, store_path, key_file)
    try:
        conn = keys.connect(path, key, timeout=2)
        try:
            conn.execute("PRAGMA query_only = ON")
            problem = integrity_problem(conn)
            if problem:
                raise StoreError(_("{path} is damaged ({problem}); it was not restored.").format(path=path, problem=problem),
                                 hint=_("Choose another backup."))
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "schema_migration" not in tables:
                raise StoreError(_("{path} is not a crmcli store; it was not restored.").format(path=path),
                                 hint=_("Choose a backup made by `crm db backup`."))
            done = [r[0] for r in conn.execute("SELECT name FROM schema_migration")]
        finally:
            conn.close()
    except keys.db_errors() as e:
        raise StoreError(_("{path} is damaged or not an SQLite database ({error}); it was not restored.")
                         .format(path=path, error=e), hint=_("Choose another backup.")) from e
    unknown = [m for m in done if m not in migrations.MIGRATIONS]
    if unknown:
        raise StoreError(_("{path} was written by a newer crmcli (schema {schema}); it was not restored.")
                         .format(path=path, schema=unknown[-1]), hint=_("Upgrade crmcli first."))
    return Verified(path, key, len(done))


def _unlock_backup(path: Path, store_path: Path, key_file: str | None) -> str:
    """A backup's key: the ones that would open the store it belongs to, then its own keyring entry."""
    tried: list[keys.Key] = []
    for key in [*keys.candidates(store_path, key_file), *([k] if (k := keys.keyring_key(path)) else [])]:
        if keys.opens(path, key.secret):
            return key.secret
        tried.append(key)
    if not tried:
        raise keys.no_key_error(path)
    raise StoreError(_("Wrong key for the encrypted backup {path}: the key from {origins} does not open it.")
                     .format(path=path, origins=", ".join(sorted({k.origin for k in tried}))),
                     hint=_("Give the key the store had when the backup was made (CRM_DB_KEY or --key-file FILE)."))


@dataclass(frozen=True)
class Restored:
    path: Path
    kept: Path | None  # the replaced store's copy


def restore(store_path: Path, src: Path, key_file: str | None = None, now: datetime | None = None) -> Restored:
    """Replace the store file by the verified backup ``src``; the current file is kept in the backup folder."""
    verified = verify_file(src, store_path, key_file)
    tmp = temp_beside(store_path, "restore")
    try:
        source = keys.connect(src, verified.key)
        try:
            copy_database(source, tmp, verified.key)
        finally:
            source.close()
    except keys.db_errors() as e:
        raise StoreError(_("Cannot read the backup {path} ({error}); nothing was restored.").format(path=src, error=e)) from e
    kept: Path | None = None
    lock: Any = None
    try:
        if store_path.exists() and store_path.stat().st_size > 0:
            current_key = None
            if keys.is_encrypted(store_path):
                try:
                    current_key = keys.unlock(store_path, key_file).secret
                except CrmError:
                    current_key = None  # a store we cannot open is still kept, byte for byte
            try:
                lock = keys.connect(store_path, current_key, timeout=5)
                lock_exclusively(lock, store_path)
            except (CrmError, *keys.db_errors()) as e:
                if isinstance(e, Conflict):
                    raise
                if lock is not None:
                    lock.close()
                lock = None  # damaged beyond opening: restoring is what it needs
            folder = default_folder(store_path)
            folder.mkdir(mode=0o700, exist_ok=True)
            kept = timestamped(folder, store_path, now, tag="-pre-restore")
            fd = os.open(kept, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
            shutil.copyfile(store_path, kept)
            for extra in ("-wal", "-shm", "-journal"):
                side = Path(str(store_path) + extra)
                if side.exists() and lock is None:
                    shutil.copyfile(side, Path(str(kept) + extra))
        if store_path.exists():
            shutil.copymode(store_path, tmp)
        os.replace(tmp, store_path)
        fsync_dir(store_path.parent)
        if lock is None:
            # No connection took the old file out of WAL: its journal files must not be applied to the new one.
            for extra in ("-wal", "-shm", "-journal"):
                Path(str(store_path) + extra).unlink(missing_ok=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if lock is not None:
            lock.close()
    return Restored(store_path, kept)
