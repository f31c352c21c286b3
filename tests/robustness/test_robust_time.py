"""Results defined by dates do not depend on the machine's time zone: the same store gives the same points
expiry, expiring lists, birthdays, tier windows, sales periods and purchase dates whether `crm` runs under
UTC, Asia/Shanghai, America/New_York or Pacific/Chatham (+13:45 in summer). The store's own zone here is
America/New_York, with purchases on both sides of its DST changes, on 29 February and at midnight on New
Year's Eve, and customers born on 29 February."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Cli
from robust_support import Workers

ZONES = ["UTC", "Asia/Shanghai", "America/New_York", "Pacific/Chatham"]

COMMANDS = [
    ["points", "expire", "--as-of", "2024-04-01", "--dry-run", "--format", "json"],
    ["points", "expiring", "--within", "60d", "--as-of", "2024-03-01", "--format", "json"],
    ["points", "balance", "Leap Day", "--as-of", "2024-03-10", "--format", "json"],
    ["report", "sales", "--by", "day", "--since", "2024-02-28", "--until", "2025-01-02", "--as-of", "2025-01-02",
     "--format", "json"],
    ["report", "sales", "--by", "week", "--since", "2024-03-04", "--until", "2024-11-10", "--as-of", "2025-01-02",
     "--format", "json"],
    ["tier", "recompute", "--dry-run", "--changes", "--as-of", "2025-03-09", "--format", "json"],
    ["care", "agenda", "--as-of", "2025-02-28", "--days", "2", "--format", "json"],
    ["customer", "list", "--birthday-month", "2", "--format", "json"],
    ["purchase", "list", "--since", "2024-03-10", "--until", "2024-03-10", "--format", "json"],
]


@pytest.fixture(scope="module")
def dst_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("time") / "shop.sqlite"
    cli = Cli(db)
    cli.ok("init", "--currency", "USD", "--region", "US", "--timezone", "America/New_York")
    cli.ok("points", "rules", "set", "enabled", "yes")
    cli.ok("points", "rules", "set", "expiry", "month-end:1")
    cli.ok("customer", "add", "Leap Day", "--birthday", "2000-02-29", "--code", "L1")
    cli.ok("customer", "add", "Spring Forward", "--birthday", "1990-03-10", "--code", "S1")
    for i, at in enumerate(["2024-02-29 23:30", "2024-03-10 01:59", "2024-03-10 03:00", "2024-03-10 23:59",
                            "2024-11-03 00:59", "2024-11-03 01:30", "2024-11-03 02:00", "2024-12-31 23:59",
                            "2025-01-01 00:00", "2024-02-29 00:00"]):
        cli.ok("purchase", "add", "L1" if i % 2 else "S1", f"{100 + i}.50", "--at", at, "--ref", f"T{i}")
    return db


def test_results_do_not_depend_on_the_machine_time_zone(dst_store: Path, tmp_path: Path) -> None:
    workers = Workers(tmp_path)
    for zone in ZONES:
        workers.start(dst_store, COMMANDS, tz=zone)
    workers.go()
    outputs = {zone: [(r["code"], r["stdout"]) for r in results] for zone, results in zip(ZONES, workers.results())}
    reference = outputs[ZONES[0]]
    for (code, out), args in zip(reference, COMMANDS):
        assert code == 0 and out.strip(), (args, code)
    for zone in ZONES[1:]:
        for args, ref, got in zip(COMMANDS, reference, outputs[zone]):
            assert got == ref, f"{' '.join(args)} under TZ={zone} differs from TZ={ZONES[0]}"
    # The DST days really are in the data: 2024-03-10 has the sales on both sides of the missing hour.
    import json

    march10 = json.loads(reference[-1][1])
    assert len(march10) == 3 and all(p["date"] == "2024-03-10" for p in march10)
