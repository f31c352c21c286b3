"""`crm report`: every figure checked against a small data set computed by hand (see DATA below)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len

from crm_helpers import cli, fails, fast_cli, from_template, template_store  # noqa: F401 - fixtures

# (customer, date, product, amount, channel). Baskets (customer, day): Ann 01-05 {Latte, Cake}, Ann 02-10 {Latte},
# Ann 04-10 {Beans}, Bob 01-20 {Latte, Cake}, Bob 03-01 {Beans}, 陈静 02-03 {Cake}, Dan 02-15 {Latte, Beans},
# 王芳 03-20 {Latte, Cake}: 8 baskets; n(Latte)=5, n(Cake)=4, n(Beans)=3; n(Cake, Latte)=3, n(Beans, Latte)=1.
DATA = [
    ("Ann", "2025-01-05", "Latte", "10", "store"), ("Ann", "2025-01-05", "Cake", "20", "store"),
    ("Ann", "2025-02-10", "Latte", "10", "store"), ("Ann", "2025-04-10", "Beans", "50", "online"),
    ("Bob", "2025-01-20", "Latte", "10", "store"), ("Bob", "2025-01-20", "Cake", "20", "store"),
    ("Bob", "2025-03-01", "Beans", "50", "online"),
    ("陈静", "2025-02-03", "Cake", "20", "store"),
    ("Dan", "2025-02-15", "Latte", "10", "store"), ("Dan", "2025-02-15", "Beans", "50", "online"),
    ("王芳", "2025-03-20", "Latte", "10", "store"), ("王芳", "2025-03-20", "Cake", "20", "store"),
]
CATEGORY = {"Latte": "coffee", "Cake": "food", "Beans": "coffee"}
RANGE = ("--since", "2025-01-01", "--until", "2025-04-30", "--as-of", "2025-04-30")


def build(store: Any) -> dict[str, int]:
    """The data set, through the core API in one transaction; Ann's 02-10 latte is refunded on 02-12."""
    from crmcli.core import customers, purchases
    from crmcli.core.context import StoreContext

    ids: dict[str, int] = {}
    with store.write() as session:
        ctx = StoreContext.load(session, as_of=date(2025, 4, 30))
        people = {}
        for name in dict.fromkeys(d[0] for d in DATA):
            people[name] = customers.add_customer(session, customers.CustomerInput(name=name), ctx)
            ids[name] = people[name].id
        refund_me = None
        for n, (name, day, product, amount, channel) in enumerate(DATA):
            rec = purchases.add_purchase(session, people[name], purchases.PurchaseInput(
                amount=amount, at=day, product=product, category=CATEGORY[product], channel=channel, ref=f"R{n}"), ctx)
            if (name, day) == ("Ann", "2025-02-10"):
                refund_me = rec.purchase
        purchases.refund(session, refund_me, ctx, at="2025-02-12")
    return ids


def build_shop(c: Any) -> None:
    from crmcli.store.engine import open_store

    s = open_store(str(c.db))
    try:
        build(s)
    finally:
        s.dispose()


@pytest.fixture
def shop(cli: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The data set, built once per test run and copied for each test."""
    return from_template("report-shop", cli, tmp_path_factory, build_shop)


def test_sales_by_month_hand_computed(shop: Any) -> None:
    rows = shop.json("report", "sales", "--by", "month", *RANGE)
    assert [r["period"] for r in rows] == ["2025-01", "2025-02", "2025-03", "2025-04"]
    jan, feb, mar, apr = rows
    assert (jan["orders"], jan["customers"], jan["revenue"], jan["refunds"], jan["net"], jan["aov"]) == \
        (4, 2, "60.00", "0.00", "60.00", "15.00")
    assert (feb["orders"], feb["customers"], feb["revenue"], feb["refunds"], feb["net"], feb["aov"]) == \
        (4, 3, "90.00", "10.00", "80.00", "22.50")
    assert (mar["orders"], mar["revenue"], apr["orders"], apr["revenue"]) == (3, "80.00", 1, "50.00")
    assert feb["start"] == "2025-02-01" and feb["end"] == "2025-02-28"


def test_sales_fills_empty_periods_and_splits_by_channel(shop: Any) -> None:
    weeks = shop.json("report", "sales", "--by", "week", "--since", "2025-01-01", "--until", "2025-01-31",
                      "--as-of", "2025-04-30")
    assert [w["period"] for w in weeks] == ["2025-W01", "2025-W02", "2025-W03", "2025-W04", "2025-W05"]
    assert [w["orders"] for w in weeks] == [2, 0, 0, 2, 0]  # 01-05 is a Sunday (W01), 01-20 a Monday (W04)
    assert weeks[0]["start"] == "2025-01-01"  # clipped to --since
    by_channel = shop.json("report", "sales", "--by-channel", *RANGE)
    assert [(r["channel"], r["orders"], r["revenue"], r["refunds"], r["net"]) for r in by_channel] == [
        ("online", 3, "150.00", "0.00", "150.00"), ("store", 9, "130.00", "10.00", "120.00")]
    by_both = shop.json("report", "sales", "--by", "quarter", "--by-category", *RANGE)
    assert [(r["period"], r["category"], r["net"]) for r in by_both] == [
        ("2025-Q1", "coffee", "140.00"), ("2025-Q1", "food", "80.00"), ("2025-Q2", "coffee", "50.00")]


def test_sales_csv_and_table_with_chart(shop: Any) -> None:
    out = shop.ok("report", "sales", *RANGE, "--format", "csv").stdout.splitlines()
    assert out[0] == "period,start,end,orders,customers,units,revenue,refunds,net,aov"
    assert out[2] == "2025-02,2025-02-01,2025-02-28,4,3,4,90.00,10.00,80.00,22.50"
    table = shop.ok("report", "sales", *RANGE, "--format", "table").stdout
    assert "Total" in table and "¥270.00" in table and "█" in table and "Net revenue trend" in table


def test_cohort_retention_triangle(shop: Any) -> None:
    data = shop.json("report", "cohort", *RANGE)
    cohorts = {c["cohort"]: c for c in data["cohorts"]}
    assert cohorts["2025-01"]["size"] == 2
    assert cohorts["2025-01"]["retention"] == [100.0, 50.0, 50.0, 50.0]  # Ann in Feb and Apr, Bob in Mar
    assert cohorts["2025-02"]["retention"] == [100.0, 0.0, 0.0]
    assert cohorts["2025-03"]["customers"] == [1, 0]
    assert cohorts["2025-04"]["size"] == 0 and cohorts["2025-04"]["retention"] == [None]
    csv = shop.ok("report", "cohort", *RANGE, "--format", "csv").stdout.splitlines()
    assert csv[0] == "cohort,size,m0,m1,m2,m3" and csv[1] == "2025-01,2,100.0,50.0,50.0,50.0"
    assert csv[2] == "2025-02,2,100.0,0.0,0.0,"
    quarters = shop.json("report", "cohort", "--by", "quarter", *RANGE)["cohorts"]
    assert [(q["cohort"], q["size"], q["retention"]) for q in quarters] == [
        ("2025-Q1", 5, [100.0, 20.0]), ("2025-Q2", 0, [None])]  # only Ann bought again in Q2


def test_repeat_rate_intervals_and_second_purchase(shop: Any) -> None:
    r = shop.json("report", "repeat", *RANGE)
    assert (r["customers"], r["repeat_customers"], r["repeat_rate"]) == (5, 2, 40.0)
    assert r["orders"] == 12 and r["orders_per_customer"] == 2.4
    assert r["avg_interval_days"] == 45.0  # gaps 36 + 59 (Ann) + 40 (Bob) over 3 gaps
    assert r["avg_customer_interval_days"] == 43.8  # (47.5 + 40) / 2
    second = r["second_purchase"]
    assert (second["new_customers"], second["converted"], second["rate"], second["avg_days_to_second"]) == \
        (5, 2, 40.0, 38.0)
    assert second["within"] == [{"days": 30, "eligible": 5, "converted": 0, "rate": 0.0},
                                {"days": 60, "eligible": 4, "converted": 2, "rate": 50.0},
                                {"days": 90, "eligible": 2, "converted": 2, "rate": 100.0}]
    assert [(d["purchase_days"], d["customers"]) for d in r["distribution"][:3]] == [("1", 3), ("2", 1), ("3", 1)]


def test_products_best_sellers_and_lift(shop: Any) -> None:
    data = shop.json("report", "products", *RANGE, "--min-count", "1")
    assert data["baskets"] == 8
    assert [(b["product"], b["orders"], b["refunds"], b["net"], b["share"]) for b in data["best_sellers"]] == [
        ("Beans", 3, "0.00", "150.00", 55.6), ("Cake", 4, "0.00", "80.00", 29.6), ("Latte", 5, "10.00", "40.00", 14.8)]
    pairs = {(p["product_a"], p["product_b"]): p for p in data["pairs"]}
    cake_latte = pairs[("Cake", "Latte")]
    assert (cake_latte["baskets"], cake_latte["support"], cake_latte["confidence_ab"], cake_latte["confidence_ba"],
            cake_latte["lift"]) == (3, 37.5, 75.0, 60.0, 1.2)
    beans_latte = pairs[("Beans", "Latte")]
    assert (beans_latte["support"], beans_latte["confidence_ab"], beans_latte["confidence_ba"],
            beans_latte["lift"]) == (12.5, 33.3, 20.0, 0.53)
    assert ("Beans", "Cake") not in pairs  # never in one basket
    default = shop.json("report", "products", *RANGE)  # pairs need 2 baskets by default
    assert [(p["product_a"], p["product_b"]) for p in default["pairs"]] == [("Cake", "Latte")]
    csv = shop.ok("report", "products", *RANGE, "--pairs", "--format", "csv").stdout.splitlines()
    assert csv == ["product_a,product_b,baskets,support,confidence_ab,confidence_ba,lift",
                   "Cake,Latte,3,37.5,75.0,60.0,1.2"]


def test_summary_dashboard_compares_periods(shop: Any) -> None:
    data = shop.json("report", "summary", "--as-of", "2025-04-30")
    assert data["period"] == {"since": "2025-04-01", "until": "2025-04-30"}
    assert data["previous"] == {"since": "2025-03-02", "until": "2025-03-31"}
    sales = data["sales"]
    assert sales["current"]["revenue"] == "50.00" and sales["previous"]["revenue"] == "30.00"
    assert sales["change"]["revenue"] == 66.7 and sales["change"]["orders"] == -50.0
    assert data["customers"]["total"] == 5 and data["customers"]["active"] == 1
    assert data["top_customers"][0]["code"] and data["top_customers"][0]["name"] == "Ann"
    assert data["top_customers"][0]["net"] == "50.00"
    # at risk: last purchase 90-179 days before 2025-08-05 (Ann 04-10 is 117 days), lost: 180+ days (陈静 02-03)
    later = shop.json("report", "summary", "--as-of", "2025-08-05")
    assert (later["customers"]["at_risk"], later["customers"]["lost"]) == (4, 1)
    rows = shop.ok("report", "summary", "--as-of", "2025-04-30", "--format", "csv").stdout.splitlines()
    assert rows[0] == "section,metric,value,previous,change_percent"
    assert "sales,revenue,50.00,30.00,66.7" in rows


def test_svg_and_html_are_well_formed(shop: Any, tmp_path: Path) -> None:
    svg, html = tmp_path / "cohort.svg", tmp_path / "cohort.html"
    result = shop.ok("report", "cohort", *RANGE, "--format", "json", "--svg", str(svg), "--html", str(html))
    assert json.loads(result.stdout)["cohorts"]  # the data still goes to stdout
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    text = "".join(root.itertext())
    assert "2025-01" in text and "50%" in text.replace("\xa0", " ")
    assert "<html" in html.read_text(encoding="utf-8").lower()
    assert (svg.stat().st_mode & 0o777, html.stat().st_mode & 0o777) == (0o600, 0o600)  # customer names inside
    for command in (["summary"], ["sales"], ["repeat"], ["products"]):
        out = tmp_path / f"{command[0]}.svg"
        shop.ok("report", *command, "--as-of", "2025-04-30", "--format", "table", "--svg", str(out))
        assert ET.parse(out).getroot().tag.endswith("svg")


def test_markdown_and_table_fit_80_columns_with_chinese_names(shop: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    for command in (["summary"], ["sales", "--by", "month"], ["cohort"], ["repeat"], ["products"]):
        table = shop.ok("report", *command, *RANGE, "--format", "table").stdout
        widest = max(cell_len(line) for line in table.splitlines())
        assert widest <= 80, (command, widest, table)
    summary = shop.ok("report", "summary", "--as-of", "2025-03-31", "--format", "table").stdout
    assert "王芳" in summary
    md = shop.ok("report", "products", *RANGE, "--format", "markdown").stdout
    assert md.startswith("## Best sellers") and "| Cake" in md and "Bought together" in md
    md_lines = [line for line in md.splitlines() if line.startswith("|")]
    assert len({cell_len(line) for line in md_lines[:5]}) == 1  # aligned columns


def test_bad_options_are_refused(shop: Any) -> None:
    fails(shop, 2, "report", "sales", "--by", "year", says=("year",))
    fails(shop, 2, "report", "sales", "--by-channel", "--by-category")
    fails(shop, 5, "report", "repeat", "--since", "2025-05-01", "--until", "2025-04-01", says=("--since",))
    fails(shop, 2, "report", "cohort", "--by", "week")


def test_empty_store_reports_zeroes(cli: Any) -> None:
    rows = cli.json("report", "sales", "--as-of", "2025-04-30")
    assert len(rows) == 12 and all(r["orders"] == 0 and r["net"] == "0.00" for r in rows)
    assert cli.json("report", "repeat", "--as-of", "2025-04-30")["repeat_rate"] is None
    assert cli.json("report", "products", "--as-of", "2025-04-30")["pairs"] == []
    assert "No sales" in cli.ok("report", "sales", "--by-channel", "--format", "table").stdout
