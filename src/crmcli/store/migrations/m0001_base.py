"""Base schema: settings, customers and their contact points, consent, preferences, tags, purchases,
interactions and the audit trail. Frozen: later changes are new migrations, never edits here."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "setting", md,
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("value", sa.String, nullable=False),
    )
    sa.Table(
        "customer", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("gender", sa.String),
        sa.Column("birthday", sa.Date),
        sa.Column("occupation", sa.String),
        sa.Column("company", sa.String),
        sa.Column("address", sa.String),
        sa.Column("city", sa.String),
        sa.Column("source", sa.String),
        sa.Column("referred_by_id", sa.Integer, sa.ForeignKey("customer.id")),
        sa.Column("preferred_channel", sa.String),
        sa.Column("preferences_text", sa.Text),
        sa.Column("notes", sa.Text),
        sa.Column("next_follow_up", sa.Date),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.Column("erased_at", sa.DateTime(timezone=True)),
        sa.Column("import_id", sa.Integer),
        sa.Index("ix_customer_code", "code", unique=True),
        sa.Index("ix_customer_name", "name"),
        sa.Index("ix_customer_city", "city"),
        sa.Index("ix_customer_source", "source"),
        sa.Index("ix_customer_next_follow_up", "next_follow_up"),
        sa.Index("ix_customer_import_id", "import_id"),
    )
    sa.Table(
        "contact_point", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("value", sa.String, nullable=False),
        sa.Column("label", sa.String),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Index("ix_contact_point_customer_id", "customer_id"),
        sa.Index("ix_contact_point_kind_value", "kind", "value"),
    )
    sa.Table(
        "consent", md,
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("channel", sa.String, primary_key=True),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String),
    )
    sa.Table(
        "preference", md,
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("value", sa.String, nullable=False),
    )
    sa.Table(
        "customer_tag", md,
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("tag", sa.String, primary_key=True),
        sa.Index("ix_customer_tag_tag", "tag"),
    )
    sa.Table(
        "purchase", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("refund_of_id", sa.Integer, sa.ForeignKey("purchase.id")),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("purchased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purchased_on", sa.Date, nullable=False),
        sa.Column("product", sa.String),
        sa.Column("category", sa.String),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("channel", sa.String),
        sa.Column("ref", sa.String),
        sa.Column("note", sa.String),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("import_id", sa.Integer),
        sa.UniqueConstraint("ref"),
        sa.Index("ix_purchase_customer_at", "customer_id", "purchased_at"),
        sa.Index("ix_purchase_purchased_at", "purchased_at"),
        sa.Index("ix_purchase_purchased_on", "purchased_on"),
        sa.Index("ix_purchase_customer_on", "customer_id", "purchased_on"),
        sa.Index("ix_purchase_refund_of_id", "refund_of_id"),
        sa.Index("ix_purchase_import_id", "import_id"),
    )
    sa.Table(
        "interaction", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("outcome", sa.String),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_date", sa.Date),
        sa.Column("actor", sa.String),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("import_id", sa.Integer),
        sa.Index("ix_interaction_customer_at", "customer_id", "occurred_at"),
        sa.Index("ix_interaction_next_date", "next_date"),
        sa.Index("ix_interaction_import_id", "import_id"),
    )
    sa.Table(
        "audit", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("command", sa.String, nullable=False),
        sa.Column("entity", sa.String, nullable=False),
        sa.Column("entity_id", sa.Integer),
        sa.Column("customer_id", sa.Integer),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("before", sa.Text),
        sa.Column("after", sa.Text),
        sa.Column("prev_hash", sa.String, nullable=False),
        sa.Column("hash", sa.String, nullable=False),
        sa.Index("ix_audit_at", "at"),
        sa.Index("ix_audit_entity", "entity", "entity_id"),
        sa.Index("ix_audit_customer_id", "customer_id"),
    )
    md.create_all(conn)
