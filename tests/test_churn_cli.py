"""`crm churn` from the shell: rule-based warnings with their figures (hand-computed), thresholds in the
store, lists for cron and mail merge, win-back lists that respect consent, scores on the card, the holdout
table, repurchase prediction, and the customer summary's definitions."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from crm_helpers import audit_rows, cli, fails, fast_cli, from_template, one, query, template_store  # noqa: F401 - fixtures
from test_report_value import AS_OF, _shop_with_models

D = AS_OF.isoformat()  # 2025-06-30


def add(store: Any, name: str, sales: tuple[tuple[str, str], ...] = (), *, phone: str | None = None,
        email: str | None = None, consent: dict[str, bool] | None = None, product: str | None = None) -> int:
    from crmcli.core import customers, purchases as purchases_mod
    from crmcli.core.context import StoreContext

    with store.write() as session:
        ctx = StoreContext.load(session, as_of=AS_OF)
        c = customers.add_customer(session, customers.CustomerInput(
            name=name, phones=[phone] if phone else [], emails=[email] if email else [], consent=consent or {}), ctx)
        for day, amount in sales:
            purchases_mod.add_purchase(session, c, purchases_mod.PurchaseInput(amount=amount, at=day, product=product), ctx)
        return int(c.id)


@pytest.fixture
def shop(cli: Any, store: Any) -> Any:
    """Five customers whose warnings are worked out by hand below (as of 2025-06-30, default thresholds)."""
    # Ivy: purchase days 01-01, 01-31, 03-02 → usual interval 60/2 = 30 days; 120 days since → 4.0× (high);
    # spend 0 in 04-02..06-30 against 200.00 in 01-02..04-01 → down 100 % (high); no contact for 180 days (low).
    add(store, "Ivy", (("2025-01-01", "100"), ("2025-01-31", "100"), ("2025-03-02", "100")),
        email="ivy@example.com", consent={"email": True})
    # Sam: 12-20, 01-10, 02-10, 03-10, 05-01 → usual (05-01 - 12-20) / 4 = 33 days, 60 days since → 1.8× (low);
    # spend 100.00 against 250.00 → down 60 % (medium); contacted on 06-01 (29 days: no warning).
    add(store, "Sam", (("2024-12-20", "50"), ("2025-01-10", "100"), ("2025-02-10", "100"), ("2025-03-10", "50"),
                       ("2025-05-01", "100")), phone="13800138001", consent={"sms": True})
    cli.ok("customer", "log", "Sam", "--channel", "phone", "--summary", "asked about beans", "--at", "2025-06-01 10:00",
           "--as-of", D)
    # Pam: one purchase 120 days ago (medium: 90 ≤ 120 < 180), no contact for 120 days (low); no consent.
    add(store, "Pam", (("2025-03-02", "40"),), email="pam@example.com")
    # Nia: NPS 3 on 06-15 (high); bought 10 days ago.
    add(store, "Nia", (("2025-06-20", "30"),))
    cli.ok("survey", "create", "NPS", "--kind", "nps")
    cli.ok("survey", "record", "NPS", "Nia", "3", "--at", "2025-06-15 12:00")
    # Ola: two complaints open since 06-10 (high); bought on 06-01; consent to e-mail withdrawn.
    add(store, "Ola", (("2025-06-01", "30"),), email="ola@example.com", consent={"email": False})
    for text in ("cold", "late"):
        cli.ok("feedback", "add", "Ola", "--kind", "complaint", "--text", text, "--at", "2025-06-10 10:00")
    add(store, "Fay", (("2025-06-29", "30"),))  # bought yesterday: no warning
    return cli


@pytest.fixture
def modelled(cli: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The store of test_report_value._shop_with_models (thirty customers, fitted and scored as of AS_OF), built
    once per test run and copied for each test that asks for it (the build runs `crm churn fit` and `score`)."""
    def build(c: Any) -> None:
        from crmcli.store.engine import open_store

        built = open_store(str(c.db))
        try:
            _shop_with_models(c, built)
        finally:
            built.dispose()

    return from_template("churn_modelled", cli, tmp_path_factory, build)


def test_scan_gives_each_customer_a_level_and_reasons_with_their_figures(shop: Any) -> None:
    doc = shop.json("churn", "scan", "--as-of", D)
    assert doc["counts"] == {"none": 1, "low": 0, "medium": 2, "high": 3} and doc["customers"] == 6
    rows = {r["code"]: r for r in csv.DictReader(io.StringIO(shop.ok("churn", "list", "--format", "csv").stdout))}
    by_name = {r["name"]: r for r in rows.values()}
    assert by_name["Ivy"]["risk"] == "high"
    assert by_name["Ivy"]["reasons"] == ("no purchase for 120 days, 4.0× their usual interval of 30 days; spend in the "
                                         "last 90 days down 100 % on the 90 days before (CN¥0.00 vs CN¥200.00); "
                                         "no contact on record (a customer for 180 days)")
    assert by_name["Sam"]["risk"] == "medium"
    assert by_name["Sam"]["reasons"] == ("spend in the last 90 days down 60 % on the 90 days before (CN¥100.00 vs "
                                         "CN¥250.00); no purchase for 60 days, 1.8× their usual interval of 33 days")
    assert by_name["Pam"]["reasons"] == "no purchase for 120 days (one purchase so far); no contact on record (a customer for 120 days)"
    assert (by_name["Nia"]["risk"], by_name["Nia"]["reasons"]) == ("high", "NPS 3 on 2025-06-15")
    assert (by_name["Ola"]["risk"], by_name["Ola"]["reasons"]) == ("high", "2 complaints open")
    assert by_name["Fay"]["risk"] == "none" and by_name["Fay"]["reasons"] == ""
    # the figures are stored with each reason, in the saved scan
    import json

    ivy = json.loads(one(shop.db, "SELECT r.reasons FROM churn_risk r JOIN customer c ON c.id = r.customer_id "
                                  "WHERE c.name = 'Ivy'"))
    assert ivy[0] == {"rule": "interval", "level": "high", "days": 120, "usual_days": 30.0, "ratio": 4.0}
    assert ivy[1] == {"rule": "spend_drop", "level": "high", "window_days": 90, "recent_minor": 0,
                      "previous_minor": 20000, "drop_pct": 100}


def test_list_filters_by_risk_and_tier_for_cron_and_mail_merge(shop: Any) -> None:
    shop.ok("churn", "scan", "--as-of", D)
    shop.ok("tier", "pin", "Ivy", "A", "--reason", "test")
    shop.ok("tier", "pin", "Sam", "A", "--reason", "test")
    out = shop.ok("churn", "list", "--min-risk", "medium", "--tier", "A", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["name"], r["tier"], r["risk"], r["email"], r["phone"]) for r in rows] == [
        ("Ivy", "A", "high", "ivy@example.com", ""), ("Sam", "A", "medium", "", "+8613800138001")]
    names = [r["name"] for r in shop.json("churn", "list", "--min-risk", "high")]
    assert sorted(names) == ["Ivy", "Nia", "Ola"]
    assert shop.ok("churn", "list", "--min-risk", "high", "--tier", "C", "--format", "csv").stdout.count("\n") == 1
    fails(shop, 5, "churn", "list", "--by", "spend", says=("'spend' is not a sort order",))
    fails(shop, 5, "churn", "list", "--tier", "D", says=("'D' is not a tier",))
    fails(shop, 5, "churn", "list", "--min-risk", "huge")


def test_dry_run_saves_nothing(shop: Any, unchanged: Any) -> None:
    check = unchanged()
    assert shop.json("churn", "scan", "--as-of", D, "--dry-run")["dry_run"] is True
    check()


def test_thresholds_live_in_the_store_are_validated_and_audited(shop: Any, unchanged: Any) -> None:
    rules = {r["key"]: r for r in shop.json("churn", "rules")}
    assert rules["churn.interval"]["value"] == "1.5, 2, 3" and rules["churn.recency"]["default"] == "60, 90, 180"
    shop.ok("churn", "rules", "set", "--interval", "2,3,5", "--spend-drop", "off")
    changed = [a["after"] for a in audit_rows(shop.db, "set") if a["entity"] == "setting"]
    assert {"churn.interval": [2.0, 3.0, 5.0]} in changed and {"churn.spend_drop": [None, None, None]} in changed
    shop.ok("churn", "scan", "--as-of", D)
    by_name = {r["name"]: r for r in shop.json("churn", "list")}
    assert by_name["Ivy"]["risk"] == "medium"  # 4.0× is now medium (high needs 5×), no spend rule
    assert by_name["Sam"]["risk"] == "none"  # 1.8× < 2, spend drop off, contacted recently
    check = unchanged()
    fails(shop, 5, "churn", "rules", "set", "--interval", "abc", says=("churn.interval",))
    fails(shop, 2, "churn", "rules", "set", says=("Nothing to change",))
    fails(shop, 2, "churn", "rules", "set", "--reset", "--nps", "5,4,3")
    check()
    shop.ok("churn", "rules", "set", "--reset")
    assert {r["key"]: r["value"] for r in shop.json("churn", "rules")}["churn.interval"] == "1.5, 2, 3"


def test_winback_lists_only_consenting_customers_and_logs_follow_ups(shop: Any, tmp_path: Path) -> None:
    result = shop.ok("churn", "winback", "--as-of", D, "--min-risk", "medium", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    # Ivy (e-mail consent) and Sam (SMS consent); Pam (none recorded), Nia (none) and Ola (withdrawn) left out
    assert [(r["name"], r["risk"], r["action"], r["channel"], r["contact"]) for r in rows] == [
        ("Ivy", "high", "coupon", "email", "ivy@example.com"), ("Sam", "medium", "coupon", "sms", "+8613800138001")]
    assert "Ivy" in rows[0]["message"] and "spend in the last 90 days down 100 %" in rows[0]["reasons"]
    assert "5 customers at medium risk or higher" in result.stderr and "3 without consent" in result.stderr
    shop.ok("tier", "pin", "Ivy", "A", "--reason", "test")
    ivy = shop.json("churn", "winback", "--as-of", D)[0]
    assert (ivy["action"], ivy["channel"]) == ("call", "email")  # a call for A; no phone, so her consented e-mail
    # the file for a mail merge
    out = tmp_path / "winback.csv"
    shop.ok("churn", "winback", "--as-of", D, "--min-risk", "medium", "--out", str(out))
    assert out.read_text(encoding="utf-8").splitlines()[0].startswith("code,name,tier,risk,reasons,action")
    assert out.stat().st_mode & 0o777 == 0o600
    # --log with --limit logs only the customers listed
    result = shop.ok("churn", "winback", "--as-of", D, "--min-risk", "medium", "--log", "--limit", "1", "--format", "csv")
    assert [r["name"] for r in csv.DictReader(io.StringIO(result.stdout))] == ["Ivy"]
    assert "1 more left out by --limit" in result.stderr
    logged = query(shop.db, "SELECT c.name, i.channel, i.next_date FROM interaction i JOIN customer c ON c.id = i.customer_id "
                            "WHERE i.summary LIKE 'Win-back%'")
    assert logged == [("Ivy", "email", "2025-07-07")]
    assert one(shop.db, "SELECT COUNT(*) FROM churn_winback") == 1
    result = shop.ok("churn", "winback", "--as-of", D, "--min-risk", "medium", "--log", "--format", "csv")
    assert [r["name"] for r in csv.DictReader(io.StringIO(result.stdout))] == ["Sam"]
    assert "1 already logged recently" in result.stderr
    fails(shop, 2, "churn", "winback", "--next", "2025-08-01", says=("only apply with --log",))
    # a low score or an open complaint gets an apology, not "we have not seen you for a while"
    shop.ok("customer", "edit", "Nia", "--add-email", "nia@example.com", "--consent", "email=yes")
    nia = next(r for r in shop.json("churn", "winback", "--as-of", D) if r["name"] == "Nia")
    assert (nia["action"], nia["channel"]) == ("message", "email") and "we are sorry" in nia["message"]
    fails(shop, 5, "churn", "winback", "--message", "Hi {nmae}", says=("placeholder",))


def test_scores_reach_the_card_the_list_and_show(modelled: Any) -> None:
    cli = modelled
    scores = {r[0]: r[1:] for r in query(cli.db, "SELECT c.code, s.p_alive, s.clv_minor, s.expected_purchases "
                                                 "FROM churn_score s JOIN customer c ON c.id = s.customer_id")}
    by_clv = [r["code"] for r in cli.json("churn", "list", "--by", "clv")]
    assert by_clv == sorted(scores, key=lambda c: (-scores[c][1], c))
    by_alive = [r["code"] for r in cli.json("churn", "list", "--by", "p-alive")]
    assert [round(scores[c][0], 4) for c in by_alive] == sorted(round(scores[c][0], 4) for c in scores)
    top = by_clv[0]
    card = cli.json("card", "show", top, "--as-of", D)["churn"]
    assert card["p_alive"] == round(scores[top][0], 4) and card["clv"] == f"{scores[top][1] / 100:.2f}"
    assert card["scored_as_of"] == D and card["horizon_days"] == 90 and card["clv_months"] == 12
    view = cli.json("churn", "show", top, "--as-of", D)
    assert {"risk", "reasons", "p_alive", "expected_purchases", "clv", "next_purchase", "likely_products"} <= set(view)
    assert "P(alive)" in cli.ok("card", "show", top, "--as-of", D).stdout


def test_holdout_compares_predicted_with_actual_repeat_purchases(modelled: Any) -> None:
    cli = modelled
    doc = cli.json("churn", "holdout", "--calibration-end", "2025-03-31", "--as-of", D)
    assert doc["calibration_end"] == "2025-03-31" and doc["end"] == D
    assert abs(doc["holdout_periods"] - 91 / 7) < 1e-9
    groups = doc["groups"]
    assert [g["frequency"] for g in groups] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert sum(g["customers"] for g in groups) == doc["n_customers"] == doc["total"]["customers"]
    actual = one(cli.db, "SELECT COUNT(*) FROM (SELECT DISTINCT p.customer_id, p.purchased_on FROM purchase p "
                         "WHERE p.kind = 'sale' AND p.purchased_on > '2025-03-31' AND p.purchased_on <= ? AND "
                         "p.customer_id IN (SELECT customer_id FROM purchase GROUP BY customer_id "
                         "HAVING MIN(purchased_on) <= '2025-03-31')) AS s", D)
    assert doc["total"]["actual_total"] == actual
    assert doc["total"]["predicted_total"] == pytest.approx(sum(g["predicted_total"] for g in groups))


def test_next_purchase_dates_and_likely_products(cli: Any, store: Any) -> None:
    from crmcli.core import purchases as purchases_mod
    from crmcli.core.context import StoreContext

    reg = add(store, "Reg", (("2025-06-01", "20"),), product="Latte")
    tom = add(store, "Tom", (("2025-06-05", "20"),), product="Latte")
    with store.write() as session:
        ctx = StoreContext.load(session, as_of=AS_OF)
        from crmcli.store.models import Customer

        for cid, day, product in ((reg, "2025-06-11", "Cake"), (reg, "2025-06-21", "Latte"), (tom, "2025-06-15", "Cake")):
            purchases_mod.add_purchase(session, session.get(Customer, cid),
                                       purchases_mod.PurchaseInput(amount="20", at=day, product=product), ctx)
    rows = cli.json("churn", "next", "--within", "7d", "--as-of", D)
    # Reg: every 10 days, last 06-21 → 07-01; after a Latte day both customers bought Cake next: 100 %
    assert [(r["name"], r["expected"], r["in_days"], r["usual_days"], r["likely_products"], r["likely_scores"])
            for r in rows] == [("Reg", "2025-07-01", 1, 10.0, ["Cake"], [100])]
    rows = cli.json("churn", "next", "--within", "7d", "--overdue", "--as-of", D)
    assert [(r["name"], r["expected"], r["in_days"]) for r in rows] == [("Tom", "2025-06-25", -5), ("Reg", "2025-07-01", 1)]
    assert cli.json("churn", "next", "--within", "7d", "--as-of", "2025-06-12") == []  # Reg: 06-21, 9 days
    assert cli.json("card", "show", "Reg", "--as-of", D)["churn"]["next_purchase"] == "2025-07-01"


def test_summary_merges_same_day_sales_and_takes_refunds_off_their_sale(cli: Any, store: Any) -> None:
    from crmcli.core.churn.summary import summary

    cid = add(store, "Ann", (("2025-01-01", "10"), ("2025-01-01", "5"), ("2025-01-15", "20"), ("2025-01-29", "30")))
    ids = dict(query(cli.db, "SELECT purchased_on || '/' || amount_minor, id FROM purchase WHERE customer_id = ?", cid))
    cli.ok("purchase", "refund", str(ids["2025-01-15/2000"]), "8", "--as-of", "2025-02-01")
    cli.ok("purchase", "refund", str(ids["2025-01-29/3000"]), "--as-of", "2025-02-01")  # in full: no purchase day
    with store.read() as session:
        s = summary(session, date(2025, 2, 12))
    assert s.frequency.tolist() == [1]  # purchase days 01-01 (15.00, two sales) and 01-15 (12.00)
    assert s.recency(7).tolist() == [2.0] and s.age(7).tolist() == [6.0]  # 14 and 42 days, in weeks
    assert s.recency(1).tolist() == [14.0] and s.age(1).tolist() == [42.0]
    assert s.monetary_minor().tolist() == [1200.0]  # the repeat purchase only
    with store.read() as session:  # a refund recorded after the end date does not count yet
        assert summary(session, date(2025, 1, 31)).monetary_minor().tolist() == [2500.0]  # (20 + 30) / 2
