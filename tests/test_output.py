"""The one row renderer: table | json | jsonl | csv | tsv | markdown, stable keys, money as decimal strings."""

from __future__ import annotations

import csv
import io
import json

import pytest
from crm_helpers import cli, fails, fast_cli, from_template, template_store  # noqa: F401 (fixtures)
from rich.cells import cell_len

from crmcli.cli.output import Column, Units, emit, flat_value, machine_value, text_value

KEYS = ["id", "code", "name", "phone", "email", "city", "tags", "orders", "net_spent", "last_purchase",
        "next_follow_up", "gender", "birthday", "age", "source", "created_at", "deleted"]


def _rows(cli):
    cli.ok("customer", "add", "王芳", "--phone", "13800138000", "--city", "上海", "--tag", "vip", "--tag", "咖啡控",
           "--birthday", "1990-05-17")
    cli.ok("customer", "add", 'Ann "the, best" Lee', "--email", "ann@example.com", "--notes", "x")
    cli.ok("purchase", "add", "王芳", "1234.5", "--at", "2024-06-01", "--as-of", "2024-06-15")


@pytest.fixture
def shop(cli, tmp_path_factory):
    return from_template("output", cli, tmp_path_factory, _rows)


def test_json(shop):
    out = shop.ok("customer", "list", "--format", "json", "--as-of", "2024-06-15").stdout
    rows = json.loads(out)
    assert [list(r) for r in rows] == [KEYS, KEYS]
    fang = rows[0]
    assert fang["net_spent"] == "1234.50" and isinstance(fang["net_spent"], str)  # money: a decimal string
    assert fang["orders"] == 1 and fang["age"] == 34 and fang["tags"] == ["vip", "咖啡控"] and fang["deleted"] is False
    assert fang["phone"] == "+8613800138000" and fang["birthday"] == "1990-05-17"
    assert "王芳" in out  # not \\u-escaped


def test_jsonl(shop):
    lines = shop.ok("customer", "list", "--format", "jsonl").stdout.splitlines()
    assert len(lines) == 2 and [list(json.loads(line)) for line in lines] == [KEYS, KEYS]


@pytest.mark.parametrize(("fmt", "delimiter"), [("csv", ","), ("tsv", "\t")])
def test_csv_and_tsv(shop, fmt, delimiter):
    out = shop.ok("customer", "list", "--format", fmt).stdout
    rows = list(csv.reader(io.StringIO(out), delimiter=delimiter))
    assert rows[0] == KEYS
    fang, ann = (dict(zip(rows[0], r)) for r in rows[1:])
    assert fang["tags"] == "vip; 咖啡控" and fang["net_spent"] == "1234.50" and fang["deleted"] == "false"
    assert ann["name"] == 'Ann "the, best" Lee'  # quoting survives a round trip
    assert ann["phone"] == "" and ann["last_purchase"] == ""


def test_not_a_terminal_defaults_to_tsv(shop):
    assert shop.ok("customer", "list").stdout.split("\n")[0] == "\t".join(KEYS)


def test_markdown_is_aligned_for_cjk(shop):
    out = shop.ok("customer", "list", "--format", "markdown").stdout.splitlines()
    assert out[0].startswith("| Code") and "Spent" in out[0] and set(out[1]) <= set("|-: ")
    assert len({cell_len(line) for line in out}) == 1, out  # wide characters counted as two cells
    assert "CN¥1,234.50" in out[2] and "vip, 咖啡控" in out[2]


def test_table(shop):
    out = shop.ok("customer", "list", "--format", "table").stdout
    lines = out.splitlines()
    assert "Code" in "".join(lines[:2]) and "Spent" in out and "CN¥1,234.50" in out and "C000001" in out
    assert max(cell_len(line) for line in lines) <= 100
    assert "\x1b[" not in out  # NO_COLOR


def test_global_format_option(shop):
    assert [r["code"] for r in json.loads(shop.ok("--format", "json", "customer", "list").stdout)] == ["C000001", "C000002"]
    assert shop.ok("-f", "csv", "customer", "list").stdout.startswith("id,code,name")


def test_unknown_format(shop):
    fails(shop, 2, "customer", "list", "--format", "xml", says=["Unknown format 'xml'", "json, jsonl, csv"])


def test_mask_option(shop):
    rows = json.loads(shop.ok("--mask", "customer", "list", "--format", "json").stdout)
    assert rows[0]["phone"] == "+86138****8000" and rows[1]["email"] == "a***@example.com"


def test_every_list_has_stable_keys_in_every_format(shop):
    """purchase list and customer history keep the same keys in json and csv."""
    for args in (["purchase", "list"], ["customer", "history", "王芳"], ["config", "list"]):
        rows = json.loads(shop.ok(*args, "--format", "json").stdout)
        header = next(csv.reader(io.StringIO(shop.ok(*args, "--format", "csv").stdout)))
        assert rows and all(list(r) == header for r in rows), args


def test_empty_results(shop):
    assert json.loads(shop.ok("customer", "list", "--city", "nowhere", "--format", "json").stdout) == []
    assert shop.ok("customer", "list", "--city", "nowhere", "--format", "jsonl").stdout == ""
    assert shop.ok("customer", "list", "--city", "nowhere", "--format", "csv").stdout == ",".join(KEYS) + "\n"


# ----------------------------------------------------------------------------------- unit level

def test_value_conversions():
    from datetime import date, datetime, timezone
    from zoneinfo import ZoneInfo

    units = Units("CNY", ZoneInfo("Asia/Shanghai"))
    money, when, day = Column("m", "M", "money"), Column("t", "T", "datetime"), Column("d", "D", "date")
    assert machine_value(123456, money, units) == "1234.56" and text_value(123456, money, units) == "CN¥1,234.56"
    assert machine_value(-5, money, units) == "-0.05"
    moment = datetime(2024, 3, 1, 16, 30, tzinfo=timezone.utc)
    assert machine_value(moment, when, units) == "2024-03-02T00:30:00+08:00"
    assert text_value(moment, when, units) == "2024-03-02 00:30"
    assert machine_value(date(2024, 3, 1), day, units) == "2024-03-01"
    assert flat_value(True, Column("b", "B", "bool"), units) == "true"
    assert text_value(False, Column("b", "B", "bool"), units) == "no"
    assert flat_value(None, money, units) == "" and machine_value(None, money, units) is None
    assert machine_value(1234, Column("j", "J", "money"), Units("JPY")) == "1234"
    assert machine_value(1234, Column("k", "K", "money"), Units("KWD")) == "1.234"


def test_emit_to_a_stream_with_a_title():
    from zoneinfo import ZoneInfo

    out = io.StringIO()
    n = emit([{"a": 1, "b": "x"}], [Column("a", "A", "int"), Column("b", "B")], "markdown", Units("CNY", ZoneInfo("UTC")),
             title="Report", out=out)
    assert n == 1 and out.getvalue().startswith("## Report\n\n| ")
