"""The thresholds method, the rules in the store (`crm tier rules`), pins, the card slot and the hooks."""

from __future__ import annotations

import json
from decimal import Decimal

from test_tier_support import AS_OF, buy, classes, customers, recompute, seed, stored, tiers


def _shop(cli):
    seed(cli, {"Pat": [(30, "400"), (10, "200")],  # 600, 2 orders
               "Quinn": [(10, "600")],  # 600, 1 order
               "Rae": [(10, "50")],  # 50, 1 order
               "Sam": [(500, "150")]})  # first purchase 500 days ago, nothing in the window


def test_thresholds_all_and_any(cli):
    _shop(cli)
    cli.ok("tier", "rules", "set", "--method", "thresholds", "--a-spend", "500", "--a-orders", "2", "--b-spend", "100")
    recompute(cli)
    assert tiers(cli) == {"Pat": "A", "Quinn": "B", "Rae": "C", "Sam": "C"}
    cli.ok("tier", "rules", "set", "--match", "any")
    recompute(cli)
    assert tiers(cli) == {"Pat": "A", "Quinn": "A", "Rae": "C", "Sam": "C"}


def test_thresholds_tenure(cli):
    _shop(cli)
    cli.ok("tier", "rules", "set", "--method", "thresholds", "--a-tenure", "1y", "--b-orders", "1")
    recompute(cli)
    # Sam's first purchase is 500 days old (A by tenure); Pat, Quinn, Rae bought in the window (B by orders)
    assert tiers(cli) == {"Pat": "B", "Quinn": "B", "Rae": "B", "Sam": "A"}
    history = cli.json("tier", "history", "Sam")
    assert history[0]["tenure_days"] == 500 and history[0]["share_before"] is None


def test_rules_are_shown_and_validated_together(cli, unchanged):
    rules = {r["key"]: r["value"] for r in cli.json("tier", "rules")}
    assert rules["tier.method"] == "pareto" and rules["tier.window"] == 365 and rules["tier.pareto.a"] == "80"
    assert rules["level.downgrade"] == "never" and rules["lifecycle.lost_multiple"] == "4"
    check = unchanged()
    too_much = cli("tier", "rules", "set", "--a-share", "90", "--b-share", "20")
    assert too_much.exit_code == 5 and "more than 100 %" in too_much.stderr
    assert "is 110 %" in too_much.stderr
    no_a = cli("tier", "rules", "set", "--method", "thresholds")
    assert no_a.exit_code == 5 and "at least one minimum for tier A" in no_a.stderr
    bad = cli("tier", "rules", "set", "--method", "magic")
    assert bad.exit_code == 5 and "pareto, thresholds" in bad.stderr
    cents = cli("tier", "rules", "set", "--method", "thresholds", "--a-spend", "10.005")
    assert cents.exit_code == 5
    assert cli("tier", "rules", "set").exit_code == 2
    check()  # every failed change left the store as it was
    cli.ok("tier", "rules", "set", "--a-spend", "1,000")
    assert cli.ok("config", "get", "tier.a.min_spend").stdout.strip() == "1000"
    cli.ok("config", "set", "tier.window", "180d")  # the same settings through crm config
    assert {r["key"]: r["value"] for r in cli.json("tier", "rules")}["tier.window"] == 180


def test_pin_is_kept_by_recompute_and_unpin_restores(cli, store):
    seed(cli, {"Ann": [(10, "900")], "Bob": [(10, "100")]})
    recompute(cli)
    cli.ok("tier", "pin", "Bob", "a", "--reason", "key account", "--as-of", AS_OF.isoformat())
    bob = classes(cli)["Bob"]
    assert bob["tier"] == "A" and bob["pinned"] is True
    result = recompute(cli, AS_OF.replace(day=29))
    assert [(r["name"], r["tier"], r["computed_tier"]) for r in cli.json("tier", "list", "--pinned")] == [
        ("Bob", "A", "B")]
    assert result["tier"]["down"] == 0
    card = cli.json("card", "show", "Bob")
    assert card["tier"]["tier"] == "A" and card["tier"]["pinned"] is True
    cli.ok("tier", "unpin", "Bob")
    bob = classes(cli)["Bob"]
    assert bob["tier"] == "B" and bob["pinned"] is False
    hist = cli.json("tier", "history", "Bob")
    assert [(h["by"], h["from"], h["to"], h["note"]) for h in hist] == [
        ("unpin", "A", "B", "key account"), ("pin", "B", "A", "key account"), ("recompute", None, "B", None)]
    audit = stored(store, "SELECT action, before, after FROM audit WHERE entity = 'tier_pin' ORDER BY id")
    assert [a[0] for a in audit] == ["pin", "unpin"]
    assert json.loads(audit[0][2]) == {"reason": "key account", "tier": "A"}


def test_pin_errors(cli, unchanged):
    customers(cli, "Ann")
    check = unchanged()
    assert cli("tier", "pin", "Ann", "Z", "--reason", "x").exit_code == 5
    assert cli("tier", "pin", "Ann", "A", "--reason", "  ").exit_code == 5
    assert cli("tier", "pin", "Nobody", "A", "--reason", "x").exit_code == 3
    assert cli("tier", "pin", "Ann", "A").exit_code == 2  # --reason is required
    not_pinned = cli("tier", "unpin", "Ann")
    assert not_pinned.exit_code == 4 and "no pinned tier" in not_pinned.stderr
    check()


def test_pin_before_any_recompute_then_recompute(cli):
    seed(cli, {"Ann": [(10, "100")], "Bob": []})
    cli.ok("tier", "pin", "Bob", "B", "--reason", "partner")
    recompute(cli)
    assert tiers(cli) == {"Ann": "A", "Bob": "B"}
    assert classes(cli)["Bob"]["computed_tier"] is None  # never bought: no tier of his own


def test_card_slot_and_classification_hook(cli, store):
    from crmcli.core import hooks

    customers(cli, "Ann", "Bob")
    buy(cli, "Ann", "900")
    assert cli.json("card", "show", "Ann")["tier"] is None  # not classified yet
    cli.ok("tier", "levels", "add", "gold", "--threshold", "500", "--multiplier", "1.5", "--discount", "5")
    recompute(cli)
    card = cli.json("card", "show", "Ann")
    assert card["tier"] == {"tier": "A", "pinned": False, "level": "gold", "segment": "champions", "rfm": "555",
                            "stage": "new"}
    text = cli.ok("card", "show", "Ann", "--width", "120").stdout
    assert "A · gold · Champions 555 · new" in text
    with store.read() as session:
        fn = hooks.load(hooks.CLASSIFICATION)
        assert fn(session, 1) == {"tier": "A", "level": "gold", "points_multiplier": Decimal("1.5")}
        assert fn(session, 2) == {"tier": None, "level": None, "points_multiplier": None}
