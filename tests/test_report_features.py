"""`crm report tiers|segments|nps|points|feedback` and the dashboard's feature sections: the same figures as the
features' own commands, in one place."""

from __future__ import annotations

from typing import Any

import pytest
from rich.cells import cell_len

from crm_helpers import cli, fast_cli, from_template, one, template_store  # noqa: F401 - fixtures
from test_report import RANGE, build_shop

pytest.importorskip("crmcli.core.tiers")
pytest.importorskip("crmcli.core.surveys")
pytest.importorskip("crmcli.core.points.expiry")


def build_features(c: Any) -> None:
    build_shop(c)
    c.ok("tier", "recompute", "--as-of", "2025-04-30")
    c.ok("survey", "create", "NPS 2025", "--kind", "nps")
    for name, score in (("Ann", "10"), ("Bob", "9"), ("陈静", "7"), ("Dan", "3")):
        c.ok("survey", "record", "NPS 2025", name, score, "--as-of", "2025-04-20")
    c.ok("points", "earn", "Ann", "100", "--reason", "welcome", "--as-of", "2025-04-30")


@pytest.fixture
def shop(cli: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return from_template("report-features", cli, tmp_path_factory, build_features)


def test_tiers_and_segments_match_the_tier_commands(shop: Any) -> None:
    ours = shop.json("report", "tiers")
    theirs = shop.json("tier", "summary")
    assert sum(r["customers"] for r in ours) == 5
    assert [(r["tier"], r["customers"]) for r in ours] == [(t["tier"] or "—", t["customers"]) for t in theirs]
    segments = shop.json("report", "segments")
    assert sum(r["customers"] for r in segments) == 5


def test_nps_points_feedback(shop: Any) -> None:
    [survey] = shop.json("report", "nps", *RANGE)["surveys"]
    assert (survey["survey"], survey["responses"], survey["nps"]) == ("NPS 2025", 4, 25.0)  # (2 - 1) / 4
    assert (survey["promoters"], survey["passives"], survey["detractors"]) == (2, 1, 1)
    assert shop.json("report", "nps", "--since", "2025-01-01", "--until", "2025-03-31", "--as-of", "2025-04-30")[
        "surveys"][0]["responses"] == 0
    points = shop.json("report", "points", "--as-of", "2025-04-30")
    assert points["outstanding"] == 100 and points["value"] == "1.00"
    fb = shop.json("report", "feedback", *RANGE)
    assert fb["open"] == one(shop.db, "SELECT count(*) FROM feedback WHERE status = 'open'")
    assert fb["opened"] == one(shop.db, "SELECT count(*) FROM feedback")


def test_dashboard_shows_the_features(shop: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    data = shop.json("report", "summary", "--as-of", "2025-04-30")
    assert sum(data["tiers"]["counts"].values()) == 5
    assert data["nps"]["nps"] == 25.0 and data["nps"]["responses"] == 4
    assert data["points"]["outstanding"] == 100 and data["points"]["value_minor"] == "1.00"
    monkeypatch.setenv("COLUMNS", "80")
    table = shop.ok("report", "summary", "--as-of", "2025-04-30", "--format", "table").stdout
    assert "Tier mix" in table and "NPS" in table and "Points outstanding" in table
    assert max(cell_len(line) for line in table.splitlines()) <= 80
    for command in (["tiers"], ["segments"], ["nps", *RANGE], ["points"], ["feedback", *RANGE]):
        out = shop.ok("report", *command, "--format", "table").stdout
        assert max(cell_len(line) for line in out.splitlines()) <= 80, out
    md = shop.ok("report", "tiers", "--format", "markdown").stdout
    assert md.startswith("## Tiers") and "| A " in md
