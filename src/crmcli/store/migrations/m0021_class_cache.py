"""What `crm tier recompute` and `crm tier rfm` keep between runs (issue #4: a day-to-day run reads only what
changed, not the whole purchase history; core/class_cache.py):

* ``class_cache``: at most one row: the per-customer purchase facts of the last run (first and last sale,
  sale days, sales and net spend per window, as of its date, up to its highest purchase id) and the
  classification it left, as one blob of integer columns; ``meta`` (JSON) says what it holds.
* ``class_cache_state``: one row with three counters that SQLite triggers raise, whatever command does it:
  ``purchase_gen`` whenever a purchase is deleted or its customer, date, kind or amount changes;
  ``class_gen`` whenever a customer_class row is inserted, changed or deleted; ``customer_gen`` whenever a
  customer is deleted, or deleted, restored or erased (its ``deleted_at`` / ``erased_at`` change). A part of the
  cache written at another value of its counter is not used. The customer_class triggers count only while
  ``class_armed`` is 1: a run of `crm tier` that writes a million rows sets it to 0 for its own bulk write and
  raises ``class_gen`` once, in the same transaction (a counting trigger costs about 1.2 µs a row, held under
  the write lock; a disarmed one 0.6 µs).

PostgreSQL gets the tables but no triggers: the cache is used on SQLite only (there, purchase ids are given in
commit order, which the "purchases since the last run" step relies on; PostgreSQL's sequences are not).
A later migration that rebuilds ``purchase`` or ``customer_class`` must create these triggers again.
Frozen: later changes are new migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

TRIGGERS = {  # name: (event, counter)
    "class_cache_purchase_deleted": ("AFTER DELETE ON purchase", "purchase_gen"),
    "class_cache_purchase_changed": ("AFTER UPDATE OF customer_id, purchased_on, kind, amount_minor ON purchase",
                                     "purchase_gen"),
    "class_cache_class_inserted": ("AFTER INSERT ON customer_class", "class_gen"),
    "class_cache_class_changed": ("AFTER UPDATE ON customer_class", "class_gen"),
    "class_cache_class_deleted": ("AFTER DELETE ON customer_class", "class_gen"),
    "class_cache_customer_deleted": ("AFTER DELETE ON customer", "customer_gen"),
    "class_cache_customer_changed": ("AFTER UPDATE OF deleted_at, erased_at ON customer", "customer_gen"),
}
WHEN = {"class_gen": "WHEN (SELECT class_armed FROM class_cache_state WHERE id = 1) = 1 "}


def upgrade(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table("class_cache", md,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("meta", sa.Text, nullable=False),
             sa.Column("data", sa.LargeBinary, nullable=False))
    state = sa.Table("class_cache_state", md,
                     sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("purchase_gen", sa.BigInteger, nullable=False),
                     sa.Column("class_gen", sa.BigInteger, nullable=False),
                     sa.Column("customer_gen", sa.BigInteger, nullable=False),
                     sa.Column("class_armed", sa.Integer, nullable=False))
    md.create_all(conn)
    conn.execute(state.insert().values(id=1, purchase_gen=0, class_gen=0, customer_gen=0, class_armed=1))
    if conn.dialect.name == "sqlite":
        for name, (when, counter) in TRIGGERS.items():
            conn.execute(sa.text(f"CREATE TRIGGER {name} {when} FOR EACH ROW {WHEN.get(counter, '')}BEGIN "
                                 f"UPDATE class_cache_state SET {counter} = {counter} + 1 WHERE id = 1; END"))
