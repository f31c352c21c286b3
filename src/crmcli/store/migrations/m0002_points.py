"""Loyalty points: the append-only ledger and lot allocations. Frozen: later changes are new migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    md = sa.MetaData()
    # Referenced tables, declared only so the foreign keys resolve (they exist already; not created here).
    sa.Table("customer", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("purchase", md, sa.Column("id", sa.Integer, primary_key=True))
    ledger = sa.Table(
        "points_ledger", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("debt", sa.BigInteger, nullable=False),
        sa.Column("effective_on", sa.Date, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_on", sa.Date),
        sa.Column("spendable_on", sa.Date),
        sa.Column("purchase_id", sa.Integer, sa.ForeignKey("purchase.id")),
        sa.Column("ref_id", sa.Integer, sa.ForeignKey("points_ledger.id")),
        sa.Column("reason", sa.String),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("key", sa.String),
        sa.Index("ix_points_ledger_customer_id", "customer_id", "id"),
        sa.Index("ix_points_ledger_key", "key", unique=True),
        sa.Index("ix_points_ledger_effective_on", "effective_on"),
        sa.Index("ix_points_ledger_expires_on", "expires_on"),
        sa.Index("ix_points_ledger_purchase_id", "purchase_id"),
        sa.Index("ix_points_ledger_ref_id", "ref_id"),
    )
    allocation = sa.Table(
        "points_allocation", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("debit_id", sa.Integer, sa.ForeignKey("points_ledger.id"), nullable=False),
        sa.Column("lot_id", sa.Integer, sa.ForeignKey("points_ledger.id"), nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Index("ix_points_allocation_debit_id", "debit_id"),
        sa.Index("ix_points_allocation_lot_id", "lot_id"),
    )
    ledger.create(conn)
    allocation.create(conn)
