"""The audit trail: one row per mutation, written in the mutation's own transaction, hash-chained.

hash = sha256(prev_hash + canonical JSON of the row's fields), so an edited, deleted or inserted row
breaks the chain at that point (checked by ``verify``).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlmodel import Session

from crmcli.core.clock import utcnow
from crmcli.core.command import current_command
from crmcli.store.models import AuditEntry

GENESIS = "0" * 64


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


def _last_hash(session: Session) -> str:
    table = AuditEntry.__table__
    last = session.execute(select(table.c.hash).order_by(table.c.id.desc()).limit(1)).scalar()
    return last or GENESIS


def record(session: Session, *, entity: str, entity_id: int | None, action: str,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
           customer_id: int | None = None) -> None:
    record_many(session, [dict(entity=entity, entity_id=entity_id, action=action, before=before,
                               after=after, customer_id=customer_id)])


def record_many(session: Session, entries: list[dict[str, Any]]) -> None:
    """Append many audit rows in one executemany (bulk imports), chaining their hashes."""
    if not entries:
        return
    prev = _last_hash(session)
    at = utcnow()
    who = actor()
    command = current_command.get()
    rows = []
    for e in entries:
        before, after = dumps(e.get("before")), dumps(e.get("after"))
        fields = dict(at=at, actor=who, command=command, entity=e["entity"], entity_id=e.get("entity_id"),
                      customer_id=e.get("customer_id"), action=e["action"], before=before, after=after)
        digest = row_hash(prev, **fields)
        rows.append({**fields, "prev_hash": prev, "hash": digest})
        prev = digest
    session.execute(insert(AuditEntry.__table__), rows)


def verify(session: Session) -> int | None:
    """Return the id of the first row whose chain is broken, or None when the whole trail is intact."""
    table = AuditEntry.__table__
    prev = GENESIS
    for row in session.execute(select(table).order_by(table.c.id)).mappings():
        fields = {k: row[k] for k in ("at", "actor", "command", "entity", "entity_id", "customer_id", "action",
                                      "before", "after")}
        if row["prev_hash"] != prev or row["hash"] != row_hash(prev, **fields):
            return int(row["id"])
        prev = row["hash"]
    return None
