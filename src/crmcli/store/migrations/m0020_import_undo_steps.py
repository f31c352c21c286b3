"""`crm import undo` and the taking back of a failed import remove records in short steps (core/io/removal.py),
so other writers get the lock in between (issue #10). The run row keeps their progress, so a killed undo or
take-back is finished by the next crm command or a rerun instead of starting over:

* ``undo_cursor``: every record of the import whose id is at or above it has been dealt with (removed, or
  kept because another command used it meanwhile); steps go from the highest id down;
* ``undo_removed`` / ``undo_kept``: how many records the steps removed / kept so far.

An undo in progress has the status ``undoing`` (a value, no schema change). Frozen: later changes are new
migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    for column in ("undo_cursor", "undo_removed", "undo_kept"):
        conn.execute(sa.text(f"ALTER TABLE import_run ADD COLUMN {column} INTEGER"))
