"""Pareto (ABC) tiers, recompute history and idempotence, refunds, prospects — hand-computed cases."""

from __future__ import annotations

import json

from test_tier_support import AS_OF, classes, recompute, refund, seed, stored, tiers

FIVE = {"Ann": [(10, "500")], "Bob": [(10, "300")], "Cat": [(10, "100")], "Dan": [(10, "60")], "Eve": [(10, "40")]}


def test_pareto_80_15_5_hand_computed(cli, store):
    # total 1000: 500 (0 % before) A, 300 (50 %) A, 100 (80 % -> not < 80) B, 60 (90 %) B, 40 (96 %) C
    seed(cli, FIVE)
    result = recompute(cli)
    assert result["tier"] == {"up": 0, "down": 0, "new": 5}
    assert result["tiers"] == {"A": 2, "B": 2, "C": 1, "none": 0}
    assert tiers(cli) == {"Ann": "A", "Bob": "A", "Cat": "B", "Dan": "B", "Eve": "C"}
    rows = stored(store, "SELECT c.name, h.from_value, h.to_value, h.net_minor, h.orders, h.share_bp "
                         "FROM class_history h JOIN customer c ON c.id = h.customer_id ORDER BY c.name")
    assert rows == [("Ann", None, "A", 50000, 1, 0), ("Bob", None, "A", 30000, 1, 5000),
                    ("Cat", None, "B", 10000, 1, 8000), ("Dan", None, "B", 6000, 1, 9000),
                    ("Eve", None, "C", 4000, 1, 9600)]
    run = stored(store, "SELECT kind, as_of, params FROM class_run")
    assert [(k, str(d)) for k, d, _p in run] == [("recompute", "2025-06-30")]
    assert json.loads(run[0][2])["method"] == "pareto"


def test_a_customer_straddling_the_line_belongs_to_the_upper_class(cli):
    # 600 (0 %) A; 300 starts at 60 % and ends at 90 %: it straddles 80 % -> A; 100 starts at 90 % -> B
    seed(cli, {"Big": [(10, "600")], "Mid": [(10, "300")], "Small": [(10, "100")]})
    recompute(cli)
    assert tiers(cli) == {"Big": "A", "Mid": "A", "Small": "B"}
    history = cli.json("tier", "history", "Mid")
    assert history[0]["share_before"] == "60.00" and history[0]["to"] == "A"


def test_equal_spend_gets_equal_tiers(cli):
    # 400 A; the two 200s both start at 40 % -> A; the two 100s both start at 80 % -> B
    seed(cli, {"P1": [(10, "400")], "P2": [(10, "200")], "P3": [(10, "200")], "P4": [(10, "100")],
               "P5": [(10, "100")]})
    recompute(cli)
    assert tiers(cli) == {"P1": "A", "P2": "A", "P3": "A", "P4": "B", "P5": "B"}


def test_configurable_shares(cli):
    seed(cli, FIVE)
    cli.ok("tier", "rules", "set", "--a-share", "50", "--b-share", "40")
    recompute(cli)
    # 500 (0 %) A; 300 starts at 50 % -> not < 50 -> B (< 90); 100 starts at 80 % -> B; 60 at 90 % -> C
    assert tiers(cli) == {"Ann": "A", "Bob": "B", "Cat": "B", "Dan": "C", "Eve": "C"}


def test_refunds_count_against_spend_and_lower_a_tier(cli, store):
    sale = seed(cli, {"X": [(20, "500")], "Y": [(10, "300")], "Z": [(10, "200")]})["X"]
    recompute(cli)
    assert tiers(cli) == {"X": "A", "Y": "A", "Z": "B"}  # 500 (0 %), 300 (50 %), 200 (80 %)
    refund(cli, sale, "450")
    result = recompute(cli)
    # X nets 50 of 550: Y 300 (0 %) A, Z 200 (54.5 %) A, X 50 (90.9 %) B
    assert tiers(cli) == {"X": "B", "Y": "A", "Z": "A"}
    assert result["tier"] == {"up": 1, "down": 1, "new": 0}
    x = cli.json("tier", "history", "X")
    assert [(h["from"], h["to"], h["net_spent"]) for h in x] == [("A", "B", "50.00"), (None, "A", "500.00")]
    assert stored(store, "SELECT count(*) FROM class_run WHERE kind = 'recompute'") == [(2,)]


def test_second_run_with_the_same_as_of_changes_nothing(cli, unchanged):
    seed(cli, {"Ann": [(10, "100")], "Bob": [(400, "50")], "Cat": []})  # Bob: outside the window
    first = recompute(cli)
    assert first["run_id"] is not None
    check = unchanged()
    again = cli("tier", "recompute", "--as-of", AS_OF.isoformat())
    assert again.exit_code == 0
    assert "tier\t0\t0\t0" in again.stdout and "Nothing changed." in again.stderr
    check()


def test_dry_run_reports_but_saves_nothing(cli, unchanged):
    seed(cli, {"Ann": [(10, "100")], "Bob": [(10, "10")]})
    check = unchanged()
    result = cli.json("tier", "recompute", "--as-of", AS_OF.isoformat(), "--dry-run")
    assert result["dry_run"] is True and result["tier"]["new"] == 2 and result["run_id"] is None
    check()
    changes = cli.json("tier", "recompute", "--as-of", AS_OF.isoformat(), "--dry-run", "--changes")
    assert [(c["code"], c["kind"], c["from"], c["to"]) for c in changes] == [
        ("C000001", "tier", None, "A"), ("C000002", "tier", None, "B")]
    check()


def test_window_and_prospects(cli):
    seed(cli, {"Recent": [(10, "100")], "Old": [(400, "5000")], "Never": []})  # Old: before the window
    recompute(cli)
    assert tiers(cli) == {"Recent": "A", "Old": "C", "Never": None}
    assert classes(cli)["Old"]["net_spent"] == "0.00"
    cli.ok("tier", "rules", "set", "--prospects", "C")
    recompute(cli)
    assert tiers(cli)["Never"] == "C"
    cli.ok("tier", "rules", "set", "--window", "2y")
    recompute(cli)
    assert tiers(cli) == {"Recent": "C", "Old": "A", "Never": "C"}  # 5000 of 5100, then 100 starts at 98 %


def test_moves_as_time_passes(cli):
    seed(cli, {"Ann": [(300, "900")], "Bob": [(10, "100")]})
    recompute(cli)
    assert tiers(cli) == {"Ann": "A", "Bob": "B"}
    later = AS_OF.replace(month=10)  # Ann's purchase left the window
    result = recompute(cli, later)
    assert tiers(cli) == {"Ann": "C", "Bob": "A"}
    assert result["tier"] == {"up": 1, "down": 1, "new": 0}


def test_deleted_customers_are_not_ranked(cli):
    seed(cli, {"Ann": [(10, "100")], "Bob": [(10, "100")], "Gone": [(10, "10000")]})
    cli.ok("customer", "rm", "Gone", "--yes")
    recompute(cli)
    assert tiers(cli) == {"Ann": "A", "Bob": "A"}


def test_summary_counts_shares_and_average(cli):
    seed(cli, {**FIVE, "Fay": []})
    recompute(cli)
    rows = cli.json("tier", "summary")
    assert rows == [
        {"tier": "A", "customers": 2, "customer_share": "33.3", "revenue": "800.00", "revenue_share": "80.0",
         "average": "400.00"},
        {"tier": "B", "customers": 2, "customer_share": "33.3", "revenue": "160.00", "revenue_share": "16.0",
         "average": "80.00"},
        {"tier": "C", "customers": 1, "customer_share": "16.7", "revenue": "40.00", "revenue_share": "4.0",
         "average": "40.00"},
        {"tier": None, "customers": 1, "customer_share": "16.7", "revenue": "0.00", "revenue_share": "0.0",
         "average": "0.00"},
    ]
    table = cli.ok("tier", "summary", "--format", "table", "--chart").stdout
    assert "█" * 32 in table and "80.0%" in table  # the A bar: 80 % of 40 columns
    plain = cli.ok("tier", "summary", "--format", "table").stdout  # not a terminal: no chart
    assert "█" not in plain


def test_customer_list_filters_by_tier(cli):
    seed(cli, {"Ann": [(10, "900")], "Bob": [(10, "100")], "Cat": []})
    recompute(cli)
    assert [r["name"] for r in cli.json("customer", "list", "--tier", "a")] == ["Ann"]
    assert [r["name"] for r in cli.json("customer", "list", "--tier", "B")] == ["Bob"]
    assert cli.json("customer", "list", "--tier", "C") == []
    bad = cli("customer", "list", "--tier", "D")
    assert bad.exit_code == 5 and "'D' is not a tier" in bad.stderr


def test_tier_list_filters_and_unknown_tier(cli):
    seed(cli, {"Ann": [(10, "900")], "Bob": [(10, "100")]})
    assert cli("tier", "list", "--format", "table").stderr.startswith("No classified customers")
    recompute(cli)
    assert [r["name"] for r in cli.json("tier", "list", "B")] == ["Bob"]
    assert [r["name"] for r in cli.json("tier", "list", "--limit", "1")] == ["Ann"]
    assert cli("tier", "list", "Z").exit_code == 5
