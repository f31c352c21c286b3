"""`crm customer ...`: every field of add, show, list filters and sorts, search, edit, tag, rm/restore, log and
history — each checked in the output and in the store file."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from crm_helpers import (audit_rows, cli, fails, fast_cli, from_template, one, query,  # noqa: F401 (fixtures)
                         template_store)

AS_OF = "2024-06-15"


def add(cli, name, *opts):
    return cli.ok("customer", "add", name, *opts).stdout.strip()


def codes(rows):
    return [r["code"] for r in rows]


def set_created(db_path, code, when):
    """Back-date a customer's creation (the CLI stamps the real time)."""
    import sqlite3

    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE customer SET created_at = ? WHERE code = ?", (when, code))
    conn.close()


# ------------------------------------------------------------------------------------------------- add

def test_add_with_every_field(cli, db_path):
    referrer = add(cli, "李娜", "--phone", "13900139000")
    result = cli.ok(
        "customer", "add", "  王芳  ", "--code", "VIP-1", "--gender", "女", "--birthday", "1990-05-17",
        "--occupation", "设计师", "--company", "ACME 上海", "--phone", "138 0013 8000", "--phone", "+1 650-253-0000",
        "--email", "Fang@Example.COM", "--social", "qq:12345", "--wechat", "fang88", "--address", "某路1号",
        "--city", "上海", "--source", "douyin", "--referred-by", referrer, "--preferred-channel", "WeChat",
        "--consent", "sms=yes", "--consent", "email=no", "--pref", "size=M", "--pref", "drink = oat latte",
        "--preferences", "喜欢燕麦奶", "--tag", "vip", "--tag", "咖啡控", "--notes", "likes latte",
        "--follow-up", "2024-07-01")
    assert result.stdout == "VIP-1\n"
    assert "Added VIP-1 王芳." in result.stderr

    card = cli.json("customer", "show", "VIP-1", "--as-of", AS_OF)
    c = card["customer"]
    assert c["name"] == "王芳" and c["code"] == "VIP-1" and c["gender"] == "female"
    assert c["birthday"] == "1990-05-17" and c["age"] == 34
    assert (c["occupation"], c["company"], c["address"], c["city"], c["source"]) == (
        "设计师", "ACME 上海", "某路1号", "上海", "douyin")
    assert c["referred_by"] == {"id": 1, "code": "C000001", "name": "李娜"}
    assert c["notes"] == "likes latte" and c["deleted"] is False
    assert card["contacts"] == {"phones": ["+8613800138000", "+16502530000"], "emails": ["Fang@example.com"],
                                "social": [{"network": "qq", "handle": "12345"}, {"network": "wechat", "handle": "fang88"}],
                                "preferred_channel": "wechat"}
    assert {k: v["granted"] for k, v in card["consent"].items()} == {"email": False, "sms": True}
    assert card["consent"]["sms"]["source"] == "crm customer add"
    assert card["preferences"] == {"drink": "oat latte", "size": "M"}
    assert card["preferences_text"] == "喜欢燕麦奶"
    assert card["tags"] == ["vip", "咖啡控"]
    assert card["next_follow_up"] == "2024-07-01"

    # The store holds normalized values, UTC times, and the referral as an id.
    cid = one(db_path, "SELECT id FROM customer WHERE code = 'VIP-1'")
    assert one(db_path, "SELECT referred_by_id FROM customer WHERE id = ?", cid) == 1
    assert one(db_path, "SELECT birthday FROM customer WHERE id = ?", cid) == "1990-05-17"
    assert query(db_path, "SELECT kind, value, label FROM contact_point WHERE customer_id = ? ORDER BY position", cid) == [
        ("phone", "+8613800138000", None), ("phone", "+16502530000", None), ("email", "Fang@example.com", None),
        ("social", "12345", "qq"), ("social", "fang88", "wechat")]
    consent = query(db_path, "SELECT channel, granted, changed_at FROM consent WHERE customer_id = ? ORDER BY channel", cid)
    assert [(ch, g) for ch, g, _ in consent] == [("email", 0), ("sms", 1)]
    given = datetime.fromisoformat(consent[0][2]).replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - given).total_seconds()) < 60
    assert query(db_path, "SELECT key, value FROM preference WHERE customer_id = ? ORDER BY key", cid) == [
        ("drink", "oat latte"), ("size", "M")]


def test_generated_codes_follow_the_prefix_setting(cli):
    assert add(cli, "A") == "C000001"
    assert add(cli, "B") == "C000002"
    cli.ok("config", "set", "customer.code_prefix", "K")
    assert add(cli, "C") == "K000003"
    fails(cli, 4, "customer", "add", "D", "--code", "K000003", says=["K000003 is already taken", "--code"])


@pytest.mark.parametrize(("given", "stored"), [("女", "female"), ("男", "male"), ("F", "female"), ("m", "male"),
                                               ("女性", "female"), ("Male", "male"), ("other", "other"), ("x", "other")])
def test_gender_aliases(cli, db_path, given, stored):
    add(cli, "Pat", "--gender", given)
    assert one(db_path, "SELECT gender FROM customer") == stored


@pytest.mark.parametrize(("as_of", "age"), [("2025-02-28", 0), ("2025-03-01", 1), ("2044-02-29", 20)])
def test_age_is_derived_from_the_birthday_on_the_as_of_date(cli, as_of, age):
    add(cli, "Leap", "--birthday", "2024-02-29")
    assert cli.json("customer", "show", "Leap", "--as-of", as_of)["customer"]["age"] == age
    assert cli.json("customer", "list", "--as-of", as_of)[0]["age"] == age


def test_birthday_forms(cli, db_path):
    add(cli, "A", "--birthday", "1990/5/7")
    add(cli, "B", "--birthday", "1985年12月3日")
    add(cli, "C", "--birthday", "17/05/1990")  # unambiguous: 17 cannot be a month
    assert [r[0] for r in query(db_path, "SELECT birthday FROM customer ORDER BY id")] == [
        "1990-05-07", "1985-12-03", "1990-05-17"]


def test_duplicate_contacts_within_one_add_are_stored_once(cli, db_path):
    add(cli, "A", "--phone", "13800138000", "--phone", "+86 138-0013-8000", "--email", "a@x.com", "--email", "A@X.COM")
    assert query(db_path, "SELECT kind, value FROM contact_point ORDER BY position") == [
        ("phone", "+8613800138000"), ("email", "a@x.com")]


# ------------------------------------------------------------------------------------ bad input on add

BAD_ADD = [
    (["--phone", "12345"], ["'12345' is not a valid phone number (CN)", "country code"]),
    (["--phone", "+86 138 0013 800"], ["'+86 138 0013 800' is not a valid phone number"]),
    (["--email", "fang@"], ["'fang@' is not a valid e-mail address", "name@example.com"]),
    (["--email", "no at sign"], ["'no at sign' is not a valid e-mail address"]),
    (["--birthday", "2024-02-30"], ["'2024-02-30' is not a valid date for birthday (no such day)", "YYYY-MM-DD"]),
    (["--birthday", "0000-00-00"], ["'0000-00-00' is not a valid date for birthday"]),
    (["--birthday", "03/04/2024"], ["'03/04/2024'", "either way round", "2024-03-04 or 2024-04-03", "YYYY-MM-DD"]),
    (["--birthday", "2999-01-01"], ["Birthday 2999-01-01 is in the future"]),
    (["--follow-up", "someday"], ["'someday' is not a valid date for follow-up"]),
    (["--gender", "q"], ["'q' is not a gender", "female, male or other"]),
    (["--preferred-channel", "pigeon"], ["'pigeon' is not a channel", "phone, email"]),
    (["--consent", "email=maybe"], ["'email=maybe' is not a consent", "CHANNEL=yes|no"]),
    (["--consent", "fax=yes"], ["'fax=yes' is not a consent"]),
    (["--pref", "novalue"], ["'novalue' is not a preference", "KEY=VALUE"]),
    (["--social", "myspace:me"], ["'myspace:me' is not a social handle", "wechat:ann_lee"]),
    (["--tag", "a,b"], ["'a,b' is not a tag"]),
    (["--code", "has space"], ["'has space' is not a customer code"]),
    (["--notes", "bad\x07bell"], ["notes contains control characters"]),
]


@pytest.mark.parametrize(("opts", "says"), BAD_ADD, ids=[" ".join(o) for o, _ in BAD_ADD])
def test_add_rejects_bad_values_and_changes_nothing(cli, unchanged, opts, says):
    add(cli, "Existing", "--phone", "13700137000")
    check = unchanged()
    fails(cli, 5, "customer", "add", "New", *opts, says=says)
    check()


def test_add_rejects_an_empty_name(cli, unchanged):
    check = unchanged()
    fails(cli, 5, "customer", "add", "   ", says=["name must not be empty"])
    check()


def test_add_with_an_unknown_referrer_is_not_found(cli, unchanged):
    check = unchanged()
    fails(cli, 3, "customer", "add", "A", "--referred-by", "nobody", says=["No customer matches 'nobody'", "crm customer search"])
    check()


# ------------------------------------------------------------------------------------ duplicates

def test_duplicate_phone_is_refused_naming_the_owner(cli, unchanged, db_path):
    add(cli, "王芳", "--phone", "13800138000")
    check = unchanged()
    fails(cli, 4, "customer", "add", "Other", "--phone", "+86 138 0013 8000",
          says=["The phone +8613800138000 already belongs to C000001 王芳", "--allow-duplicate"])
    check()
    assert add(cli, "Other", "--phone", "138-0013-8000", "--allow-duplicate") == "C000002"
    assert one(db_path, "SELECT count(*) FROM contact_point WHERE value = '+8613800138000'") == 2


def test_duplicate_email_is_refused_ignoring_case(cli, unchanged):
    add(cli, "王芳", "--email", "Fang@Example.com")
    check = unchanged()
    fails(cli, 4, "customer", "add", "Other", "--email", "fang@example.COM",
          says=["fang@example.com already belongs to C000001 王芳"])
    check()
    add(cli, "Other", "--email", "fang@example.COM", "--allow-duplicate")


def test_a_deleted_customers_phone_may_be_reused(cli):
    add(cli, "Old", "--phone", "13800138000")
    cli.ok("customer", "rm", "Old", "--yes")
    assert add(cli, "New", "--phone", "13800138000") == "C000002"


def test_edit_adding_a_phone_of_another_customer_is_refused(cli, unchanged):
    add(cli, "A", "--phone", "13800138000")
    add(cli, "B")
    check = unchanged()
    fails(cli, 4, "customer", "edit", "C000002", "--add-phone", "13800138000", says=["already belongs to C000001 A"])
    check()
    cli.ok("customer", "edit", "C000002", "--add-phone", "13800138000", "--allow-duplicate")


# ------------------------------------------------------------------------------ customer references

def _people(cli):
    add(cli, "王芳", "--phone", "13800138000", "--email", "fang@example.com", "--city", "上海", "--notes", "喜欢拿铁")
    add(cli, "王小芳", "--phone", "13900139000", "--city", "北京")
    add(cli, "Ann Lee", "--email", "ann@example.org", "--wechat", "annlee")


@pytest.fixture
def people(cli, tmp_path_factory):
    return from_template("people", cli, tmp_path_factory, _people)


@pytest.mark.parametrize("ref", ["C000001", "c000001", "1", "13800138000", "+86 138 0013 8000", "138-0013-8000",
                                 "FANG@example.com", "王芳"])
def test_a_customer_is_found_by_code_id_phone_email_or_exact_name(people, ref):
    assert people.json("customer", "show", ref)["customer"]["code"] == "C000001"


def test_a_unique_name_fragment_finds_the_customer(people):
    assert people.json("customer", "show", "小芳")["customer"]["code"] == "C000002"
    assert people.json("customer", "show", "ann")["customer"]["code"] == "C000003"


def test_an_ambiguous_reference_lists_the_candidates(people, unchanged):
    check = unchanged()
    error = fails(people, 4, "customer", "edit", "芳", "--city", "深圳",
                  says=["'芳' matches 2 customers", "C000001 王芳 (+8613800138000)", "C000002 王小芳 (+8613900139000)",
                        "Use the code"])
    assert error.count("C00000") >= 2
    check()


def test_several_matches_become_a_numbered_choice_on_a_terminal(people, monkeypatch, db_path):
    monkeypatch.setattr("crmcli.cli.common.is_interactive", lambda: True)
    result = people.ok("customer", "edit", "芳", "--city", "深圳", input="2\n")
    assert "1. C000001 王芳" in result.stderr and "2. C000002 王小芳" in result.stderr
    assert query(db_path, "SELECT code, city FROM customer ORDER BY id")[:2] == [("C000001", "上海"), ("C000002", "深圳")]
    wrong = people("customer", "edit", "芳", "--city", "x", input="7\n")
    assert wrong.exit_code == 2 and wrong.stderr.strip().endswith("Error: 7 is not one of the choices.")
    assert query(db_path, "SELECT city FROM customer WHERE id = 2") == [("深圳",)]


def test_an_unknown_customer_is_not_found(people, unchanged):
    check = unchanged()
    for args in (["customer", "show", "Nobody"], ["customer", "edit", "Nobody", "--city", "x"],
                 ["customer", "tag", "Nobody", "vip"], ["customer", "rm", "Nobody", "--yes"],
                 ["customer", "log", "Nobody", "-c", "phone", "-s", "hi"], ["customer", "history", "Nobody"],
                 ["purchase", "add", "Nobody", "10"], ["card", "show", "Nobody"]):
        fails(people, 3, *args, says=["No customer matches 'Nobody'"])
    check()


# --------------------------------------------------------------------------------------- list

@pytest.fixture
def shop(cli, tmp_path_factory):
    """Four customers with tags, cities, sources, birthdays, follow-ups, creation dates and purchases."""
    return from_template("shop", cli, tmp_path_factory, _shop)


def _shop(cli):
    db_path = cli.db
    add(cli, "Bo", "--city", "上海", "--source", "douyin", "--tag", "vip", "--tag", "wine", "--birthday", "1990-05-17",
        "--follow-up", "2024-06-10")
    add(cli, "Al", "--city", "北京", "--source", "walk-in", "--tag", "VIP", "--birthday", "1985-12-01",
        "--follow-up", "2024-06-15")
    add(cli, "Cy", "--city", "上海", "--source", "Douyin", "--birthday", "2000-05-01", "--follow-up", "2024-06-16")
    add(cli, "Di", "--city", "Shanghai")
    set_created(db_path, "C000001", "2024-01-10 02:00:00.000000")
    set_created(db_path, "C000002", "2024-02-20 15:59:59.000000")  # 23:59:59 on Feb 20 in Shanghai
    set_created(db_path, "C000003", "2024-02-20 16:00:00.000000")  # 00:00 on Feb 21 in Shanghai
    set_created(db_path, "C000004", "2024-05-01 04:00:00.000000")
    cli.ok("purchase", "add", "Bo", "100", "--at", "2024-03-01", "--as-of", AS_OF)
    cli.ok("purchase", "add", "Bo", "50", "--at", "2024-04-01", "--as-of", AS_OF)
    cli.ok("purchase", "add", "Al", "300", "--at", "2024-02-01", "--as-of", AS_OF)
    cli.ok("purchase", "add", "Cy", "20", "--at", "2024-06-01", "--as-of", AS_OF)
    refund = cli.ok("purchase", "add", "Cy", "500", "--at", "2024-06-02", "--as-of", AS_OF).stdout.strip()
    cli.ok("purchase", "refund", refund, "--as-of", AS_OF)


def test_list_rows_and_json_keys(shop):
    rows = shop.json("customer", "list", "--as-of", AS_OF)
    assert codes(rows) == ["C000001", "C000002", "C000003", "C000004"]
    assert list(rows[0]) == ["id", "code", "name", "phone", "email", "city", "tags", "orders", "net_spent",
                             "last_purchase", "next_follow_up", "gender", "birthday", "age", "source", "created_at",
                             "deleted"]
    bo = rows[0]
    assert bo["tags"] == ["vip", "wine"] and bo["orders"] == 2 and bo["net_spent"] == "150.00"
    assert bo["last_purchase"] == "2024-04-01" and bo["age"] == 34 and bo["created_at"] == "2024-01-10T10:00:00+08:00"
    cy = rows[2]
    assert cy["orders"] == 2 and cy["net_spent"] == "20.00"  # the refunded 500 nets out


@pytest.mark.parametrize(("opts", "expected"), [
    (["--tag", "vip"], ["C000001", "C000002"]),  # tags match ignoring case
    (["--tag", "vip", "--tag", "wine"], ["C000001"]),  # several tags: all of them
    (["--city", "上海"], ["C000001", "C000003"]),
    (["--city", "shanghai"], ["C000004"]),
    (["--source", "douyin"], ["C000001", "C000003"]),
    (["--created-since", "2024-02-21"], ["C000003", "C000004"]),  # days in the store's time zone
    (["--created-until", "2024-02-20"], ["C000001", "C000002"]),
    (["--created-since", "2024-02-01", "--created-until", "2024-04-30"], ["C000002", "C000003"]),
    (["--birthday-month", "5"], ["C000001", "C000003"]),
    (["--birthday-month", "12"], ["C000002"]),
    (["--due"], ["C000001", "C000002"]),  # due on or before the as-of date
    (["--city", "上海", "--tag", "vip"], ["C000001"]),
])
def test_list_filters(shop, opts, expected):
    assert codes(shop.json("customer", "list", "--as-of", AS_OF, *opts)) == expected


def test_due_follow_ups_depend_on_the_as_of_date(shop):
    assert codes(shop.json("customer", "list", "--due", "--as-of", "2024-06-09")) == []
    assert codes(shop.json("customer", "list", "--due", "--as-of", "2024-06-16")) == ["C000001", "C000002", "C000003"]


@pytest.mark.parametrize(("sort", "expected"), [
    ("code", ["C000001", "C000002", "C000003", "C000004"]),
    ("name", ["C000002", "C000001", "C000003", "C000004"]),
    ("created", ["C000001", "C000002", "C000003", "C000004"]),
    ("spend", ["C000004", "C000003", "C000001", "C000002"]),
    ("orders", ["C000004", "C000002", "C000001", "C000003"]),
    ("follow-up", ["C000004", "C000001", "C000002", "C000003"]),
    ("city", ["C000004", "C000001", "C000003", "C000002"]),
])
def test_list_sorts(shop, sort, expected):
    assert codes(shop.json("customer", "list", "--sort", sort)) == expected


def test_list_descending_and_limit(shop):
    assert codes(shop.json("customer", "list", "--sort", "spend", "--desc")) == ["C000002", "C000001", "C000003", "C000004"]
    assert codes(shop.json("customer", "list", "--sort", "spend", "--desc", "--limit", "2")) == ["C000002", "C000001"]
    assert codes(shop.json("customer", "list", "--sort", "last-purchase", "--desc", "-n", "1")) == ["C000003"]


def test_list_deleted(shop):
    shop.ok("customer", "rm", "C000002", "--yes")
    assert codes(shop.json("customer", "list")) == ["C000001", "C000003", "C000004"]
    rows = shop.json("customer", "list", "--deleted")
    assert [(r["code"], r["deleted"]) for r in rows] == [("C000001", False), ("C000002", True), ("C000003", False),
                                                         ("C000004", False)]


def test_list_bad_options(shop, unchanged):
    check = unchanged()
    fails(shop, 2, "customer", "list", "--sort", "age", says=["'age' is not a sort key", "spend"])
    fails(shop, 5, "customer", "list", "--created-since", "2024-13-01", says=["'2024-13-01'", "--created-since"])
    assert shop("customer", "list", "--birthday-month", "13").exit_code == 2
    check()


def test_an_empty_list_says_so_on_stderr(cli):
    result = cli.ok("customer", "list", "--format", "table")
    assert result.stdout == "" and "No customers match." in result.stderr
    assert cli.json("customer", "list") == []


# ------------------------------------------------------------------------------------------ search

@pytest.mark.parametrize(("text", "expected"), [
    ("小芳", ["C000002"]),
    ("芳", ["C000001", "C000002"]),
    ("0013", ["C000001", "C000002"]),  # a phone fragment
    ("139-0013", ["C000002"]),  # separators in the fragment are ignored
    ("+8613800138000", ["C000001"]),
    ("example.org", ["C000003"]),
    ("FANG@", ["C000001"]),
    ("c000003", ["C000003"]),
    ("拿铁", ["C000001"]),  # notes
    ("annlee", ["C000003"]),  # a social handle
    ("%", []),  # LIKE wildcards are literal
    ("_", []),
])
def test_search(people, text, expected):
    assert codes(people.json("customer", "search", text)) == expected


def test_search_needs_text_and_respects_deleted(people):
    fails(people, 5, "customer", "search", "  ", says=["search text is empty"])
    people.ok("customer", "rm", "C000002", "--yes")
    assert codes(people.json("customer", "search", "芳")) == ["C000001"]
    assert codes(people.json("customer", "search", "芳", "--deleted")) == ["C000001", "C000002"]


# -------------------------------------------------------------------------------------------- edit

def test_edit_each_field(cli, db_path):
    add(cli, "王芳")
    add(cli, "Ref")
    cli.ok("customer", "edit", "C000001", "--name", "王芳芳", "--code", "W-1", "--gender", "f", "--birthday", "1990-01-02",
           "--occupation", "教师", "--company", "X", "--address", "Road 1", "--city", "杭州", "--source", "referral",
           "--referred-by", "Ref", "--preferred-channel", "sms", "--preferences", "quiet table", "--notes", "n1",
           "--follow-up", "2030-01-01")
    row = query(db_path, "SELECT code, name, gender, birthday, occupation, company, address, city, source, referred_by_id, "
                         "preferred_channel, preferences_text, notes, next_follow_up FROM customer WHERE id = 1")[0]
    assert row == ("W-1", "王芳芳", "female", "1990-01-02", "教师", "X", "Road 1", "杭州", "referral", 2, "sms",
                   "quiet table", "n1", "2030-01-01")
    # '' clears a field
    cli.ok("customer", "edit", "W-1", "--gender", "", "--birthday", "", "--occupation", "", "--company", "", "--address", "",
           "--city", "", "--source", "", "--referred-by", "", "--preferred-channel", "", "--preferences", "",
           "--notes", "", "--follow-up", "")
    row = query(db_path, "SELECT gender, birthday, occupation, company, address, city, source, referred_by_id, "
                         "preferred_channel, preferences_text, notes, next_follow_up FROM customer WHERE id = 1")[0]
    assert row == (None,) * 12


def test_edit_contacts_consent_and_preferences(cli, db_path):
    add(cli, "A", "--phone", "13800138000", "--email", "A@Example.com", "--wechat", "aaa", "--consent", "email=yes",
        "--pref", "size=M", "--pref", "milk=oat")
    import sqlite3

    conn = sqlite3.connect(db_path)
    with conn:  # an older consent, so that the change's new time is visible
        conn.execute("UPDATE consent SET changed_at = '2020-01-01 00:00:00.000000'")
    conn.close()
    first = "2020-01-01 00:00:00.000000"
    cli.ok("customer", "edit", "A", "--add-phone", "13900139000", "--remove-phone", "138 0013 8000",
           "--add-email", "b@example.com", "--remove-email", "a@example.COM", "--add-social", "qq:42",
           "--remove-social", "wechat:aaa", "--consent", "email=no", "--consent", "sms=yes", "--pref", "size=L",
           "--unset-pref", "milk")
    assert query(db_path, "SELECT kind, value, label FROM contact_point ORDER BY position") == [
        ("phone", "+8613900139000", None), ("email", "b@example.com", None), ("social", "42", "qq")]
    consent = dict((ch, (g, at)) for ch, g, at in query(db_path, "SELECT channel, granted, changed_at FROM consent"))
    assert consent["email"][0] == 0 and consent["email"][1] > first
    assert consent["sms"][0] == 1
    assert query(db_path, "SELECT key, value FROM preference") == [("size", "L")]
    # Re-stating a consent does not move its time.
    cli.ok("customer", "edit", "A", "--consent", "email=no")
    assert one(db_path, "SELECT changed_at FROM consent WHERE channel = 'email'") == consent["email"][1]


def test_edit_that_changes_nothing_writes_no_audit_row(cli, db_path):
    add(cli, "A", "--city", "上海", "--phone", "13800138000", "--pref", "size=M")
    before = len(audit_rows(db_path))
    result = cli.ok("customer", "edit", "A", "--city", "上海", "--add-phone", "+8613800138000", "--pref", "size=M")
    assert "Nothing to change for C000001 A." in result.stderr
    assert len(audit_rows(db_path)) == before
    updated = one(db_path, "SELECT updated_at FROM customer")
    cli.ok("customer", "edit", "A", "--city", "北京")
    assert len(audit_rows(db_path)) == before + 1
    assert one(db_path, "SELECT updated_at FROM customer") >= updated


@pytest.mark.parametrize(("opts", "code", "says"), [
    (["--remove-phone", "13900139000"], 3, ["C000001 has no phone 13900139000"]),
    (["--remove-email", "x@example.com"], 3, ["has no email x@example.com"]),
    (["--remove-social", "wechat:zzz"], 3, ["has no wechat zzz"]),
    (["--unset-pref", "colour"], 3, ["has no preference 'colour'"]),
    (["--name", ""], 5, ["name must not be empty"]),
    (["--referred-by", "C000001"], 5, ["cannot refer themselves"]),
    (["--code", "C000002"], 4, ["The code C000002 is already taken"]),
    (["--add-phone", "555"], 5, ["'555' is not a valid phone number"]),
    (["--birthday", "2024-02-30"], 5, ["'2024-02-30' is not a valid date for birthday"]),
    (["--city", "北京", "--remove-phone", "13900139000"], 3, ["has no phone"]),  # all or nothing
])
def test_edit_errors_change_nothing(cli, unchanged, opts, code, says):
    add(cli, "A", "--phone", "13800138000", "--email", "a@example.com", "--city", "上海")
    add(cli, "B")
    check = unchanged()
    fails(cli, code, "customer", "edit", "C000001", *opts, says=says)
    check()


# --------------------------------------------------------------------------------------------- tag

def test_tag_add_and_remove(cli, db_path):
    add(cli, "A", "--tag", "newcomer")
    result = cli.ok("customer", "tag", "A", "vip", "咖啡控", "vip", "--remove", "newcomer")
    assert "C000001 tags: vip, 咖啡控" in result.stderr
    assert [r[0] for r in query(db_path, "SELECT tag FROM customer_tag ORDER BY tag")] == ["vip", "咖啡控"]
    rows = audit_rows(db_path, "tag")
    assert rows[-1]["before"] == {"tags": ["newcomer"]} and rows[-1]["after"] == {"tags": ["vip", "咖啡控"]}
    n = len(audit_rows(db_path))
    cli.ok("customer", "tag", "A", "vip")  # already there: nothing changes, nothing is audited
    assert len(audit_rows(db_path)) == n


def test_tag_errors(cli, unchanged):
    add(cli, "A", "--tag", "vip")
    check = unchanged()
    fails(cli, 3, "customer", "tag", "A", "--remove", "gold", says=["C000001 has no tag 'gold'"])
    fails(cli, 2, "customer", "tag", "A", says=["Give tags to add, or --remove TAG"])
    fails(cli, 5, "customer", "tag", "A", "x;y", says=["'x;y' is not a tag"])
    check()


# ------------------------------------------------------------------------------------- rm / restore

def test_rm_needs_yes_off_a_terminal(cli, unchanged):
    add(cli, "A")
    check = unchanged()
    fails(cli, 2, "customer", "rm", "A", says=["Delete C000001 A?", "add --yes"])
    check()


def test_rm_asks_on_a_terminal(cli, monkeypatch, unchanged, db_path):
    add(cli, "A")
    monkeypatch.setattr("crmcli.cli.common.is_interactive", lambda: True)
    check = unchanged()
    result = cli("customer", "rm", "A", input="n\n")
    assert result.exit_code == 1 and "Delete C000001 A?" in result.stderr
    check()
    cli.ok("customer", "rm", "A", input="y\n")
    assert one(db_path, "SELECT deleted_at IS NOT NULL FROM customer") == 1


def test_rm_and_restore(cli, db_path, unchanged):
    add(cli, "A", "--phone", "13800138000")
    cli.ok("customer", "rm", "A", "--yes")
    assert one(db_path, "SELECT deleted_at IS NOT NULL FROM customer") == 1
    assert one(db_path, "SELECT count(*) FROM contact_point") == 1  # soft: nothing else is removed
    check = unchanged()
    fails(cli, 3, "customer", "show", "A", says=["C000001 A (+8613800138000) is deleted", "crm customer restore C000001"])
    fails(cli, 3, "customer", "rm", "C000001", "--yes", says=["is deleted"])
    fails(cli, 3, "purchase", "add", "C000001", "10", says=["is deleted"])
    check()
    assert cli.json("customer", "show", "A", "--deleted")["customer"]["deleted"] is True
    cli.ok("customer", "restore", "A")
    assert one(db_path, "SELECT deleted_at FROM customer") is None
    fails(cli, 4, "customer", "restore", "A", says=["C000001 is not deleted"])
    assert [r["action"] for r in audit_rows(db_path) if r["entity"] == "customer"] == ["add", "delete", "restore"]


# ------------------------------------------------------------------------------------------- log

def test_log_records_the_interaction_and_moves_the_follow_up(cli, db_path):
    add(cli, "A", "--follow-up", "2024-06-20")
    result = cli.ok("customer", "log", "A", "--channel", "Phone", "--summary", "回访：满意", "--outcome", "booked",
                    "--next", "2 weeks", "--as-of", AS_OF)
    assert "next follow-up: 2024-06-29" in result.stderr
    assert one(db_path, "SELECT next_follow_up FROM customer") == "2024-06-29"
    row = query(db_path, "SELECT channel, summary, outcome, next_date, occurred_at, actor FROM interaction")[0]
    assert row[:4] == ("phone", "回访：满意", "booked", "2024-06-29")
    assert row[4].startswith("2024-06-15 04:00:00")  # noon of the as-of day in Shanghai, stored in UTC
    assert row[5]
    entry = audit_rows(db_path, "add")[-1]
    assert entry["entity"] == "interaction" and entry["before"] == {"next_follow_up": "2024-06-20"}
    assert entry["after"]["next_follow_up"] == "2024-06-29"


def test_a_contact_without_next_clears_a_due_follow_up_only(cli, db_path):
    add(cli, "Due", "--follow-up", "2024-06-10")
    add(cli, "Later", "--follow-up", "2024-07-01")
    cli.ok("customer", "log", "Due", "-c", "wechat", "-s", "checked in", "--as-of", AS_OF)
    cli.ok("customer", "log", "Later", "-c", "wechat", "-s", "checked in", "--as-of", AS_OF)
    assert query(db_path, "SELECT name, next_follow_up FROM customer ORDER BY id") == [("Due", None), ("Later", "2024-07-01")]
    assert codes(cli.json("customer", "list", "--due", "--as-of", AS_OF)) == []


def test_a_past_contact_does_not_clear_a_later_follow_up(cli, db_path):
    add(cli, "A", "--follow-up", "2024-06-10")
    cli.ok("customer", "log", "A", "-c", "visit", "-s", "old visit", "--at", "2024-06-01 10:00", "--as-of", AS_OF)
    assert one(db_path, "SELECT next_follow_up FROM customer") == "2024-06-10"
    assert one(db_path, "SELECT occurred_at FROM interaction").startswith("2024-06-01 02:00:00")


@pytest.mark.parametrize(("opts", "says"), [
    (["-c", "fax", "-s", "x"], ["'fax' is not a channel"]),
    (["-c", "phone", "-s", "  "], ["summary must not be empty"]),
    (["-c", "phone", "-s", "x", "--next", "2024-06-01"], ["next follow-up 2024-06-01 is in the past"]),
    (["-c", "phone", "-s", "x", "--next", "3 days ago"], ["is in the past"]),
    (["-c", "phone", "-s", "x", "--at", "2024-06-16 09:00"], ["--at 2024-06-16 09:00 is in the future"]),
    (["-c", "phone", "-s", "x", "--at", "2024-06-15 25:00"], ["'2024-06-15 25:00' is not a valid date for --at"]),
])
def test_log_errors(cli, unchanged, opts, says):
    add(cli, "A", "--follow-up", "2024-06-10")
    check = unchanged()
    fails(cli, 5, "customer", "log", "A", *opts, "--as-of", AS_OF, says=says)
    check()


# --------------------------------------------------------------------------------------- history

def test_history_shows_purchases_refunds_interactions_and_changes(cli):
    add(cli, "A")
    cli.ok("customer", "edit", "A", "--city", "上海")
    cli.ok("customer", "tag", "A", "vip")
    sale = cli.ok("purchase", "add", "A", "128.50", "--at", "2024-06-01 10:00", "--product", "拿铁", "--ref", "R1",
                  "--as-of", AS_OF).stdout.strip()
    cli.ok("purchase", "refund", sale, "28.50", "--at", "2024-06-02", "--as-of", AS_OF)
    cli.ok("customer", "log", "A", "-c", "visit", "-s", "来店", "--at", "2024-06-03 15:00", "--as-of", AS_OF)
    rows = cli.json("customer", "history", "A")
    assert all(list(r) == ["at", "type", "id", "summary", "amount"] for r in rows)
    kinds = [r["type"] for r in rows]
    assert kinds[:3] == ["change:tag", "change:edit", "change:add"]  # made just now, so newest
    assert kinds[3:] == ["interaction:visit", "refund", "sale"]
    sale_row, refund_row, visit = rows[5], rows[4], rows[3]
    assert sale_row["amount"] == "128.50" and "拿铁" in sale_row["summary"] and "ref R1" in sale_row["summary"]
    assert sale_row["at"] == "2024-06-01T10:00:00+08:00"
    assert refund_row["amount"] == "-28.50"
    assert visit["summary"] == "来店" and visit["amount"] is None
    assert rows[1]["summary"] == "city: — → 上海" and rows[0]["summary"] == "tags: — → vip"
    assert [r["type"] for r in cli.json("customer", "history", "A", "--limit", "2")] == ["change:tag", "change:edit"]


def test_history_of_a_deleted_customer(cli):
    add(cli, "A")
    cli.ok("customer", "rm", "A", "--yes")
    fails(cli, 3, "customer", "history", "A")
    assert [r["type"] for r in cli.json("customer", "history", "A", "--deleted")] == ["change:delete", "change:add"]


def test_show_as_table_lists_fields(cli):
    add(cli, "王芳", "--city", "上海", "--tag", "vip", "--pref", "size=M")
    out = cli.ok("customer", "show", "王芳", "--format", "tsv").stdout.splitlines()
    assert out[0] == "field\tvalue"
    assert "customer.city\t上海" in out and "tags\tvip" in out and "preferences\tsize=M" in out


def test_json_output_is_valid_for_cjk(cli):
    add(cli, "王芳", "--notes", "引号\"和\\反斜杠")
    data = json.loads(cli.ok("customer", "show", "王芳", "--format", "json").stdout)
    assert data["customer"]["notes"] == "引号\"和\\反斜杠"


def test_add_and_edit_take_relative_dates_from_the_as_of_day(cli, db_path):
    add(cli, "A", "--follow-up", "in 2 weeks", "--birthday", "30 years ago", "--as-of", AS_OF)
    assert query(db_path, "SELECT next_follow_up, birthday FROM customer") == [("2024-06-29", "1994-06-15")]
    cli.ok("customer", "edit", "A", "--follow-up", "3d", "--as-of", AS_OF)  # a follow-up counts forward
    assert one(db_path, "SELECT next_follow_up FROM customer") == "2024-06-18"
    fails(cli, 5, "customer", "edit", "A", "--birthday", "2024-06-16", "--as-of", AS_OF, says=["is in the future"])


def test_over_long_text_is_refused(cli, unchanged):
    check = unchanged()
    fails(cli, 5, "customer", "add", "A", "--notes", "备" * 10_001, says=["notes is too long (10001 characters; at most 10000)"])
    fails(cli, 5, "customer", "add", "名" * 201, says=["name is too long (201 characters; at most 200)"])
    check()


def test_tags_compare_ignoring_case(cli, db_path):
    add(cli, "A", "--tag", "VIP", "--tag", "vip", "--tag", "new")
    assert [r[0] for r in query(db_path, "SELECT tag FROM customer_tag ORDER BY tag")] == ["VIP", "new"]
    n = len(audit_rows(db_path))
    cli.ok("customer", "tag", "A", "vip")  # already there
    assert len(audit_rows(db_path)) == n
    cli.ok("customer", "tag", "A", "--remove", "NEW", "--remove", "vip")
    assert query(db_path, "SELECT tag FROM customer_tag") == []
    add(cli, "B", "--tag", "old")
    cli.ok("customer", "tag", "B", "OLD", "--remove", "old")  # respelled in one go
    assert query(db_path, "SELECT tag FROM customer_tag WHERE customer_id = 2") == [("OLD",)]
    fails(cli, 3, "customer", "tag", "B", "--remove", "gold", says=["C000002 has no tag 'gold'", "Its tags: OLD"])
