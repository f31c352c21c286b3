"""churn_score without the foreign key on customer_id (issue 7: the first scoring of a store). SQLite checks a
foreign key for every inserted row, about a third of the cost of writing a million new scores. What the key
did is done by a trigger instead:

- ``churn_score_customer_removed`` (AFTER DELETE ON customer, for each row) deletes that customer's score:
  every way a customer row goes (`crm import undo`, the discard of an interrupted import, anything added
  later) takes its score with it.
- `crm churn score` takes COUNT(*) and MAX(id) of customer on its read snapshot and again in its write
  transaction; when they differ (a customer came or went in between), it deletes the rows of customers that
  no longer exist after writing (the foreign key used to refuse the whole write then).

Needs a number after 0016 (which rebuilt churn_score with the key): on a new store the migrations run in
number order. Frozen: later changes are new migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    md = sa.MetaData()
    if conn.dialect.name == "sqlite":
        sa.Table(
            "churn_score_new", md,
            sa.Column("customer_id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("p_alive", sa.Float, nullable=False),
            sa.Column("expected_purchases", sa.Float, nullable=False),
            sa.Column("order_value_minor", sa.BigInteger),
            sa.Column("clv_minor", sa.BigInteger),
        ).create(conn)
        conn.execute(sa.text("INSERT INTO churn_score_new (customer_id, p_alive, expected_purchases, order_value_minor, "
                             "clv_minor) SELECT customer_id, p_alive, expected_purchases, order_value_minor, clv_minor "
                             "FROM churn_score"))
        conn.execute(sa.text("DROP TABLE churn_score"))
        conn.execute(sa.text("ALTER TABLE churn_score_new RENAME TO churn_score"))
        conn.execute(sa.text(
            "CREATE TRIGGER churn_score_customer_removed AFTER DELETE ON customer FOR EACH ROW BEGIN "
            "DELETE FROM churn_score WHERE customer_id = OLD.id; END"))
        return
    for fk in sa.inspect(conn).get_foreign_keys("churn_score"):
        conn.execute(sa.text(f'ALTER TABLE churn_score DROP CONSTRAINT "{fk["name"]}"'))
    conn.execute(sa.text(
        "CREATE FUNCTION churn_score_customer_removed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "DELETE FROM churn_score WHERE customer_id = OLD.id; RETURN OLD; END $$"))
    conn.execute(sa.text("CREATE TRIGGER churn_score_customer_removed AFTER DELETE ON customer FOR EACH ROW "
                         "EXECUTE FUNCTION churn_score_customer_removed()"))
