"""Classification: customer_class, tier_pin, class_run, class_history, member_level.
Frozen: later changes are new migrations, never edits here."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    md = sa.MetaData()
    # Stubs for the foreign keys' targets (already created by m0001; create_all skips existing tables).
    sa.Table("customer", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "customer_class", md,
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("tier", sa.String),
        sa.Column("computed_tier", sa.String),
        sa.Column("net_minor", sa.BigInteger, nullable=False),
        sa.Column("orders", sa.Integer, nullable=False),
        sa.Column("r_score", sa.Integer),
        sa.Column("f_score", sa.Integer),
        sa.Column("m_score", sa.Integer),
        sa.Column("segment", sa.String),
        sa.Column("stage", sa.String),
        sa.Column("level", sa.String),
        sa.Column("level_since", sa.Date),
        sa.Column("basis_minor", sa.BigInteger),
        sa.Index("ix_customer_class_tier", "tier"),
        sa.Index("ix_customer_class_segment", "segment"),
        sa.Index("ix_customer_class_stage", "stage"),
        sa.Index("ix_customer_class_level", "level"),
    )
    sa.Table(
        "tier_pin", md,
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("tier", sa.String, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String, nullable=False),
    )
    sa.Table(
        "class_run", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("params", sa.Text),
        sa.Column("counts", sa.Text),
    )
    sa.Table(
        "class_history", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("class_run.id"), nullable=False),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("from_value", sa.String),
        sa.Column("to_value", sa.String),
        sa.Column("net_minor", sa.BigInteger),
        sa.Column("orders", sa.Integer),
        sa.Column("tenure_days", sa.Integer),
        sa.Column("share_bp", sa.Integer),
        sa.Column("basis_minor", sa.BigInteger),
        sa.Column("note", sa.Text),
        sa.Index("ix_class_history_run_id", "run_id"),
        sa.Index("ix_class_history_customer", "customer_id", "id"),
    )
    sa.Table(
        "member_level", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("basis", sa.String, nullable=False),
        sa.Column("threshold", sa.BigInteger, nullable=False),
        sa.Column("discount_pct", sa.String),
        sa.Column("points_multiplier", sa.String),
        sa.Column("perks", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("name"),
    )
    md.create_all(conn, checkfirst=True)
