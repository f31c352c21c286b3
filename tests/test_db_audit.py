"""`crm db audit`: the trail shown per customer and since a day, and --verify detecting edited, deleted and
inserted rows (also after an erasure stripped old rows); migration 0009's re-chaining of older trails."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

import pytest
from crm_helpers import audit_rows, cli, fails, fast_cli, from_template, template_store  # noqa: F401 (fixtures)

from crmcli.core import audit

AS_OF = "2024-06-15"


def build(cli: Any) -> None:
    cli.ok("customer", "add", "Ann Lee", "--phone", "13800138000", "--email", "ann@example.com", "--consent", "sms=yes")
    cli.ok("customer", "add", "Bob Li", "--phone", "13900139000")
    cli.ok("customer", "edit", "Ann", "--city", "上海", "--notes", "prefers mornings")
    cli.ok("purchase", "add", "Ann", "100", "--at", "2024-06-01", "--as-of", AS_OF)
    cli.ok("purchase", "add", "Bob", "30", "--at", "2024-06-02", "--as-of", AS_OF)
    cli.ok("customer", "log", "Ann", "-c", "phone", "-s", "called Ann Lee about beans", "--as-of", AS_OF)


@pytest.fixture
def shop(cli: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return from_template("audit-shop", cli, tmp_path_factory, build)


def sql(db: Any, statement: str, *params: Any) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(statement, params)
    conn.close()


def test_audit_lists_rows_per_customer_and_since(shop):
    everything = shop.json("db", "audit")
    assert [r["action"] for r in everything] == ["init", "add", "add", "edit", "add", "add", "add"]
    assert list(everything[1]) == ["id", "at", "actor", "command", "entity", "entity_id", "customer", "action", "before",
                                   "after", "hash"]
    ann = shop.json("db", "audit", "Ann")
    assert {r["customer"] for r in ann} == {"C000001"} and len(ann) == 4
    edit = next(r for r in ann if r["action"] == "edit")
    assert json.loads(edit["after"]) == {"city": "上海", "notes": "prefers mornings"}
    assert shop.json("db", "audit", "--since", "2999-01-01") == []
    assert len(shop.json("db", "audit", "--limit", "2")) == 2
    fails(shop, 3, "db", "audit", "Nobody")


def test_verify_passes_on_an_intact_trail(shop):
    result = shop.json("db", "audit", "--verify")
    assert result[0]["intact"] is True and result[0]["rows"] == 7 and len(result[0]["head"]) == 64


@pytest.mark.parametrize("tamper", ["edit", "edit-hash-field", "delete", "insert", "reorder"])
def test_verify_names_the_first_broken_row(shop, tamper):
    rows = audit_rows(shop.db)
    target = rows[3]["id"]  # the edit of Ann's record
    if tamper == "edit":
        sql(shop.db, "UPDATE audit SET after = replace(after, '上海', '北京') WHERE id = ?", target)
        broken = target
    elif tamper == "edit-hash-field":
        sql(shop.db, "UPDATE audit SET actor = 'mallory' WHERE id = ?", target)
        broken = target
    elif tamper == "delete":
        sql(shop.db, "DELETE FROM audit WHERE id = ?", target)
        broken = rows[4]["id"]
    elif tamper == "insert":
        # a forged row that copies a real one's hashes and payload: its place in the chain gives it away
        r = rows[2]
        sql(shop.db, "UPDATE audit SET id = id + 100 WHERE id > ?", target)
        sql(shop.db, "INSERT INTO audit (id, at, actor, command, entity, entity_id, customer_id, action, before, after, "
            "prev_hash, hash, payload_salt, payload_digest) SELECT ?, at, actor, command, entity, entity_id, customer_id, "
            "action, before, after, ?, hash, payload_salt, payload_digest FROM audit WHERE id = ?",
            target + 1, rows[3]["hash"], r["id"])
        broken = target + 1
    else:  # two rows swapped
        sql(shop.db, "UPDATE audit SET id = -1 WHERE id = ?", target)
        sql(shop.db, "UPDATE audit SET id = ? WHERE id = ?", target, target + 1)
        sql(shop.db, "UPDATE audit SET id = ? WHERE id = -1", target + 1)
        broken = target
    fails(shop, 1, "db", "audit", "--verify", says=[f"broken at audit row #{broken}"])
    check = shop("db", "check", "--format", "json")
    assert check.exit_code == 1 and f"failed audit: broken at audit row #{broken}" in check.stderr
    assert [c["ok"] for c in json.loads(check.stdout)] == [True, True, False, True]


def test_forget_keeps_the_trail_verifiable_and_changes_to_stripped_rows_are_caught(shop):
    shop.ok("customer", "forget", "Ann", "--yes")
    shop.ok("db", "audit", "--verify")
    rows = audit_rows(shop.db)
    erase = rows[-1]
    assert (erase["entity"], erase["action"], erase["customer_id"]) == ("customer", "erase", 1)
    stripped = {int(k) for k in erase["after"][audit.REDACTED_KEY]}
    assert stripped == {r["id"] for r in rows if r["customer_id"] == 1 and r["action"] in ("add", "edit")
                        and r["entity"] in ("customer", "interaction")}
    assert all(r["payload_salt"] is None for r in rows if r["id"] in stripped)
    assert all(r["payload_salt"] for r in rows if r["id"] not in stripped)
    text = json.dumps([r["before"] for r in rows] + [r["after"] for r in rows], ensure_ascii=False)
    for value in ("Ann Lee", "13800138000", "ann@example.com", "上海", "prefers mornings", "about beans"):
        assert value not in text
    assert "Bob Li" in text  # the others keep theirs
    # the amounts stay
    assert [r["after"]["amount_minor"] for r in rows if r["entity"] == "purchase"] == [10000, 3000]

    first = min(stripped)
    sql(shop.db, "UPDATE audit SET after = replace(after, '[erased]', 'Ann Lee') WHERE id = ?", first)
    fails(shop, 1, "db", "audit", "--verify", says=[f"#{first}"])
    sql(shop.db, "UPDATE audit SET after = replace(after, 'Ann Lee', '[erased]') WHERE id = ?", first)
    shop.ok("db", "audit", "--verify")
    sql(shop.db, "DELETE FROM audit WHERE id = ?", erase["id"])  # the erasure row that vouches for them
    fails(shop, 1, "db", "audit", "--verify", says=[f"#{first}"])


def _old_form(db: Any) -> None:
    """Turn the trail back into the form written before migration 0009 (hash over the payload text)."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    prev = audit.GENESIS
    from datetime import datetime, timezone

    with conn:
        for r in conn.execute("SELECT * FROM audit ORDER BY id").fetchall():
            at = datetime.fromisoformat(r["at"]).replace(tzinfo=timezone.utc)
            h = audit.row_hash(prev, at=at, actor=r["actor"], command=r["command"], entity=r["entity"],
                               entity_id=r["entity_id"], customer_id=r["customer_id"], action=r["action"],
                               before=r["before"], after=r["after"])
            conn.execute("UPDATE audit SET prev_hash = ?, hash = ?, payload_salt = NULL, payload_digest = NULL "
                         "WHERE id = ?", (prev, h, r["id"]))
            prev = h
    conn.close()


def _rerun_migration(db: Any) -> None:
    from crmcli.store.engine import open_store

    sql(db, "ALTER TABLE audit DROP COLUMN payload_salt")
    sql(db, "ALTER TABLE audit DROP COLUMN payload_digest")
    sql(db, "DELETE FROM schema_migration WHERE name = 'm0009_privacy'")
    open_store(str(db)).dispose()


def test_old_trails_verify_and_migration_0009_rechains_them(shop):
    _old_form(shop.db)
    shop.ok("db", "audit", "--verify")  # the old form still verifies
    _rerun_migration(shop.db)
    rows = audit_rows(shop.db)
    assert all(r["payload_salt"] and r["payload_digest"] for r in rows)
    shop.ok("db", "audit", "--verify")
    shop.ok("customer", "forget", "Ann", "--yes")
    shop.ok("db", "audit", "--verify")


def test_migration_0009_leaves_a_broken_old_trail_broken_at_the_same_row(shop):
    _old_form(shop.db)
    target = audit_rows(shop.db)[4]["id"]
    sql(shop.db, "UPDATE audit SET after = replace(after, '10000', '1') WHERE id = ?", target)
    fails(shop, 1, "db", "audit", "--verify", says=[f"#{target}"])
    _rerun_migration(shop.db)
    rows = audit_rows(shop.db)
    assert [bool(r["payload_digest"]) for r in rows] == [r["id"] < target for r in rows]
    fails(shop, 1, "db", "audit", "--verify", says=[f"#{target}"])


def test_payload_digest_needs_the_salt():
    digest = audit.payload_digest("00" * 16, None, '{"phone": "+8613800138000"}')
    assert digest != hashlib.sha256(b'{"phone": "+8613800138000"}').hexdigest()
    assert digest != audit.payload_digest(None, None, '{"phone": "+8613800138000"}')


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

payloads = st.one_of(st.none(), st.dictionaries(st.sampled_from(["name", "city", "amount_minor", "notes", "x"]),
                                                st.one_of(st.text(max_size=8), st.integers(), st.none()), max_size=3))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.tuples(payloads, payloads, st.sampled_from([None, 1, 2])), min_size=2, max_size=8),
       pick=st.integers(min_value=0), field=st.sampled_from(["before", "after", "actor", "customer_id", "entity_id"]))
def test_any_edit_of_any_row_is_named(store, entries, pick, field):
    """Property: on a trail of random rows, changing one field of any one row makes verify name that row."""
    table = audit.AuditEntry.__table__
    with store.write() as session:
        session.execute(table.delete())
        audit.record_many(session, [dict(entity="t", entity_id=i, customer_id=c, action="a", before=b, after=a)
                                    for i, (b, a, c) in enumerate(entries)])
    with store.read() as session:
        assert audit.verify(session) is None
        ids = [r[0] for r in session.execute(table.select().with_only_columns(table.c.id).order_by(table.c.id))]
    target = ids[pick % len(ids)]
    with store.write() as session:
        row = session.execute(table.select().where(table.c.id == target)).mappings().one()
        changed = {"before": '{"tampered": 1}', "after": '{"tampered": 2}', "actor": row["actor"] + "!",
                   "customer_id": (row["customer_id"] or 0) + 7, "entity_id": (row["entity_id"] or 0) + 7}[field]
        if changed == row[field]:
            changed = '{"tampered": 3}'
        session.execute(table.update().where(table.c.id == target).values({field: changed}))
    with store.read() as session:
        assert audit.verify(session) == target
