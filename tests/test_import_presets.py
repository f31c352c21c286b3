"""Presets for real exports (Shopify, HubSpot, khard/Google-style contacts) and vCard 3.0/4.0 import."""

from __future__ import annotations

import json
from pathlib import Path

from crm_helpers import cli, fails, fast_cli, one, template_store  # noqa: F401

SHOPIFY = """Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Default Address Company,Default Address Address1,Default Address Address2,Default Address City,Default Address Province Code,Default Address Country Code,Default Address Zip,Default Address Phone,Phone,Accepts SMS Marketing,Total Spent,Total Orders,Note,Tax Exempt,Tags
'7393393393,Ann,Lee,ann@example.com,yes,Acme,1 Main St,Apt 2,Shanghai,SH,CN,200000,,+8613800138000,no,120.00,3,"Likes oat milk, no sugar",no,"vip, wholesale"
'7393393394,Bob,Wu,bob@example.com,no,,,,,,,,,,yes,0.00,0,,no,
"""

HUBSPOT = """Record ID,First Name,Last Name,Email,Phone Number,Mobile Phone Number,Create Date,Lifecycle Stage,Record ID,City,Company name
101,Ann,Lee,ann@example.com,[not provided],13800138000,2024-01-02 10:00,customer,9001,Shanghai,Acme
102,Bob,null,bob@example.com,null,,2024-01-03 10:00,lead,9002,Beijing,
"""

KHARD = """First name,Last name,Email 1 - type,Email 1 - value,Email 2 - type,Email 2 - value,Phone 1 - type,Phone 1 - value,Organisation,Birthday,Note,Categories
Ann,Lee,home,ann@example.com,work,ann@acme.example,cell,+86 138 0013 8000,Acme,1990-05-17,hello,"friends,vip"
"""


def run(cli, path: Path, text: str, *args: str, code: int = 0) -> dict:
    path.write_text(text, encoding="utf-8")
    result = cli("import", "customers", str(path), "--format", "json", *args)
    assert result.exit_code == code, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_shopify_preset(cli, tmp_path):
    data = run(cli, tmp_path / "shopify.csv", SHOPIFY, "--preset", "shopify")
    assert data["created"] == 2 and data["unknown_columns"] == []
    ann = cli.json("customer", "show", "7393393393")
    assert ann["customer"]["name"] == "Ann Lee" and ann["customer"]["company"] == "Acme"
    assert ann["customer"]["address"] == "1 Main St, Apt 2, SH, CN, 200000" and ann["customer"]["city"] == "Shanghai"
    assert ann["contacts"]["phones"] == ["+8613800138000"] and ann["tags"] == ["vip", "wholesale"]
    assert {k: v["granted"] for k, v in ann["consent"].items()} == {"email": True, "sms": False}
    assert ann["customer"]["notes"] == "Likes oat milk, no sugar"
    assert cli.json("customer", "show", "7393393394")["consent"]["sms"]["granted"] is True


def test_hubspot_preset_duplicate_headers_and_empty_markers(cli, tmp_path):
    data = run(cli, tmp_path / "hubspot.csv", HUBSPOT, "--preset", "hubspot")
    assert data["created"] == 2 and "Record ID" in data["ignored_columns"]
    ann = cli.json("customer", "show", "101")
    assert ann["contacts"]["phones"] == ["+8613800138000"]  # '[not provided]' is empty, not an invalid phone
    assert ann["preferences"] == {"lifecycle_stage": "customer"} and ann["customer"]["company"] == "Acme"
    bob = cli.json("customer", "show", "102")
    assert bob["customer"]["name"] == "Bob" and bob["contacts"]["phones"] == []  # 'null' is empty


def test_khard_preset(cli, tmp_path):
    run(cli, tmp_path / "khard.csv", KHARD, "--preset", "khard")
    ann = cli.json("customer", "show", "Ann Lee")
    assert ann["contacts"]["emails"] == ["ann@example.com", "ann@acme.example"]
    assert ann["contacts"]["phones"] == ["+8613800138000"] and ann["customer"]["birthday"] == "1990-05-17"
    assert ann["tags"] == ["friends", "vip"] and ann["customer"]["company"] == "Acme"


VCARDS = """BEGIN:VCARD
VERSION:3.0
N:Lee;Ann;;;
FN:Ann Lee
TEL;TYPE=CELL:+86 138 0013 8000
TEL;TYPE=WORK:13900139000
EMAIL;TYPE=INTERNET:ann@example.com
BDAY:1990-05-17
ORG:Acme
NOTE:line one\\nline two\\, with comma
CATEGORIES:vip,friends
END:VCARD
BEGIN:VCARD
VERSION:4.0
FN:王芳
N:王;芳;;;
TEL;VALUE=uri;TYPE=cell:tel:+86-137-0013-7000
EMAIL:fang@example.com
GENDER:F
ADR;TYPE=home:;;人民路1号;上海;;;中国
END:VCARD
BEGIN:VCARD
VERSION:4.0
FN:Bad Phone
TEL:12345
END:VCARD
"""


def test_vcard_3_and_4_many_cards_and_a_bad_one(cli, tmp_path):
    data = run(cli, tmp_path / "contacts.vcf", VCARDS, "--partial", code=5)
    assert (data["created"], data["rejected"]) == (2, 1)
    assert data["rejects"][0]["line"] == 22 and data["rejects"][0]["column"] == "phone"
    ann = cli.json("customer", "show", "Ann Lee")
    assert ann["contacts"]["phones"] == ["+8613800138000", "+8613900139000"]
    assert ann["customer"]["notes"] == "line one\nline two, with comma" and ann["tags"] == ["friends", "vip"]
    fang = cli.json("customer", "show", "王芳")
    assert (fang["contacts"]["phones"], fang["customer"]["gender"], fang["customer"]["city"]) == (
        ["+8613700137000"], "female", "上海")
    assert fang["customer"]["address"] == "人民路1号, 中国"


def test_vcard_from_stdin_and_rejects_file(cli, tmp_path):
    rejects = tmp_path / "bad.csv"
    result = cli("import", "customers", "-", "--partial", "--rejects", str(rejects), "--format", "json", input=VCARDS)
    assert json.loads(result.stdout)["created"] == 2
    text = rejects.read_text(encoding="utf-8-sig")
    assert text.startswith("line,card,import_error") and "FN:Bad Phone" in text


def test_broken_vcard_is_a_rejected_row(cli, tmp_path):
    data = run(cli, tmp_path / "x.vcf", "BEGIN:VCARD\nVERSION:3.0\nFN:Ann\nthis is not a property\nEND:VCARD\n", code=5)
    assert data["rejected"] == 1 and data["rejects"][0]["line"] == 1


def test_vcard_for_purchases_is_refused(cli, tmp_path):
    (tmp_path / "x.vcf").write_text(VCARDS, encoding="utf-8")
    fails(cli, 5, "import", "purchases", str(tmp_path / "x.vcf"), says=["vCard files hold customers"])
