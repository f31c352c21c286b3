"""`crm purchase ...`: add, list, show, refund; order refs; amounts; all checked in output and store."""

from __future__ import annotations

import pytest
from crm_helpers import (audit_rows, cli, fails, fast_cli, from_template, one, query,  # noqa: F401 (fixtures)
                         template_store)

AS_OF = "2024-06-15"


def _shop(cli):
    cli.ok("customer", "add", "王芳", "--phone", "13800138000")
    cli.ok("customer", "add", "Ann", "--email", "ann@example.com")


@pytest.fixture
def shop(cli, tmp_path_factory):
    return from_template("purchase-shop", cli, tmp_path_factory, _shop)


def buy(cli, *args):
    return int(cli.ok("purchase", "add", *args, "--as-of", AS_OF).stdout.strip())


def test_add_records_every_field(shop, db_path):
    result = shop.ok("purchase", "add", "13800138000", "1,234.50", "--at", "2024-03-01 14:30", "--product", "拿铁",
                     "--category", "coffee", "--quantity", "3", "--channel", "wechat", "--ref", "ORD-1",
                     "--note", "生日", "--as-of", AS_OF)
    assert result.stdout == "1\n"
    assert "Recorded purchase #1: CN¥1,234.50 for C000001." in result.stderr
    row = query(db_path, "SELECT customer_id, kind, amount_minor, purchased_at, purchased_on, product, category, quantity, "
                         "channel, ref, note, refund_of_id FROM purchase")[0]
    assert row == (1, "sale", 123450, "2024-03-01 06:30:00.000000", "2024-03-01", "拿铁", "coffee", 3, "wechat", "ORD-1",
                   "生日", None)


def test_business_date_is_the_stores_local_date(shop, db_path):
    buy(shop, "Ann", "10", "--at", "2024-03-01 00:30")  # 16:30 UTC the day before
    buy(shop, "Ann", "10", "--at", "2024-03-01T23:30:00+00:00")  # 07:30 on March 2 in Shanghai
    assert query(db_path, "SELECT purchased_on FROM purchase ORDER BY id") == [("2024-03-01",), ("2024-03-02",)]


def test_without_at_the_purchase_is_dated_on_the_as_of_day(shop, db_path):
    buy(shop, "Ann", "10")
    assert one(db_path, "SELECT purchased_on FROM purchase") == AS_OF


def test_list_json_keys_and_signs(shop):
    sale = buy(shop, "王芳", "100", "--at", "2024-06-01", "--product", "Beans", "--category", "retail", "--ref", "A1")
    shop.ok("purchase", "refund", str(sale), "30", "--at", "2024-06-02", "--reason", "damaged", "--as-of", AS_OF)
    rows = shop.json("purchase", "list")
    assert [list(r) for r in rows] == [["id", "date", "customer_code", "customer_name", "kind", "amount", "product",
                                        "category", "quantity", "channel", "ref", "refund_of", "purchased_at", "note"]] * 2
    refund, original = rows
    assert (refund["kind"], refund["amount"], refund["refund_of"], refund["note"]) == ("refund", "-30.00", sale, "damaged")
    assert (original["kind"], original["amount"], original["ref"], original["date"]) == ("sale", "100.00", "A1", "2024-06-01")
    assert original["purchased_at"] == "2024-06-01T00:00:00+08:00"


def _sales(shop):
    _shop(shop)
    buy(shop, "王芳", "10", "--at", "2024-01-05", "--product", "Latte", "--category", "coffee", "--channel", "store")
    buy(shop, "王芳", "20", "--at", "2024-02-05", "--product", "Beans 250g", "--category", "retail", "--channel", "online")
    buy(shop, "Ann", "30", "--at", "2024-03-05", "--product", "Latte big", "--category", "Coffee", "--channel", "Store")
    shop.ok("purchase", "refund", "3", "5", "--as-of", AS_OF)


@pytest.fixture
def sales(cli, tmp_path_factory):
    return from_template("purchase-sales", cli, tmp_path_factory, _sales)


@pytest.mark.parametrize(("opts", "ids"), [
    ([], [4, 3, 2, 1]),
    (["--customer", "王芳"], [2, 1]),
    (["--customer", "ann@example.com"], [4, 3]),
    (["--since", "2024-02-01"], [4, 3, 2]),
    (["--until", "2024-02-05"], [2, 1]),
    (["--category", "coffee"], [4, 3, 1]),
    (["--channel", "store"], [4, 3, 1]),
    (["--product", "latte"], [4, 3, 1]),
    (["--product", "%"], []),
    (["--kind", "refund"], [4]),
    (["--kind", "sale", "--limit", "2"], [3, 2]),
])
def test_list_filters(sales, opts, ids):
    assert [r["id"] for r in sales.json("purchase", "list", *opts)] == ids


def test_list_rejects_a_bad_kind(sales):
    fails(sales, 5, "purchase", "list", "--kind", "gift", says=["'gift' is not a kind", "sale or refund"])


def test_show_lists_the_sale_and_its_refunds(sales):
    assert [(r["id"], r["kind"]) for r in sales.json("purchase", "show", "3")] == [(3, "sale"), (4, "refund")]
    assert [r["id"] for r in sales.json("purchase", "show", "4")] == [3, 4]
    fails(sales, 3, "purchase", "show", "99", says=["No purchase #99", "crm purchase list"])


# ------------------------------------------------------------------------------------------- refunds

def test_partial_then_full_refund(shop, db_path, unchanged):
    sale = buy(shop, "Ann", "100", "--at", "2024-06-01", "--quantity", "2")
    result = shop.ok("purchase", "refund", str(sale), "30", "--reason", "one cup spilt", "--as-of", AS_OF)
    assert result.stdout == "2\n" and "Refunded CN¥30.00 of purchase #1 (refund #2)." in result.stderr
    check = unchanged()
    fails(shop, 5, "purchase", "refund", str(sale), "80", "--as-of", AS_OF,
          says=["Refund CN¥80.00 is more than the CN¥70.00 left to refund on purchase #1", "at most 70.00"])
    check()
    shop.ok("purchase", "refund", str(sale), "--as-of", AS_OF)  # the rest
    assert query(db_path, "SELECT kind, amount_minor, refund_of_id, quantity FROM purchase ORDER BY id") == [
        ("sale", 10000, None, 2), ("refund", 3000, 1, 1), ("refund", 7000, 1, 1)]
    check = unchanged()
    fails(shop, 4, "purchase", "refund", str(sale), "--as-of", AS_OF, says=["Purchase #1 is already fully refunded"])
    fails(shop, 5, "purchase", "refund", "2", "--as-of", AS_OF, says=["Purchase #2 is itself a refund", "#1"])
    check()
    card = shop.json("card", "show", "Ann")
    assert card["purchases"]["gross"] == "100.00" and card["purchases"]["refunded"] == "100.00"
    assert card["purchases"]["net"] == "0.00" and card["purchases"]["orders"] == 1


def test_a_full_refund_keeps_the_quantity(shop, db_path):
    sale = buy(shop, "Ann", "100", "--quantity", "2")
    shop.ok("purchase", "refund", str(sale), "100", "--as-of", AS_OF)
    assert one(db_path, "SELECT quantity FROM purchase WHERE kind = 'refund'") == 2


@pytest.mark.parametrize(("args", "code", "says"), [
    (["1", "0"], 5, ["Amount '0' must be greater than zero"]),
    (["1", "-5"], 5, ["Amount '-5' is negative"]),
    (["1", "abc"], 5, ["'abc' is not an amount"]),
    (["1", "1.234"], 5, ["has more decimals than CNY allows (2)"]),
    (["1", "--at", "2024-05-01"], 5, ["refund date 2024-05-01 is before the purchase (2024-06-01)"]),
    (["1", "--at", "2024-06-20"], 5, ["--at 2024-06-20 is in the future"]),
    (["1", "--ref", "ORD-1"], 4, ["Order ref ORD-1 is already recorded"]),
    (["99"], 3, ["No purchase #99"]),
])
def test_refund_errors_change_nothing(shop, unchanged, args, code, says):
    buy(shop, "Ann", "100", "--at", "2024-06-01", "--ref", "ORD-1")
    check = unchanged()
    fails(shop, code, "purchase", "refund", *args, "--as-of", AS_OF, says=says)
    check()


def test_a_free_sale_cannot_be_refunded(shop, unchanged):
    buy(shop, "Ann", "0", "--product", "sample")
    check = unchanged()
    fails(shop, 5, "purchase", "refund", "1", says=["Purchase #1 was free", "nothing to refund"])
    check()


def test_refund_with_a_ref_and_its_audit_row(shop, db_path):
    buy(shop, "Ann", "50")
    shop.ok("purchase", "refund", "1", "--ref", " RF-1 ", "--as-of", AS_OF)
    assert one(db_path, "SELECT ref FROM purchase WHERE kind = 'refund'") == "RF-1"
    entry = audit_rows(db_path, "refund")[0]
    assert entry["entity"] == "purchase" and entry["customer_id"] == 2 and entry["command"] == "crm purchase refund"
    assert entry["after"]["amount_minor"] == 5000 and entry["after"]["refund_of_id"] == 1


# ----------------------------------------------------------------------------------------- order refs

def test_rerunning_the_same_order_is_a_no_op(shop, db_path):
    args = ("purchase", "add", "Ann", "99.00", "--at", "2024-06-01", "--product", "Tea", "--ref", "ORD-7", "--as-of", AS_OF)
    assert shop.ok(*args).stdout == "1\n"
    n_audit = len(audit_rows(db_path))
    again = shop.ok(*args)
    assert again.stdout == "1\n" and "Order ORD-7 was already recorded as purchase #1; nothing changed." in again.stderr
    assert one(db_path, "SELECT count(*) FROM purchase") == 1 and len(audit_rows(db_path)) == n_audit
    # Leaving optional details out still names the same order.
    assert shop.ok("purchase", "add", "ann@example.com", "99", "--ref", "ORD-7", "--as-of", AS_OF).stdout == "1\n"


@pytest.mark.parametrize("change", [
    ["Ann", "98"], ["王芳", "99"], ["Ann", "99", "--at", "2024-06-02"], ["Ann", "99", "--product", "Coffee"],
    ["Ann", "99", "--channel", "online"],
])
def test_a_different_order_under_a_used_ref_is_refused(shop, unchanged, change):
    buy(shop, "Ann", "99", "--at", "2024-06-01", "--product", "Tea", "--ref", "ORD-7")
    check = unchanged()
    fails(shop, 4, "purchase", "add", *change, "--ref", "ORD-7", "--as-of", AS_OF,
          says=["Order ref ORD-7 is already recorded (purchase #1 on 2024-06-01, CN¥99.00)", "use another ref"])
    check()


# -------------------------------------------------------------------------------------------- amounts

@pytest.mark.parametrize(("amount", "minor"), [("12", 1200), ("12.5", 1250), ("12.50", 1250), ("12.500", 1250),
                                               ("1,234.56", 123456), ("0.01", 1), ("１２８", 12800)])
def test_amount_forms(shop, db_path, amount, minor):
    buy(shop, "Ann", amount)
    assert one(db_path, "SELECT amount_minor FROM purchase") == minor


@pytest.mark.parametrize(("amount", "says"), [
    ("-5", ["Amount '-5' is negative", "crm purchase refund"]),
    ("-12.50", ["Amount '-12.50' is negative"]),
    ("12.345", ["Amount '12.345' has more decimals than CNY allows (2)", "Round it to 2 decimals"]),
    ("abc", ["'abc' is not an amount", "e.g. 128 or 99.50"]),
    ("¥12", ["'¥12' is not an amount"]),
    ("12,34", ["'12,34' is not an amount"]),
    ("1e3", ["'1e3' is not an amount"]),
    ("NaN", ["'NaN' is not an amount"]),
    ("1000000000000", ["Amount '1000000000000' is too large", "below 1,000,000,000,000"]),
    ("9" * 400, ["is too large"]),
])
def test_bad_amounts_are_rejected(shop, unchanged, amount, says):
    check = unchanged()
    error = fails(shop, 5, "purchase", "add", "Ann", amount, "--as-of", AS_OF, says=says)
    assert len(error) < 300
    check()


def test_jpy_has_no_decimals(tmp_path):
    from conftest import Cli

    cli = Cli(tmp_path / "jp.sqlite")
    cli.ok("init", "--currency", "JPY", "--region", "JP", "--timezone", "Asia/Tokyo")
    cli.ok("customer", "add", "Sato", "--phone", "090-1234-5678")
    fails(cli, 5, "purchase", "add", "Sato", "12.5", says=["more decimals than JPY allows (0)"])
    cli.ok("purchase", "add", "Sato", "1,200")
    assert cli.json("purchase", "list")[0]["amount"] == "1200"
    assert cli.json("customer", "list")[0]["phone"] == "+819012345678"


@pytest.mark.parametrize(("opts", "code", "says"), [
    (["--at", "2024-02-30"], 5, ["'2024-02-30' is not a valid date for --at"]),
    (["--at", "2024-06-16"], 5, ["--at 2024-06-16 is in the future", "--as-of"]),
    (["--quantity", "0"], 5, ["Quantity 0 is out of range"]),
    (["--product", "x\x1by"], 5, ["product contains control characters"]),
])
def test_other_bad_purchase_input(shop, unchanged, opts, code, says):
    check = unchanged()
    fails(shop, code, "purchase", "add", "Ann", "10", *opts, "--as-of", AS_OF, says=says)
    check()


def test_purchase_for_an_ambiguous_customer_is_refused(cli, unchanged):
    cli.ok("customer", "add", "Ann Lee")
    cli.ok("customer", "add", "Ann Chan")
    check = unchanged()
    fails(cli, 4, "purchase", "add", "Ann", "10", says=["'Ann' matches 2 customers", "C000001 Ann Lee", "C000002 Ann Chan"])
    check()


def test_purchases_feed_the_customer_list(shop):
    buy(shop, "Ann", "10", "--at", "2024-05-01")
    buy(shop, "Ann", "15.5", "--at", "2024-05-03")
    rows = {r["code"]: r for r in shop.json("customer", "list")}
    assert (rows["C000002"]["orders"], rows["C000002"]["net_spent"], rows["C000002"]["last_purchase"]) == (2, "25.50", "2024-05-03")
    assert (rows["C000001"]["orders"], rows["C000001"]["net_spent"]) == (0, "0.00")


@pytest.mark.parametrize("args", [
    ["Ann", "-5", "--quantity", "2"], ["--product", "x", "Ann", "-5"], ["--", "Ann", "-5"], ["Ann", "--at", "2024-06-01", "-5.5"],
])
def test_a_negative_amount_anywhere_gets_the_amount_message(shop, unchanged, args):
    check = unchanged()
    fails(shop, 5, "purchase", "add", "--as-of", AS_OF, *args, says=["is negative", "crm purchase refund"])
    check()


def test_an_option_value_that_looks_negative_stays_with_its_option(shop, unchanged):
    check = unchanged()
    fails(shop, 5, "purchase", "add", "Ann", "5", "--quantity", "-2", says=["Quantity -2 is out of range"])
    assert "Usage" in shop("purchase", "add", "Ann", "-5", "-h").stdout  # help still works
    check()
