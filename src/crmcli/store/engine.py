"""Locating, creating, opening and migrating the store.

Every SQLite connection gets foreign keys, WAL, a busy timeout and full fsync. Writers start with
``BEGIN IMMEDIATE`` so that two processes never deadlock upgrading a read lock to a write lock; a
writer that waits longer than the busy timeout gets a clear "busy" error, not a half-done change.
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from crmcli.errors import StoreError
from crmcli.i18n import _
from crmcli.store import migrations, postgres
from crmcli.store.keys import connect, db_errors, is_encrypted, unlock_connection

BUSY_TIMEOUT_MS = 15_000
STORE_FILENAME = "crm.sqlite"


def default_location() -> str:
    """``CRM_DB`` if set, else ``crm.sqlite`` in the platform's user data directory."""
    env = os.environ.get("CRM_DB")
    if env:
        return env
    from platformdirs import user_data_path

    return str(user_data_path("crmcli", appauthor=False) / STORE_FILENAME)


def is_url(location: str) -> bool:
    return "://" in location


class Store:
    """An open, migrated store. ``write()`` and ``read()`` yield sessions inside one transaction."""

    def __init__(self, engine: Engine, path: Path | None, key: str | None = None) -> None:
        self.engine = engine
        self.path = path
        self.key = key  # the SQLCipher key of an encrypted store file, None for a plain one
        self._immediate = engine.execution_options(crm_begin="IMMEDIATE")

    @property
    def location(self) -> str:
        return str(self.path) if self.path else self.engine.url.render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed when the block ends, rolled back on any exception."""
        with translate_errors(self.location):
            with Session(self._immediate, expire_on_commit=False) as session:
                with session.begin():
                    yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with translate_errors(self.location):
            with Session(self.engine, expire_on_commit=False) as session:
                with session.begin():
                    yield session

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def translate_errors(location: str) -> Iterator[None]:
    """Turn driver errors into StoreError with a message that says what to do."""
    try:
        yield
    except exc.DBAPIError as e:  # OperationalError, DatabaseError, ...
        raise store_error_from(e.orig if e.orig is not None else e, location) from e
    except db_errors() as e:
        raise store_error_from(e, location) from e


def store_error_from(error: BaseException, location: str) -> StoreError:
    text = str(error).lower()
    if "readonly" in text or "read-only" in text:
        return StoreError(_("The store {path} is read-only.").format(path=location),
                          hint=_("Check the file's and its directory's permissions, or copy it somewhere writable."))
    if "locked" in text or "busy" in text:
        return StoreError(_("The store {path} is busy: another crm process kept it locked for {seconds} s.")
                          .format(path=location, seconds=BUSY_TIMEOUT_MS // 1000),
                          hint=_("Try again in a moment; nothing was changed."))
    if "disk is full" in text or "database or disk is full" in text:
        return StoreError(_("The disk holding {path} is full; nothing was changed.").format(path=location),
                          hint=_("Free some space and run the command again."))
    if "not a database" in text or "file is encrypted" in text:
        return StoreError(_("{path} is not a crmcli store (not an SQLite database, or encrypted with another key).")
                          .format(path=location),
                          hint=_("Check the --db path or CRM_DB."))
    if "unable to open" in text:
        return StoreError(_("Cannot open the store {path}.").format(path=location),
                          hint=_("Check that the directory exists and that you may write to it."))
    if "malformed" in text or "corrupt" in text:
        return StoreError(_("The store {path} is damaged ({error}).").format(path=location, error=error),
                          hint=_("Restore the latest backup (crm db restore)."))
    return StoreError(_("Database error on {path}: {error}").format(path=location, error=error))


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # We issue BEGIN ourselves (below); pysqlite's implicit transactions would defeat BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA synchronous = FULL")
        try:
            # Persistent once set; lets readers and one writer work at the same time.
            cur.execute("PRAGMA journal_mode = WAL")
        except db_errors() as e:
            if type(e).__name__ != "OperationalError":
                raise
            # a read-only file keeps its mode; reads still work
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("crm_begin", "DEFERRED")
        if mode == "IMMEDIATE":
            begin_writing(conn.connection.dbapi_connection)
        else:
            conn.exec_driver_sql(f"BEGIN {mode}")


def begin_writing(dbapi_conn: Any) -> None:
    """BEGIN IMMEDIATE that waits its turn for the write lock, for up to the busy timeout.

    SQLite's own busy handler sleeps up to 100 ms between tries, so the lock sits idle after each commit and
    goes to whoever asks at the right moment — usually a process that writes again and again (a script, a
    worker) while the sleeping ones run into their timeout with "database is locked". Trying again every few
    milliseconds hands the lock on as soon as it is free (tests/robustness/test_robust_concurrency.py).
    """
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA busy_timeout = 0")
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        pause = 0.0005
        while True:
            try:
                cur.execute("BEGIN IMMEDIATE")
                return
            except db_errors() as e:
                text = str(e).lower()
                if ("locked" not in text and "busy" not in text) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.004)
    finally:
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.close()


def create_sqlite_file(path: Path) -> None:
    """Create an empty file readable by its owner only (customer data is personal data)."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)


def remove_sqlite_file(path: Path) -> None:
    for extra in ("", "-journal", "-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)


def backup_into(src_conn: Any, dest: Path, key: str | None) -> Any:
    """Copy the database behind the DB-API connection ``src_conn`` into the new file ``dest`` (owner-only,
    encrypted with ``key`` when given) and return the open copy; nothing is left at ``dest`` on failure.

    SQLite's online backup copies one consistent snapshot in one step; in WAL mode it holds only a read lock,
    so writers go on meanwhile."""
    create_sqlite_file(dest)
    try:
        dst = connect(dest, key)
        try:
            src_conn.backup(dst)
        except BaseException:
            dst.close()
            raise
        return dst
    except BaseException:
        remove_sqlite_file(dest)
        raise


SCRATCH_MARK = ".scratch-"


@contextmanager
def scratch_copy(store: Store) -> Iterator[Store]:
    """A private, throwaway copy of an SQLite store, for work that must see the whole store but never change it
    and must not hold its write lock for long (a dry-run import of a large file; issue #10).

    The copy lies next to the store (or in the temporary directory when that one is not writable), is
    encrypted like the store, and is removed afterwards; one left behind by a killed process is removed by
    the next copy of the same store."""
    assert store.path is not None, "a scratch copy is for store files"
    name = f"{store.path.name}{SCRATCH_MARK}"
    folders = [store.path.parent, Path(tempfile.gettempdir())]
    for folder in folders:
        _remove_stale_scratch(folder, name)
    raw = store.engine.raw_connection()
    copy: Any = None
    try:
        with translate_errors(store.location):
            for folder in folders:
                dest = folder / f"{name}{os.getpid()}"
                try:
                    copy = backup_into(raw.dbapi_connection, dest, store.key)
                    break
                except PermissionError:
                    if folder == folders[-1]:
                        raise
    finally:
        raw.close()
    try:
        if store.key is not None:
            engine = _sqlcipher_engine(dest, store.key, copy)
        else:
            copy.close()
            engine = sa.create_engine(f"sqlite:///{dest}")
        _configure_sqlite(engine)
        scratch = Store(engine, dest, store.key)
        try:
            yield scratch
        finally:
            scratch.dispose()
    finally:
        remove_sqlite_file(dest)


def _remove_stale_scratch(folder: Path, name: str) -> None:
    try:
        found = list(folder.glob(f"{glob.escape(name)}*"))
    except OSError:
        return
    for path in found:
        pid = path.name[len(name):]
        if pid.isdigit() and (int(pid) == os.getpid() or not process_alive(int(pid))):
            remove_sqlite_file(path)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def open_store(location: str | None = None, *, create: bool = False, migrate: bool = True,
               key_file: str | None = None) -> Store:
    """Open the store at ``location`` (a path or an SQLAlchemy URL); create it when ``create``.

    An encrypted (SQLCipher) file is opened with the first key that fits (store/keys.py; ``key_file`` or
    the global --key-file is one of the sources). Raises StoreError when it is missing (and not
    ``create``), not a crmcli store, from a newer crmcli, or encrypted without a usable key.
    """
    key: str | None = None
    first_conn: Any = None
    explicit = location is not None or bool(os.environ.get("CRM_DB"))
    loc = location or default_location()
    path: Path | None = None
    if is_url(loc):
        url = loc
    else:
        path = Path(loc).expanduser().absolute()
        if path.is_dir():
            raise StoreError(_("{path} is a directory, not a store file.").format(path=path),
                             hint=_("Give a file name, e.g. --db {path}").format(path=path / STORE_FILENAME))
        if not path.exists():
            if not create:
                raise StoreError(_("No crmcli store at {path}.").format(path=path),
                                 hint=_("Create one with `crm init` (or `crm --db FILE init`), or point --db / CRM_DB at an existing store."))
            if not path.parent.is_dir():
                if explicit:
                    raise StoreError(_("The directory {dir} does not exist.").format(dir=path.parent),
                                     hint=_("Create it first (mkdir -p {dir}) or choose another --db path.").format(dir=path.parent))
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                create_sqlite_file(path)
            except OSError as e:
                raise StoreError(_("Cannot create the store {path}: {error}").format(path=path, error=e.strerror),
                                 hint=_("Check that you may write to {dir}.").format(dir=path.parent)) from e
        elif not create and path.stat().st_size == 0:
            # An empty file is not a store yet: only `crm init` turns it into one (with its settings).
            raise StoreError(_("No crmcli store at {path} (the file is empty).").format(path=path),
                             hint=_("Create one with `crm init` (or `crm --db FILE init`), or point --db / CRM_DB at an existing store."))
        elif is_encrypted(path):
            found, first_conn = unlock_connection(path, key_file)
            key = found.secret
        elif _foreign_sqlite(path):
            # Checked before our connections set WAL mode, which would rewrite another program's file header.
            raise StoreError(_("This database holds tables but is not a crmcli store."),
                             hint=_("Point --db at a crmcli store, or at a new file name to create one."))
        url = f"sqlite:///{path}"
    if key is not None:
        assert path is not None
        engine = _sqlcipher_engine(path, key, first_conn)
    elif path is None and postgres.is_postgres_url(url):
        engine = postgres.create_engine(url)
    else:
        engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    store = Store(engine, path, key)
    if migrate:
        migrate_store(store)
    return store


def _sqlcipher_engine(path: Path, key: str, first_conn: Any) -> Engine:
    """An engine whose connections come from sqlcipher3, keyed; the first is the one that checked the key
    (a passphrase's key derivation takes a good fraction of a second per connection)."""
    from sqlcipher3 import dbapi2

    spare = [first_conn]

    def creator() -> Any:
        return spare.pop() if spare else connect(path, key)

    # The pysqlite dialect over sqlcipher3's DB-API module, so driver errors are wrapped as usual; a queue
    # pool like plain files get (nested read/write sessions need two connections).
    return sa.create_engine("sqlite://", module=dbapi2, creator=creator, poolclass=sa.pool.QueuePool)


def _foreign_sqlite(path: Path) -> bool:
    """True when ``path`` is a plain SQLite database with tables but no crmcli schema record. Anything this
    read-only look cannot open (an encrypted store, a damaged file) is left to the normal open."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return bool(names) and "schema_migration" not in names


def applied_migrations(conn: Connection) -> list[str]:
    inspector = sa.inspect(conn)
    if not inspector.has_table("schema_migration"):
        if inspector.get_table_names():
            raise StoreError(_("This database holds tables but is not a crmcli store."),
                             hint=_("Point --db at a crmcli store, or at a new file name to create one."))
        return []
    return [row[0] for row in conn.execute(sa.text("SELECT name FROM schema_migration ORDER BY applied_at, name"))]


def migrate_store(store: Store) -> list[str]:
    """Apply pending migrations in one transaction (after a file backup for an existing SQLite store)."""
    with translate_errors(store.location):
        with store.engine.connect() as conn:
            done = applied_migrations(conn)
            conn.rollback()
        unknown = [m for m in done if m not in migrations.MIGRATIONS]
        if unknown:
            raise StoreError(
                _("The store {path} was written by a newer crmcli (schema {schema}).").format(
                    path=store.location, schema=unknown[-1]),
                hint=_("Upgrade crmcli (pip install -U crmcli); this version does not change the file."))
        pending = [m for m in migrations.MIGRATIONS if m not in done]
        if not pending:
            return []
        if done and store.path is not None:
            backup_before_migration(store, pending[0])
        with store._immediate.connect() as conn:
            with conn.begin():
                # Another process may have migrated while we waited for the write lock.
                done = applied_migrations(conn) if sa.inspect(conn).has_table("schema_migration") else []
                pending = [m for m in migrations.MIGRATIONS if m not in done]
                if not done:
                    conn.execute(sa.text(
                        "CREATE TABLE IF NOT EXISTS schema_migration (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP NOT NULL)"))
                for name in pending:
                    migrations.upgrade_function(name)(conn)
                    conn.execute(sa.text("INSERT INTO schema_migration (name, applied_at) VALUES (:n, :t)"),
                                 {"n": name, "t": datetime.now(timezone.utc).replace(tzinfo=None)})
        return pending


def backup_before_migration(store: Store, first_pending: str) -> Path:
    assert store.path is not None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    dest = store.path.with_name(f"{store.path.name}.pre-{first_pending}-{stamp}.bak")
    # The copy keeps the store's encryption (same key) so a migration never leaves a plaintext copy behind.
    src = connect(store.path, store.key)
    try:
        create_sqlite_file(dest)
        dst = connect(dest, store.key)
        src.backup(dst)
        dst.close()
    finally:
        src.close()
    shutil.copymode(store.path, dest)
    return dest


def schema_version(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return applied_migrations(conn)
