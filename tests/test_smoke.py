"""End-to-end basics: init, add, list, purchase, card."""

from __future__ import annotations

import json


def test_init_is_idempotent_and_prints_the_path(cli, db_path):
    again = cli.ok("init")
    assert again.stdout.strip() == str(db_path)
    assert "nothing to do" in again.stderr
    assert (db_path.stat().st_mode & 0o777) == 0o600


def test_add_list_purchase_card(cli):
    code = cli.ok("customer", "add", "王芳", "--phone", "13800138000", "--email", "fang@example.com",
                  "--city", "上海", "--tag", "vip").stdout.strip()
    assert code == "C000001"
    rows = cli.json("customer", "list")
    assert [(r["code"], r["name"], r["phone"], r["tags"]) for r in rows] == [
        ("C000001", "王芳", "+8613800138000", ["vip"])]
    cli.ok("purchase", "add", "王芳", "128.50", "--at", "2024-03-01", "--ref", "A1")
    rows = cli.json("customer", "list")
    assert rows[0]["orders"] == 1 and rows[0]["net_spent"] == "128.50"
    card = json.loads(cli.ok("card", "show", "C000001", "--format", "json").stdout)
    assert card["purchases"]["net"] == "128.50"
    assert card["tier"] is None and card["points"] is None
    text = cli.ok("card", "show", "C000001", "--width", "80").stdout
    assert "王芳" in text and "—" in text
    assert all(len(line) <= 80 for line in text.splitlines())
