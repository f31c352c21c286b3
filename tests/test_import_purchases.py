"""`crm import purchases` and `crm import interactions`: customers found by code/phone/e-mail, validation
like `purchase add`, dedup by ref (a re-run is a no-op), refunds, the purchase hooks (points) in bulk,
interactions and follow-ups; `crm import undo` and what makes it refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pg_support
from crm_helpers import audit_rows, cli, fails, fast_cli, one, query, template_store  # noqa: F401


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def imported(cli, *args: str, code: int = 0) -> dict:
    result = cli("import", *args, "--format", "json", "--as-of", "2024-06-30")
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    data = json.loads(result.stdout)
    assert data["read"] == sum(data[k] for k in ("created", "updated", "unchanged", "rejected", "skipped"))
    return data


def shop(cli) -> None:
    cli.ok("customer", "add", "王芳", "--phone", "13800138000", "--email", "fang@example.com")
    cli.ok("customer", "add", "Ann", "--email", "ann@example.com")


ORDERS = """订单号,客户编号,手机,金额,下单时间,商品,数量
ORD-1,C000001,,128.50,2024-03-01 14:30,拿铁,2
ORD-2,,13800138000,"1,234.00",2024/3/2,蛋糕,
ORD-3,,,12,2024-03-03,茶,
"""


def test_purchases_by_code_or_phone_and_a_rerun_is_a_no_op(cli, tmp_path):
    shop(cli)
    path = write(tmp_path / "orders.csv", ORDERS.replace("ORD-3,,,12", "ORD-3,,fang@example.com,12")
                 .replace("手机", "客户"))
    data = imported(cli, "purchases", path)
    assert data["created"] == 3
    rows = cli.json("purchase", "list")
    assert {(r["ref"], r["customer_code"], r["amount"], r["date"], r["quantity"]) for r in rows} == {
        ("ORD-1", "C000001", "128.50", "2024-03-01", 2), ("ORD-2", "C000001", "1234.00", "2024-03-02", 1),
        ("ORD-3", "C000001", "12.00", "2024-03-03", 1)}
    assert [r["purchased_at"] for r in rows if r["ref"] == "ORD-1"] == ["2024-03-01T14:30:00+08:00"]
    again = imported(cli, "purchases", path)
    assert (again["created"], again["unchanged"]) == (0, 3)
    assert one(cli.db, "SELECT COUNT(*) FROM purchase") == 3
    batches = [r for r in audit_rows(cli.db) if r["entity"] == "purchase"]
    assert [(r["action"], r["after"]["count"], r["after"]["first_id"], r["after"]["last_id"]) for r in batches] == [
        ("import-batch", 3, 1, 3)]


def test_invalid_values_are_rejected_never_coerced(cli, tmp_path, unchanged):
    shop(cli)
    text = ("ref,customer_code,amount,purchased_at,quantity\n"
            "A,C000001,12.345,2024-03-01,\n"
            "B,C000001,-5,2024-03-01,\n"
            "C,C000001,¥12,2024-03-01,\n"
            "D,C000001,12,2024-13-01,\n"
            "E,C000001,12,,\n"
            "F,C000001,12,2024-03-01,1.5\n"
            "G,C999,12,2024-03-01,\n"
            "H,C000001,12,2099-01-01,\n"
            "I,C000001,12,03/04/2024,\n")
    check = unchanged()
    data = imported(cli, "purchases", write(tmp_path / "p.csv", text), code=5)
    check()
    reasons = {r["line"]: (r["column"], r["reason"]) for r in data["rejects"]}
    assert data["rejected"] == 9
    assert "more decimals" in reasons[2][1] and "negative" in reasons[3][1] and "not an amount" in reasons[4][1]
    assert reasons[5][0] == "purchased_at" and "missing" in reasons[6][1] and reasons[7][0] == "quantity"
    assert "No customer matches 'C999'" in reasons[8][1] and "in the future" in reasons[9][1]
    assert "either way round" in reasons[10][1] and "--date-format" in reasons[10][1]


def test_same_ref_different_order_is_rejected(cli, tmp_path):
    shop(cli)
    cli.ok("purchase", "add", "C000001", "50", "--ref", "ORD-1", "--at", "2024-03-01")
    text = "ref,customer_code,amount,purchased_at\nORD-1,C000001,50,2024-03-01\nORD-1,C000001,60,2024-03-01\n"
    data = imported(cli, "purchases", write(tmp_path / "p.csv", text), "--partial", code=5)
    assert (data["unchanged"], data["rejected"]) == (1, 1)
    assert "Order ref ORD-1 is already recorded" in data["rejects"][0]["reason"]


def test_refunds_link_to_their_sale_and_are_checked(cli, tmp_path):
    shop(cli)
    text = ("ref,customer_code,kind,amount,purchased_at,refund_of_ref,note\n"
            "S1,C000001,sale,100,2024-03-01,,\n"
            "R1,C000001,refund,-30,2024-03-05,S1,damaged\n"
            "R2,C000001,refund,80,2024-03-06,S1,\n"
            "R3,C000002,refund,10,2024-03-06,S1,\n"
            "R4,C000001,refund,10,2024-02-01,S1,\n")
    data = imported(cli, "purchases", write(tmp_path / "p.csv", text), "--partial", code=5)
    assert (data["created"], data["rejected"]) == (2, 3)
    reasons = [r["reason"] for r in data["rejects"]]
    assert "more than the CN¥70.00 left" in reasons[0] and "another customer" in reasons[1]
    assert "before the sale" in reasons[2]
    refund = [r for r in cli.json("purchase", "list") if r["kind"] == "refund"][0]
    assert (refund["amount"], refund["refund_of"], refund["note"]) == ("-30.00", 1, "damaged")


def test_imported_sales_earn_points_through_the_purchase_hooks(cli, tmp_path):
    shop(cli)
    cli.ok("config", "set", "points.enabled", "true")
    data = imported(cli, "purchases", write(tmp_path / "orders.csv", ORDERS.replace(",,,12", ",C000002,,12")))
    assert data["created"] == 3
    earned = dict(query(cli.db, "SELECT purchase_id, points FROM points_ledger WHERE kind = 'earn'"))
    assert earned == {1: 128, 2: 1234, 3: 12}


def test_undo_removes_what_an_import_created_and_their_points(cli, tmp_path, unchanged):
    shop(cli)
    cli.ok("config", "set", "points.enabled", "true")
    check = unchanged()
    imported(cli, "purchases", write(tmp_path / "orders.csv", ORDERS.replace(",,,12", ",C000002,,12")))
    cli.ok("import", "undo", "1", "--yes")
    assert one(cli.db, "SELECT COUNT(*) FROM purchase") == 0
    assert one(cli.db, "SELECT COUNT(*) FROM points_ledger") == 0
    assert one(cli.db, "SELECT status FROM import_run") == "undone"
    fails(cli, 4, "import", "undo", "1", "--yes", says=["already undone"])
    fails(cli, 3, "import", "undo", "9", "--yes", says=["No import #9"])
    fails(cli, 2, "import", "undo", "1")  # off a terminal: --yes required
    del check
    # ids removed by undo are not reused
    imported(cli, "purchases", write(tmp_path / "again.csv", ORDERS.replace(",,,12", ",C000002,,12")))
    assert [r[0] for r in query(cli.db, "SELECT id FROM purchase ORDER BY id")] == [4, 5, 6]


def test_undo_refuses_when_records_were_used_or_changed(cli, tmp_path):
    imported(cli, "customers", write(tmp_path / "c.csv", "name,phone\nAnn,13800138000\nBob,13900139000\n"))
    cli.ok("purchase", "add", "Ann", "10", "--at", "2024-03-01")
    fails(cli, 4, "import", "undo", "1", "--yes", says=["cannot be undone", "customer C000001 is used by purchase"])
    imported(cli, "customers", write(tmp_path / "d.csv", "name,phone\nCat,13700137000\n"))
    cli.ok("customer", "edit", "Cat", "--city", "上海")
    fails(cli, 4, "import", "undo", "2", "--yes", says=["customer C000003 was changed after it (edit"])
    imported(cli, "purchases", write(tmp_path / "p.csv", "ref,customer_code,amount,purchased_at\nS1,C000002,50,2024-03-01\n"))
    cli.ok("purchase", "refund", "2", "10", "--at", "2024-03-02")
    fails(cli, 4, "import", "undo", "3", "--yes", says=["purchase #2 is used by purchase"])


def test_undo_customers_removes_their_contacts_tags_consent_and_preferences(cli, tmp_path, unchanged):
    check = unchanged()
    text = "name,phone,tags,consent_sms,preferences\nAnn,13800138000,vip,yes,size=M\n"
    imported(cli, "customers", write(tmp_path / "c.csv", text))
    cli.ok("import", "undo", "1", "--yes")
    for table in ("customer", "contact_point", "customer_tag", "consent", "preference"):
        assert one(cli.db, f"SELECT COUNT(*) FROM {table}") == 0, table
    del check
    assert [r["action"] for r in audit_rows(cli.db) if r["entity"] in ("customer", "import")][-2:] == [
        "import-undo", "undo"]
    removal = audit_rows(cli.db, "import-undo")[-1]  # one row per range of removed customers, like import-batch
    assert (removal["entity_id"], removal["after"]) == (
        None, {"import_id": 1, "first_id": 1, "last_id": 1, "removed": 1})


INTERACTIONS = """customer_code,channel,summary,outcome,occurred_at,next_date
C000001,phone,"回访：满意, ok",booked,2024-06-20 10:00,2024-07-15
C000002,visit,came by,,2024-06-21,
C000001,fax,x,,2024-06-21,
C000001,phone,,,2024-06-21,
"""


def test_interactions_import_moves_follow_ups_and_a_rerun_is_a_no_op(cli, tmp_path):
    shop(cli)
    cli.ok("customer", "edit", "Ann", "--follow-up", "2024-06-01", "--as-of", "2024-05-01")
    path = write(tmp_path / "i.csv", INTERACTIONS)
    data = imported(cli, "interactions", path, "--partial", code=5)
    assert (data["created"], data["rejected"]) == (2, 2)
    assert [(r["line"], r["column"]) for r in data["rejects"]] == [(4, "channel"), (5, "summary")]
    follow = dict(query(cli.db, "SELECT code, next_follow_up FROM customer"))
    assert follow == {"C000001": "2024-07-15", "C000002": None}  # Ann's due follow-up was settled by the visit
    history = [h for h in cli.json("customer", "history", "王芳") if h["type"].startswith("interaction")]
    assert [h["type"] for h in history] == ["interaction:phone"] and "回访：满意, ok" in history[0]["summary"]
    again = imported(cli, "interactions", path, "--partial", code=5)
    assert (again["created"], again["unchanged"]) == (0, 2)


def test_shop_export_times_are_stored_as_purchase_add_stores_them(cli, tmp_path):
    """The quick path for '2024-03-01 14:30' times and the stored forms written directly: the same rows in the
    store as `purchase add --at`, and the same checks (future, out of range, same-batch refs and refunds)."""
    shop(cli)
    cli.ok("purchase", "add", "C000001", "10", "--at", "2024-03-01 14:30", "--ref", "BY-HAND", "--as-of", "2024-06-30")
    text = ("ref,customer_code,kind,amount,purchased_at,refund_of_ref,product\n"
            "Q1,C000001,sale,10,2024-03-01 14:30,,拿铁\n"
            "Q2,C000001,sale,20,2024-03-02T23:59:59,,\n"
            "Q2,C000001,sale,20,2024-03-03 00:00,,\n"  # same ref again in the batch, another day: refused
            "Q3,C000001,refund,5,2024-03-01 23:00,Q2,\n"  # before its sale (same batch): refused
            "Q4,C000001,refund,5,2024-03-03 00:00:00,Q2,\n"
            "Q5,C000001,sale,10,2024-07-01 00:00,,\n"  # the future (as of 2024-06-30, Asia/Shanghai)
            "Q6,C000001,sale,10,0001-01-01 00:00,,\n"  # before the first representable moment in UTC
            "Q7,C000001,sale,10,2024-03-01 14:30,,\x07\n")
    data = imported(cli, "purchases", write(tmp_path / "p.csv", text), "--partial", code=5)
    reasons = {r["line"]: (r["column"], r["reason"]) for r in data["rejects"]}
    assert (data["created"], data["rejected"]) == (3, 5), reasons
    assert "ref" == reasons[4][0] and "before the sale" in reasons[5][1] and "in the future" in reasons[7][1]
    assert reasons[8] == ("purchased_at", reasons[8][1]) and "out of range" in reasons[8][1]
    assert reasons[9][0] == "product" and "control characters" in reasons[9][1]
    if isinstance(cli.db, pg_support.PgDb):  # timestamptz and date columns there: compare what they read back
        stored = {r["ref"]: r["purchased_at"] for r in cli.json("purchase", "list")}
        assert stored["Q1"] == stored["BY-HAND"] == "2024-03-01T14:30:00+08:00"
        assert stored["Q4"] == "2024-03-03T00:00:00+08:00"
        return
    stored = dict(query(cli.db, "SELECT ref, purchased_at || '|' || purchased_on FROM purchase"))
    assert stored["Q1"] == stored["BY-HAND"] == "2024-03-01 06:30:00.000000|2024-03-01"
    assert stored["Q2"] == "2024-03-02 15:59:59.000000|2024-03-02"
    assert stored["Q4"] == "2024-03-02 16:00:00.000000|2024-03-03"
    created = query(cli.db, "SELECT DISTINCT created_at FROM purchase WHERE ref LIKE 'Q%'")
    assert len(created) == 1 and len(created[0][0]) == 26  # 'YYYY-MM-DD HH:MM:SS.ffffff', as SQLAlchemy writes
