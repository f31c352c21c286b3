"""Imports that commit in steps (core/io/importer.py): ``import_run.owner`` names the process of a running
import ("host:pid:start"), so the next crm command can tell a live import from one whose process died and
take the dead one's rows back (core/io/rollback.py). And the ledger guard of m0010 now also lets allocations
be deleted while ``points_ledger_unlock`` holds a row: a failed import removes the points its purchases
earned, and their refunds' allocations with them. Frozen: later changes are new migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

NO_UPDATE = "points ledger rows are never updated (append a new row instead)"
NO_DELETE = "points ledger rows are never deleted (append a reversing row instead)"


def upgrade(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE import_run ADD COLUMN owner VARCHAR"))
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"""
            CREATE OR REPLACE FUNCTION crm_points_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'UPDATE' THEN
                    RAISE EXCEPTION '{NO_UPDATE}';
                END IF;
                IF EXISTS (SELECT 1 FROM points_ledger_unlock) THEN
                    RETURN OLD;
                END IF;
                RAISE EXCEPTION '{NO_DELETE}';
            END $$"""))
        return
    conn.execute(sa.text("DROP TRIGGER points_allocation_no_delete"))
    conn.execute(sa.text("CREATE TRIGGER points_allocation_no_delete BEFORE DELETE ON points_allocation "
                         "WHEN NOT EXISTS (SELECT 1 FROM points_ledger_unlock) "
                         f"BEGIN SELECT RAISE(ABORT, '{NO_DELETE}'); END"))
