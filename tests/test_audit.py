"""Every mutation writes an audit row (who, when, which command, what, before/after) in its own transaction,
and the rows form a hash chain that core.audit.verify checks."""

from __future__ import annotations

import getpass
import sqlite3
from datetime import datetime, timezone

import pytest
from crm_helpers import audit_rows, cli, fails, fast_cli, template_store  # noqa: F401 (fixtures)

from crmcli.core import audit

AS_OF = "2024-06-15"


def _verify(store):
    with store.read() as session:
        return audit.verify(session)


@pytest.fixture
def history(cli):
    """One of each mutation."""
    cli.ok("customer", "add", "Ann", "--phone", "13800138000", "--consent", "sms=yes")
    cli.ok("customer", "edit", "Ann", "--city", "上海", "--consent", "sms=no")
    cli.ok("customer", "tag", "Ann", "vip")
    cli.ok("customer", "log", "Ann", "-c", "phone", "-s", "called", "--next", "in 3 days", "--as-of", AS_OF)
    cli.ok("purchase", "add", "Ann", "100", "--at", "2024-06-01", "--ref", "R1", "--as-of", AS_OF)
    cli.ok("purchase", "refund", "1", "40", "--as-of", AS_OF)
    cli.ok("customer", "rm", "Ann", "--yes")
    cli.ok("customer", "restore", "Ann")
    cli.ok("config", "set", "privacy.mask", "on")
    return cli


def test_each_mutation_is_audited(history, db_path):
    rows = audit_rows(db_path)
    assert [(r["entity"], r["action"], r["command"]) for r in rows] == [
        ("store", "init", "crm init"),
        ("customer", "add", "crm customer add"),
        ("customer", "edit", "crm customer edit"),
        ("customer", "tag", "crm customer tag"),
        ("interaction", "add", "crm customer log"),
        ("purchase", "add", "crm purchase add"),
        ("purchase", "refund", "crm purchase refund"),
        ("customer", "delete", "crm customer rm"),
        ("customer", "restore", "crm customer restore"),
        ("setting", "set", "crm config set"),
    ]
    me = getpass.getuser()
    assert all(r["actor"] == me for r in rows)
    now = datetime.now(timezone.utc)
    for r in rows:
        at = datetime.fromisoformat(r["at"]).replace(tzinfo=timezone.utc)
        assert abs((now - at).total_seconds()) < 300 and at.microsecond == 0
    by_action = {(r["entity"], r["action"]): r for r in rows}
    added = by_action[("customer", "add")]
    assert added["entity_id"] == added["customer_id"] == 1 and added["before"] is None
    assert added["after"]["name"] == "Ann" and added["after"]["contacts"] == ["phone:+8613800138000"]
    assert added["after"]["consent"] == {"sms": True}
    edited = by_action[("customer", "edit")]
    assert edited["before"] == {"city": None, "consent": {"sms": True}}
    assert edited["after"] == {"city": "上海", "consent": {"sms": False}}
    logged = by_action[("interaction", "add")]
    assert logged["customer_id"] == 1 and logged["after"]["next_date"] == "2024-06-18"
    sale = by_action[("purchase", "add")]
    assert sale["after"]["amount_minor"] == 10000 and sale["after"]["ref"] == "R1" and sale["customer_id"] == 1
    deleted, restored = by_action[("customer", "delete")], by_action[("customer", "restore")]
    assert deleted["before"] == {"deleted_at": None} and deleted["after"]["deleted_at"]
    assert restored["after"] == {"deleted_at": None}
    assert by_action[("setting", "set")]["after"] == {"privacy.mask": True}


def test_the_chain_verifies_and_detects_tampering(history, store, db_path):
    assert _verify(store) is None
    rows = audit_rows(db_path)
    assert rows[0]["prev_hash"] == audit.GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:]))

    conn = sqlite3.connect(db_path)
    with conn:  # someone edits history by hand
        conn.execute("UPDATE audit SET after = replace(after, '10000', '1') WHERE action = 'add' AND entity = 'purchase'")
    tampered = next(r["id"] for r in rows if r["entity"] == "purchase" and r["action"] == "add")
    assert _verify(store) == tampered
    with conn:
        conn.execute("UPDATE audit SET after = replace(after, '\"amount_minor\": 1,', '\"amount_minor\": 10000,') "
                     "WHERE id = ?", (tampered,))
    assert _verify(store) is None  # put back exactly: intact again
    with conn:  # a row removed from the middle
        conn.execute("DELETE FROM audit WHERE id = ?", (rows[3]["id"],))
    assert _verify(store) == rows[4]["id"]
    conn.close()


def test_failed_and_no_op_commands_write_no_audit_rows(cli, db_path):
    cli.ok("customer", "add", "Ann", "--phone", "13800138000")
    count = len(audit_rows(db_path))
    fails(cli, 4, "customer", "add", "Bob", "--phone", "13800138000")
    fails(cli, 5, "purchase", "add", "Ann", "abc")
    cli.ok("customer", "edit", "Ann", "--add-phone", "13800138000")  # already there
    cli.ok("purchase", "add", "Ann", "5", "--ref", "R", "--as-of", AS_OF)
    cli.ok("purchase", "add", "Ann", "5", "--ref", "R", "--as-of", AS_OF)  # the same order again
    assert [r["action"] for r in audit_rows(db_path)[count:]] == ["add"]


def test_record_many_chains_in_one_call(store):
    with store.write() as session:
        audit.record_many(session, [dict(entity="test", entity_id=i, action="bulk", after={"n": i}) for i in range(5)])
    assert _verify(store) is None


def test_python_api_writes_are_audited_as_python(store, db_path):
    from crmcli.core import customers
    from crmcli.core.context import StoreContext

    with store.write() as session:
        customers.add_customer(session, customers.CustomerInput(name="Script"), StoreContext.load(session))
    assert audit_rows(db_path)[-1]["command"] == "python"
