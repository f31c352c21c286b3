"""Classification at scale: a covering index for the per-customer purchase aggregates of `crm tier`
(customer_id, purchased_on, kind, amount_minor: the GROUP BY customer streams over the index without touching
the table or sorting), and no secondary indexes on the derived classification rows (they made the bulk writes
of a recompute twice as slow and no query needed them). Frozen: later changes are new migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    for name in ("ix_customer_class_tier", "ix_customer_class_segment", "ix_customer_class_stage",
                 "ix_customer_class_level", "ix_class_history_run_id"):
        conn.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
    md = sa.MetaData()
    purchase = sa.Table(
        "purchase", md,
        sa.Column("customer_id", sa.Integer), sa.Column("purchased_on", sa.Date), sa.Column("kind", sa.String),
        sa.Column("amount_minor", sa.BigInteger))
    sa.Index("ix_purchase_class", purchase.c.customer_id, purchase.c.purchased_on, purchase.c.kind,
             purchase.c.amount_minor).create(conn)
