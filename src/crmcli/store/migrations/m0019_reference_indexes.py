"""Indexes on the foreign keys that had none: ``customer.referred_by_id``, ``care_send.interaction_id`` and
``churn_winback.interaction_id``. Removing a row that such a key points at makes the database look for rows
that still refer to it — without an index a scan of the whole referring table for every removed row. Undoing
(or taking back after a failure) an import of 100,000 customers scanned the customer table 100,000 times:
hours instead of seconds. Partial (``IS NOT NULL``): most rows refer to nothing, and the lookup ``col = ?``
can use such an index. Frozen: later changes are new migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

INDEXES = (("ix_customer_referred_by", "customer", "referred_by_id"),
           ("ix_care_send_interaction", "care_send", "interaction_id"),
           ("ix_churn_winback_interaction", "churn_winback", "interaction_id"))


def upgrade(conn: Connection) -> None:
    md = sa.MetaData()
    for name, table, column in INDEXES:
        t = sa.Table(table, md, sa.Column(column, sa.Integer))
        where = t.c[column].isnot(None)
        sa.Index(name, t.c[column], sqlite_where=where, postgresql_where=where).create(conn)
