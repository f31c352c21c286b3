"""`crm report clv`, `crm report churn`, the dashboard's churn panel and the agenda's churn-risk and
survey-due sections, on small hand-computed shops."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from crm_helpers import cli, fails, fast_cli, one, query, template_store  # noqa: F401 - fixtures

AS_OF = date(2025, 6, 30)


def add(store: Any, name: str, *, purchases: tuple[tuple[str, str], ...] = (), email: str | None = None,
        consent: dict[str, bool] | None = None) -> int:
    """A customer with (day, amount) sales."""
    from crmcli.core import customers, purchases as purchases_mod
    from crmcli.core.context import StoreContext

    with store.write() as session:
        ctx = StoreContext.load(session, as_of=AS_OF)
        c = customers.add_customer(session, customers.CustomerInput(
            name=name, emails=[email] if email else [], consent=consent or {}), ctx)
        for day, amount in purchases:
            purchases_mod.add_purchase(session, c, purchases_mod.PurchaseInput(amount=amount, at=day), ctx)
        return int(c.id)


def test_clv_report_historical_value_distribution_and_top_customers(cli: Any, store: Any) -> None:
    add(store, "Ann", purchases=(("2025-01-10", "100"), ("2025-05-01", "50")))
    add(store, "Bob", purchases=(("2025-03-01", "30"),))
    add(store, "Cat", purchases=(("2025-04-01", "5"),))
    sale = one(cli.db, "SELECT p.id FROM purchase p JOIN customer c ON c.id = p.customer_id WHERE c.name = 'Bob'")
    cli.ok("purchase", "refund", str(sale), "10", "--as-of", "2025-03-05")
    doc = cli.json("report", "clv", "--as-of", AS_OF.isoformat())
    # Ann 150, Bob 30 - 10 = 20, Cat 5: total 175
    assert doc["historical"] == {"customers": 3, "total": "175.00", "mean": "58.33", "median": "20.00",
                                 "p90": "124.00", "max": "150.00", "top20_share": 85.7}
    assert [(d["decile"], d["customers"], d["total"], d["share"]) for d in doc["distribution"]["historical"]] == [
        (1, 1, "150.00", 85.7), (2, 1, "20.00", 11.4), (3, 1, "5.00", 2.9)]
    assert doc["predicted"] is None and doc["distribution"]["predicted"] is None and doc["scored_as_of"] is None
    assert [(r["rank"], r["name"], r["historical"], r["predicted"]) for r in doc["top_customers"]] == [
        (1, "Ann", "150.00", None), (2, "Bob", "20.00", None), (3, "Cat", "5.00", None)]
    # --since leaves Ann's first purchase out; --top cuts the list
    doc = cli.json("report", "clv", "--as-of", AS_OF.isoformat(), "--since", "2025-02-01", "--top", "1")
    assert doc["historical"]["total"] == "75.00" and [r["name"] for r in doc["top_customers"]] == ["Ann"]
    assert doc["top_customers"][0]["historical"] == "50.00"
    out = cli.ok("report", "clv", "--as-of", AS_OF.isoformat(), "--format", "csv").stdout.splitlines()
    assert out[0] == "rank,code,name,historical,predicted,p_alive,expected_purchases,order_value"
    assert out[1].endswith("Ann,150.00,,,,")
    fails(cli, 2, "report", "clv", "--since", "2025-06-01", "--until", "2025-05-01", says=("after --until",))


def _shop_with_models(cli: Any, store: Any) -> None:
    """Thirty customers with random (seeded) purchase rhythms, some of whom stop buying: enough to fit and
    score the models."""
    import random

    rng = random.Random(7)
    start = date(2024, 7, 1)
    for i in range(30):
        day = start + timedelta(days=rng.randrange(90))
        mean_gap = rng.uniform(10, 70)
        days = []
        while day <= AS_OF and (not days or rng.random() > 0.12):
            days.append(day)
            day += timedelta(days=1 + int(rng.expovariate(1 / mean_gap)))
        add(store, f"C{i:02d}", purchases=tuple((d.isoformat(), str(rng.randrange(15, 90))) for d in days))
    cli.ok("churn", "fit", "--as-of", AS_OF.isoformat())
    cli.ok("churn", "score", "--as-of", AS_OF.isoformat())


def test_clv_report_uses_the_saved_scores_and_ranks_by_predicted_value(cli: Any, store: Any) -> None:
    _shop_with_models(cli, store)
    stored = dict(query(cli.db, "SELECT c.name, s.clv_minor FROM churn_score s JOIN customer c ON c.id = s.customer_id"))
    doc = cli.json("report", "clv", "--as-of", AS_OF.isoformat(), "--top", "30")
    assert doc["scored_as_of"] == AS_OF.isoformat() and doc["clv_months"] == 12
    assert doc["predicted"]["customers"] == len(stored) == 30
    assert doc["predicted"]["total"] == f"{sum(stored.values()) / 100:.2f}"
    names = [r["name"] for r in doc["top_customers"]]
    assert names == sorted(stored, key=lambda n: (-stored[n], n))
    assert all(r["predicted"] == f"{stored[r['name']] / 100:.2f}" for r in doc["top_customers"])
    assert [d["customers"] for d in doc["distribution"]["predicted"]] == [3] * 10
    assert len(doc["distribution"]["predicted"]) == 10


def test_churn_report_counts_levels_tiers_and_rules_and_saves_nothing(cli: Any, store: Any, tmp_path: Path) -> None:
    add(store, "Old", purchases=(("2024-12-01", "10"),))  # 211 days: recency high, no contact 211 days: low
    add(store, "Mid", purchases=(("2025-04-21", "10"),))  # 70 days: recency low
    add(store, "New", purchases=(("2025-06-29", "10"),))  # yesterday: none
    cli.ok("tier", "pin", "Old", "A", "--reason", "test")
    doc = cli.json("report", "churn", "--as-of", AS_OF.isoformat())
    assert doc["customers"] == 3
    assert doc["counts"] == {"none": 1, "low": 1, "medium": 0, "high": 1}
    assert doc["shares"] == {"none": 33.3, "low": 33.3, "medium": 0.0, "high": 33.3}
    assert doc["by_tier"] == [{"tier": "A", "none": 0, "low": 0, "medium": 0, "high": 1, "total": 1},
                              {"tier": "-", "none": 1, "low": 1, "medium": 0, "high": 0, "total": 2}]
    assert doc["reasons"] == [{"rule": "recency", "customers": 2, "high": 1},
                              {"rule": "no_contact", "customers": 1, "high": 0}]
    assert doc["scores"] is None and doc["skipped_rules"] == []
    assert query(cli.db, "SELECT COUNT(*) FROM churn_risk") == [(0,)]
    svg = tmp_path / "churn.svg"
    result = cli.ok("report", "churn", "--as-of", AS_OF.isoformat(), "--format", "csv", "--svg", str(svg))
    assert result.stdout.splitlines() == ["tier,high,medium,low,none,total", "A,1,0,0,0,1", "-,0,0,1,1,2"]
    assert ET.parse(svg).getroot().tag.endswith("svg")
    table = cli.ok("report", "churn", "--as-of", AS_OF.isoformat(), "--format", "table").stdout
    assert "No model scores yet" in table and "days without a purchase" in table


def test_dashboard_shows_the_last_scan_and_the_predicted_clv(cli: Any, store: Any) -> None:
    add(store, "Old", purchases=(("2024-12-01", "10"),))
    add(store, "New", purchases=(("2025-06-29", "10"),))
    assert "churn" not in cli.json("report", "summary", "--as-of", AS_OF.isoformat())
    cli.ok("churn", "scan", "--as-of", AS_OF.isoformat())
    doc = cli.json("report", "summary", "--as-of", AS_OF.isoformat())
    assert doc["churn"] == {"scanned_as_of": "2025-06-30", "counts": {"high": 1, "medium": 0, "low": 0, "none": 1}}
    rows = cli.ok("report", "summary", "--as-of", AS_OF.isoformat(), "--format", "csv").stdout.splitlines()
    assert "churn,high,1,," in rows and "churn,scanned_as_of,2025-06-30,," in rows
    assert "Churn risk" in cli.ok("report", "summary", "--as-of", AS_OF.isoformat(), "--format", "table").stdout


def test_agenda_lists_tier_a_customers_at_high_risk_and_marks_logged_win_backs(cli: Any, store: Any) -> None:
    add(store, "Ann", purchases=(("2024-12-01", "10"),), email="ann@example.com", consent={"email": True})
    add(store, "Bob", purchases=(("2024-12-01", "10"),))  # high risk too, but tier B
    add(store, "Cat", purchases=(("2025-06-29", "10"),))  # tier A, no risk
    cli.ok("tier", "pin", "Ann", "A", "--reason", "test")
    cli.ok("tier", "pin", "Bob", "B", "--reason", "test")
    cli.ok("tier", "pin", "Cat", "A", "--reason", "test")
    rows = cli.json("care", "agenda", "--as-of", AS_OF.isoformat(), "--section", "churn_risk")
    assert [(r["name"], r["date"], r["status"], r["contact"]) for r in rows] == [
        ("Ann", "2025-06-30", None, "ann@example.com")]
    assert rows[0]["detail"].startswith("high risk: no purchase for 211 days (one purchase so far)")
    cli.ok("churn", "winback", "--as-of", AS_OF.isoformat(), "--log")
    rows = cli.json("care", "agenda", "--as-of", AS_OF.isoformat(), "--section", "churn_risk")
    assert [(r["name"], r["status"]) for r in rows] == [("Ann", "logged")]
    table = cli.ok("care", "agenda", "--as-of", AS_OF.isoformat(), "--format", "table").stdout
    assert "Tier A at high churn risk (1)" in table


def test_agenda_lists_resolved_complaints_not_yet_surveyed(cli: Any, store: Any) -> None:
    add(store, "Ann", purchases=(("2025-06-01", "10"),), email="ann@example.com", consent={"email": True})
    add(store, "Bob", purchases=(("2025-06-01", "10"),))
    cli.ok("feedback", "add", "Ann", "--kind", "complaint", "--text", "cold coffee", "--at", "2025-06-20 10:00")
    cli.ok("feedback", "add", "Bob", "--kind", "suggestion", "--text", "oat milk", "--at", "2025-06-20 10:00")
    cli.ok("feedback", "add", "Bob", "--kind", "complaint", "--text", "noisy", "--at", "2025-04-01 10:00")
    cli.ok("feedback", "resolve", "1", "--resolution", "new cup", "--at", "2025-06-21 09:00")
    cli.ok("feedback", "resolve", "2", "--resolution", "added", "--at", "2025-06-21 09:00")  # not a complaint
    cli.ok("feedback", "resolve", "3", "--resolution", "fixed", "--at", "2025-04-02 09:00")  # too long ago
    rows = cli.json("care", "agenda", "--as-of", AS_OF.isoformat(), "--section", "survey_due")
    assert [(r["name"], r["date"], r["status"]) for r in rows] == [("Ann", "2025-06-30", "due")]
    assert rows[0]["detail"].startswith("complaint #1 resolved on 2025-06-21: ask how it was handled")
    cli.ok("survey", "create", "Handling", "--kind", "csat")
    cli.ok("survey", "invite", "Handling", "--resolved-within", "30d", "--out", "-", "--as-of", AS_OF.isoformat())
    assert cli.json("care", "agenda", "--as-of", AS_OF.isoformat(), "--section", "survey_due") == []


def test_agenda_birthdays_come_in_date_order(cli: Any) -> None:
    cli.ok("customer", "add", "Aaa", "--birthday", "1990-07-20")
    cli.ok("customer", "add", "Zed", "--birthday", "1990-07-02")
    rows = cli.json("care", "agenda", "--as-of", AS_OF.isoformat(), "--days", "30", "--section", "birthday")
    assert [(r["name"], r["date"]) for r in rows] == [("Zed", "2025-07-02"), ("Aaa", "2025-07-20")]
