"""Tables of the classification feature (tiers, RFM segments, lifecycle stages, membership levels).

- ``customer_class``: one derived row per classified customer (recomputable from purchases, except the
  membership level, whose downgrade policy depends on when it was reached).
- ``tier_pin``: manual tiers that ``crm tier recompute`` keeps (facts entered by people).
- ``class_run``: one row per recompute / rfm run / pin / unpin (when, as of which date, rules used).
- ``class_history``: append-only tier and level changes with the figures behind them.
- ``member_level``: membership level definitions (threshold, privileges).
- ``class_cache`` / ``class_cache_state``: what recompute and rfm keep between runs (core/class_cache.py;
  migration m0021_class_cache, which also adds the SQLite triggers that raise the counters of ``class_cache_state``).

The frozen DDL is in crmcli.store.migrations.m0003_tiers and m0013_tier_indexes (which also adds the covering
index ``ix_purchase_class`` on purchase, declared at the end of this module); keep them identical.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

from crmcli.store.models import Purchase


class CustomerClass(SQLModel, table=True):
    __tablename__ = "customer_class"
    customer_id: int = Field(foreign_key="customer.id", primary_key=True)
    tier: str | None = None  # effective: the pin if pinned, else computed
    computed_tier: str | None = None  # what the rules gave at the last recompute
    net_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))  # in the tier window
    orders: int = 0  # sales in the tier window
    r_score: int | None = None
    f_score: int | None = None
    m_score: int | None = None
    segment: str | None = None  # key, e.g. "at_risk"
    stage: str | None = None  # key, e.g. "lost"
    level: str | None = None  # member_level.name
    level_since: date | None = None  # reached or last re-evaluated (downgrade policy)
    basis_minor: int | None = Field(default=None, sa_column=Column(BigInteger))  # level basis value


class TierPin(SQLModel, table=True):
    __tablename__ = "tier_pin"
    customer_id: int = Field(foreign_key="customer.id", primary_key=True)
    tier: str
    reason: str = Field(sa_column=Column(Text, nullable=False))
    pinned_at: datetime
    actor: str


class ClassRun(SQLModel, table=True):
    __tablename__ = "class_run"
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # recompute | rfm | pin | unpin
    as_of: date
    at: datetime
    actor: str
    params: str | None = Field(default=None, sa_column=Column(Text))  # JSON: the rules used
    counts: str | None = Field(default=None, sa_column=Column(Text))  # JSON: moves and totals


class ClassHistory(SQLModel, table=True):
    __tablename__ = "class_history"
    __table_args__ = (Index("ix_class_history_customer", "customer_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="class_run.id")
    customer_id: int = Field(foreign_key="customer.id")
    kind: str  # tier | level
    from_value: str | None = None
    to_value: str | None = None
    net_minor: int | None = Field(default=None, sa_column=Column(BigInteger))
    orders: int | None = None
    tenure_days: int | None = None
    share_bp: int | None = None  # pareto: revenue share of the customers ranked above, in 1/100 %
    basis_minor: int | None = Field(default=None, sa_column=Column(BigInteger))
    note: str | None = Field(default=None, sa_column=Column(Text))


class MemberLevel(SQLModel, table=True):
    __tablename__ = "member_level"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    basis: str  # spend | points (must match the level.basis setting)
    threshold: int = Field(sa_column=Column(BigInteger, nullable=False))  # minor units or points
    discount_pct: str | None = None  # decimal text, e.g. "5" or "7.5"
    points_multiplier: str | None = None  # decimal text, e.g. "1.5"
    perks: str | None = Field(default=None, sa_column=Column(Text))  # JSON list of strings
    created_at: datetime
    updated_at: datetime


class ClassCache(SQLModel, table=True):
    __tablename__ = "class_cache"
    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    meta: str = Field(sa_column=Column(Text, nullable=False))  # JSON: what the blob holds
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # integer columns, back to back


class ClassCacheState(SQLModel, table=True):
    __tablename__ = "class_cache_state"
    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    purchase_gen: int = Field(sa_column=Column(BigInteger, nullable=False))  # raised by triggers (m0021)
    class_gen: int = Field(sa_column=Column(BigInteger, nullable=False))
    customer_gen: int = Field(sa_column=Column(BigInteger, nullable=False))
    class_armed: int  # 0: the customer_class triggers do not count (tier runs drop them for their write instead)


# The covering index of the per-customer purchase aggregates (migration m0013_tier_indexes).
Index("ix_purchase_class", Purchase.__table__.c.customer_id, Purchase.__table__.c.purchased_on,
      Purchase.__table__.c.kind, Purchase.__table__.c.amount_minor)

__all__ = ["CustomerClass", "TierPin", "ClassRun", "ClassHistory", "MemberLevel", "ClassCache", "ClassCacheState"]
