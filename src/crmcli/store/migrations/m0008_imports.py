"""Imports: one ``import_run`` row per `crm import` (file, mode, counts, status), so `crm import history` can
list them and `crm import undo` can remove what one created (the created rows carry ``import_id``, a column
the base schema already has). Plus a case-insensitive index on contact values, so that matching thousands of
imported e-mails ignoring case is an index lookup, not a scan. Frozen: later changes are new migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "import_run", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("mode", sa.String, nullable=False),
        sa.Column("options", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows_read", sa.Integer, nullable=False),
        sa.Column("created", sa.Integer, nullable=False),
        sa.Column("updated", sa.Integer, nullable=False),
        sa.Column("unchanged", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Integer, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("last_audit_id", sa.Integer),
        sa.Column("undone_at", sa.DateTime(timezone=True)),
        sa.Column("actor", sa.String, nullable=False),
    )
    md.create_all(conn)
    # COLLATE NOCASE folds ASCII case exactly like lower() (SQLite without ICU), and the index is used by
    # `value COLLATE NOCASE IN (...)`.
    if conn.dialect.name == "postgresql":
        # PostgreSQL has no NOCASE collation: an expression index on lower(value) serves lower(value) IN (...).
        conn.execute(sa.text("CREATE INDEX ix_contact_point_kind_value_nocase ON contact_point (kind, lower(value))"))
        return
    conn.execute(sa.text("CREATE INDEX ix_contact_point_kind_value_nocase ON contact_point (kind, value COLLATE NOCASE)"))
