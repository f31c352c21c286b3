"""Privacy: the audit chain covers a salted digest of each row's before/after payload instead of the text,
so `crm customer forget` can strip a person's values from old rows and the chain still verifies (see
core/audit.py). Adds audit.payload_salt and audit.payload_digest and re-chains the existing rows into that
form, but only as far as the old chain verifies: from the first broken row on, rows keep their old form, so
`crm db audit --verify` still names that row. Frozen (the hash formulas are copied here on purpose): later
changes are new migrations."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_GENESIS = "0" * 64


def _at(value: datetime) -> str:
    """As the trail's writer formatted it: aware UTC (the column reads back naive here)."""
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()


def _old_hash(prev: str, row: dict) -> str:
    body = json.dumps([_at(row["at"]), row["actor"], row["command"], row["entity"], row["entity_id"],
                       row["customer_id"], row["action"], row["before"], row["after"]], ensure_ascii=False)
    return hashlib.sha256((prev + body).encode("utf-8")).hexdigest()


def _new_hash(prev: str, row: dict, digest: str) -> str:
    body = json.dumps([_at(row["at"]), row["actor"], row["command"], row["entity"], row["entity_id"],
                       row["customer_id"], row["action"], "sha256:" + digest], ensure_ascii=False)
    return hashlib.sha256((prev + body).encode("utf-8")).hexdigest()


def upgrade(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE audit ADD COLUMN payload_salt VARCHAR"))
    conn.execute(sa.text("ALTER TABLE audit ADD COLUMN payload_digest VARCHAR"))
    md = sa.MetaData()
    audit = sa.Table(
        "audit", md,
        sa.Column("id", sa.Integer, primary_key=True), sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("actor", sa.String), sa.Column("command", sa.String), sa.Column("entity", sa.String),
        sa.Column("entity_id", sa.Integer), sa.Column("customer_id", sa.Integer), sa.Column("action", sa.String),
        sa.Column("before", sa.Text), sa.Column("after", sa.Text), sa.Column("prev_hash", sa.String),
        sa.Column("hash", sa.String), sa.Column("payload_salt", sa.String), sa.Column("payload_digest", sa.String))
    old_prev, new_prev = _GENESIS, _GENESIS
    updates: list[dict] = []
    update = (audit.update().where(audit.c.id == sa.bindparam("b_id"))
              .values(payload_salt=sa.bindparam("b_salt"), payload_digest=sa.bindparam("b_digest"),
                      prev_hash=sa.bindparam("b_prev"), hash=sa.bindparam("b_hash")))
    rows = conn.execute(sa.select(audit).order_by(audit.c.id)).mappings().all()
    for row in rows:
        if row["prev_hash"] != old_prev or row["hash"] != _old_hash(old_prev, row):
            break  # the old chain is broken here: leave this row and the rest for verify to report
        salt = secrets.token_hex(16)
        digest = hashlib.sha256(json.dumps([salt, row["before"], row["after"]], ensure_ascii=False)
                                .encode("utf-8")).hexdigest()
        link = _new_hash(new_prev, row, digest)
        updates.append({"b_id": row["id"], "b_salt": salt, "b_digest": digest, "b_prev": new_prev, "b_hash": link})
        old_prev, new_prev = row["hash"], link
        if len(updates) >= 1000:
            conn.execute(update, updates)
            updates = []
    if updates:
        conn.execute(update, updates)
