"""Customer care: message templates, the holiday calendar and the greetings sent (one per customer and
occasion). Frozen: later changes are new migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    md = sa.MetaData()
    # Stubs for the foreign keys' targets (created by m0001); only this migration's own tables are created.
    base = [sa.Table("customer", md, sa.Column("id", sa.Integer, primary_key=True)),
            sa.Table("interaction", md, sa.Column("id", sa.Integer, primary_key=True))]
    sa.Table(
        "care_template", md,
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("subject", sa.String),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("builtin", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "care_holiday", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("title", sa.String, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("recurring", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("name", "day", name="uq_care_holiday_name_day"),
        sa.Index("ix_care_holiday_name", "name"),
        sa.Index("ix_care_holiday_day", "day"),
    )
    sa.Table(
        "care_send", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("occasion", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("template", sa.String, nullable=False),
        sa.Column("via", sa.String, nullable=False),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("sent_on", sa.Date, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("coupon", sa.String),
        sa.Column("points", sa.Integer),
        sa.Column("interaction_id", sa.Integer, sa.ForeignKey("interaction.id")),
        sa.UniqueConstraint("customer_id", "occasion", name="uq_care_send_customer_occasion"),
        sa.Index("ix_care_send_customer_id", "customer_id"),
        sa.Index("ix_care_send_occasion", "occasion"),
    )
    md.create_all(conn, tables=[t for t in md.sorted_tables if t not in base])
