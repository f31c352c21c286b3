"""Lifecycle stages: each stage, personal and fixed thresholds (as of 2025-06-30, default rules:
new 90 days, min history 3 purchase days, at risk / lost after 2x / 4x the usual interval, at least 14 / 28
days; 90 / 180 days with less history)."""

from __future__ import annotations

import numpy as np

from crmcli.core.lifecycle import STAGE_KEYS, LifecycleRules, stage_codes
from test_tier_support import classes, recompute, seed


def _people(cli):
    plan = {
        "New": [10],                         # one purchase day, 10 days ago
        "OneOld": [100],                     # one purchase, 100 > 90 days ago: at risk
        "OneGone": [200],                    # one purchase, 200 > 180 days ago: lost
        "Twice": [60, 30],                   # 2 days: fixed thresholds, 30 <= 90: repeat
        "Regular": [100, 80, 60, 40, 20],    # every 20 days: at risk after 40, lost after 80; gap 20
        "Slipping": [55, 45, 35, 25],        # every 10 days: at risk after 20, lost after 40; gap 25
        "Gone": [80, 70, 60, 50],            # every 10 days; gap 50 > 40: lost
        "TwiceRisk": [150, 120],             # 2 days: gap 120 > 90: at risk
        "TwiceLost": [300, 250],             # 2 days: gap 250 > 180: lost
    }
    seed(cli, {"Prospect": [], **{name: [(d, "500" if name == "Regular" else "10") for d in days]
                                  for name, days in plan.items()}})


def test_each_stage(cli):
    _people(cli)
    # Nobody reaches tier A (so "loyal" comes from the RFM segment only).
    cli.ok("tier", "rules", "set", "--method", "thresholds", "--a-spend", "100000")
    recompute(cli)
    got = {name: row["stage"] for name, row in classes(cli).items()}
    assert got == {"Prospect": "prospect", "New": "new", "OneOld": "at_risk", "OneGone": "lost", "Twice": "repeat",
                   "Regular": "loyal", "Slipping": "at_risk", "Gone": "lost", "TwiceRisk": "at_risk",
                   "TwiceLost": "lost"}
    assert classes(cli)["Regular"]["segment"] == "champions"
    assert classes(cli)["Twice"]["segment"] not in ("champions", "loyal")
    assert [r["name"] for r in cli.json("customer", "list", "--stage", "at risk")] == ["OneOld", "Slipping", "TwiceRisk"]
    assert [r["name"] for r in cli.json("customer", "list", "--stage", "lost")] == ["OneGone", "Gone", "TwiceLost"]
    assert cli("customer", "list", "--stage", "sleeping").exit_code == 5


def test_tier_a_makes_a_repeat_customer_loyal(cli):
    _people(cli)
    cli.ok("tier", "rules", "set", "--method", "thresholds", "--a-spend", "100000")
    cli.ok("tier", "pin", "Twice", "A", "--reason", "family")
    recompute(cli)
    assert classes(cli)["Twice"]["stage"] == "loyal"


def test_thresholds_are_configurable(cli):
    _people(cli)
    cli.ok("tier", "rules", "set", "--at-risk-multiple", "3", "--lost-multiple", "6", "--new-days", "120")
    recompute(cli)
    got = {name: row["stage"] for name, row in classes(cli).items()}
    assert got["Slipping"] in ("repeat", "loyal")  # at risk only after 30 days now
    assert got["Gone"] == "at_risk"  # 50 days: over 30, not over 60
    assert got["OneOld"] == "new"  # new for 120 days
    bad = cli("tier", "rules", "set", "--at-risk-multiple", "7")
    assert bad.exit_code == 5 and "smaller than lifecycle.lost_multiple" in bad.stderr


def test_stage_codes_boundaries():
    rules = LifecycleRules()
    today = 1000
    # (purchase days, first, last) -> expected
    cases = [
        ((0, 0, 0), "prospect"),
        ((1, 910, 910), "new"),        # gap 90: not over new_days
        ((1, 909, 909), "at_risk"),    # gap 91
        ((1, 820, 820), "at_risk"),    # gap 180: not over lost_days
        ((1, 819, 819), "lost"),       # gap 181
        ((2, 850, 910), "repeat"),     # too little history: fixed 90 / 180; gap 90
        ((2, 850, 909), "at_risk"),    # gap 91
        ((3, 800, 900), "repeat"),     # u = 50: at risk after 100, lost after 200; gap 100
        ((3, 799, 899), "at_risk"),    # gap 101
        ((3, 700, 800), "at_risk"),    # gap 200
        ((3, 699, 799), "lost"),       # gap 201
        ((5, 996, 1000), "repeat"),    # u = 1: the floors 14 / 28 apply
        ((5, 982, 986), "repeat"),     # gap 14
        ((5, 976, 980), "at_risk"),    # gap 20 > 14
        ((5, 966, 970), "lost"),       # gap 30 > 28
    ]
    days = [c[0][0] for c in cases]
    first = [c[0][1] for c in cases]
    last = [c[0][2] for c in cases]
    codes = stage_codes(days, first, last, today, np.zeros(len(cases), dtype=bool), rules)
    assert [STAGE_KEYS[c] for c in codes] == [c[1] for c in cases]
