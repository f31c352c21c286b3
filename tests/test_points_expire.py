"""`crm points expire` computes in a read transaction and writes in a short one: when the ledger changes in
between (another command expired, earned or redeemed meanwhile), it computes again and never writes a lot's
expiry twice or from a stale remainder."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from test_points import add_customer, buy, ledger, rules

from crmcli.core.points import expiry


def test_expire_computes_again_when_the_ledger_changed_after_it_read(cli, db_path, store, monkeypatch):
    rules(cli, expiry="30d")
    ann, bob = add_customer(cli, "Ann"), add_customer(cli, "Bob")
    buy(cli, ann, "100", "2024-01-01")  # lot 1, valid through 2024-01-31
    buy(cli, bob, "70", "2024-01-02")  # lot 2, through 2024-02-01
    day = date(2024, 3, 1)
    calls: list[int] = []
    real_plan = expiry.plan

    def plan_then_interfere(session: Any, as_of: date, **kw: Any) -> expiry.Plan:
        todo = real_plan(session, as_of, **kw)
        calls.append(len(todo.found))
        if len(calls) == 1:
            # Between expire's reading and its writing, another command expires Bob's lot (as a refund does).
            with store.write() as other:
                expiry.write(other, real_plan(other, day, customer_ids=[2]))
        return todo

    monkeypatch.setattr(expiry, "plan", plan_then_interfere)
    found, _people = expiry.expire_in_store(store, day)
    assert calls == [2, 1]  # read twice: the first result was stale
    assert [(r["id"], r["points"]) for r in found] == [(1, 100)]
    rows = [(r["kind"], r["points"], r["ref_id"], r["key"]) for r in ledger(db_path)]
    assert rows[2:] == [("expire", -70, 2, "expire:2"), ("expire", -100, 1, "expire:1")]
    assert "Expired 0 points" in cli.ok("points", "expire", "--as-of", "2024-03-01").stderr


def test_expire_computes_under_the_lock_when_the_ledger_keeps_changing(cli, db_path, store, monkeypatch):
    rules(cli, expiry="30d")
    ann = add_customer(cli, "Ann")
    buy(cli, ann, "100", "2024-01-01")
    buy(cli, ann, "20", "2024-02-20")  # alive on 2024-03-01
    day = date(2024, 3, 1)
    real_plan = expiry.plan
    calls: list[int] = []

    def plan_then_redeem(session: Any, as_of: date, **kw: Any) -> expiry.Plan:
        todo = real_plan(session, as_of, **kw)
        calls.append(len(todo.found))
        if len(calls) <= expiry.ATTEMPTS:  # a busy till: a sale or redemption during every reading
            cli.ok("points", "redeem", ann, "1", "--as-of", "2024-03-01")
        return todo

    monkeypatch.setattr(expiry, "plan", plan_then_redeem)
    found, _people = expiry.expire_in_store(store, day)
    assert len(calls) == expiry.ATTEMPTS + 1 and [r["points"] for r in found] == [100]
    assert [(r["kind"], r["points"]) for r in ledger(db_path)][-1] == ("expire", -100)


def test_expire_writes_the_same_rows_and_audit_payloads_as_a_single_debit(cli, db_path):
    """The bulk writer records what ledger.append records for an expire row (the audit trail of one lot)."""
    rules(cli, expiry="30d")
    ann = add_customer(cli, "Ann")
    buy(cli, ann, "100", "2024-01-01")
    cli.ok("points", "redeem", ann, "30", "--as-of", "2024-01-10")
    cli.ok("points", "expire", "--as-of", "2024-03-01")
    row = ledger(db_path)[-1]
    assert (row["kind"], row["points"], row["debt"], row["effective_on"], row["ref_id"], row["key"],
            row["expires_on"], row["detail"]) == ("expire", -70, 0, "2024-02-01", 1, "expire:1", None, None)
    from crm_helpers import audit_rows

    last = [a for a in audit_rows(db_path) if a["entity"] == "points_ledger"][-1]
    assert last["action"] == "expire" and last["entity_id"] == row["id"]
    assert last["after"] == {"kind": "expire", "points": -70, "debt": 0, "effective_on": "2024-02-01",
                                         "expires_on": None, "spendable_on": None, "purchase_id": None,
                                         "ref_id": 1, "reason": None, "key": "expire:1", "lots": {"1": 70}}
    cli.ok("db", "check")  # the audit chain is intact
