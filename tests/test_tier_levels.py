"""Membership levels: definitions, assignment, upgrades, the downgrade policy, history and privileges."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from crmcli.core.levels import NO_DATE, assign
from test_tier_support import AS_OF, buy, classes, customers, recompute, refund, seed, stored


def _levels(cli):
    cli.ok("tier", "levels", "add", "Silver", "--threshold", "100", "--discount", "2")
    cli.ok("tier", "levels", "add", "gold", "--threshold", "500", "--discount", "5", "--multiplier", "1.5",
           "--perk", "free delivery", "--perk", "birthday gift")


def levels_of(cli):
    return {name: row["level"] for name, row in classes(cli).items()}


def test_level_definitions(cli, store, unchanged):
    _levels(cli)
    rows = cli.json("tier", "levels")
    assert rows == [
        {"name": "Silver", "basis": "spend", "threshold": "100.00", "discount_pct": "2", "points_multiplier": None,
         "perks": [], "customers": 0},
        {"name": "gold", "basis": "spend", "threshold": "500.00", "discount_pct": "5", "points_multiplier": "1.5",
         "perks": ["free delivery", "birthday gift"], "customers": 0}]
    check = unchanged()
    dup = cli("tier", "levels", "add", "GOLD", "--threshold", "900")
    assert dup.exit_code == 4 and "already exists" in dup.stderr
    same = cli("tier", "levels", "add", "platinum", "--threshold", "500")
    assert same.exit_code == 4
    assert cli("tier", "levels", "add", "x", "--threshold", "-5").exit_code == 5
    assert cli("tier", "levels", "add", "x", "--threshold", "5", "--discount", "120").exit_code == 5
    assert cli("tier", "levels", "add", "x", "--threshold", "5", "--multiplier", "abc").exit_code == 5
    assert cli("tier", "levels", "edit", "bronze", "--discount", "1").exit_code == 3
    basis = cli("tier", "rules", "set", "--level-basis", "points")
    assert basis.exit_code == 4 and "cannot change while levels exist" in basis.stderr
    assert cli("tier", "levels", "rm", "gold").exit_code == 2  # not a terminal: needs --yes
    check()
    cli.ok("tier", "levels", "edit", "gold", "--discount", "8", "--remove-perk", "birthday gift", "--add-perk", "lounge")
    gold = cli.json("tier", "levels")[1]
    assert gold["discount_pct"] == "8" and gold["perks"] == ["free delivery", "lounge"]
    assert [a[0] for a in stored(store, "SELECT action FROM audit WHERE entity = 'member_level' ORDER BY id")] == [
        "add", "add", "edit"]


def test_assignment_upgrade_and_never_downgrade(cli):
    _levels(cli)
    sale = seed(cli, {"Ann": [(10, "600")], "Bob": [(10, "150")], "Cat": [(10, "50")]})["Ann"]
    result = recompute(cli)
    assert levels_of(cli) == {"Ann": "gold", "Bob": "Silver", "Cat": None}
    assert result["level"] == {"up": 0, "down": 0, "new": 2}
    buy(cli, "Cat", "500", 1)  # upgrades apply at once
    refund(cli, sale)  # Ann no longer qualifies, but downgrades are off by default
    result = recompute(cli)
    assert levels_of(cli) == {"Ann": "gold", "Bob": "Silver", "Cat": "gold"}
    assert result["level"] == {"up": 0, "down": 0, "new": 1}
    assert [r["name"] for r in cli.json("customer", "list", "--level", "GOLD")] == ["Ann", "Cat"]
    assert cli("customer", "list", "--level", "bronze").exit_code == 3
    hist = cli.json("tier", "history", "Cat")
    assert [(h["kind"], h["from"], h["to"], h["basis"]) for h in hist if h["kind"] == "level"] == [
        ("level", None, "gold", 55000)]


def test_downgrade_is_re_evaluated_every_n_days(cli):
    _levels(cli)
    cli.ok("tier", "rules", "set", "--downgrade", "90d")
    customers(cli, "Ann")
    sale = buy(cli, "Ann", "600", 5)
    recompute(cli)
    assert levels_of(cli) == {"Ann": "gold"}
    refund(cli, sale, "450", 1)  # 150 left: Silver
    recompute(cli, AS_OF + timedelta(days=89))  # not yet due
    assert levels_of(cli) == {"Ann": "gold"}
    result = recompute(cli, AS_OF + timedelta(days=90))  # due: re-evaluated
    assert levels_of(cli) == {"Ann": "Silver"}
    assert result["level"] == {"up": 0, "down": 1, "new": 0}
    assert classes(cli)["Ann"]["level_since"] == (AS_OF + timedelta(days=90)).isoformat()
    hist = [h for h in cli.json("tier", "history", "Ann") if h["kind"] == "level"]
    assert [(h["from"], h["to"], h["as_of"]) for h in hist] == [
        ("gold", "Silver", (AS_OF + timedelta(days=90)).isoformat()), (None, "gold", AS_OF.isoformat())]


def test_removed_level_members_are_reassigned(cli):
    _levels(cli)
    customers(cli, "Ann")
    buy(cli, "Ann", "600")
    recompute(cli)
    cli.ok("tier", "levels", "rm", "gold", "--yes")
    recompute(cli)
    assert levels_of(cli) == {"Ann": "Silver"}
    hist = [h for h in cli.json("tier", "history", "Ann") if h["kind"] == "level"]
    assert (hist[0]["from"], hist[0]["to"]) == ("gold", "Silver")


def test_assign_rule_table():
    thresholds = [100, 500]  # rank 1 = 100, rank 2 = 500
    value = np.array([600, 150, 50, 600, 50, 50, 150])
    current = np.array([0, 2, 2, 1, 1, -1, 0])
    since = np.array([NO_DATE, 900, 850, 990, 800, 700, NO_DATE])
    never = assign(value, current, since, 1000, thresholds, None)
    assert never[0].tolist() == [2, 2, 2, 2, 1, 0, 1]
    every_100 = assign(value, current, since, 1000, thresholds, 100)
    # 0: up; 1: since 900, due at 1000 -> qualified 1; 2: due -> 0; 3: up to 2; 4: due -> 0; 5: gone -> 0; 6: up
    assert every_100[0].tolist() == [2, 1, 0, 2, 0, 0, 1]
    assert every_100[1].tolist() == [1000, 1000, NO_DATE, 1000, NO_DATE, NO_DATE, 1000]
