"""The audit trail: one row per mutation, written in the mutation's own transaction, hash-chained.

hash = sha256(prev_hash + canonical JSON of the row's fields), so an edited, deleted or inserted row
breaks the chain at that point (checked by ``verify``).

The chain covers the before/after payload through a digest, not the text itself:
payload_digest = sha256(payload_salt + before + after), and the row's hash includes payload_digest. That
lets a privacy erasure (`crm customer forget`) strip a person's values out of old rows without breaking
the chain: the erased rows lose their salt (so the kept digest cannot be brute-forced back into a phone
number), their stripped payload is recorded in the chained erasure row ("redacted_audit_rows": {id:
sha256 of the stripped payload}), and ``verify`` accepts a row without salt only when a later, intact
erasure row vouches for exactly its current payload. Rows written before migration m0009 that could not
be re-chained (the trail was already broken there) keep the first form, hash over the text.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import secrets
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import insert, select
from sqlmodel import Session

from crmcli.core.clock import utcnow
from crmcli.core.command import current_command
from crmcli.store.models import AuditEntry

GENESIS = "0" * 64
ERASE_ACTION = "erase"
REDACTED_KEY = "redacted_audit_rows"


def actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return os.environ.get("USER") or "unknown"


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(_canonical(value), ensure_ascii=False, sort_keys=True)


def row_hash(prev_hash: str, *, at: datetime, actor: str, command: str, entity: str, entity_id: int | None,
             customer_id: int | None, action: str, before: str | None, after: str | None) -> str:
    body = json.dumps([at.isoformat(), actor, command, entity, entity_id, customer_id, action, before, after],
                      ensure_ascii=False)
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def payload_digest(salt: str | None, before: str | None, after: str | None) -> str:
    """sha256 over the salt and the payload texts (salt None: the digest an erasure row records)."""
    body = json.dumps([salt, before, after], ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def chain_hash(prev_hash: str, *, at: datetime, actor: str, command: str, entity: str, entity_id: int | None,
               customer_id: int | None, action: str, digest: str) -> str:
    body = json.dumps([at.isoformat(), actor, command, entity, entity_id, customer_id, action, "sha256:" + digest],
                      ensure_ascii=False)
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _last_hash(session: Session) -> str:
    table = AuditEntry.__table__
    last = session.execute(select(table.c.hash).order_by(table.c.id.desc()).limit(1)).scalar()
    return last or GENESIS


def record(session: Session, *, entity: str, entity_id: int | None, action: str,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
           customer_id: int | None = None) -> None:
    record_many(session, [dict(entity=entity, entity_id=entity_id, action=action, before=before,
                               after=after, customer_id=customer_id)])


class Spool(Protocol):
    def add(self, entries: list[dict[str, Any]]) -> None: ...


# While set, record_many hands its entries to the spool instead of writing them: an import that commits in
# steps writes its audit rows with its last step, so a failed import can be removed without a trace and the
# trail never names a record that was taken back (core/io/importer.py).
spool: ContextVar[Spool | None] = ContextVar("audit_spool", default=None)


def record_many(session: Session, entries: list[dict[str, Any]]) -> None:
    """Append many audit rows in one executemany (bulk imports), chaining their hashes."""
    if not entries:
        return
    held = spool.get()
    if held is not None:
        held.add(entries)
        return
    prev = _last_hash(session)
    at = utcnow()
    who = actor()
    command = current_command.get()
    rows = []
    for e in entries:
        before, after = dumps(e.get("before")), dumps(e.get("after"))
        fields = dict(at=at, actor=who, command=command, entity=e["entity"], entity_id=e.get("entity_id"),
                      customer_id=e.get("customer_id"), action=e["action"])
        salt = secrets.token_hex(16)
        digest = payload_digest(salt, before, after)
        link = chain_hash(prev, **fields, digest=digest)
        rows.append({**fields, "before": before, "after": after, "payload_salt": salt, "payload_digest": digest,
                     "prev_hash": prev, "hash": link})
        prev = link
    session.execute(insert(AuditEntry.__table__), rows)


def import_batch_rows(session: Session, entity: str, record_id: int, import_id: int | None) -> list[Any]:
    """The ``import-batch`` rows (one per batch of an import, no per-record row) that cover one record: how
    customer history and the privacy export show that an import created it."""
    if import_id is None:
        return []
    table = AuditEntry.__table__
    stmt = select(table).where(table.c.entity == entity, table.c.entity_id.is_(None), table.c.action == "import-batch",
                               table.c.after.like(f'%"import_id": {int(import_id)},%')).order_by(table.c.id)
    out = []
    for row in session.execute(stmt):
        after = json.loads(row.after or "{}")
        if after.get("import_id") == import_id and after.get("first_id", 0) <= record_id <= after.get("last_id", -1):
            out.append(row)
    return out


def verify(session: Session) -> int | None:
    """Return the id of the first row whose chain is broken, or None when the whole trail is intact.

    Broken: a row whose prev_hash is not the previous row's hash (a row deleted or inserted before it),
    whose hash does not match its fields (edited), whose payload does not match its digest, or whose
    payload was stripped without an intact erasure row vouching for exactly that stripped payload.
    """
    table = AuditEntry.__table__
    prev = GENESIS
    unvouched: dict[int, str] = {}  # stripped row id -> digest of its payload as it is now
    broken: int | None = None
    for row in session.execute(select(table).order_by(table.c.id)).mappings():
        fields = {k: row[k] for k in ("at", "actor", "command", "entity", "entity_id", "customer_id", "action")}
        if row["payload_digest"] is None:  # written before m0009 and not re-chained
            ok = row["prev_hash"] == prev and row["hash"] == row_hash(prev, **fields, before=row["before"],
                                                                       after=row["after"])
        else:
            ok = row["prev_hash"] == prev and row["hash"] == chain_hash(prev, **fields, digest=row["payload_digest"])
            if ok and row["payload_salt"] is not None:
                ok = payload_digest(row["payload_salt"], row["before"], row["after"]) == row["payload_digest"]
            elif ok:
                unvouched[int(row["id"])] = payload_digest(None, row["before"], row["after"])
        if not ok:
            broken = int(row["id"])
            break
        if row["action"] == ERASE_ACTION and row["after"]:
            try:
                vouched = json.loads(row["after"]).get(REDACTED_KEY) or {}
            except (ValueError, AttributeError):
                vouched = {}
            for rid, digest in vouched.items():
                if unvouched.get(int(rid)) == digest:
                    del unvouched[int(rid)]
        prev = row["hash"]
    found = [i for i in (broken, min(unvouched, default=None)) if i is not None]
    return min(found) if found else None


def head(session: Session) -> tuple[int, str]:
    """The number of rows and the newest hash: note them elsewhere to detect a trail cut short later."""
    table = AuditEntry.__table__
    from sqlalchemy import func

    count = session.execute(select(func.count()).select_from(table)).scalar_one()
    return int(count), _last_hash(session)
