"""`crm db audit`: the audit rows, oldest first, optionally for one customer and since a time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from crmcli.store.models import AuditEntry, Customer


def entries(session: Session, *, customer_id: int | None = None, since: datetime | None = None,
            limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Rows as dicts (before/after parsed from JSON), streamed; ``since`` in UTC."""
    A, C = AuditEntry.__table__, Customer.__table__
    stmt = (select(A.c.id, A.c.at, A.c.actor, A.c.command, A.c.entity, A.c.entity_id, A.c.customer_id,
                   C.c.code.label("customer_code"), A.c.action, A.c.before, A.c.after, A.c.hash)
            .select_from(A.outerjoin(C, C.c.id == A.c.customer_id)).order_by(A.c.id))
    if customer_id is not None:
        stmt = stmt.where(A.c.customer_id == customer_id)
    if since is not None:
        stmt = stmt.where(A.c.at >= since)
    if limit is not None:
        stmt = stmt.limit(limit)
    for row in session.execute(stmt).mappings():
        item = dict(row)
        for key in ("before", "after"):
            item[key] = json.loads(item[key]) if item[key] else None
        yield item
