"""`crm card show`: the JSON data for scripts, the Rich panel (80 columns with wide CJK text), SVG and HTML
exports, masking and the feature slots."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from crm_helpers import cli, fails, fast_cli, from_template, template_store  # noqa: F401 (fixtures)
from rich.cells import cell_len

from crmcli.core import hooks
from crmcli.core.card import Slot

AS_OF = "2024-06-15"
LONG_NAME = "欧阳" + "娜" * 40
LONG_TEXT = "这是一段很长的中文备注，用来测试卡片在八十列终端里的排版不会被撑破。" * 4


def _fill(cli):
    cli.ok("customer", "add", "李娜", "--phone", "13900139000")
    cli.ok("customer", "add", "王芳", "--code", "W1", "--gender", "女", "--birthday", "1990-05-17", "--occupation", "设计师",
           "--company", "北京某某某某科技有限公司上海分公司", "--phone", "13800138000", "--email", "fang@example.com",
           "--wechat", "fang_wechat_handle_that_is_rather_long_1234567890", "--address",
           "上海市浦东新区世纪大道一千二百三十四号五楼五百零一室", "--city", "上海", "--source", "douyin",
           "--referred-by", "李娜", "--preferred-channel", "wechat", "--consent", "sms=yes", "--consent", "email=no",
           "--pref", "饮品=燕麦拿铁大杯少冰不加糖多加一份浓缩", "--preferences", "喜欢靠窗的位置" * 6,
           "--tag", "vip", "--tag", "非常重要的客户", "--notes", LONG_TEXT, "--follow-up", "2024-06-20")
    for i, (amount, day, product) in enumerate([("128.50", "2024-01-10", "拿铁 Latte"), ("99", "2024-02-10", "咖啡豆" * 8),
                                                 ("12345678.90", "2024-03-10", "Espresso machine"),
                                                 ("35", "2024-04-10", None), ("20", "2024-05-10", "美式"),
                                                 ("18", "2024-06-10", "茶")]):
        cli.ok("purchase", "add", "W1", amount, "--at", day, "--category", "coffee", "--ref", f"R{i}",
               *(["--product", product] if product else []), "--as-of", AS_OF)
    cli.ok("purchase", "refund", "1", "28.50", "--at", "2024-01-11", "--as-of", AS_OF)
    cli.ok("customer", "log", "W1", "-c", "wechat", "-s", "客户反馈非常满意，" * 8, "--outcome", "很好", "--at",
           "2024-06-01 15:00", "--as-of", AS_OF)
    cli.ok("customer", "log", "W1", "-c", "phone", "-s", "short call", "--at", "2024-06-02 10:00", "--as-of", AS_OF)
    cli.ok("customer", "add", LONG_NAME, "--notes", LONG_TEXT)


@pytest.fixture
def card_store(cli, tmp_path_factory):
    return from_template("card", cli, tmp_path_factory, _fill)


@pytest.fixture
def no_slots(monkeypatch):
    for name in list(hooks.CARD_SLOTS):
        monkeypatch.setitem(hooks.CARD_SLOTS, name, None)


def test_card_json_keys_and_values(card_store, no_slots):
    card = card_store.json("card", "show", "W1", "--as-of", AS_OF)
    assert list(card) == ["customer", "contacts", "consent", "purchases", "preferences", "preferences_text", "tags",
                          "interactions", "next_follow_up", "tier", "points", "satisfaction", "churn"]
    assert list(card["customer"]) == ["id", "code", "name", "gender", "birthday", "age", "occupation", "company",
                                      "address", "city", "source", "referred_by", "notes", "created_at", "updated_at",
                                      "deleted"]
    assert card["customer"]["age"] == 34 and card["customer"]["referred_by"] == {"id": 1, "code": "C000001", "name": "李娜"}
    assert list(card["contacts"]) == ["phones", "emails", "social", "preferred_channel"]
    assert list(card["consent"]) == ["email", "sms"]
    assert list(card["consent"]["sms"]) == ["granted", "at", "source"]
    assert card["consent"]["sms"]["at"].endswith("+08:00")  # shown in the store's time zone
    p = card["purchases"]
    assert list(p) == ["orders", "first", "last", "gross", "refunded", "net", "average", "currency", "recent"]
    assert (p["orders"], p["first"], p["last"], p["currency"]) == (6, "2024-01-10", "2024-06-10", "CNY")
    assert (p["gross"], p["refunded"], p["net"]) == ("12345979.40", "28.50", "12345950.90")
    assert p["average"] == "2057658.48"  # net / orders, rounded to the minor unit
    assert len(p["recent"]) == 5 and list(p["recent"][0]) == ["id", "date", "kind", "amount", "product", "category", "ref"]
    assert [r["date"] for r in p["recent"]] == ["2024-06-10", "2024-05-10", "2024-04-10", "2024-03-10", "2024-02-10"]
    assert card["interactions"][0]["channel"] == "phone" and card["interactions"][0]["at"] == "2024-06-02T10:00:00+08:00"
    assert list(card["interactions"][0]) == ["at", "channel", "summary", "outcome", "next_date"]
    assert card["next_follow_up"] == "2024-06-20"
    assert (card["tier"], card["points"], card["satisfaction"], card["churn"]) == (None, None, None, None)


def test_card_panel_fits_80_columns_with_wide_cjk_text(card_store, no_slots):
    for ref in ("W1", LONG_NAME[:10]):
        out = card_store.ok("card", "show", ref, "--width", "80", "--as-of", AS_OF).stdout
        lines = out.rstrip("\n").split("\n")
        assert len(lines) > 20
        widths = [cell_len(line) for line in lines]
        assert max(widths) <= 80, [(w, line) for w, line in zip(widths, lines) if w > 80]
        assert all(w == 80 for w in widths), "every line is one full row of the panel"
        assert lines[0].startswith("┏") and lines[0].endswith("┓") and lines[-1].startswith("┗")
        assert all(line.startswith("┃") and line.endswith("┃") for line in lines[1:-1])


@pytest.mark.parametrize("width", [40, 60, 120])
def test_card_panel_fits_other_widths(card_store, no_slots, width):
    out = card_store.ok("card", "show", "W1", "--width", str(width), "--as-of", AS_OF).stdout
    assert {cell_len(line) for line in out.rstrip("\n").split("\n")} == {width}


def test_card_text_content(card_store, no_slots):
    out = card_store.ok("card", "show", "W1", "--width", "100", "--as-of", AS_OF).stdout
    flat = "".join(out.split())
    for text in ("王芳", "W1", "female", "34(1990-05-17)", "+8613800138000", "fang@example.com", "C000001李娜",
                 "emailx,smsx".replace("x", "✗", 1).replace("x", "✓"), "CN¥12,345,678.90", "#vip", "#非常重要的客户",
                 "Nextfollow-up:2024-06-20", "shortcall", "饮品"):
        assert text in flat, text
    assert "—" in out  # the empty feature slots
    assert "喜欢靠窗的位置" in flat
    assert flat.count("Notes") == 1  # the free-text preferences are not labelled like the notes section
    glance = next(line for line in out.splitlines() if "Tier" in line)
    assert "Points" in glance and "Satisfaction" in glance and "Churn risk" in glance


def test_long_names_keep_the_code_in_the_title(card_store, no_slots):
    out = card_store.ok("card", "show", LONG_NAME[:10], "--width", "80").stdout
    assert "C000003" in out.splitlines()[0] and "…" in out.splitlines()[0]
    assert "Name" in out  # the full name is under Identity


def test_svg_and_html_exports(card_store, no_slots, tmp_path):
    svg, html = tmp_path / "card.svg", tmp_path / "card.html"
    result = card_store.ok("card", "show", "W1", "--svg", str(svg), "--html", str(html), "--width", "80")
    assert f"Saved {svg}" in result.stderr and f"Saved {html}" in result.stderr
    root = ET.parse(svg).getroot()  # well-formed XML
    assert root.tag.endswith("svg")
    text = "".join(root.itertext()).replace("\xa0", " ")
    assert "W1" in text and "王芳" in text
    page = html.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html") and "王芳" in page and "+8613800138000" in page
    assert "王芳" in result.stdout  # the card is still printed
    assert (svg.stat().st_mode & 0o777, html.stat().st_mode & 0o777) == (0o600, 0o600)  # personal data
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == []


def test_json_goes_to_stdout_only(card_store, no_slots):
    result = card_store.ok("card", "show", "W1", "--format", "json")
    assert result.stderr == "" and json.loads(result.stdout)["customer"]["code"] == "W1"
    line = card_store.ok("card", "show", "W1", "--format", "jsonl").stdout
    assert line.count("\n") == 1 and json.loads(line)["customer"]["code"] == "W1"
    assert json.loads(card_store.ok("--format", "json", "card", "show", "W1").stdout)["customer"]["code"] == "W1"


def test_card_refuses_row_formats(card_store):
    fails(card_store, 2, "card", "show", "W1", "--format", "csv", says=["not as csv", "--format json"])


def test_masking(card_store, no_slots):
    card = card_store.json("--mask", "card", "show", "W1")
    assert card["contacts"]["phones"] == ["+86138****8000"] and card["contacts"]["emails"] == ["f***@example.com"]
    assert "+86138****8000" in card_store.ok("--mask", "card", "show", "W1").stdout
    card_store.ok("config", "set", "privacy.mask", "yes")
    assert card_store.json("card", "show", "W1")["contacts"]["phones"] == ["+86138****8000"]
    assert card_store.json("customer", "show", "W1")["contacts"]["emails"] == ["f***@example.com"]
    assert {r["code"]: r["phone"] for r in card_store.json("customer", "list")}["W1"] == "+86138****8000"


def test_a_deleted_customers_card(card_store, no_slots):
    card_store.ok("customer", "rm", "W1", "--yes")
    assert "(deleted)" in card_store.ok("card", "show", "W1").stdout.splitlines()[0]
    assert card_store.json("card", "show", "W1")["customer"]["deleted"] is True


def test_a_new_customer_card_is_mostly_dashes(cli, no_slots):
    cli.ok("customer", "add", "Ann")
    out = cli.ok("card", "show", "Ann", "--width", "80").stdout
    assert out.count("—") >= 10 and "Ann" in out.splitlines()[0]
    card = cli.json("card", "show", "Ann")
    assert card["purchases"]["orders"] == 0 and card["purchases"]["average"] == "0.00"
    assert card["purchases"]["first"] is None and card["purchases"]["recent"] == []


def fake_tier(session, customer_id, ctx):
    return Slot(text="A · gold", data={"tier": "A", "level": "gold"}, style="good")


def fake_none(session, customer_id, ctx):
    return None


def test_feature_slots_fill_in_through_hooks(card_store, monkeypatch, no_slots):
    monkeypatch.setitem(hooks.CARD_SLOTS, "tier", "test_card:fake_tier")
    monkeypatch.setitem(hooks.CARD_SLOTS, "churn", "test_card:fake_none")
    card = card_store.json("card", "show", "W1")
    assert card["tier"] == {"tier": "A", "level": "gold"} and card["churn"] is None and card["points"] is None
    glance = card_store.ok("card", "show", "W1", "--width", "80").stdout
    assert "A · gold" in glance


def test_registered_feature_slots_do_not_break_the_card(card_store):
    """Whatever the features currently plug into the card, it still renders at 80 columns and as JSON."""
    out = card_store.ok("card", "show", "W1", "--width", "80", "--as-of", AS_OF).stdout
    assert max(cell_len(line) for line in out.splitlines()) <= 80
    card = card_store.json("card", "show", "W1", "--as-of", AS_OF)
    assert set(hooks.CARD_SLOTS) <= set(card)
