"""Encrypted stores: recognising an SQLCipher file, finding its key, and raw DB-API connections to it.

A key comes from, in this order: the system keyring (service ``crmcli``, user name = the store's absolute
path), the ``CRM_DB_KEY`` environment variable, or ``--key-file FILE`` (a file only its owner may read).
The first that opens the file is used, so a stale keyring entry never hides a good key given by hand.

A key of the form ``x'<64 hex digits>'`` is a raw 256-bit key (SQLCipher skips its slow key derivation);
anything else is a passphrase. Keys made by ``crm db encrypt`` are raw keys.

Nothing here imports SQLAlchemy or keyring at module load: ``crm --help`` stays fast.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmcli.errors import InvalidInput, StoreError
from crmcli.i18n import _

KEYRING_SERVICE = "crmcli"
ENV_KEY = "CRM_DB_KEY"
SQLITE_HEADER = b"SQLite format 3\x00"
_RAW_KEY = re.compile(r"^x'[0-9a-fA-F]{64}'$")

# The global `crm --key-file FILE` option, set by the CLI root for every open_store() in the command.
key_file_option: ContextVar[str | None] = ContextVar("key_file_option", default=None)


@dataclass(frozen=True)
class Key:
    secret: str
    origin: str  # where it came from, for messages: "the system keyring", "CRM_DB_KEY", "--key-file F"

    def __repr__(self) -> str:  # never print the secret by accident
        return f"Key(origin={self.origin!r})"


def new_raw_key() -> str:
    return "x'" + secrets.token_hex(32) + "'"


def pragma_value(secret: str) -> str:
    """The key as an SQL literal for PRAGMA key / ATTACH ... KEY."""
    if _RAW_KEY.match(secret):
        return '"' + secret + '"'
    return "'" + secret.replace("'", "''") + "'"


def is_encrypted(path: Path) -> bool:
    """True when ``path`` looks like an SQLCipher database: not the plain SQLite header, whole pages."""
    try:
        size = path.stat().st_size
        if size < 1024 or size % 512:
            return False
        with path.open("rb") as f:
            return f.read(16) != SQLITE_HEADER
    except OSError:
        return False


def no_key_error(path: Path) -> StoreError:
    return StoreError(
        _("The store {path} is encrypted and no key was found.").format(path=path),
        hint=_("Keep the key in the system keyring (crm db encrypt puts it there), set CRM_DB_KEY, "
               "or pass --key-file FILE (a file of mode 0600)."))


def read_key_file(file: str) -> Key:
    path = Path(file).expanduser()
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise InvalidInput(_("Cannot read the key file {file}: {error}.").format(file=path, error=e.strerror),
                           field="--key-file", value=file, hint=_("Check the path.")) from e
    if not stat.S_ISREG(mode):
        raise InvalidInput(_("The key file {file} is not a regular file.").format(file=path), field="--key-file",
                           value=file, hint=_("Give the file that holds the key."))
    if mode & 0o077:
        raise InvalidInput(
            _("The key file {file} may be read by others (mode {mode:o}); it is refused.").format(
                file=path, mode=stat.S_IMODE(mode)),
            field="--key-file", value=file, hint=_("Run: chmod 600 {file}").format(file=path))
    secret = path.read_text(encoding="utf-8").strip("\r\n")
    if not secret:
        raise InvalidInput(_("The key file {file} is empty.").format(file=path), field="--key-file", value=file,
                           hint=_("Write the key on the file's first line."))
    return Key(secret, _("--key-file {file}").format(file=path))


def _keyring() -> Any | None:
    """The keyring module when a usable backend exists, else None (servers, cron)."""
    try:
        import keyring
        from keyring.backends import fail
    except Exception:  # noqa: BLE001 - a broken keyring install is the same as none
        return None
    try:
        if isinstance(keyring.get_keyring(), fail.Keyring):
            return None
    except Exception:  # noqa: BLE001
        return None
    return keyring


def keyring_key(path: Path) -> Key | None:
    kr = _keyring()
    if kr is None:
        return None
    try:
        secret = kr.get_password(KEYRING_SERVICE, str(path))
    except Exception:  # noqa: BLE001 - a locked or broken keychain: fall through to the other sources
        return None
    return Key(secret, _("the system keyring")) if secret else None


def save_in_keyring(path: Path, secret: str) -> bool:
    """Store the key for ``path``; False when there is no usable keyring."""
    kr = _keyring()
    if kr is None:
        return False
    try:
        kr.set_password(KEYRING_SERVICE, str(path), secret)
    except Exception:  # noqa: BLE001
        return False
    return True


def forget_in_keyring(path: Path) -> None:
    kr = _keyring()
    if kr is None:
        return
    try:
        if kr.get_password(KEYRING_SERVICE, str(path)) is not None:
            kr.delete_password(KEYRING_SERVICE, str(path))
    except Exception:  # noqa: BLE001 - nothing to forget
        pass


def given_key(key_file: str | None = None) -> Key | None:
    """A key given by hand: --key-file (this command's, else the global option), else CRM_DB_KEY."""
    file = key_file or key_file_option.get()
    if file:
        return read_key_file(file)
    env = os.environ.get(ENV_KEY)
    return Key(env, "CRM_DB_KEY") if env else None


def candidates(path: Path, key_file: str | None = None) -> list[Key]:
    found: list[Key] = []
    kr = keyring_key(path)
    if kr:
        found.append(kr)
    env = os.environ.get(ENV_KEY)
    if env:
        found.append(Key(env, "CRM_DB_KEY"))
    file = key_file or key_file_option.get()
    if file:
        found.append(read_key_file(file))
    return found


def connect(path: Path | str, key: str | None, *, timeout: float = 15.0) -> Any:
    """A raw DB-API connection (autocommit) to a plain (``key`` None) or encrypted store file."""
    if key is None:
        import sqlite3

        conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
        return conn
    from sqlcipher3 import dbapi2

    conn = dbapi2.connect(str(path), timeout=timeout, isolation_level=None)
    # SQLCipher logs failed decryptions to stderr itself; we report a wrong key in one line instead.
    conn.execute("PRAGMA cipher_log_level = NONE")
    conn.execute(f"PRAGMA key = {pragma_value(key)}")
    return conn


def db_errors() -> tuple[type[BaseException], ...]:
    """The DB-API error classes of both drivers (sqlcipher3's are not sqlite3's)."""
    import sqlite3

    errors: list[type[BaseException]] = [sqlite3.Error]
    try:
        from sqlcipher3 import dbapi2

        errors.append(dbapi2.Error)
    except ImportError:
        pass
    return tuple(errors)


def open_with(path: Path, secret: str) -> Any | None:
    """A connection opened and checked with ``secret``, or None when it is the wrong key."""
    try:
        conn = connect(path, secret, timeout=1)
    except db_errors():
        return None
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except db_errors() as e:
        conn.close()
        if "not a database" in str(e).lower() or "encrypted" in str(e).lower():
            return None
        raise


def opens(path: Path, secret: str) -> bool:
    conn = open_with(path, secret)
    if conn is None:
        return False
    conn.close()
    return True


def unlock_connection(path: Path, key_file: str | None = None) -> tuple[Key, Any]:
    """The first key that opens the encrypted store at ``path`` and the connection it opened (SQLCipher's key
    derivation is slow for passphrases: the caller reuses it); clear errors when none is found or none fits."""
    found = candidates(path, key_file)
    if not found:
        raise no_key_error(path)
    for key in found:
        conn = open_with(path, key.secret)
        if conn is not None:
            return key, conn
    raise StoreError(
        _("Wrong key for the encrypted store {path}: the key from {origins} does not open it.").format(
            path=path, origins=", ".join(k.origin for k in found)),
        hint=_("Give the key it was encrypted with (system keyring, CRM_DB_KEY or --key-file FILE)."))


def unlock(path: Path, key_file: str | None = None) -> Key:
    key, conn = unlock_connection(path, key_file)
    conn.close()
    return key
