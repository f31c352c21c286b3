"""Loyalty points tables: an append-only ledger and the append-only record of which lots each debit used.

Rows are never updated or deleted. A ledger row with ``points > 0`` is a *lot* (earned, granted, adjusted up
or restored points with their own expiry and lock dates); a row with ``points < 0`` is a debit (redeem,
expire, refund reversal, adjust down, debt repayment) whose ``points_allocation`` rows say which lots it
consumed. ``debt`` is a second, separate running total: a refund reversal that finds too few points records
the shortfall there, and later credits repay it. The frozen DDL is crmcli.store.migrations.m0002_points.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel


class PointsLedger(SQLModel, table=True):
    __tablename__ = "points_ledger"
    __table_args__ = (Index("ix_points_ledger_customer_id", "customer_id", "id"),
                      Index("ix_points_ledger_key", "key", unique=True))
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id")
    # earn | redeem | expire | reversal | adjust | referral | birthday | restore | repay
    kind: str
    points: int = Field(sa_column=Column(BigInteger, nullable=False))  # + credit (a lot), - debit
    debt: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))  # + shortfall, - repaid
    effective_on: date = Field(index=True)  # business date (store time zone) the change takes effect
    created_at: datetime  # when it was recorded (UTC)
    expires_on: date | None = Field(default=None, index=True)  # lots: last day the points can be used
    spendable_on: date | None = None  # lots: first day the points can be redeemed (lock window)
    purchase_id: int | None = Field(default=None, foreign_key="purchase.id", index=True)
    ref_id: int | None = Field(default=None, foreign_key="points_ledger.id", index=True)
    reason: str | None = None
    actor: str
    detail: str | None = Field(default=None, sa_column=Column(Text))  # JSON: how the points were computed
    key: str | None = None  # idempotency key (earn:<purchase>, expire:<lot>, ...), unique when set


class PointsAllocation(SQLModel, table=True):
    """Debit ``debit_id`` took ``points`` from lot ``lot_id``."""

    __tablename__ = "points_allocation"
    id: int | None = Field(default=None, primary_key=True)
    debit_id: int = Field(foreign_key="points_ledger.id", index=True)
    lot_id: int = Field(foreign_key="points_ledger.id", index=True)
    points: int = Field(sa_column=Column(BigInteger, nullable=False))


class PointsLedgerUnlock(SQLModel, table=True):
    """Holds a row only inside `crm import undo`'s transaction: the one time ledger rows may be deleted
    (triggers of migration m0010 enforce append-only otherwise)."""

    __tablename__ = "points_ledger_unlock"
    import_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})


__all__ = ["PointsLedger", "PointsAllocation", "PointsLedgerUnlock"]
