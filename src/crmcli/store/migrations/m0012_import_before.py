"""Stepped upsert imports (core/io/importer.py, core/io/before_images.py): before an import changes an existing
customer it keeps that customer's rows as they were (``import_before``), so an import that fails after some
of its steps were committed can put them back. The rows live only while the import runs. No foreign key to
the customer: the image is not a use of the customer (undo, erasure and rollback look for such keys).
Frozen: later changes are new migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table("import_run", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "import_before", md,
        sa.Column("import_id", sa.Integer, sa.ForeignKey("import_run.id"), primary_key=True),
        sa.Column("customer_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("audit_floor", sa.Integer, nullable=False),  # the trail's last row when the image was taken
        sa.Column("image", sa.Text, nullable=False),  # JSON: the customer's row and its own parts' rows
    )
    md.tables["import_before"].create(conn)
