"""Privacy: `crm customer data` (subject access), `crm customer forget` (erasure), masked display
everywhere contacts are shown, and consent enforced (and counted) where marketing messages are produced."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from crm_helpers import audit_rows, cli, fails, fast_cli, from_template, one, query, template_store  # noqa: F401

AS_OF = "2024-06-15"
PERSONAL = ("Ann Lee", "8613800138000", "13800138000", "ann@example.com", "ann_wx", "上海", "ACME", "Main St 1",
            "prefers mornings", "oat milk", "asked about beans", "cup was cracked", "lovely staff", "size=M")


def build(cli: Any) -> None:
    cli.ok("config", "set", "points.enabled", "yes")
    cli.ok("customer", "add", "Ann Lee", "--phone", "13800138000", "--email", "ann@example.com", "--wechat", "ann_wx",
           "--city", "上海", "--company", "ACME", "--address", "Main St 1", "--birthday", "1990-05-17",
           "--notes", "prefers mornings", "--preferences", "oat milk", "--pref", "size=M", "--tag", "vip",
           "--consent", "sms=yes", "--consent", "email=yes", "--as-of", AS_OF)
    cli.ok("customer", "add", "Bob Li", "--phone", "13900139000", "--email", "bob@example.com", "--consent", "sms=no")
    cli.ok("customer", "add", "Cat Wu", "--phone", "13700137000")
    cli.ok("purchase", "add", "Ann", "100", "--at", "2024-06-01", "--product", "beans", "--as-of", AS_OF)
    cli.ok("purchase", "add", "Ann", "50", "--at", "2024-06-03", "--as-of", AS_OF)
    cli.ok("purchase", "refund", "2", "10", "--reason", "cup was cracked", "--as-of", AS_OF)
    cli.ok("purchase", "add", "Bob", "30", "--at", "2024-06-02", "--as-of", AS_OF)
    cli.ok("customer", "log", "Ann", "-c", "phone", "-s", "asked about beans", "--outcome", "happy", "--as-of", AS_OF)
    cli.ok("survey", "create", "NPS 2024")
    cli.ok("survey", "record", "NPS 2024", "Ann", "9", "--comment", "lovely staff", "--as-of", AS_OF)
    cli.ok("feedback", "add", "Ann", "--kind", "complaint", "--text", "cup was cracked", "--as-of", AS_OF)


@pytest.fixture
def shop(cli: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return from_template("privacy-shop", cli, tmp_path_factory, build)


def test_customer_data_has_everything_about_one_person(shop, tmp_path):
    doc = json.loads(shop.ok("customer", "data", "13800138000").stdout)
    assert list(doc) == ["exported_at", "currency", "customer", "contacts", "consent", "preferences", "tags", "purchases",
                         "interactions", "points", "surveys", "feedback", "greetings", "audit"]
    assert doc["customer"]["name"] == "Ann Lee" and doc["customer"]["notes"] == "prefers mornings"
    assert {(c["kind"], c["value"]) for c in doc["contacts"]} == {
        ("phone", "+8613800138000"), ("email", "ann@example.com"), ("social", "ann_wx")}
    assert doc["consent"]["sms"]["granted"] is True and doc["preferences"] == {"size": "M"} and doc["tags"] == ["vip"]
    assert [(p["kind"], p["amount"]) for p in doc["purchases"]] == [("sale", "100.00"), ("sale", "50.00"),
                                                                    ("refund", "-10.00")]
    assert doc["purchases"][2]["note"] == "cup was cracked"
    assert doc["interactions"][0]["summary"] == "asked about beans"
    assert sum(p["points"] for p in doc["points"]) > 0
    assert doc["surveys"]["responses"][0]["comment"] == "lovely staff"
    assert doc["feedback"][0]["text"] == "cup was cracked"
    assert {a["entity"] for a in doc["audit"]} >= {"customer", "purchase", "interaction"}
    assert all(a["entity"] != "customer" or a["entity_id"] == doc["customer"]["id"] for a in doc["audit"])
    assert "Bob Li" not in json.dumps(doc, ensure_ascii=False)

    out = tmp_path / "ann.json"
    result = shop.ok("customer", "data", "Ann", "--out", str(out))
    assert result.stdout == "" and str(out) in result.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["customer"]["code"] == "C000001"
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    fails(shop, 4, "customer", "data", "Ann", "--out", str(out), says=["already exists"])
    fails(shop, 3, "customer", "data", "Nobody")


def _revenue(cli: Any) -> Any:
    return (cli.ok("report", "sales", "--since", "2024-06-01", "--until", "2024-06-30", "--format", "json").stdout,
            cli.ok("report", "sales", "--since", "2024-06-01", "--until", "2024-06-30", "--by", "day",
                   "--format", "json").stdout,
            json.loads(cli.ok("report", "summary", "--as-of", AS_OF, "--format", "json").stdout)["sales"])


def test_forget_erases_the_person_and_keeps_the_totals(shop):
    revenue = _revenue(shop)
    points = json.loads(shop.ok("points", "balance", "Ann", "--format", "json").stdout)
    fails(shop, 2, "customer", "forget", "Ann", says=["--yes"])  # not on a terminal
    result = shop.ok("customer", "forget", "Ann", "--yes")
    assert result.stdout.strip() == "C000001" and "Erased C000001" in result.stderr

    for ref in ("Ann Lee", "Ann", "13800138000", "ann@example.com", "+86 138 0013 8000"):
        assert shop.json("customer", "search", ref) == []
        fails(shop, 3, "customer", "show", ref)
    assert [c["name"] for c in shop.json("customer", "list", "--deleted")] == ["Bob Li", "Cat Wu"]
    doc = shop.ok("customer", "data", "C000001").stdout
    for value in PERSONAL:
        assert value not in doc, value
    data = json.loads(doc)
    assert data["customer"]["name"] == "[erased]" and data["customer"]["erased_at"]
    assert data["customer"]["birthday"] is None and data["contacts"] == [] and data["tags"] == []
    assert [p["amount"] for p in data["purchases"]] == ["100.00", "50.00", "-10.00"]
    assert data["surveys"]["responses"][0]["score"] == 9 and data["surveys"]["responses"][0]["comment"] is None
    assert data["interactions"][0]["channel"] == "phone"
    assert data["audit"][-1]["action"] == "erase"
    # the others are untouched, the store's raw text holds no trace of Ann
    assert shop.json("customer", "show", "Bob")["customer"]["name"] == "Bob Li"
    raw = json.dumps(query(shop.db, "SELECT * FROM customer") + query(shop.db, "SELECT * FROM contact_point")
                     + query(shop.db, "SELECT before, after FROM audit") + query(shop.db, "SELECT summary, outcome FROM interaction")
                     + query(shop.db, "SELECT note FROM purchase"), ensure_ascii=False)
    for value in ("Ann Lee", "13800138000", "ann@example.com", "ann_wx", "prefers mornings", "asked about beans",
                  "cup was cracked"):
        assert value not in raw, value
    # revenue and points totals unchanged; the trail verifies
    assert _revenue(shop) == revenue
    assert one(shop.db, "SELECT sum(points) FROM points_ledger WHERE customer_id = 1") == points["balance"]
    shop.ok("db", "audit", "--verify")
    shop.ok("db", "check")
    fails(shop, 4, "customer", "forget", "C000001", "--yes", says=["already been erased"])
    # the phone can be given to someone new without a conflict
    shop.ok("customer", "add", "New Person", "--phone", "13800138000")


def test_mask_applies_to_lists_cards_agenda_and_exports(shop):
    def contacts_shown(*args: str) -> str:
        return shop.ok(*args).stdout

    plain = contacts_shown("customer", "list", "--format", "csv")
    assert "+8613800138000" in plain and "ann@example.com" in plain
    shop.ok("config", "set", "privacy.mask", "on")
    shop.ok("customer", "edit", "Ann", "--follow-up", "2024-06-15", "--as-of", "2024-06-10")
    for args in [("customer", "list", "--format", "csv"), ("customer", "list", "--format", "json"),
                 ("customer", "list", "--format", "table"), ("customer", "search", "Ann", "--format", "tsv"),
                 ("customer", "show", "Ann", "--format", "json"), ("card", "show", "Ann", "--width", "100"),
                 ("care", "agenda", "--as-of", AS_OF, "--format", "json"), ("care", "agenda", "--as-of", AS_OF),
                 ("points", "expiring", "--within", "3y", "--as-of", AS_OF, "--format", "csv")]:
        out = shop.ok(*args).stdout
        assert "13800138000" not in out and "ann@example.com" not in out, args
    assert "+86138****8000" in shop.ok("customer", "list", "--format", "csv").stdout
    agenda = json.loads(shop.ok("care", "agenda", "--as-of", AS_OF, "--format", "json").stdout)
    assert any(r["contact"] and "*" in r["contact"] for r in agenda)
    shop.ok("config", "set", "privacy.mask", "off")
    masked = shop.ok("--mask", "customer", "list", "--format", "csv").stdout
    assert "13800138000" not in masked and "ann@example.com" not in masked and "+86138****8000" in masked


def test_consent_is_enforced_and_counted(shop, tmp_path):
    # survey invitations: only Ann consented to sms; Bob said no, Cat never answered
    result = shop.ok("survey", "invite", "NPS 2024", "--channel", "sms", "--out", "-", "--skip-invited-within", "0",
                     "--as-of", AS_OF)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["name"] for r in rows] == ["Ann Lee"]
    assert "2 without consent for sms" in result.stderr
    # greetings (win-back): the same rule, counted
    out = tmp_path / "winback.csv"
    sent = shop.ok("care", "send", "winback", "--after-days", "1", "--channel", "sms", "--out", str(out),
                   "--as-of", AS_OF)
    assert [r["name"] for r in csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig")))] == ["Ann Lee"]
    assert "1 without sms consent" in sent.stderr  # Bob (Cat has no purchase)
    # an erased customer is never messaged, whatever consent was recorded
    shop.ok("customer", "forget", "Ann", "--yes")
    again = shop.ok("survey", "invite", "NPS 2024", "--channel", "sms", "--out", "-", "--skip-invited-within", "0",
                    "--as-of", AS_OF)
    assert list(csv.DictReader(io.StringIO(again.stdout))) == []


def test_the_shared_consent_rule(shop):
    from crmcli.core.consent import consenting
    from crmcli.store.engine import open_store

    store = open_store(str(shop.db))
    try:
        with store.read() as session:
            assert consenting(session, [3, 1, 2], "sms") == ([1], 2)
            assert consenting(session, [1, 2, 3], "email") == ([1], 2)
            assert consenting(session, [], "sms") == ([], 0)
    finally:
        store.dispose()
    assert audit_rows(shop.db)  # the store is a real, audited one
    assert Path(shop.db).exists()
