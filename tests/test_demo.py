"""`crm demo`: builds a demo store from examples/demo in the current folder, shows a card and a summary, may
rebuild its own demo file and never overwrites anything else."""

from __future__ import annotations

import csv
import sqlite3

import pytest
from crm_helpers import fails, fast_cli, query  # noqa: F401 (fast_cli: autouse fixture)
from rich.cells import cell_len
from typer.testing import CliRunner

from crmcli.cli.app import app
from crmcli.core.demo import data_dir


def crm(*args, input=None):
    return CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)


def csv_rows(name):
    with open(data_dir() / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def demo_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("CRM_DB", raising=False)
    return tmp_path


def test_demo_builds_a_store_and_shows_a_card_and_a_summary(demo_dir):
    result = crm("demo")
    assert result.exit_code == 0, result.stderr
    db = demo_dir / "crm-demo.sqlite"
    n_customers, n_purchases, n_interactions = (len(csv_rows(f)) for f in ("customers.csv", "purchases.csv",
                                                                            "interactions.csv"))
    assert (f"Built a demo store at {db}: {n_customers} customers, {n_purchases} purchases, "
            f"{n_interactions} interactions.") in result.stderr
    assert f"crm --db {db} customer list" in result.stderr
    out = result.stdout
    assert "王芳" in out.splitlines()[0] and "DEMO001" in out.splitlines()[0]
    assert "Top customers by spend:" in out and "Traceback" not in out + result.stderr
    assert max(cell_len(line) for line in out.splitlines()) <= 80
    assert query(db, "SELECT count(*) FROM customer")[0][0] == n_customers
    assert query(db, "SELECT count(*) FROM purchase")[0][0] == n_purchases
    assert query(db, "SELECT count(*) FROM interaction")[0][0] == n_interactions
    assert query(db, "SELECT value FROM setting WHERE key = 'store.demo'") == [("true",)]
    assert db.stat().st_mode & 0o777 == 0o600
    # Demo customers date from their first purchase, so the card's "customer since" makes sense.
    assert query(db, "SELECT count(*) FROM customer c WHERE created_at > "
                     "(SELECT min(purchased_at) FROM purchase p WHERE p.customer_id = c.id)")[0][0] == 0
    # It is a normal store afterwards, and the top list is the real ranking.
    listing = CliRunner().invoke(app, ["--db", str(db), "customer", "list", "--sort", "spend", "--desc", "--limit", "1",
                                       "--format", "json"])
    top = listing.stdout.split('"code": "')[1].split('"')[0]
    summary = out.split("Top customers by spend:")[1]
    assert next(line for line in summary.splitlines() if "DEMO" in line).split()[0] == top

    # The card shows the other features' slots filled in: a tier and level, and a points balance that is the
    # ledger's sum (the programme is on; the sales earned their points once each).
    glance = next(line for line in out.splitlines() if "pts" in line)
    assert "A · gold" in glance
    earned = query(db, "SELECT count(*), count(DISTINCT purchase_id) FROM points_ledger WHERE kind = 'earn'")[0]
    sales = query(db, "SELECT count(*) FROM purchase WHERE kind = 'sale'")[0][0]
    assert earned == (sales, sales)
    balance = query(db, "SELECT sum(points) FROM points_ledger WHERE customer_id = 1")[0][0]
    assert f"{balance:,} pts" in glance
    tiers = dict(query(db, "SELECT tier, count(*) FROM customer_class GROUP BY tier"))
    assert set(tiers) == {"A", "B", "C"} and sum(tiers.values()) == n_customers

    # Running it again rebuilds the demo file (same counts, not doubled)
    again = crm("demo")
    assert again.exit_code == 0 and query(db, "SELECT count(*) FROM purchase")[0][0] == n_purchases
    assert not list(demo_dir.glob("*.bak"))


def test_demo_never_overwrites_another_file(demo_dir):
    real = demo_dir / "crm-demo.sqlite"
    real.write_text("my real notes\n")
    for args in (["demo"], ["demo", "--force"]):
        result = crm(*args)
        assert result.exit_code == 4 and "exists and is not a demo store" in result.stderr
        assert "Traceback" not in result.stdout + result.stderr
    assert real.read_text() == "my real notes\n"


def test_demo_never_overwrites_a_real_store(demo_dir):
    shop = demo_dir / "shop.sqlite"
    assert crm("--db", str(shop), "init").exit_code == 0
    assert crm("--db", str(shop), "customer", "add", "Real Customer").exit_code == 0
    before = sqlite3.connect(shop).execute("SELECT name FROM customer").fetchall()
    result = crm("--db", str(shop), "demo", "--force")
    assert result.exit_code == 4 and f"{shop} exists and is not a demo store" in result.stderr
    assert sqlite3.connect(shop).execute("SELECT name FROM customer").fetchall() == before


def test_demo_force_replaces_an_empty_file(demo_dir):
    (demo_dir / "crm-demo.sqlite").touch()
    assert crm("demo").exit_code == 4
    assert crm("demo", "--force").exit_code == 0
    assert query(demo_dir / "crm-demo.sqlite", "SELECT count(*) FROM customer")[0][0] == len(csv_rows("customers.csv"))


def test_demo_data_is_valid():
    """Every demo row passes the same validation as typed input (the demo loads through the domain API)."""
    codes = {r["code"] for r in csv_rows("customers.csv")}
    assert all(r["customer"] in codes for r in csv_rows("purchases.csv") + csv_rows("interactions.csv"))
    refs = [r["ref"] for r in csv_rows("purchases.csv")]
    assert len(refs) == len(set(refs))
