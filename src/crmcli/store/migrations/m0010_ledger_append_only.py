"""The points ledger is append-only in the database itself, not only by convention in the code: triggers
refuse any UPDATE of ``points_ledger`` and ``points_allocation`` and any DELETE of allocations. Deleting
ledger rows is refused too, except while the one-row guard table ``points_ledger_unlock`` holds a row —
`crm import undo` sets it inside its own transaction to remove the unused points of purchases it is removing
(the import never happened, so neither did its points), then clears it. Frozen: later changes are new
migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

NO_UPDATE = "points ledger rows are never updated (append a new row instead)"
NO_DELETE = "points ledger rows are never deleted (append a reversing row instead)"


def upgrade(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table("points_ledger_unlock", md, sa.Column("import_id", sa.Integer, primary_key=True, autoincrement=False))
    md.create_all(conn)
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"""
            CREATE FUNCTION crm_points_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'UPDATE' THEN
                    RAISE EXCEPTION '{NO_UPDATE}';
                END IF;
                IF TG_TABLE_NAME = 'points_ledger' AND EXISTS (SELECT 1 FROM points_ledger_unlock) THEN
                    RETURN OLD;
                END IF;
                RAISE EXCEPTION '{NO_DELETE}';
            END $$"""))
        for table in ("points_ledger", "points_allocation"):
            conn.execute(sa.text(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                                 "FOR EACH ROW EXECUTE FUNCTION crm_points_append_only()"))
        return
    for table in ("points_ledger", "points_allocation"):
        conn.execute(sa.text(f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                             f"BEGIN SELECT RAISE(ABORT, '{NO_UPDATE}'); END"))
    conn.execute(sa.text("CREATE TRIGGER points_allocation_no_delete BEFORE DELETE ON points_allocation "
                         f"BEGIN SELECT RAISE(ABORT, '{NO_DELETE}'); END"))
    conn.execute(sa.text("CREATE TRIGGER points_ledger_no_delete BEFORE DELETE ON points_ledger "
                         "WHEN NOT EXISTS (SELECT 1 FROM points_ledger_unlock) "
                         f"BEGIN SELECT RAISE(ABORT, '{NO_DELETE}'); END"))
