"""Import runs (`crm import history`, `crm import undo`). The frozen DDL is crmcli.store.migrations.m0008_imports.

Rows created by an import carry its id in their own ``import_id`` column (customer, purchase, interaction).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, Text
from sqlmodel import Field, SQLModel

from crmcli.store.models import ContactPoint


class ImportRun(SQLModel, table=True):
    __tablename__ = "import_run"
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # customers | purchases | interactions
    source: str  # the file name, or '-' for stdin
    mode: str  # create | upsert | update
    options: str | None = Field(default=None, sa_column=Column(Text))  # JSON of the options used
    started_at: datetime
    finished_at: datetime
    rows_read: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    skipped: int
    status: str  # running | done | partial | failed | undoing | undone
    last_audit_id: int | None = None  # the audit trail's last row when the import committed
    undone_at: datetime | None = None
    actor: str
    owner: str | None = None  # "host:pid:start" of the process while the import runs (migration m0011)
    # Progress of a stepped undo or take-back (migration m0020, core/io/removal.py).
    undo_cursor: int | None = None  # records with an id at or above it are dealt with (removed or kept)
    undo_removed: int | None = None
    undo_kept: int | None = None


class ImportBefore(SQLModel, table=True):
    """An existing customer as it was before a running upsert import changed it (migration m0012)."""

    __tablename__ = "import_before"
    import_id: int = Field(sa_column=Column(Integer, ForeignKey("import_run.id"), primary_key=True))
    customer_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    audit_floor: int
    image: str = Field(sa_column=Column(Text, nullable=False))


# Mirror of the case-insensitive (COLLATE NOCASE) contact index created by m0008; the reflection used by the
# schema test reports its columns as (kind, value).
Index("ix_contact_point_kind_value_nocase", ContactPoint.__table__.c.kind, ContactPoint.__table__.c.value)

__all__ = ["ImportBefore", "ImportRun"]
