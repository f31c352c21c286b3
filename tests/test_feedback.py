"""`crm feedback`: deadlines from the policy (across days), overdue lists for cron, the "missed stays missed"
rule, the share handled in time, and bad input leaving the store unchanged."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from test_survey_support import fast_cli  # noqa: F401  (autouse)

from crm_helpers import fails, query


@pytest.fixture
def shop(cli):
    cli.ok("customer", "add", "Ann Lee", "--phone", "13800138000", "--email", "ann@example.com")
    cli.ok("customer", "add", "Bob Wu", "--phone", "13900139000")
    return cli


def add(cli, *args: str) -> int:
    return int(cli.ok("feedback", "add", *args).stdout.strip())


def item(cli, fid: int, as_of: str) -> dict:
    return json.loads(cli.ok("feedback", "show", str(fid), "--as-of", as_of, "--format", "json").stdout)


def test_deadline_runs_across_days_and_overdue_is_cron_friendly(shop):
    fid = add(shop, "Ann", "--kind", "complaint", "--priority", "high", "--text", "Parcel arrived damaged",
              "--channel", "phone", "--at", "2024-03-01 20:00", "--as-of", "2024-03-01")
    data = item(shop, fid, "2024-03-01 21:00")
    # complaint/high = 24 h (the documented default): due the next evening, in the store's zone.
    assert data["due_at"] == "2024-03-02T20:00:00+08:00"
    assert data["opened_at"] == "2024-03-01T20:00:00+08:00"
    assert data["status"] == "open" and data["missed"] is False and data["hours_left"] == 23.0

    before = shop("feedback", "list", "--overdue", "--as-of", "2024-03-02 19:59")
    assert before.exit_code == 0 and before.stdout == ""  # nothing at all: cron mails nothing
    assert shop.json("feedback", "list", "--overdue", "--as-of", "2024-03-02 19:59") == []
    assert shop.json("feedback", "list", "--overdue", "--as-of", "2024-03-01") == []

    after = shop("feedback", "list", "--overdue", "--as-of", "2024-03-02 20:01")
    assert after.exit_code == 0
    lines = after.stdout.splitlines()
    assert lines[0].startswith("id\tcustomer_code") and len(lines) == 2
    assert lines[1].split("\t")[:6] == [str(fid), "C000001", "Ann Lee", "complaint", "high", "overdue"]
    # A plain date means the end of that day.
    rows = shop.json("feedback", "list", "--overdue", "--as-of", "2024-03-02")
    assert [(r["id"], r["status"], r["missed"]) for r in rows] == [(fid, "overdue", True)]


def test_missed_stays_missed_after_resolution_and_reopening(shop, store):
    fid = add(shop, "Ann", "--kind", "complaint", "--priority", "high", "--text", "Cold coffee",
              "--at", "2024-03-01 09:00", "--as-of", "2024-03-01")
    late = shop.ok("feedback", "resolve", str(fid), "--resolution", "Refunded the drink", "--at", "2024-03-02 09:30",
                   "--as-of", "2024-03-02")
    assert "missed" in late.stderr
    data = item(shop, fid, "2024-03-10")
    assert data["status"] == "resolved" and data["missed"] is True
    assert data["resolved_at"] == "2024-03-02T09:30:00+08:00"
    assert [e["action"] for e in data["events"]] == ["open", "resolve"]

    shop.ok("feedback", "reopen", str(fid), "--reason", "Still unhappy", "--at", "2024-03-05 10:00", "--as-of", "2024-03-05")
    data = item(shop, fid, "2024-03-05 11:00")
    assert data["status"] == "open" and data["due_at"] == "2024-03-06T10:00:00+08:00"  # a new 24 h deadline
    assert data["missed"] is True and data["resolved_at"] is None
    ok = shop.ok("feedback", "resolve", str(fid), "--resolution", "Voucher given", "--at", "2024-03-05 12:00",
                 "--as-of", "2024-03-05")
    assert "within its deadline" in ok.stderr
    assert item(shop, fid, "2024-04-01")["missed"] is True  # resolved in time the second time, still missed
    assert query(shop.db, "SELECT missed, status FROM feedback WHERE id = ?", fid) == [(1, "resolved")]
    assert [r["id"] for r in shop.json("feedback", "list", "--missed", "--as-of", "2024-04-01")] == [fid]

    from crmcli.core import feedback

    with store.read() as session:
        stats = feedback.handled_in_time(session, date(2024, 3, 1), date(2024, 3, 31),
                                         now=datetime(2024, 4, 1, tzinfo=timezone.utc))
    assert stats == {"total": 1, "in_time": 0, "missed": 1, "pending": 0, "no_deadline": 0, "share": 0.0}


def test_resolved_or_closed_in_time_and_the_share_handled_in_time(shop, store):
    # suggestion/normal: 168 h; praise/low set to no deadline.
    a = add(shop, "Ann", "--kind", "suggestion", "--text", "Oat milk please", "--at", "2024-03-01 10:00", "--as-of", "2024-03-01")
    b = add(shop, "Bob", "--kind", "service", "--priority", "urgent", "--text", "Machine broken",
            "--at", "2024-03-01 10:00", "--as-of", "2024-03-01")  # 8 h → due 18:00
    c = add(shop, "Bob", "--kind", "complaint", "--text", "Rude waiter", "--at", "2024-03-02 10:00",
            "--as-of", "2024-03-02")  # normal: 48 h, still open later
    shop.ok("feedback", "policy", "set", "praise", "low", "none")
    d = add(shop, "Ann", "--kind", "praise", "--priority", "low", "--text", "Lovely cake", "--at", "2024-03-03 10:00",
            "--as-of", "2024-03-03")
    shop.ok("feedback", "resolve", str(a), "--resolution", "Added to the menu", "--at", "2024-03-07 10:00", "--as-of", "2024-03-07")
    shop.ok("feedback", "close", str(b), "--note", "Duplicate of a phone call", "--at", "2024-03-01 17:59", "--as-of", "2024-03-01")
    assert item(shop, a, "2024-03-30")["missed"] is False
    assert item(shop, b, "2024-03-30")["missed"] is False and item(shop, b, "2024-03-30")["status"] == "closed"
    assert item(shop, d, "2030-01-01")["due_at"] is None and item(shop, d, "2030-01-01")["status"] == "open"

    from crmcli.core import feedback

    with store.read() as session:
        mid = feedback.handled_in_time(session, date(2024, 3, 1), date(2024, 3, 31),
                                       now=datetime(2024, 3, 3, 12, tzinfo=timezone.utc))
        late = feedback.handled_in_time(session, now=datetime(2024, 3, 5, tzinfo=timezone.utc))
        first_day = feedback.handled_in_time(session, date(2024, 3, 1), date(2024, 3, 1),
                                             now=datetime(2024, 3, 5, tzinfo=timezone.utc))
    # a and b were handled in time; c (complaint/normal, due 4 March 10:00) is open: not yet due on 3 March,
    # overdue — so missed — from then on; d has no deadline.
    assert mid == {"total": 4, "in_time": 2, "missed": 0, "pending": 1, "no_deadline": 1, "share": 1.0}
    assert late == {"total": 4, "in_time": 2, "missed": 1, "pending": 0, "no_deadline": 1, "share": pytest.approx(2 / 3)}
    assert first_day["total"] == 2 and first_day["share"] == 1.0
    stats = json.loads(shop.ok("feedback", "stats", "--as-of", "2024-03-05", "--format", "json").stdout)
    assert (stats["open"], stats["overdue"], stats["share"]) == (2, 1, 66.7)
    assert [r["id"] for r in shop.json("feedback", "list", "--open", "--as-of", "2024-03-05")] == [c, d]


def test_close_after_the_deadline_is_missed(shop):
    fid = add(shop, "Ann", "--kind", "complaint", "--priority", "urgent", "--text", "Allergic reaction",
              "--at", "2024-03-01 08:00", "--as-of", "2024-03-01")
    shop.ok("feedback", "close", str(fid), "--at", "2024-03-01 12:01", "--as-of", "2024-03-01")
    assert item(shop, fid, "2024-03-02")["missed"] is True


def test_policy_show_and_set_keep_open_items_deadline(shop):
    rows = shop.json("feedback", "policy", "show")
    table = {(r["kind"], r["priority"]): r["hours"] for r in rows}
    assert len(table) == 16
    assert table[("complaint", "high")] == 24 and table[("complaint", "urgent")] == 4
    assert table[("suggestion", "low")] == 336 and table[("service", "urgent")] == 8
    fid = add(shop, "Ann", "--kind", "complaint", "--priority", "high", "--text", "x", "--at", "2024-03-01 10:00",
              "--as-of", "2024-03-01")
    shop.ok("feedback", "policy", "set", "complaint", "high", "2d")
    assert {(r["kind"], r["priority"]): r["hours"] for r in shop.json("feedback", "policy")}[("complaint", "high")] == 48
    assert item(shop, fid, "2024-03-01")["due_at"] == "2024-03-02T10:00:00+08:00"
    g = add(shop, "Ann", "--kind", "complaint", "--priority", "high", "--text", "y", "--at", "2024-03-01 10:00",
            "--as-of", "2024-03-01")
    assert item(shop, g, "2024-03-01")["due_at"] == "2024-03-03T10:00:00+08:00"
    assert query(shop.db, "SELECT count(*) FROM audit WHERE entity = 'feedback_policy'") == [(1,)]


def test_assign_note_and_history(shop):
    fid = add(shop, "13900139000", "--kind", "service", "--text", "Warranty repair", "--assign", "lily")
    shop.ok("feedback", "assign", f"#{fid}", "mark")
    shop.ok("feedback", "note", str(fid), "Picked up the device")
    data = json.loads(shop.ok("feedback", "show", str(fid), "--format", "json").stdout)
    assert data["assignee"] == "mark" and data["customer_code"] == "C000002"
    assert [(e["action"], e["text"]) for e in data["events"]] == [
        ("open", None), ("assign", "lily"), ("assign", "mark"), ("note", "Picked up the device")]
    assert [r["id"] for r in shop.json("feedback", "list", "--assignee", "MARK")] == [fid]
    assert shop.json("feedback", "list", "--kind", "praise") == []
    audit = query(shop.db, "SELECT action FROM audit WHERE entity = 'feedback' AND entity_id = ? ORDER BY id", fid)
    assert [a for (a,) in audit] == ["add", "assign", "note"]


BAD_INPUT = [
    (["feedback", "add", "Ann", "--kind", "rant", "--text", "x"], 5, "not a feedback kind"),
    (["feedback", "add", "Ann", "--kind", "complaint", "--priority", "asap", "--text", "x"], 5, "not a priority"),
    (["feedback", "add", "Ann", "--kind", "complaint", "--text", "   "], 5, "must not be empty"),
    (["feedback", "add", "Ann", "--kind", "complaint", "--text", "x", "--channel", "pigeon"], 5, "not a channel"),
    (["feedback", "add", "Zed", "--kind", "complaint", "--text", "x"], 3, "No customer"),
    (["feedback", "add", "Ann", "--kind", "complaint", "--text", "x", "--at", "2999-01-01"], 5, "in the future"),
    (["feedback", "resolve", "99", "--resolution", "x"], 3, "No feedback #99"),
    (["feedback", "resolve", "abc", "--resolution", "x"], 5, "not a feedback number"),
    (["feedback", "resolve", "1", "--resolution", "done", "--at", "2024-02-01"], 5, "before feedback #1 was opened"),
    (["feedback", "resolve", "1", "--resolution", " "], 5, "must not be empty"),
    (["feedback", "reopen", "1"], 4, "already open"),
    (["feedback", "note", "1", ""], 5, "must not be empty"),
    (["feedback", "policy", "set", "complaint", "high", "soon"], 5, "not a deadline"),
    (["feedback", "policy", "set", "complaint", "high", "0h"], 5, "not a deadline"),
    (["feedback", "policy", "set", "gossip", "high", "1h"], 5, "not a feedback kind"),
    (["feedback", "list", "--status", "pending"], 5, "not a status"),
]


def test_bad_input_changes_nothing(shop, unchanged):
    add(shop, "Ann", "--kind", "complaint", "--text", "Broken cup", "--at", "2024-03-01 10:00")
    check = unchanged()
    for args, code, says in BAD_INPUT:
        fails(shop, code, *args, says=(says,))
    check()


def test_resolving_twice_or_assigning_a_closed_item_is_a_conflict(shop, unchanged):
    fid = add(shop, "Ann", "--kind", "complaint", "--text", "Broken cup")
    shop.ok("feedback", "resolve", str(fid), "--resolution", "Replaced")
    check = unchanged()
    fails(shop, 4, "feedback", "resolve", str(fid), "--resolution", "again", says=("already resolved",))
    shop.ok("feedback", "close", str(fid))
    check2 = unchanged()
    fails(shop, 4, "feedback", "assign", str(fid), "lily", says=("is closed",))
    fails(shop, 4, "feedback", "close", str(fid), says=("already closed",))
    check2()
    del check


def test_privacy_hooks_export_and_erase_feedback_text(shop, store):
    from crmcli.core import feedback, hooks

    fid = add(shop, "Ann", "--kind", "complaint", "--text", "My address is 1 Secret Road")
    shop.ok("feedback", "resolve", str(fid), "--resolution", "Called Ann at home")
    assert "crmcli.core.feedback:customer_data" in hooks.CUSTOMER_DATA
    assert "crmcli.core.feedback:erase_customer" in hooks.CUSTOMER_ERASE
    with store.read() as session:
        name, items = feedback.customer_data(session, 1)
    assert name == "feedback" and items[0]["text"] == "My address is 1 Secret Road"
    assert items[0]["events"][1]["text"] == "Called Ann at home"
    with store.write() as session:
        feedback.erase_customer(session, 1)
    assert query(shop.db, "SELECT text, resolution, status FROM feedback") == [("", None, "resolved")]
    assert query(shop.db, "SELECT count(*) FROM feedback_event WHERE text IS NOT NULL") == [(0,)]
