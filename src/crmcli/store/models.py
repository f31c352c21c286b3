"""SQLModel tables. Money is integer minor units; timestamps are naive UTC; dates are dates.

The DDL that creates these tables lives, frozen, in crmcli.store.migrations; a test checks that a
migrated store and these models agree column by column.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def referrer_index(name: str, column: str) -> Index:
    """The index on a nullable foreign key: removing the row it points at looks up ``column = id``.

    Migration 0019 creates it partial (``WHERE column IS NOT NULL``) on SQLite and PostgreSQL. The clause is
    not repeated here: a ``postgresql_where=`` option makes SQLAlchemy import its whole PostgreSQL dialect
    when this module loads (about 0.15 s of every command on a SQLite store), and these models never create
    tables (the migrations do; the schema test compares index names, columns and uniqueness)."""
    return Index(name, column)


class Setting(SQLModel, table=True):
    __tablename__ = "setting"
    key: str = Field(primary_key=True)
    value: str  # JSON


class Customer(SQLModel, table=True):
    __tablename__ = "customer"
    # Removing a customer makes the database look for customers it referred: without an index a full scan
    # per removed row (migration 0019).
    __table_args__ = (referrer_index("ix_customer_referred_by", "referred_by_id"),)
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True)
    name: str = Field(index=True)
    gender: str | None = None
    birthday: date | None = None
    occupation: str | None = None
    company: str | None = None
    address: str | None = None
    city: str | None = Field(default=None, index=True)
    source: str | None = Field(default=None, index=True)
    referred_by_id: int | None = Field(default=None, foreign_key="customer.id")
    preferred_channel: str | None = None
    preferences_text: str | None = Field(default=None, sa_column=Column(Text))
    notes: str | None = Field(default=None, sa_column=Column(Text))
    next_follow_up: date | None = Field(default=None, index=True)
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    erased_at: datetime | None = None
    import_id: int | None = Field(default=None, index=True)


class ContactPoint(SQLModel, table=True):
    """A phone (E.164), e-mail (normalized) or social handle (label = network, e.g. wechat)."""

    __tablename__ = "contact_point"
    __table_args__ = (Index("ix_contact_point_kind_value", "kind", "value"),)
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    kind: str  # phone | email | social
    value: str
    label: str | None = None
    position: int = 0


class Consent(SQLModel, table=True):
    __tablename__ = "consent"
    customer_id: int = Field(foreign_key="customer.id", primary_key=True)
    channel: str = Field(primary_key=True)  # email | sms | phone | wechat
    granted: bool
    changed_at: datetime
    source: str | None = None


class Preference(SQLModel, table=True):
    __tablename__ = "preference"
    customer_id: int = Field(foreign_key="customer.id", primary_key=True)
    key: str = Field(primary_key=True)
    value: str


class CustomerTag(SQLModel, table=True):
    __tablename__ = "customer_tag"
    customer_id: int = Field(foreign_key="customer.id", primary_key=True)
    tag: str = Field(primary_key=True, index=True)


class Purchase(SQLModel, table=True):
    """A sale, or a refund linked to its sale (kind='refund'); amounts are positive minor units."""

    __tablename__ = "purchase"
    __table_args__ = (Index("ix_purchase_customer_at", "customer_id", "purchased_at"),
                      Index("ix_purchase_customer_on", "customer_id", "purchased_on"))
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id")
    kind: str = "sale"
    refund_of_id: int | None = Field(default=None, foreign_key="purchase.id", index=True)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    purchased_at: datetime = Field(index=True)
    # The business date in the store's time zone: date-based analytics group on it in SQL, so results
    # never depend on the machine's time zone.
    purchased_on: date = Field(index=True)
    product: str | None = None
    category: str | None = None
    quantity: int = 1
    channel: str | None = None
    ref: str | None = Field(default=None, unique=True)
    note: str | None = None
    created_at: datetime
    import_id: int | None = Field(default=None, index=True)


class Interaction(SQLModel, table=True):
    __tablename__ = "interaction"
    __table_args__ = (Index("ix_interaction_customer_at", "customer_id", "occurred_at"),)
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id")
    channel: str
    summary: str = Field(sa_column=Column(Text, nullable=False))
    outcome: str | None = None
    occurred_at: datetime
    next_date: date | None = Field(default=None, index=True)
    actor: str | None = None
    created_at: datetime
    import_id: int | None = Field(default=None, index=True)


class AuditEntry(SQLModel, table=True):
    """Append-only, hash-chained record of every mutation (hash = sha256(prev_hash + canonical row))."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id"),)
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    actor: str
    command: str
    entity: str
    entity_id: int | None = None
    customer_id: int | None = Field(default=None, index=True)
    action: str
    before: str | None = Field(default=None, sa_column=Column(Text))
    after: str | None = Field(default=None, sa_column=Column(Text))
    prev_hash: str
    hash: str
    # m0009: the chain covers sha256(salt + payload); an erasure drops the salt (see core/audit.py).
    payload_salt: str | None = None
    payload_digest: str | None = None


__all__ = [
    "Setting", "Customer", "ContactPoint", "Consent", "Preference", "CustomerTag", "Purchase",
    "Interaction", "AuditEntry", "UniqueConstraint",
]
