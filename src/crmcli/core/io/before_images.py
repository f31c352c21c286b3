"""Existing customers as they were before a stepped upsert/update import changed them.

A stepped import commits every second or so (issue #10) and must still be all-or-nothing. The customers it
creates carry its ``import_id`` and are simply removed when it fails (core/io/rollback.py); the customers it
*changes* are put back from the image ``keep`` took just before the first change: the customer's row and the
rows of its own parts (contacts, tags, consents, preferences), exactly, ids included.

Between two steps another crm command may change such a customer itself (an edit, a tag, an erasure: an audit
row about the customer after the image). Putting the image back would then undo that command's work too, so
the customer is left as it is and reported as kept, like a created record someone used meanwhile.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, update
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core.customers import C, CP, TAG
from crmcli.store.models import Consent, Preference
from crmcli.store.models_imports import ImportBefore

BEFORE = ImportBefore.__table__
# A customer's own parts: rows that belong to it alone and that an import's update may add or change.
PARTS: tuple[Table, ...] = (CP, TAG, Consent.__table__, Preference.__table__)


def keep(session: Session, run_id: int, customer_id: int) -> None:
    """Take the customer's image, unless this run already has one (the first image is the one to go back to)."""
    if session.execute(select(BEFORE.c.customer_id).where(
            BEFORE.c.import_id == run_id, BEFORE.c.customer_id == customer_id)).first() is not None:
        return
    image = {C.name: [_encode(r) for r in session.execute(select(C).where(C.c.id == customer_id)).mappings()]}
    for table in PARTS:
        image[table.name] = [_encode(r) for r in session.execute(
            select(table).where(table.c.customer_id == customer_id)).mappings()]
    floor = session.execute(select(func.max(audit.AuditEntry.__table__.c.id))).scalar() or 0
    session.execute(insert(BEFORE).values(import_id=run_id, customer_id=customer_id, audit_floor=floor,
                                          image=json.dumps(image, ensure_ascii=False, sort_keys=True)))


def put_back(session: Session, run_id: int, *, limit: int | None = None) -> tuple[list[int], list[int]]:
    """Restore the customers the run changed, ``limit`` of them at most (the failed import's taking back goes
    in steps); returns (restored ids, kept ids). Customers the run created itself are left to the caller,
    which removes them. Each image is gone once dealt with, so the next call goes on with the others."""
    A = audit.AuditEntry.__table__
    restored: list[int] = []
    kept: list[int] = []
    query = select(BEFORE.c.customer_id, BEFORE.c.audit_floor, BEFORE.c.image).where(
        BEFORE.c.import_id == run_id).order_by(BEFORE.c.customer_id)
    for customer_id, floor, text in session.execute(query.limit(limit) if limit else query).all():
        touched = session.execute(select(A.c.id).where(
            A.c.entity == "customer", A.c.entity_id == customer_id, A.c.id > floor).limit(1)).first()
        if touched is not None:
            kept.append(customer_id)
            continue
        image = json.loads(text)
        for table in PARTS:
            session.execute(delete(table).where(table.c.customer_id == customer_id))
        for row in image[C.name]:
            values = _decode(C, row)
            session.execute(update(C).where(C.c.id == customer_id).values(
                {k: v for k, v in values.items() if k != "id"}))
        for table in PARTS:
            rows = [_decode(table, r) for r in image[table.name]]
            if rows:
                session.execute(insert(table), rows)
        restored.append(customer_id)
    done = restored + kept
    if done:
        session.execute(delete(BEFORE).where(BEFORE.c.import_id == run_id, BEFORE.c.customer_id.in_(done)))
    return restored, kept


def forget(session: Session, run_id: int) -> None:
    session.execute(delete(BEFORE).where(BEFORE.c.import_id == run_id))


def _encode(row: Any) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, (date, datetime)) else v for k, v in row.items()}


def _decode(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """JSON values back to the column types' Python values (dates, datetimes, booleans)."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name not in table.c:  # a column a later migration removed: nothing to put back
            continue
        if value is not None:
            kind = _python_type(table, name)
            if kind is datetime:
                value = datetime.fromisoformat(value)
                if value.tzinfo is None:  # the store keeps UTC (PostgreSQL's loader reads it back naive)
                    value = value.replace(tzinfo=timezone.utc)
            elif kind is date:
                value = date.fromisoformat(value)
            elif kind is bool:
                value = bool(value)
        out[name] = value
    return out


def _python_type(table: Table, name: str) -> Any:
    kind = table.c[name].type
    try:
        return getattr(kind, "impl", kind).python_type  # UTCDateTime: a TypeDecorator over DateTime
    except NotImplementedError:
        return None
