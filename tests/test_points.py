"""Loyalty points through the CLI: hand-computed cases for every rule, and the database state behind them."""

from __future__ import annotations

import json
from datetime import date
import sqlite3
from typing import Any

import pytest

from crm_helpers import audit_rows

from crmcli.core import hooks

ASOF = ("--as-of", "2024-03-10")


_COMMAND: list[Any] = []


@pytest.fixture(autouse=True)
def built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Typer rebuilds the whole command tree on every CliRunner.invoke (~0.2 s); build it once here."""
    import typer.testing

    from crmcli.cli.app import app

    if not _COMMAND:
        _COMMAND.append(typer.testing._get_command(app))
    monkeypatch.setattr(typer.testing, "_get_command", lambda _app: _COMMAND[0])


@pytest.fixture(autouse=True)
def no_classification(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tier multipliers come from the tiers feature when it is installed; these cases set their own."""
    monkeypatch.setattr(hooks, "CLASSIFICATION", None)


def fake_classification(session: Any, customer_id: int) -> dict[str, Any]:
    return {1: {"tier": "A", "level": "gold", "points_multiplier": None},
            2: {"tier": "B", "level": None, "points_multiplier": None},
            3: {"tier": "C", "level": "silver", "points_multiplier": "3"}}.get(customer_id, {})


def rules(cli: Any, **values: str) -> None:
    cli.ok("points", "rules", "set", "enabled", "yes")
    for key, value in values.items():
        cli.ok("points", "rules", "set", key.replace("_", "-"), value)


def add_customer(cli: Any, name: str, *extra: str) -> str:
    return cli.ok("customer", "add", name, *extra).stdout.strip()


def buy(cli: Any, code: str, amount: str, at: str = "2024-03-01", *extra: str, as_of: str = "2024-03-10") -> int:
    return int(cli.ok("purchase", "add", code, amount, "--at", at, "--as-of", as_of, *extra).stdout.strip())


def refund(cli: Any, purchase: int, amount: str | None = None, at: str = "2024-03-10") -> int:
    args = ["purchase", "refund", str(purchase)] + ([amount] if amount else []) + ["--at", at, "--as-of", at]
    return int(cli.ok(*args).stdout.strip())


def balance(cli: Any, code: str, as_of: str = "2024-03-10") -> dict[str, Any]:
    return cli.json("points", "balance", code, "--as-of", as_of)


def ledger(db: Any, customer_id: int | None = None) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        where = f" WHERE customer_id = {int(customer_id)}" if customer_id else ""
        return [dict(r) for r in conn.execute(f"SELECT * FROM points_ledger{where} ORDER BY id")]
    finally:
        conn.close()


def allocations(db: Any) -> list[tuple[int, int, int]]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.execute("SELECT debit_id, lot_id, points FROM points_allocation ORDER BY id"))
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------- earning

def test_programme_off_by_default_earns_nothing_and_card_shows_no_points(cli, db_path):
    code = add_customer(cli, "Ann")
    buy(cli, code, "100")
    assert ledger(db_path) == []
    card = json.loads(cli.ok("card", "show", code, "--format", "json").stdout)
    assert card["points"] is None


def test_base_rate_rounds_down_and_the_card_shows_the_balance(cli, db_path):
    rules(cli)
    code = add_customer(cli, "Ann")
    buy(cli, code, "128.99")  # 128.99 × 1 = 128.99 → floor 128
    rows = ledger(db_path)
    assert [(r["kind"], r["points"], r["purchase_id"], r["key"], r["effective_on"]) for r in rows] == [
        ("earn", 128, 1, "earn:1", "2024-03-01")]
    assert balance(cli, code)["spendable"] == 128
    card = json.loads(cli.ok("card", "show", code, "--format", "json", *ASOF).stdout)
    assert card["points"]["balance"] == 128 and card["points"]["spendable"] == 128
    assert card["points"]["next_expiry"] is None and card["points"]["debt"] == 0


def test_rate_and_half_up_rounding(cli, db_path):
    rules(cli, rate="0.1", rounding="half-up")
    code = add_customer(cli, "Ann")
    buy(cli, code, "15.00")  # 1.5 → 2 half-up
    buy(cli, code, "14.99")  # 1.499 → 1
    assert [r["points"] for r in ledger(db_path)] == [2, 1]
    cli.ok("points", "rules", "set", "rounding", "floor")
    buy(cli, code, "19.99")  # 1.999 → 1 floor
    assert [r["points"] for r in ledger(db_path)] == [2, 1, 1]


def test_minimum_purchase_amount(cli, db_path):
    rules(cli, min_purchase="50")
    code = add_customer(cli, "Ann")
    buy(cli, code, "49.99")
    buy(cli, code, "50")
    assert [(r["purchase_id"], r["points"]) for r in ledger(db_path)] == [(2, 50)]


def test_category_multiplier_is_case_insensitive(cli, db_path):
    rules(cli, **{"category.Coffee": "2", "category.tea": "1.5"})
    code = add_customer(cli, "Ann")
    buy(cli, code, "10", "2024-03-01", "--category", "coffee")  # 20
    buy(cli, code, "10", "2024-03-01", "--category", "TEA")  # 15
    buy(cli, code, "10", "2024-03-01", "--category", "cake")  # 10
    assert [r["points"] for r in ledger(db_path)] == [20, 15, 10]
    detail = json.loads(ledger(db_path)[0]["detail"])
    assert detail["category_multiplier"] == "2"
    cli.ok("points", "rules", "set", "category.tea", "none")
    shown = cli.json("points", "rules")
    assert shown["category_multipliers"] == {"Coffee": "2"}


def test_birthday_month_multiplier(cli, db_path):
    rules(cli, birthday_multiplier="2")
    code = add_customer(cli, "Ann", "--birthday", "1990-03-15")
    other = add_customer(cli, "Bob", "--birthday", "1990-04-15")
    buy(cli, code, "100", "2024-03-01")  # March: ×2 → 200
    buy(cli, code, "100", "2024-02-29")  # February: 100
    buy(cli, other, "100", "2024-03-01")  # not his month: 100
    assert [r["points"] for r in ledger(db_path)] == [200, 100, 100]


def test_tier_and_level_multipliers_from_classification(cli, db_path, monkeypatch):
    monkeypatch.setattr(hooks, "CLASSIFICATION", f"{__name__}:fake_classification")
    rules(cli, **{"level.gold": "1.5", "level.B": "1.2", "category.coffee": "2"})
    a = add_customer(cli, "Ann")  # level gold → 1.5
    b = add_customer(cli, "Bob")  # no level, tier B → 1.2
    c = add_customer(cli, "Cat")  # the tiers feature's own multiplier 3 wins
    d = add_customer(cli, "Dan")  # unclassified → 1
    for code in (a, b, c, d):
        buy(cli, code, "10.50", "2024-03-01", "--category", "coffee")
    # 10.5 × 1.5 × 2 = 31.5 → 31; 10.5 × 1.2 × 2 = 25.2 → 25; 10.5 × 3 × 2 = 63; 10.5 × 2 = 21
    assert [r["points"] for r in ledger(db_path)] == [31, 25, 63, 21]


def test_each_purchase_earns_once_even_when_recorded_again(cli, db_path):
    rules(cli)
    code = add_customer(cli, "Ann")
    buy(cli, code, "100", "2024-03-01", "--ref", "ORD-1")
    buy(cli, code, "100", "2024-03-01", "--ref", "ORD-1")  # same order: nothing new
    assert [r["points"] for r in ledger(db_path)] == [100]


def test_backfill_earns_once_for_purchases_before_the_rules(cli, db_path, unchanged):
    code = add_customer(cli, "Ann")
    buy(cli, code, "100", "2024-01-05")
    buy(cli, code, "50", "2024-02-05")
    refund(cli, 2, "20", "2024-02-06")
    check = unchanged()
    result = cli("points", "backfill", *ASOF)
    assert result.exit_code == 4 and "switched off" in result.stderr
    check()
    rules(cli, expiry="365d")
    dry = cli.ok("points", "backfill", "--dry-run", *ASOF)
    assert "Would earn 150 points on 2 purchases" in dry.stderr
    assert ledger(db_path) == []
    assert cli.ok("points", "backfill", *ASOF).stdout.strip() == "2"
    rows = ledger(db_path)
    # the refund of 20 of 50 takes back ceil(50 × 20 / 50) = 20 points
    assert [(r["kind"], r["points"], r["effective_on"], r["expires_on"]) for r in rows] == [
        ("earn", 100, "2024-01-05", "2025-01-04"), ("earn", 50, "2024-02-05", "2025-02-04"),
        ("reversal", -20, "2024-02-06", None)]
    assert cli.ok("points", "backfill", *ASOF).stdout.strip() == "0"
    assert len(ledger(db_path)) == 3
    assert balance(cli, code)["spendable"] == 130


def test_backfill_from_today_starts_the_clocks_today(cli, db_path):
    code = add_customer(cli, "Ann")
    buy(cli, code, "100", "2023-01-05")
    rules(cli, expiry="365d", lock_days="7")
    cli.ok("points", "backfill", "--from-today", *ASOF)
    [row] = ledger(db_path)
    assert (row["effective_on"], row["spendable_on"], row["expires_on"]) == ("2024-03-10", "2024-03-17", "2025-03-10")


def _three_customers_before_the_rules(cli: Any) -> list[str]:
    codes = [add_customer(cli, name) for name in ("Ann", "Bob", "Cy")]
    buy(cli, codes[1], "30", "2024-01-03")  # 1 (Bob)
    buy(cli, codes[0], "100", "2024-01-05")  # 2 (Ann)
    buy(cli, codes[2], "70", "2024-01-06")  # 3 (Cy)
    buy(cli, codes[0], "50", "2024-02-05")  # 4 (Ann)
    refund(cli, 4, "20", "2024-02-06")  # 5: Ann's second sale, partly
    return codes


@pytest.fixture
def one_customer_per_step(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Steps of one sale, grown to whole customers; records the sales of each step."""
    from crmcli.core.points import earning

    monkeypatch.setattr(earning, "STEP_SALES", (1, 1, 5000))
    monkeypatch.setattr(earning, "STEP_SECONDS", 1e-9)  # never grows
    monkeypatch.setattr(earning, "HAND_OVER_SECONDS", 0)
    steps: list[list[int]] = []
    real = earning.backfill_sales

    def recording(session: Any, sale_ids: Any, *args: Any, **kwargs: Any) -> Any:
        steps.append(list(sale_ids))
        return real(session, sale_ids, *args, **kwargs)
    monkeypatch.setattr(earning, "backfill_sales", recording)
    return steps


def test_backfill_commits_a_step_per_customer_with_its_refunds(cli, db_path, one_customer_per_step):
    codes = _three_customers_before_the_rules(cli)
    rules(cli, expiry="365d")
    assert cli.ok("points", "backfill", *ASOF).stdout.strip() == "4"
    assert one_customer_per_step == [[2, 4], [1], [3]]  # by customer id, a customer's sales together
    rows = ledger(db_path)
    # Each step is its own transaction: Ann's reversal comes before Bob's and Cy's earnings.
    assert [(r["kind"], r["purchase_id"], r["points"]) for r in rows] == [
        ("earn", 2, 100), ("earn", 4, 50), ("reversal", 5, -20), ("earn", 1, 30), ("earn", 3, 70)]
    assert [balance(cli, c)["spendable"] for c in codes] == [130, 30, 70]
    assert cli.ok("points", "backfill", *ASOF).stdout.strip() == "0"
    assert len(ledger(db_path)) == 5


def test_interrupted_backfill_keeps_whole_steps_and_a_rerun_finishes(cli, db_path, one_customer_per_step,
                                                                      monkeypatch):
    from crmcli.core.points import earning

    codes = _three_customers_before_the_rules(cli)
    rules(cli, expiry="365d")
    recording = earning.backfill_sales

    def ctrl_c_in_the_second_step(session: Any, sale_ids: Any, *args: Any, **kwargs: Any) -> Any:
        report = recording(session, sale_ids, *args, **kwargs)
        if len(one_customer_per_step) == 2:
            raise KeyboardInterrupt  # after the step's rows are written, before its COMMIT
        return report
    monkeypatch.setattr(earning, "backfill_sales", ctrl_c_in_the_second_step)
    result = cli("points", "backfill", *ASOF)
    assert result.exit_code == 130
    assert ("Interrupted after earning 150 points on 2 purchases, 0 referral rewards (0 points). Those are kept; "
            "run `crm points backfill` again to earn for the rest.") in result.stderr
    assert result.stdout == ""
    # Ann's step is whole (both earnings and the refund's reversal, with their audit rows); Bob's is not there.
    assert [(r["kind"], r["purchase_id"]) for r in ledger(db_path)] == [("earn", 2), ("earn", 4), ("reversal", 5)]
    audited = {r["entity_id"] for r in audit_rows(db_path) if r["entity"] == "points_ledger"}
    assert audited == {r["id"] for r in ledger(db_path)}

    monkeypatch.setattr(earning, "backfill_sales", recording)
    assert cli.ok("points", "backfill", *ASOF).stdout.strip() == "2"
    assert [(r["kind"], r["purchase_id"]) for r in ledger(db_path)] == [
        ("earn", 2), ("earn", 4), ("reversal", 5), ("earn", 1), ("earn", 3)]
    assert [balance(cli, c)["spendable"] for c in codes] == [130, 30, 70]


def test_backfill_dry_run_rolls_back_every_step(cli, db_path, one_customer_per_step, unchanged):
    _three_customers_before_the_rules(cli)
    rules(cli, expiry="365d")
    check = unchanged()
    dry = cli.ok("points", "backfill", "--dry-run", *ASOF)
    assert "Would earn 250 points on 4 purchases" in dry.stderr and dry.stdout.strip() == "4"
    assert len(one_customer_per_step) == 3
    check()


# ------------------------------------------------------------------------------ lock window and FEFO

def test_lock_window(cli, db_path, unchanged):
    rules(cli, lock_days="7")
    code = add_customer(cli, "Ann")
    buy(cli, code, "100", "2024-03-05", as_of="2024-03-05")
    b = balance(cli, code, "2024-03-11")
    assert (b["spendable"], b["locked"], b["unlocks"]) == (0, 100, [{"date": "2024-03-12", "points": 100}])
    check = unchanged()
    refused = cli("points", "redeem", code, "10", "--as-of", "2024-03-11")
    assert refused.exit_code == 5
    assert "has 0 spendable points" in refused.stderr and "100 more are locked" in refused.stderr
    assert "2024-03-12" in refused.stderr
    check()
    assert balance(cli, code, "2024-03-12")["spendable"] == 100
    cli.ok("points", "redeem", code, "10", "--as-of", "2024-03-12")


def test_redemption_uses_soonest_expiring_then_oldest_then_never_expiring(cli, db_path):
    code = add_customer(cli, "Ann")
    rules(cli)
    cli.ok("points", "earn", code, "10", "--never-expires", "--as-of", "2024-01-01")  # lot 1: never
    cli.ok("points", "earn", code, "20", "--expires", "2024-12-31", "--as-of", "2024-01-02")  # lot 2
    cli.ok("points", "earn", code, "30", "--expires", "2024-06-30", "--as-of", "2024-01-03")  # lot 3
    cli.ok("points", "earn", code, "40", "--expires", "2024-06-30", "--as-of", "2024-01-01")  # lot 4: same day, older
    cli.ok("points", "earn", code, "5", "--never-expires", "--as-of", "2023-12-01")  # lot 5: never, oldest
    cli.ok("points", "redeem", code, "95", "--as-of", "2024-02-01")
    # lot 4 (40, 2024-06-30, earned 01-01) → lot 3 (30, 2024-06-30, earned 01-03) → lot 2 (20) → lot 5 (5)
    assert allocations(db_path) == [(6, 4, 40), (6, 3, 30), (6, 2, 20), (6, 5, 5)]
    b = balance(cli, code, "2024-02-01")
    assert b["spendable"] == 10 and b["expiries"] == []


def test_balance_lists_every_upcoming_expiry(cli):
    code = add_customer(cli, "Ann")
    rules(cli, expiry="month-end:1")
    buy(cli, code, "100", "2024-01-15")  # expires 2024-02-29
    buy(cli, code, "200", "2024-02-03")  # 2024-03-31
    buy(cli, code, "300", "2024-02-20")  # 2024-03-31
    buy(cli, code, "50", "2024-03-01")  # 2024-04-30
    b = balance(cli, code, "2024-03-01")
    assert b["expiries"] == [{"date": "2024-03-31", "points": 500}, {"date": "2024-04-30", "points": 50}]
    assert b["overdue"] == 100 and b["spendable"] == 550 and b["balance"] == 650
    text = cli.ok("points", "balance", code, "--as-of", "2024-03-01", "--format", "table").stdout
    assert "Expires 2024-03-31" in text and "Expires 2024-04-30" in text
    card = json.loads(cli.ok("card", "show", code, "--format", "json", "--as-of", "2024-03-01").stdout)
    assert card["points"]["next_expiry"] == {"date": "2024-03-31", "points": 500}
    slot = cli.ok("card", "show", code, "--as-of", "2024-03-01", "--width", "120").stdout
    assert "550 pts · 500 expire 2024-03-31" in slot


@pytest.mark.parametrize("policy,earned,expected", [
    ("30d", "2024-01-31", "2024-03-01"), ("month-end:0", "2024-02-10", "2024-02-29"),
    ("month-end:12", "2024-01-31", "2025-01-31"), ("year-end:0", "2024-05-05", "2024-12-31"),
    ("year-end:12", "2024-05-05", "2025-12-31"), ("year-end:8", "2024-05-05", "2025-12-31"),
])
def test_expiry_policies(cli, db_path, policy, earned, expected):
    rules(cli, expiry=policy)
    code = add_customer(cli, "Ann")
    buy(cli, code, "10", earned, as_of="2024-06-01")
    assert ledger(db_path)[0]["expires_on"] == expected


# ------------------------------------------------------------------------------------------- expiry

def test_expire_is_idempotent_and_expired_points_are_never_spendable(cli, db_path, unchanged):
    rules(cli, expiry="30d")
    code = add_customer(cli, "Ann")
    buy(cli, code, "100", "2024-01-01")  # valid through 2024-01-31
    buy(cli, code, "40", "2024-01-20")  # through 2024-02-19
    assert balance(cli, code, "2024-01-31")["spendable"] == 140
    b = balance(cli, code, "2024-02-01")
    assert (b["spendable"], b["overdue"], b["balance"]) == (40, 100, 140)
    check = unchanged()
    refused = cli("points", "redeem", code, "41", "--as-of", "2024-02-01")
    assert refused.exit_code == 5 and "has 40 spendable points" in refused.stderr
    dry = cli.ok("points", "expire", "--as-of", "2024-02-01", "--dry-run", "--format", "json")
    assert json.loads(dry.stdout) == [{"code": code, "name": "Ann", "lot": 1, "points": 100,
                                       "expired_on": "2024-01-31"}]
    check()
    cli.ok("points", "expire", "--as-of", "2024-02-01")
    again = unchanged()
    out = cli.ok("points", "expire", "--as-of", "2024-02-01")
    assert "Expired 0 points" in out.stderr
    again()
    rows = ledger(db_path)
    assert [(r["kind"], r["points"], r["effective_on"], r["ref_id"], r["key"]) for r in rows[2:]] == [
        ("expire", -100, "2024-02-01", 1, "expire:1")]
    b = balance(cli, code, "2024-02-01")
    assert (b["spendable"], b["overdue"], b["balance"]) == (40, 0, 40)


def test_expire_after_partial_use_removes_only_the_rest(cli, db_path):
    rules(cli, expiry="30d")
    code = add_customer(cli, "Ann")
    buy(cli, code, "100", "2024-01-01")
    cli.ok("points", "redeem", code, "30", "--as-of", "2024-01-15")
    cli.ok("points", "expire", "--as-of", "2024-03-01")
    assert [(r["kind"], r["points"]) for r in ledger(db_path)] == [("earn", 100), ("redeem", -30), ("expire", -70)]
    assert allocations(db_path) == [(2, 1, 30), (3, 1, 70)]


def test_expiring_report_for_mail_merge(cli):
    rules(cli, expiry="30d")
    a = add_customer(cli, "Ann", "--email", "ann@example.com", "--phone", "13800138000")
    b = add_customer(cli, "Bob")
    buy(cli, a, "100", "2024-02-01", as_of="2024-03-01")  # expires 03-02
    buy(cli, a, "10", "2024-02-25", as_of="2024-03-01")  # expires 03-26
    buy(cli, b, "20", "2024-02-20", as_of="2024-03-01")  # expires 03-21
    buy(cli, b, "30", "2024-03-01", as_of="2024-03-01")  # expires 03-31: outside 21 days
    out = cli.ok("points", "expiring", "--within", "21d", "--as-of", "2024-03-01", "--format", "csv").stdout
    assert out.splitlines() == [
        "code,name,phone,email,expires_on,days_left,points,balance",
        f"{a},Ann,+8613800138000,ann@example.com,2024-03-02,1,100,110",
        f"{b},Bob,,,2024-03-21,20,20,50",
    ]
    bad = cli("points", "expiring", "--within", "soon")
    assert bad.exit_code == 5 and "--within" in bad.stderr


def test_liability_at_the_redemption_value_and_as_of(cli):
    rules(cli, expiry="30d", redemption_value="0.05", lock_days="5")
    a = add_customer(cli, "Ann")
    b = add_customer(cli, "Bob")
    buy(cli, a, "100", "2024-01-01", as_of="2024-03-01")  # expires 01-31
    buy(cli, a, "200", "2024-02-20", as_of="2024-03-01")
    buy(cli, b, "33", "2024-02-28", as_of="2024-03-01")  # locked until 03-04
    data = cli.json("points", "liability", "--as-of", "2024-03-01")
    assert data == {"as_of": "2024-03-01", "outstanding": 233, "spendable": 200, "locked": 33, "overdue": 100,
                    "customers": 2, "expiring_30d": 233, "debt": 0, "value_per_point": "0.05", "value": "11.65",
                    "currency": "CNY"}
    past = cli.json("points", "liability", "--as-of", "2024-01-15")
    assert (past["outstanding"], past["value"]) == (100, "5.00")
    cli.ok("points", "expire", "--as-of", "2024-03-01")
    assert cli.json("points", "liability", "--as-of", "2024-01-15")["outstanding"] == 100  # history unchanged
    assert cli.json("points", "liability", "--as-of", "2024-03-01")["overdue"] == 0


# ------------------------------------------------------------------------------------------- refunds

def test_partial_and_full_refund_reverse_proportionally_and_exactly(cli, db_path):
    rules(cli)
    code = add_customer(cli, "Ann")
    sale = buy(cli, code, "128.50")  # 128 points
    r1 = refund(cli, sale, "28.50")  # ceil(128 × 28.50 / 128.50) = ceil(28.39) = 29
    r2 = refund(cli, sale, "50")  # cumulative 78.50: ceil(78.19) = 79 → 50 more
    r3 = refund(cli, sale)  # the rest: 128 - 79 = 49
    rows = ledger(db_path)
    assert [(r["kind"], r["points"], r["purchase_id"], r["key"]) for r in rows] == [
        ("earn", 128, sale, f"earn:{sale}"), ("reversal", -29, r1, f"reversal:{r1}"),
        ("reversal", -50, r2, f"reversal:{r2}"), ("reversal", -49, r3, f"reversal:{r3}")]
    assert balance(cli, code)["balance"] == 0


def test_refund_of_spent_points_takes_other_lots_then_records_debt_repaid_later(cli, db_path):
    rules(cli)
    code = add_customer(cli, "Ann")
    first = buy(cli, code, "100", "2024-03-01")  # lot 1: 100
    buy(cli, code, "30", "2024-03-02")  # lot 2: 30
    cli.ok("points", "redeem", code, "120", *ASOF)  # uses 100 of lot 1, 20 of lot 2 (FEFO: oldest first)
    refund(cli, first)  # take back 100: 0 left in lot 1, 10 from lot 2, 90 owed
    rows = ledger(db_path)
    reversal = rows[3]
    assert (reversal["kind"], reversal["points"], reversal["debt"]) == ("reversal", -10, 90)
    assert json.loads(reversal["detail"])["from_other_lots"] == 10
    b = balance(cli, code)
    assert (b["balance"], b["spendable"], b["debt"]) == (0, 0, 90)
    card = cli.ok("card", "show", code, *ASOF, "--width", "120").stdout
    assert "owes 90" in card
    buy(cli, code, "50", "2024-03-10")  # earns 50, all to the debt
    buy(cli, code, "70", "2024-03-10")  # earns 70: 40 to the debt, 30 kept
    rows = ledger(db_path)
    assert [(r["kind"], r["points"], r["debt"]) for r in rows[4:]] == [
        ("earn", 50, 0), ("repay", -50, -50), ("earn", 70, 0), ("repay", -40, -40)]
    b = balance(cli, code)
    assert (b["balance"], b["spendable"], b["debt"]) == (30, 30, 0)


def test_refund_when_the_points_expired_unused_costs_nothing_more(cli, db_path):
    rules(cli, expiry="30d")
    code = add_customer(cli, "Ann")
    sale = buy(cli, code, "100", "2024-01-01", as_of="2024-01-01")
    cli.ok("points", "earn", code, "50", "--as-of", "2024-02-10")
    refund(cli, sale, "40", "2024-02-15")  # 40 points to take back; all 100 expired on 02-01 unused
    rows = ledger(db_path)
    assert [(r["kind"], r["points"], r["debt"]) for r in rows] == [
        ("earn", 100, 0), ("earn", 50, 0), ("expire", -100, 0), ("reversal", 0, 0)]
    assert json.loads(rows[3]["detail"])["already_expired"] == 40
    assert balance(cli, code, "2024-02-15")["spendable"] == 50


def test_refund_of_an_order_paid_with_points_returns_them_exactly_once(cli, db_path, unchanged):
    rules(cli, expiry="365d")
    code = add_customer(cli, "Ann")
    buy(cli, code, "300", "2024-01-01")  # 300 points, expire 2024-12-31
    sale = buy(cli, code, "100", "2024-03-05")  # 100 points
    cli.ok("points", "redeem", code, "200", "--purchase", str(sale), "--reason", "paid part", *ASOF)
    r1 = refund(cli, sale, "25")  # returns floor(200 × 25/100) = 50; takes back ceil(100 × 0.25) = 25
    rows = ledger(db_path)
    assert [(r["kind"], r["points"], r["purchase_id"], r["ref_id"], r["expires_on"]) for r in rows[3:]] == [
        ("restore", 50, r1, 3, "2024-12-31"), ("reversal", -25, r1, 2, None)]
    r2 = refund(cli, sale)  # the rest: 150 back, 75 taken
    rows = ledger(db_path)
    assert [(r["kind"], r["points"], r["purchase_id"]) for r in rows[5:]] == [
        ("restore", 150, r2), ("reversal", -75, r2)]
    check = unchanged()
    # settling the refunds again (a re-run of the hook, a backfill) changes nothing
    from crmcli.core.context import StoreContext
    from crmcli.core.points import refunds
    from crmcli.store.engine import open_store

    store = open_store(str(db_path))
    with store.write() as session:
        refunds.reconcile(session, [sale], StoreContext.load(session))
    store.dispose()
    check()
    assert balance(cli, code)["balance"] == 300


def test_redeem_for_a_purchase_is_checked(cli, unchanged):
    rules(cli)
    a = add_customer(cli, "Ann")
    b = add_customer(cli, "Bob")
    sale = buy(cli, a, "100")
    other = buy(cli, b, "100")
    check = unchanged()
    assert cli("points", "redeem", a, "10", "--purchase", str(other), *ASOF).exit_code == 5
    assert cli("points", "redeem", a, "10", "--purchase", "999", *ASOF).exit_code == 3
    refund(cli, sale, "10")
    check = unchanged()
    res = cli("points", "redeem", a, "10", "--purchase", str(sale), *ASOF)
    assert res.exit_code == 5 and "already has refunds" in res.stderr
    check()


# ------------------------------------------------------------------------------------------ referral

def test_referral_rewards_on_the_first_purchase_once(cli, db_path):
    rules(cli, referral_referrer="100", referral_referee="50", lock_days="7")
    ann = add_customer(cli, "Ann")
    bob = add_customer(cli, "Bob", "--referred-by", ann)
    buy(cli, bob, "10", "2024-03-01")
    buy(cli, bob, "10", "2024-03-02")
    rows = ledger(db_path)
    assert [(r["customer_id"], r["kind"], r["points"], r["key"], r["spendable_on"]) for r in rows] == [
        (2, "earn", 10, "earn:1", "2024-03-08"), (1, "referral", 100, "referral:2", "2024-03-08"),
        (2, "referral", 50, "referral-new:2", "2024-03-08"), (2, "earn", 10, "earn:2", "2024-03-09")]
    history = cli.ok("points", "history", ann, "--format", "table").stdout
    assert "referral" in history and f"referred {bob}" in history


def test_referral_only_for_the_first_purchase_and_reversed_when_it_is_fully_refunded(cli, db_path):
    ann = add_customer(cli, "Ann")
    bob = add_customer(cli, "Bob", "--referred-by", ann)
    first = buy(cli, bob, "10", "2024-03-01")  # before the programme: no reward now
    rules(cli, referral_referrer="100")
    buy(cli, bob, "10", "2024-03-02")  # not the first purchase
    assert [r["kind"] for r in ledger(db_path)] == ["earn"]
    cli.ok("points", "backfill", *ASOF)  # the first purchase earns now, and triggers the reward once
    assert sorted(r["key"] for r in ledger(db_path)) == ["earn:1", "earn:2", "referral:2"]
    refund(cli, first, "5")
    assert not [r for r in ledger(db_path, 1) if r["kind"] == "reversal"]
    refund(cli, first)
    ann_rows = ledger(db_path, 1)
    assert [(r["kind"], r["points"]) for r in ann_rows] == [("referral", 100), ("reversal", -100)]


def test_birthday_bonus_once_a_year(cli, db_path):
    rules(cli, birthday_bonus="88")
    add_customer(cli, "Ann", "--birthday", "1990-05-17")
    add_customer(cli, "Bob", "--birthday", "1991-06-01")
    out = cli.ok("points", "birthday", "--as-of", "2024-05-01", "--format", "json")
    assert json.loads(out.stdout) == [{"code": "C000001", "name": "Ann", "points": 88}]
    again = cli.ok("points", "birthday", "--as-of", "2024-05-20")
    assert "Gave 0 birthday bonuses" in again.stderr
    cli.ok("points", "birthday", "--as-of", "2025-05-02")
    assert [(r["kind"], r["key"]) for r in ledger(db_path)] == [("birthday", "birthday:1:2024"),
                                                                ("birthday", "birthday:1:2025")]


# ------------------------------------------------------------------------------------ manual changes

def test_redeem_more_than_spendable_is_refused_with_the_balance(cli, unchanged):
    rules(cli)
    code = add_customer(cli, "Ann")
    buy(cli, code, "100")
    check = unchanged()
    res = cli("points", "redeem", code, "101", *ASOF)
    assert res.exit_code == 5
    assert "Cannot redeem 101 points: C000001 has 100 spendable points." in res.stderr
    check()
    out = cli.ok("points", "redeem", code, "100", "--reason", "voucher", *ASOF)
    assert "Redeemed 100 points. C000001: 0 spendable." in out.stderr


BAD_INPUTS = [
    (["redeem", "C000001", "0"], 5, "The number of points for redeem must not be zero"),
    (["redeem", "C000001", "-5"], 5, "not a number of points"),
    (["redeem", "C000001", "1.5"], 5, "'1.5' is not a number of points for redeem."),
    (["redeem", "C000001", "lots"], 5, "not a number of points"),
    (["redeem", "C999999", "5"], 3, "No customer"),
    (["earn", "C000001", "+x"], 5, "'+x' is not a number of points for earn."),
    (["adjust", "C000001", "-5"], 5, "reason is required"),
    (["adjust", "C000001", "5", "--reason", " "], 5, "reason is required"),
    (["adjust", "C000001", "-101", "--reason", "oops"], 5, "only 100 are there"),
    (["adjust", "C000001", "0", "--reason", "oops"], 5, "points for adjust must not be zero"),
    (["earn", "C000001", "5", "--expires", "2020-01-01"], 5, "in the past"),
    (["earn", "C000001", "5", "--expires", "2030-01-01", "--never-expires"], 2, "contradict each other"),
    (["rules", "set", "rate", "-1"], 5, "not valid for points.rate"),
    (["rules", "set", "expiry", "soon"], 5, "not valid for points.expiry"),
    (["rules", "set", "category.coffee", "x"], 5, "not valid"),
    (["rules", "set", "colour", "red"], 5, "Unknown rule"),
    (["rules", "set", "lock-days", "9999"], 5, "not valid"),
    (["expire", "--as-of", "someday"], 5, "--as-of"),
]


def test_bad_inputs_are_refused_and_change_nothing(cli, unchanged):
    rules(cli)
    add_customer(cli, "Ann")
    buy(cli, "C000001", "100")
    for args, code, text in BAD_INPUTS:
        check = unchanged()
        res = cli("points", *args, *ASOF) if args[0] not in ("rules", "expire") else cli("points", *args)
        assert (res.exit_code, text in res.stderr) == (code, True), (args, res.stderr)
        check()


def test_adjust_both_ways_and_history(cli, db_path):
    rules(cli, expiry="365d", lock_days="7")
    code = add_customer(cli, "Ann")
    buy(cli, code, "100", "2024-03-08")  # locked until 03-15
    cli.ok("points", "adjust", code, "+25", "--reason", "goodwill", *ASOF)
    out = cli.ok("points", "adjust", code, "-110", "--reason", "duplicate order", *ASOF)  # locked points too
    assert "Adjusted by -110 points" in out.stderr
    rows = ledger(db_path)
    assert [(r["kind"], r["points"], r["reason"], r["expires_on"]) for r in rows] == [
        ("earn", 100, None, "2025-03-08"), ("adjust", 25, "goodwill", "2025-03-10"),
        ("adjust", -110, "duplicate order", None)]
    # FEFO: the earn lot expires first, so it gives 100 and the adjustment lot 10
    assert allocations(db_path) == [(3, 1, 100), (3, 2, 10)]
    hist = cli.json("points", "history", code)
    assert [(h["kind"], h["points"], h["balance"]) for h in hist] == [("earn", 100, 100), ("adjust", 25, 125),
                                                                       ("adjust", -110, 15)]
    assert hist[0]["spendable_on"] == "2024-03-15" and hist[0]["purchase"] == 1


def test_rules_show_and_set_through_config(cli):
    cli.ok("config", "set", "points.expiry", "month-end:12")
    cli.ok("points", "rules", "set", "lock-days", "7d")
    data = cli.json("points", "rules")
    assert data["expiry"] == "month-end:12" and data["lock_days"] == 7 and data["enabled"] is False
    table = cli.ok("points", "rules", "show", "--format", "markdown").stdout
    assert "at the end of the month, 12 months after they are earned" in table


def test_rules_set_confirms_the_value_as_the_rules_table_shows_it(cli):
    assert cli.ok("points", "rules", "set", "enabled", "yes").stderr.startswith("points.enabled = yes\n")
    cli.ok("points", "rules", "set", "category.coffee", "2")
    assert "points.multiplier.category = coffee=2, tea=1.5" in cli.ok("points", "rules", "set", "category.tea", "1.5").stderr
    said = cli.ok("points", "rules", "set", "category.coffee", "none").stderr
    assert "points.multiplier.category = tea=1.5" in said and "{" not in said and "True" not in said


def test_privacy_export_section(cli, store):
    rules(cli)
    code = add_customer(cli, "Ann")
    buy(cli, code, "100")
    from crmcli.core.points.card import customer_data

    with store.read() as session:
        name, rows = customer_data(session, 1)
    assert name == "points" and [(r["kind"], r["points"]) for r in rows] == [("earn", 100)]


def test_migrated_schema_matches_the_models(store):
    import sqlalchemy as sa

    from crmcli.store.models_points import PointsAllocation, PointsLedger

    inspector = sa.inspect(store.engine)
    for model in (PointsLedger, PointsAllocation):
        table = model.__table__
        live = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert list(live) == [c.name for c in table.columns]
        for column in table.columns:
            assert live[column.name]["nullable"] == column.nullable, column.name
            assert live[column.name]["type"].compile(store.engine.dialect) == \
                column.type.compile(store.engine.dialect), column.name
        indexes = {i["name"]: (tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table.name)}
        expected = {i.name: (tuple(c.name for c in i.columns), bool(i.unique)) for i in table.indexes}
        assert indexes == expected
        fks = {(tuple(f["constrained_columns"]), f["referred_table"]) for f in inspector.get_foreign_keys(table.name)}
        assert fks == {((fk.parent.name,), fk.column.table.name) for fk in table.foreign_keys}


def test_points_earned_hook_for_membership_levels(cli, store):
    rules(cli, referral_referrer="500")
    ann = add_customer(cli, "Ann")
    bob = add_customer(cli, "Bob", "--referred-by", ann)
    buy(cli, ann, "100", "2024-02-20")  # outside the window
    sale = buy(cli, ann, "200", "2024-03-01")
    buy(cli, bob, "30", "2024-03-02")  # Ann's referral reward does not count as earned on purchases
    cli.ok("points", "earn", ann, "1000", *ASOF)  # nor does a manual bonus
    cli.ok("points", "redeem", ann, "750", *ASOF)
    refund(cli, sale, "50")  # takes back 50 (from her other lots)
    with store.read() as session:
        rows = session.execute(hooks.load(hooks.POINTS_EARNED)(session, date(2024, 3, 1), date(2024, 3, 31))).all()
    assert [tuple(r) for r in rows] == [(1, 150), (2, 30)]


def test_the_database_itself_refuses_to_update_or_delete_ledger_rows(cli, db_path):
    """Append-only is enforced by triggers (migration m0010), so even another program editing the file
    cannot rewrite the points history."""
    code = add_customer(cli, "Ann")
    rules(cli)
    cli.ok("points", "earn", code, "30", "--never-expires", "--as-of", "2024-01-01")
    cli.ok("points", "redeem", code, "10", "--as-of", "2024-02-01")
    for sql in ("UPDATE points_ledger SET points = 1000 WHERE id = 1", "DELETE FROM points_ledger WHERE id = 2",
                "UPDATE points_allocation SET points = 0", "DELETE FROM points_allocation"):
        conn = sqlite3.connect(db_path)  # under CRM_TEST_PG the test shim routes this to PostgreSQL
        try:
            # sqlite3.IntegrityError here, psycopg's RaiseException on PostgreSQL
            with pytest.raises(Exception, match="never (updated|deleted)"):
                conn.execute(sql)
            conn.rollback()
        finally:
            conn.close()
    assert [(r["kind"], r["points"]) for r in ledger(db_path)] == [("earn", 30), ("redeem", -10)]
    assert allocations(db_path) == [(2, 1, 10)]
    assert balance(cli, code, "2024-02-02")["spendable"] == 20
