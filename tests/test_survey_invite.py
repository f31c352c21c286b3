"""`crm survey invite`: selection, exclusions (counted), consent, de-duplication and the mail-merge CSV."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from datetime import date

import pytest

from crm_helpers import fails, query
from test_survey_support import fast_cli, seed_customers, seed_sales  # noqa: F401  (fast_cli: autouse)

TOKEN = re.compile(r"^[ABCDEFGHJKMNPQRSTVWXYZ23456789]{8}$")


@pytest.fixture
def shop(cli):
    seed_customers(cli, [
        {"name": "Ann Lee", "emails": ["ann@example.com"], "phones": ["13800138000"],
         "consent": {"email": True, "sms": True}, "tags": ["vip", "coffee"]},
        {"name": "Bob Wu", "emails": ["bob@example.com"], "consent": {"email": False}, "tags": ["vip"]},
        {"name": "Cai Li", "emails": ["cai@example.com"]},  # no consent recorded: counts as no
        {"name": "Dan Ma", "phones": ["13600136000"], "consent": {"email": True, "sms": True}},
        {"name": "Eve Xu", "emails": ["eve@example.com"], "consent": {"email": True}, "tags": ["vip"]},
        {"name": "Fay Ho", "socials": ["wechat:fayho"], "consent": {"wechat": True}},
    ])
    cli.ok("survey", "create", "NPS 2024", "--link", "https://s.example.com/r?t={token}")
    return cli


def read_csv(path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def test_consent_and_contact_exclusions_are_counted_and_the_csv_is_personalised(shop, tmp_path):
    out = tmp_path / "invites.csv"
    result = shop.ok("survey", "invite", "NPS 2024", "--out", str(out), "--as-of", "2024-06-01", "--format", "json")
    summary = json.loads(result.stdout)
    assert summary == {"matched": 6, "invited": 2, "failed": 0, "over_limit": 0, "excluded": {
        "already_surveyed": 0, "recently_invited": 0, "no_consent": 3, "no_contact": 1}}
    assert "Invited 2 of 6 matching customers; left out: 3 without consent for email, 1 without an address for email." in result.stderr
    rows = read_csv(out)
    assert list(rows[0]) == ["code", "name", "channel", "contact", "token", "link", "message"]
    assert [(r["code"], r["name"], r["channel"], r["contact"]) for r in rows] == [
        ("C000001", "Ann Lee", "email", "ann@example.com"), ("C000005", "Eve Xu", "email", "eve@example.com")]
    tokens = [r["token"] for r in rows]
    assert all(TOKEN.match(t) for t in tokens) and len(set(tokens)) == 2
    assert rows[0]["link"] == f"https://s.example.com/r?t={tokens[0]}"
    assert rows[0]["message"].startswith("Hello Ann Lee, thank you for shopping with us! How likely are you")
    assert "Please answer 0-10." in rows[0]["message"] and rows[0]["message"].endswith(f"Your response code: {tokens[0]}")
    db = query(shop.db, "SELECT customer_id, token, channel, method, status, invited_at FROM survey_invite ORDER BY id")
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in db] == [(1, tokens[0], "email", "csv", "sent"),
                                                            (5, tokens[1], "email", "csv", "sent")]
    assert all(r[5].startswith("2024-05-31") or r[5].startswith("2024-06-01") for r in db)  # stored in UTC
    assert query(shop.db, "SELECT count(*) FROM audit WHERE entity = 'survey_invite' AND action = 'invite'") == [(2,)]

    sms = shop.ok("survey", "invite", "NPS 2024", "--channel", "sms", "--out", "-", "--skip-invited-within", "0",
                  "--message", "{name}: {question} Reply {scale} + code {token} {link}", "--as-of", "2024-06-01")
    sms_rows = list(csv.DictReader(io.StringIO(sms.stdout)))
    assert [(r["code"], r["contact"]) for r in sms_rows] == [("C000001", "+8613800138000"), ("C000004", "+8613600136000")]
    assert sms_rows[1]["message"].startswith("Dan Ma: How likely are you") and sms_rows[1]["token"] in sms_rows[1]["message"]
    wechat = shop.ok("survey", "invite", "NPS 2024", "--channel", "wechat", "--out", "-", "--as-of", "2024-06-01")
    assert [(r["code"], r["contact"]) for r in csv.DictReader(io.StringIO(wechat.stdout))] == [("C000006", "fayho")]


def test_nobody_is_invited_twice_by_accident(shop, tmp_path, unchanged):
    shop.ok("survey", "invite", "NPS 2024", "--out", str(tmp_path / "a.csv"), "--as-of", "2024-06-01")
    again = shop.ok("survey", "invite", "NPS 2024", "--out", str(tmp_path / "b.csv"), "--as-of", "2024-06-01")
    assert "Invited 0 of 6" in again.stderr and "2 invited recently" in again.stderr
    assert "no file written" in again.stderr and not (tmp_path / "b.csv").exists()
    # Another survey respects the same window (any survey counts).
    shop.ok("survey", "create", "Delivery", "--kind", "csat")
    other = json.loads(shop.ok("survey", "invite", "Delivery", "--out", str(tmp_path / "c.csv"), "--as-of", "2024-06-30",
                               "--format", "json").stdout)
    assert other["invited"] == 0 and other["excluded"]["recently_invited"] == 2
    later = json.loads(shop.ok("survey", "invite", "Delivery", "--out", str(tmp_path / "d.csv"), "--as-of", "2024-07-01",
                               "--format", "json").stdout)
    assert later["invited"] == 2
    shorter = json.loads(shop.ok("survey", "invite", "NPS 2024", "--dry-run", "--skip-invited-within", "0",
                                 "--as-of", "2024-07-01", "--format", "json").stdout)
    assert [r["code"] for r in shorter] == ["C000001", "C000005"]
    # The CSV that was written is not overwritten (its invitations may not be sent yet).
    check = unchanged()
    fails(shop, 4, "survey", "invite", "NPS 2024", "--out", str(tmp_path / "a.csv"), "--skip-invited-within", "0",
          says=("already exists",))
    check()


def test_tags_customers_limit_and_deleted_customers(shop, tmp_path):
    rows = shop.json("survey", "invite", "NPS 2024", "--dry-run", "--tag", "vip")
    assert [r["code"] for r in rows] == ["C000001", "C000005"]
    assert [r["code"] for r in shop.json("survey", "invite", "NPS 2024", "--dry-run", "--tag", "vip", "--tag", "coffee")] == ["C000001"]
    assert [r["code"] for r in shop.json("survey", "invite", "NPS 2024", "--dry-run", "--customer", "Eve")] == ["C000005"]
    limited = shop.ok("survey", "invite", "NPS 2024", "--limit", "1", "--out", str(tmp_path / "l.csv"))
    assert "1 over the limit" in limited.stderr and len(read_csv(tmp_path / "l.csv")) == 1
    shop.ok("customer", "rm", "Eve", "--yes")
    assert shop.json("survey", "invite", "NPS 2024", "--dry-run", "--skip-invited-within", "0") == [
        {"code": "C000001", "name": "Ann Lee", "contact": "ann@example.com", "purchase_id": None, "feedback_id": None}]


def test_purchase_based_selection_and_post_purchase_surveys(shop, tmp_path):
    as_of = date(2024, 6, 10)
    sales = seed_sales(shop, [(1, "2024-06-07 10:00"), (5, "2024-06-05 18:00"), (4, "2024-05-01 10:00")], as_of=as_of)
    between = shop.json("survey", "invite", "NPS 2024", "--dry-run", "--channel", "sms", "--purchased-since", "2024-05-01",
                        "--purchased-until", "2024-05-31", "--as-of", "2024-06-10")
    assert [r["code"] for r in between] == ["C000004"]
    exact = shop.json("survey", "invite", "NPS 2024", "--dry-run", "--after-purchase", "3d", "--as-of", "2024-06-10")
    assert [(r["code"], r["purchase_id"]) for r in exact] == [("C000001", sales[0])]
    grace = shop.json("survey", "invite", "NPS 2024", "--dry-run", "--after-purchase", "3", "--grace", "2d",
                      "--as-of", "2024-06-10")
    assert [(r["code"], r["purchase_id"]) for r in grace] == [("C000001", sales[0]), ("C000005", sales[1])]
    shop.ok("survey", "invite", "NPS 2024", "--after-purchase", "3d", "--grace", "2d", "--out", str(tmp_path / "p.csv"),
            "--as-of", "2024-06-10")
    assert query(shop.db, "SELECT customer_id, purchase_id FROM survey_invite ORDER BY id") == [(1, sales[0]), (5, sales[1])]
    # The next day, without the recent-invitation window, the same purchases are still not surveyed twice.
    again = json.loads(shop.ok("survey", "invite", "NPS 2024", "--after-purchase", "3d", "--grace", "3d",
                               "--skip-invited-within", "0", "--out", str(tmp_path / "q.csv"), "--as-of", "2024-06-11",
                               "--format", "json").stdout)
    assert again["invited"] == 0 and again["excluded"]["already_surveyed"] == 2
    # A new purchase is a new occasion.
    new = seed_sales(shop, [(1, "2024-06-20 09:00")], as_of=date(2024, 6, 20))
    later = shop.json("survey", "invite", "NPS 2024", "--dry-run", "--after-purchase", "3d", "--skip-invited-within", "0",
                      "--as-of", "2024-06-23")
    assert [(r["code"], r["purchase_id"]) for r in later] == [("C000001", new[0])]


def test_resolved_within_targets_recently_resolved_complaints(shop, tmp_path):
    def complaint(who: str, at: str) -> str:
        return shop.ok("feedback", "add", who, "--kind", "complaint", "--text", "Late delivery", "--at", at,
                       "--as-of", "2024-06-30").stdout.strip()

    a = complaint("Ann", "2024-06-10 10:00")
    e = complaint("Eve", "2024-04-01 10:00")
    complaint("Dan", "2024-06-20 10:00")  # still open
    shop.ok("feedback", "resolve", a, "--resolution", "Refunded shipping", "--at", "2024-06-11 10:00", "--as-of", "2024-06-30")
    shop.ok("feedback", "resolve", e, "--resolution", "Apologised", "--at", "2024-04-02 10:00", "--as-of", "2024-06-30")
    shop.ok("feedback", "add", "Eve", "--kind", "praise", "--text", "Nice", "--at", "2024-06-20 10:00", "--as-of", "2024-06-30")
    shop.ok("feedback", "resolve", "4", "--resolution", "Thanked", "--at", "2024-06-21 10:00", "--as-of", "2024-06-30")
    rows = shop.json("survey", "invite", "NPS 2024", "--dry-run", "--resolved-within", "30d", "--as-of", "2024-06-30")
    assert [(r["code"], r["feedback_id"]) for r in rows] == [("C000001", int(a))]
    shop.ok("survey", "invite", "NPS 2024", "--resolved-within", "30d", "--out", str(tmp_path / "r.csv"), "--as-of", "2024-06-30")
    assert query(shop.db, "SELECT customer_id, feedback_id FROM survey_invite") == [(1, int(a))]
    again = json.loads(shop.ok("survey", "invite", "NPS 2024", "--dry-run", "--resolved-within", "90d", "--skip-invited-within",
                               "0", "--as-of", "2024-06-30", "--format", "json").stdout)
    assert [(r["code"], r["feedback_id"]) for r in again] == [("C000005", int(e))]  # Ann's complaint: surveyed already


def test_tier_and_segment_selection(shop):
    shop.ok("tier", "pin", "Ann", "A", "--reason", "key account")
    shop.ok("tier", "pin", "Eve", "B", "--reason", "growing")
    assert [r["code"] for r in shop.json("survey", "invite", "NPS 2024", "--dry-run", "--tier", "a")] == ["C000001"]
    both = shop.json("survey", "invite", "NPS 2024", "--dry-run", "--tier", "A", "--tier", "B")
    assert [r["code"] for r in both] == ["C000001", "C000005"]
    conn = sqlite3.connect(shop.db)
    with conn:
        conn.execute("UPDATE customer_class SET segment = 'at_risk' WHERE customer_id = 5")
    conn.close()
    assert [r["code"] for r in shop.json("survey", "invite", "NPS 2024", "--dry-run", "--segment", "At risk")] == ["C000005"]
    assert shop.json("survey", "invite", "NPS 2024", "--dry-run", "--segment", "at risk", "--tier", "A") == []


def test_invitation_csv_neutralises_spreadsheet_formulas(cli, tmp_path):
    seed_customers(cli, [{"name": "=HYPERLINK(\"http://evil\")", "emails": ["x@example.com"], "phones": ["13800138000"],
                          "consent": {"email": True, "sms": True}}])
    cli.ok("survey", "create", "S")
    rows = list(csv.DictReader(io.StringIO(cli.ok("survey", "invite", "S", "--out", "-", "--channel", "sms").stdout)))
    assert rows[0]["name"] == "'=HYPERLINK(\"http://evil\")"
    assert rows[0]["contact"] == "+8613800138000"  # an E.164 phone stays usable


def test_dry_run_and_bad_invitations_change_nothing(shop, tmp_path, unchanged):
    shop.ok("survey", "create", "Old")
    shop.ok("survey", "close", "Old")
    check = unchanged()
    dry = shop.ok("survey", "invite", "NPS 2024", "--dry-run")
    assert "Would invite 2 of 6" in dry.stderr and dry.stdout.splitlines()[0] == "code\tname\tcontact\tpurchase_id\tfeedback_id"
    fails(shop, 2, "survey", "invite", "NPS 2024", says=("--out FILE",))
    fails(shop, 2, "survey", "invite", "NPS 2024", "--out", str(tmp_path / "x.csv"), "--send", says=("--out FILE",))
    fails(shop, 2, "survey", "invite", "NPS 2024", "--send", "--channel", "sms", says=("--send sends e-mail",))
    fails(shop, 5, "survey", "invite", "NPS 2024", "--out", str(tmp_path / "x.csv"), "--channel", "fax",
          says=("not an invitation channel",))
    fails(shop, 4, "survey", "invite", "Old", "--out", str(tmp_path / "x.csv"), says=("is closed",))
    fails(shop, 5, "survey", "invite", "NPS 2024", "--out", str(tmp_path / "x.csv"), "--message", "Hi {firstname}",
          says=("unknown placeholder {firstname}",))
    fails(shop, 5, "survey", "invite", "NPS 2024", "--dry-run", "--after-purchase", "soon", says=("not a duration",))
    fails(shop, 5, "survey", "invite", "NPS 2024", "--dry-run", "--tier", "Z", says=("not a tier",))
    fails(shop, 5, "survey", "invite", "NPS 2024", "--dry-run", "--segment", "Sleepy", says=("not an RFM segment",))
    fails(shop, 5, "survey", "invite", "NPS 2024", "--dry-run", "--resolved-within", "0", says=("at least one day",))
    check()
    assert not (tmp_path / "x.csv").exists()
