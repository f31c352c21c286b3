"""What the file-only safety commands do on a PostgreSQL store.

Encryption at rest, page checks and restores are the database server's job there (disk or tablespace
encryption, TLS, pg_restore / point-in-time recovery); `crm db encrypt|decrypt|rekey|restore` say so.
`crm db backup` runs ``pg_dump --format=custom`` when it is on PATH, into a timestamped file named after
the database (``crm-20240615-103000.dump``), and keeps the last N like file backups do.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

from crmcli.errors import Conflict, CrmError, InvalidInput, StoreError
from crmcli.i18n import _
from crmcli.store.engine import Store

STAMP = "%Y%m%d-%H%M%S"
DOC = "docs/postgresql.md"


def servers_job(what: str, location: str) -> CrmError:
    """The error a file-only command gives on a database server."""
    return CrmError(_("{what} is the database server's job on {location}, not crmcli's.").format(what=what, location=location),
                    hint=_("See {doc}: use the server's own tools (disk or tablespace encryption, pg_dump/pg_restore).")
                    .format(doc=DOC))


def _dbname(store: Store) -> str:
    return store.engine.url.database or "crm"


def pg_dump_backup(store: Store, dest: str | None, keep: int | None, now: datetime | None = None) -> tuple[Path, int, list[Path]]:
    """``pg_dump`` the store's database into DEST (a folder, default ``DBNAME-backups`` here, or a new file)."""
    from crmcli.store.postgres import dump_command

    if shutil.which("pg_dump") is None:
        raise servers_job(_("Backing up a PostgreSQL store (pg_dump is not on PATH)"), store.location)
    if keep is not None and keep < 1:
        raise InvalidInput(_("--keep must be at least 1, not {n}.").format(n=keep), field="--keep", value=keep,
                           hint=_("Give how many backups to keep, e.g. --keep 7."))
    name = _dbname(store)
    given = Path(dest).expanduser().absolute() if dest else Path.cwd() / f"{name}-backups"
    if dest is None or given.is_dir() or (dest or "").endswith(os.sep):
        folder = given
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = folder / f"{name}-{(now or datetime.now()).strftime(STAMP)}.dump"
    else:
        if given.exists():
            raise Conflict(_("{file} already exists; a backup never overwrites a file.").format(file=given),
                           hint=_("Choose another name, or give a folder for a timestamped name."))
        folder, target = given.parent, given
    url = store.engine.url
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)  # to the child only: never on its command line, never on disk
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    os.close(fd)
    options = dict(url.query).get("options")
    schema = re.search(r"search_path=(\w+)", str(options)) if options else None
    args = [*dump_command(url), "--file", str(tmp), *(["--schema", schema.group(1)] if schema else [])]
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise StoreError(_("pg_dump failed: {error}").format(error=done.stderr.strip().splitlines()[-1:] or done.returncode),
                         hint=_("Check that pg_dump's major version is at least the server's."))
    if shutil.which("pg_restore") is not None:  # the dump's table of contents reads back: "integrity ok"
        listed = subprocess.run(["pg_restore", "--list", str(tmp)], capture_output=True, text=True)
        if listed.returncode != 0 or "TABLE DATA" not in listed.stdout:
            tmp.unlink(missing_ok=True)
            raise StoreError(_("pg_dump failed: {error}").format(
                error=f"pg_restore --list: {(listed.stderr.strip().splitlines() or ['no table data'])[-1]}"),
                hint=_("Check that pg_dump's major version is at least the server's."))
    os.replace(tmp, target)
    pruned: list[Path] = []
    if keep is not None and target.parent == folder:
        pattern = re.compile(rf"^{re.escape(name)}-\d{{8}}-\d{{6}}\.dump$")
        dumps = sorted((p for p in folder.iterdir() if pattern.match(p.name)), key=lambda p: p.name)
        for old in dumps[:-keep]:
            old.unlink()
            pruned.append(old)
    return target, target.stat().st_size, pruned
