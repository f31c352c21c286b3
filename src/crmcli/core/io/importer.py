"""The import driver shared by customers, purchases and interactions.

A file is read as a stream, cut into batches; each batch is validated row by row (pure checks, reusing the
parsers of core/contacts, dates, money and customers) and then checked against the store with a few IN
queries before its rows are written with executemany. Later rows see earlier ones (a duplicate phone two
thousand lines further down is caught), because every batch is written before the next is checked.

How the writes are committed (``run``):

* an import commits in steps of about a second (STEP_SECONDS), so other crm commands get the write lock in
  between instead of waiting for the whole file (issue #10). It is still all-or-nothing: a rejected row
  (without --partial), an error or Ctrl-C takes the committed steps back (core/io/rollback.py: the records
  it created are removed, the customers an upsert changed are put back from their before-images,
  core/io/before_images.py), and an import whose process died is taken back by the next crm command; audit
  entries are written with the last step;
* ``--dry-run`` runs in one transaction, rolled back by the database itself;
* ``--partial``: the good rows are committed, rejected rows are reported, exit 5 if any.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import func, insert, select, update
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core.clock import utcnow
from crmcli.core.context import StoreContext
from crmcli.core.io import rollback
from crmcli.errors import CrmError
from crmcli.i18n import _
from crmcli.store.models_imports import ImportRun

RUN = ImportRun.__table__
KINDS = ("customers", "purchases", "interactions")
MODES = ("create", "upsert", "update")
MATCH_KEYS = ("code", "email", "phone")
KEEP_REJECTS_IN_MEMORY = 1000
REASON_COLUMN = "import_error"
STEP_SECONDS = 1.0  # a stepped import commits about this often
HAND_OVER_SECONDS = 0.005  # and pauses this long: writers waiting for the lock retry every few ms (store/engine.py)
MIN_BATCH = 50
# PostgreSQL: the tables an import of each kind writes, and the rows after which their statistics are first
# refreshed (then each time the import has doubled; see store/postgres.refresh_statistics).
WRITES = {"customers": ["customer", "contact_point", "customer_tag", "consent", "preference"],
          "purchases": ["purchase", "points_ledger"], "interactions": ["interaction"]}
FIRST_ANALYZE_ROWS = 200
# A dry run of a file this small holds the write lock about as long as one step of a real import (a
# second): cheaper than copying the store.
DRY_RUN_IN_PLACE_BYTES = 256 * 1024
FIRST_STEP_BATCH = 250  # until the first batch has shown how fast this file's rows are written


@dataclass
class Options:
    kind: str
    source: str = "-"
    mode: str = "create"
    match: tuple[str, ...] = MATCH_KEYS
    partial: bool = False
    dry_run: bool = False
    date_format: str | None = None
    allow_duplicate: bool = False
    batch_size: int = 2000
    input_bytes: int | None = None  # the file's size when known; a small file's dry run stays in place
    extra: dict[str, Any] = field(default_factory=dict)  # recorded with the run (preset, map, ...)


@dataclass
class Row:
    line: int
    fields: dict[str, Any]
    prefs: dict[str, str]
    raw: list[str]  # the original cells (or a vCard's text as one cell), for --rejects


@dataclass
class Reject:
    line: int
    column: str | None
    value: str | None
    reason: str
    raw: list[str]


class RowError(Exception):
    """A row cannot be imported: the field (mapped back to its column), the raw value and why."""

    def __init__(self, field_name: str | None, value: Any, reason: str) -> None:
        super().__init__(reason)
        self.field = field_name
        self.value = None if value is None else str(value)
        self.reason = reason

    @classmethod
    def of(cls, error: CrmError, field_name: str | None = None, value: Any = None) -> "RowError":
        reason = error.message + (" " + error.hint if error.hint else "")
        return cls(getattr(error, "field", None) or field_name, getattr(error, "value", None) if value is None
                   else value, reason)


@dataclass
class Result:
    kind: str
    source: str
    mode: str
    run_id: int | None = None
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    skipped: int = 0
    committed: bool = False
    dry_run: bool = False
    unknown_columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)  # the first KEEP_REJECTS_IN_MEMORY
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"read": self.read, "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "rejected": self.rejected, "skipped": self.skipped}

    def to_json(self) -> dict[str, Any]:
        return {"import_id": self.run_id if self.committed else None, "kind": self.kind, "source": self.source,
                "mode": self.mode, **self.counts(), "committed": self.committed, "dry_run": self.dry_run,
                "unknown_columns": self.unknown_columns, "ignored_columns": self.ignored_columns,
                "rejects": [{"line": r.line, "column": r.column, "value": r.value, "reason": r.reason}
                            for r in self.rejects]}


class Outcome:
    CREATED, UPDATED, UNCHANGED, SKIPPED = "created", "updated", "unchanged", "skipped"


class Handler(Protocol):
    """One record kind. ``prepare`` is pure validation of one row; ``apply`` checks a batch of prepared rows
    against the store and writes them, returning one outcome (or a RowError) per row, in order."""

    def prepare(self, row: Row) -> Any: ...

    def apply(self, batch: list[tuple[Row, Any]]) -> list[str | RowError]: ...

    def column_of(self, field_name: str | None) -> str | None: ...


class _Abort(Exception):
    """Raised inside the write transaction to roll it back (all-or-nothing, dry run)."""


def step_seconds() -> float:
    """How long one step of a stepped import may hold the write lock (CRM_IMPORT_STEP_SECONDS, for tests)."""
    try:
        return max(0.0, float(os.environ.get("CRM_IMPORT_STEP_SECONDS", STEP_SECONDS)))
    except ValueError:
        return STEP_SECONDS


class _Steps:
    """The write transactions of one import, one after the other."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.open: Any = None
        self.committed = 0

    def begin(self) -> Session:
        self.open = self.store.write()
        return self.open.__enter__()  # type: ignore[no-any-return]

    def commit(self) -> None:
        done, self.open = self.open, None
        done.__exit__(None, None, None)
        self.committed += 1

    def abandon(self, error: BaseException) -> None:
        if self.open is not None:
            done, self.open = self.open, None
            try:
                done.__exit__(type(error), error, error.__traceback__)
            except BaseException:  # the rollback re-raises the error we are already handling
                pass


class _AuditSpool:
    """The audit entries of a stepped import, kept in a temporary file until its last step writes them (flat
    memory: a million customers' entries do not stay in RAM)."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()
        self.count = 0

    def add(self, entries: list[dict[str, Any]]) -> None:
        pickle.dump(entries, self.file, protocol=pickle.HIGHEST_PROTOCOL)
        self.count += len(entries)

    def replay(self, session: Session) -> None:
        self.file.seek(0)
        while True:
            try:
                entries = pickle.load(self.file)
            except EOFError:
                return
            audit.record_many(session, entries)

    def close(self) -> None:
        self.file.close()


def run(store: Any, ctx_loader: Callable[[Session], StoreContext], rows: Iterator[Row],
        make_handler: Callable[[Session, StoreContext, int], Handler], options: Options, *,
        on_reject: Callable[[Reject], None] | None = None, progress: Callable[[int], None] | None = None,
        result: Result | None = None) -> Result:
    """Import ``rows``; returns the counts (committed or not).

    A dry run is one transaction that is rolled back: later rows must see what earlier rows would have
    written. On an SQLite file that transaction would hold the write lock for the whole run, so a dry run of
    anything but a small file works on a private copy of the store instead (``scratch_copy``): other commands
    go on writing meanwhile, and the answers are the same. PostgreSQL locks rows, not the database: a dry run
    there stays in place.
    """
    if options.dry_run and getattr(store, "is_sqlite", False) and store.path is not None and not (
            options.input_bytes is not None and options.input_bytes <= DRY_RUN_IN_PLACE_BYTES):
        from crmcli.store.engine import scratch_copy

        with scratch_copy(store) as scratch:
            return _run(scratch, ctx_loader, rows, make_handler, options, on_reject=on_reject, progress=progress,
                        result=result)
    return _run(store, ctx_loader, rows, make_handler, options, on_reject=on_reject, progress=progress,
                result=result)


def _run(store: Any, ctx_loader: Callable[[Session], StoreContext], rows: Iterator[Row],
         make_handler: Callable[[Session, StoreContext, int], Handler], options: Options, *,
         on_reject: Callable[[Reject], None] | None, progress: Callable[[int], None] | None,
         result: Result | None) -> Result:
    """The import itself.

    An import commits in steps of about a second, so other writers get the lock in between instead of
    waiting for the whole file (issue #10). It stays all-or-nothing: its new rows carry its ``import_id``,
    customers it changes leave a before-image, its run row says ``running`` and names its process, and its
    audit entries are spooled and written with the last step. When it fails (a rejected row without
    --partial, an error, Ctrl-C) the committed steps are taken back (core/io/rollback.py); when its process
    dies, the next crm command takes them back. A dry run keeps one transaction, which the database rolls
    back by itself.
    """
    result = result or Result(kind=options.kind, source=options.source, mode=options.mode)
    result.dry_run = options.dry_run
    if options.kind == "purchases":
        from crmcli.core.purchases import warm_purchase_hooks

        warm_purchase_hooks()
    stepped = not options.dry_run
    limit = step_seconds() if stepped else float("inf")
    spool = _AuditSpool() if stepped else None
    token = audit.spool.set(spool)
    floor_token = _trail_floor.set({})
    steps = _Steps(store)
    try:
        session: Session | None = steps.begin()
        ctx = ctx_loader(session)
        started = utcnow()
        run_id = session.execute(insert(RUN).values(
            kind=options.kind, source=options.source, mode=options.mode,
            options=json.dumps(_options_json(options), ensure_ascii=False, sort_keys=True), started_at=started,
            finished_at=started, rows_read=0, created=0, updated=0, unchanged=0, rejected=0, skipped=0,
            status="running", actor=audit.actor(), owner=rollback.owner())).inserted_primary_key[0]
        result.run_id = int(run_id)
        handler = make_handler(session, ctx, result.run_id)
        step_started = time.monotonic()
        size = min(options.batch_size, FIRST_STEP_BATCH) if stepped else options.batch_size
        batch: list[tuple[Row, Any]] = []
        analyze_at = FIRST_ANALYZE_ROWS if session.get_bind().dialect.name == "postgresql" else None

        def reject(row: Row, error: RowError) -> None:
            result.rejected += 1
            item = Reject(row.line, handler.column_of(error.field) or error.field, error.value, error.reason, row.raw)
            if len(result.rejects) < KEEP_REJECTS_IN_MEMORY:
                result.rejects.append(item)
            if on_reject is not None:
                on_reject(item)

        def begin_step() -> Session:
            """The next step's transaction, begun only when there is a batch to write: the rows of that batch
            were read and checked (pure validation) while other writers could have the lock."""
            nonlocal session, ctx, handler, step_started
            time.sleep(HAND_OVER_SECONDS)
            session = steps.begin()
            ctx = ctx_loader(session)
            handler = make_handler(session, ctx, result.run_id)  # type: ignore[arg-type]
            step_started = time.monotonic()
            return session

        def flush() -> None:
            nonlocal session, size, analyze_at
            if not batch:
                return
            if session is None:
                begin_step()
            began = time.monotonic()
            outcomes = handler.apply(batch)
            for (row, _prepared), outcome in zip(batch, outcomes):
                if isinstance(outcome, RowError):
                    reject(row, outcome)
                else:
                    setattr(result, outcome, getattr(result, outcome) + 1)
            if stepped:
                # Batches small enough that a step ends close to its time limit, on a fast or a loaded machine.
                per_row = (time.monotonic() - began) / len(batch)
                size = max(MIN_BATCH, min(options.batch_size, int(limit / 2 / per_row) if per_row else size))
            batch.clear()
            if analyze_at is not None and result.created + result.updated >= analyze_at:
                from crmcli.store.postgres import refresh_statistics

                assert session is not None
                refresh_statistics(session.connection(), WRITES[options.kind])
                analyze_at = 2 * (result.created + result.updated)
            if progress is not None:
                progress(result.read)
            if time.monotonic() - step_started >= limit:
                assert session is not None
                _finish_step(session, result)
                steps.commit()
                session = None
                handler.session = None  # prepare() is pure validation; anything else must wait for a step

        for row in rows:
            result.read += 1
            unreadable = row.fields.get("__error__")
            if isinstance(unreadable, RowError):  # a vCard vobject could not read
                reject(row, unreadable)
                continue
            try:
                batch.append((row, handler.prepare(row)))
            except RowError as e:
                reject(row, e)
            except CrmError as e:
                reject(row, RowError.of(e))
            if len(batch) >= size:
                flush()
        flush()
        if session is None:
            session = begin_step()
        _advance_sequences(session)
        assert result.read == result.created + result.updated + result.unchanged + result.rejected + result.skipped
        status = "partial" if result.rejected else "done"
        if options.dry_run or (result.rejected and not options.partial):
            raise _Abort
        audit.spool.reset(token)
        token = None
        if spool is not None:
            spool.replay(session)
        audit.record(session, entity="import", entity_id=result.run_id, action="import",
                     after={"kind": options.kind, "source": options.source, "mode": options.mode,
                            **result.counts()})
        if options.mode != "create":
            from crmcli.core.io import before_images

            before_images.forget(session, result.run_id)
        last_audit = session.execute(select(func.max(audit.AuditEntry.__table__.c.id))).scalar()
        _still_ours(session, result.run_id, session.execute(update(RUN).where(
            RUN.c.id == result.run_id, RUN.c.owner == rollback.owner()).values(
            finished_at=rollback.stamp(session), rows_read=result.read, created=result.created, updated=result.updated,
            unchanged=result.unchanged, rejected=result.rejected, skipped=result.skipped, status=status,
            last_audit_id=last_audit, owner=None)))
        steps.commit()
        result.committed = True
    except BaseException as error:
        steps.abandon(error)
        if token is not None:
            audit.spool.reset(token)
            token = None
        if steps.committed and result.run_id is not None:
            # Earlier steps were committed: take them back (in steps too), so the store is as it was before the
            # import. If this process dies meanwhile, the next crm command goes on with it.
            rollback.discard(store, result.run_id)
        if not isinstance(error, _Abort):
            raise
        result.committed = False
    finally:
        _trail_floor.reset(floor_token)
        if token is not None:
            audit.spool.reset(token)
        if spool is not None:
            spool.close()
    return result


def _finish_step(session: Session, result: Result) -> None:
    """The run row shows the progress (and, by its time, that its process is alive) at every step."""
    _advance_sequences(session)
    _still_ours(session, result.run_id, session.execute(update(RUN).where(
        RUN.c.id == result.run_id, RUN.c.owner == rollback.owner()).values(
        finished_at=rollback.stamp(session), rows_read=result.read, created=result.created, updated=result.updated,
        unchanged=result.unchanged, rejected=result.rejected, skipped=result.skipped)))


def _still_ours(session: Session, run_id: int | None, updated: Any) -> None:
    """A step commits only while its run is still this process's: a command on another machine that judged the
    run dead (its row unmoved for rollback.STALE_AFTER) takes it back, and this process's later rows would then
    belong to no run, or its earlier ones be gone while it reports success. The step's transaction rolls back."""
    if updated.rowcount != 1:
        raise CrmError(_("Import #{id} was taken back by another crm command while it ran (it looked stalled "
                         "for more than {minutes} minutes); nothing of it was kept.").format(
                             id=run_id, minutes=int(rollback.STALE_AFTER.total_seconds() // 60)),
                       hint=_("Run the import again."))


def _advance_sequences(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":  # ids were assigned here (next_id), not by sequences
        from crmcli.store.postgres import advance_sequences

        advance_sequences(session.connection(), ["customer", "purchase", "interaction"])


def _options_json(options: Options) -> dict[str, Any]:
    return {"match": list(options.match), "partial": options.partial, "date_format": options.date_format,
            "allow_duplicate": options.allow_duplicate, **options.extra}


def history(session: Session, *, limit: int | None = None) -> list[dict[str, Any]]:
    stmt = select(RUN).order_by(RUN.c.id.desc())
    if limit:
        stmt = stmt.limit(limit)
    return [{"id": r.id, "kind": r.kind, "source": r.source, "mode": r.mode, "started_at": r.started_at,
             "finished_at": r.finished_at, "read": r.rows_read, "created": r.created, "updated": r.updated,
             "unchanged": r.unchanged, "rejected": r.rejected, "skipped": r.skipped, "status": r.status,
             "undone_at": r.undone_at, "actor": r.actor, "undo_removed": r.undo_removed, "undo_kept": r.undo_kept}
            for r in session.execute(stmt)]


def batch_audit(entity: str, run_id: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One audit row for a batch of imported purchases or interactions (not one per row: at millions of rows the
    audit trail would cost more than the import). It names the import and the ids; the rows themselves carry
    ``import_id`` and stay as imported (purchases and interactions are never edited)."""
    ids = [int(r["id"]) for r in rows]
    return {"entity": entity, "entity_id": None, "action": "import-batch",
            "after": {"import_id": run_id, "count": len(ids), "first_id": min(ids), "last_id": max(ids),
                      "ids_contiguous": max(ids) - min(ids) + 1 == len(ids)}}


# The audit trail's answer for each entity, found by the first step of a run: later steps (a new handler each)
# only look at the table's own max id, an index lookup, instead of searching the trail's import batches again.
_trail_floor: ContextVar[dict[str, int] | None] = ContextVar("import_trail_floor", default=None)


def next_id(session: Session, table: Any, entity: str) -> int:
    """The first free primary key (we hold the write lock, so ids can be assigned before executemany). Never
    an id the audit trail already mentions: after `crm import undo` the removed numbers are not reused."""
    top = session.execute(select(func.max(table.c.id))).scalar() or 0
    floors = _trail_floor.get()
    if floors is not None and entity in floors:
        return int(max(top + 1, floors[entity]))
    A = audit.AuditEntry.__table__
    mentioned = session.execute(select(func.max(A.c.entity_id)).where(A.c.entity == entity)).scalar() or 0
    batches = [json.loads(after or "{}").get("last_id") or 0 for (after,) in session.execute(
        select(A.c.after).where(A.c.entity == entity, A.c.action == "import-batch").order_by(A.c.id.desc()).limit(1))]
    found = int(max(top, mentioned, *batches)) + 1
    if floors is not None:
        floors[entity] = found
    return found
