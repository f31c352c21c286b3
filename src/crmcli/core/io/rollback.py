"""Taking back an import that committed some steps and then failed, or whose process died.

A stepped import (core/io/importer.py) commits its rows in steps, each row carrying its ``import_id``, and
writes its audit entries only with its last step. Until then its ``import_run`` row says ``running`` and names
its process (``owner``). ``discard`` removes everything such a run wrote — its records with their own parts,
the points its purchases earned — puts back the customers an upsert changed (core/io/before_images.py), and
removes the run row itself, so the store is as it was before the import.

``discard`` works in short steps like the import itself (core/io/removal.py), so other writers are not held
up for long (issue #10). Between two steps of the import or of its taking back, other crm commands may
already have used a record of the run (a purchase for a customer imported a second earlier, points earned by
an imported sale redeemed) or changed it (an edit, a tag). Such a record is kept, because removing it would
take the other command's work with it: the run row then stays, marked ``failed``, and an ``import-kept``
audit entry names each kept record. A taking back that is itself killed leaves the run ``running`` with a dead
owner: the next crm command carries on where it stopped (``recover``), as it does for an ``undoing`` run
whose `crm import undo` was killed.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlmodel import Session

from crmcli.core.clock import utcnow
from crmcli.store.engine import process_alive
from crmcli.store.models_imports import ImportRun

RUN = ImportRun.__table__
# A run on another machine (PostgreSQL) counts as dead when its row has not moved for this long, by the
# server's clock (``stamp``); a step updates it about every second. Each step of a run goes on only while the
# run is still its process's (``removal.heartbeat``, importer._still_ours): of two processes that found it,
# one does the work.
STALE_AFTER = timedelta(minutes=10)


@dataclass
class Discarded:
    run_id: int
    kind: str
    removed: int = 0
    restored: int = 0  # existing customers an upsert had changed, put back as they were
    kept: list[int] = field(default_factory=list)
    undo: bool = False  # not an import taken back: an interrupted `crm import undo`, finished


def owner() -> str:
    """This process, as "host:pid:start" (the start time tells a reused pid from the original process)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}"


def _started(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # Field 22 (starttime) comes after the parenthesised command name, which may contain spaces.
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "?"


def stamp(session: Session) -> Any:
    """What a step stamps its run's row with (its heartbeat): the database server's clock on PostgreSQL, where
    processes on several machines judge each other's rows by their age, so that clocks set apart do not count;
    this machine's clock on a SQLite file."""
    return func.now() if session.get_bind().dialect.name == "postgresql" else utcnow()


def db_now(session: Session) -> datetime:
    """The clock ``stamp`` uses, now (aware UTC)."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.execute(select(func.now())).scalar_one()
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return utcnow()


def alive(run: Any, now: datetime) -> bool:
    """Whether the process that runs ``run`` (an import_run row: an import, its taking back, or an undo) is
    still at work. ``now``: ``db_now``, for a process on another machine (judged by its row's age)."""
    host, _, rest = (run.owner or "").partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        moved = run.undone_at if run.status == "undoing" else run.finished_at  # each step sets it
        if moved is not None and moved.tzinfo is None:
            moved = moved.replace(tzinfo=timezone.utc)
        return moved is not None and now - moved < STALE_AFTER
    pid = int(pid_text)
    if not process_alive(pid):
        return False
    return start == "?" or _started(pid) in (start, "?")  # not a later process that got the same pid


def interrupted(session: Session) -> list[Any]:
    """Imports (or their taking back) and undos whose process is gone."""
    runs = session.execute(select(RUN).where(RUN.c.status.in_(("running", "undoing")))).all()
    if not runs:
        return []
    now = db_now(session)
    return [r for r in runs if not alive(r, now)]


def recover(store: Any) -> list[Discarded]:
    """Take back every import whose process died, and finish every undo whose process died (one quick read
    when there is none)."""
    with store.read() as session:
        dead = interrupted(session)
    out: list[Discarded] = []
    for run in dead:
        if run.status == "undoing":
            from crmcli.core.io import undo

            done = undo.resume(store, run.id)
            if done is not None:
                out.append(Discarded(run.id, run.kind, removed=done["removed"], kept=done["kept"], undo=True))
        else:
            taken = discard(store, run.id, claim=True)
            if taken is not None:
                out.append(taken)
    return out


def discard(store: Any, run_id: int, *, claim: bool = False) -> Discarded | None:
    """Remove what the run wrote, in steps (each its own write transaction); see the module docstring. With
    ``claim`` (another process's dead run) only if it is still a run whose process is gone, which the first
    step checks under the lock: of two commands that found it, one does the work. None when not this one's."""
    # Here, not at the top: every command opens the store through ``recover``, few have anything to take back.
    from crmcli.core import audit
    from crmcli.core.io import before_images, removal

    with store.write() as session:
        run = session.execute(select(RUN).where(RUN.c.id == run_id)).first()
        if run is None or (claim and (run.status != "running" or alive(run, db_now(session)))):
            return None
        session.execute(update(RUN).where(RUN.c.id == run_id).values(
            owner=owner(), finished_at=stamp(session), undo_removed=func.coalesce(RUN.c.undo_removed, 0),
            undo_kept=func.coalesce(RUN.c.undo_kept, 0)))
        found = removal.schema(session, run.kind)
    out = Discarded(run_id, run.kind)
    entity = removal.ENTITY[run.kind]
    if run.kind == "customers":  # an upsert's updates, put back a part at a time
        limit = removal.images_per_step()
        while True:
            removal.pause()
            with store.write() as session:
                if not removal.heartbeat(session, run_id, "finished_at"):
                    return None  # another process took it on (it looked stalled): it goes on with it
                restored, kept = before_images.put_back(session, run_id, limit=limit)
                audit.record_many(session, removal.kept_entries(entity, run_id, kept))
                session.execute(update(RUN).where(RUN.c.id == run_id).values(undo_kept=RUN.c.undo_kept + len(kept)))
            out.restored += len(restored)
            out.kept += kept
            if len(restored) + len(kept) < limit:
                break
    while True:
        removal.pause()
        with store.write() as session:
            if not removal.heartbeat(session, run_id, "finished_at"):
                return None  # another process took it on (it looked stalled): it goes on with it
            step = removal.step(session, run_id, found, floor=0, trail=False)
            if step.last:
                removed, kept_before = session.execute(
                    select(RUN.c.undo_removed, RUN.c.undo_kept).where(RUN.c.id == run_id)).one()
                out.removed = int(removed or 0)
                if kept_before:
                    session.execute(update(RUN).where(RUN.c.id == run_id).values(
                        status="failed", owner=None, finished_at=stamp(session)))
                else:
                    before_images.forget(session, run_id)
                    session.execute(delete(RUN).where(RUN.c.id == run_id))
        out.kept += step.kept
        if step.last:
            return out
