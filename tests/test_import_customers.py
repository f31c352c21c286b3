"""`crm import customers`: header aliases (English, Chinese), --map/--ignore/--keep-extra, first/last names,
validation that never coerces, rejects with line/column/value/reason and --rejects, all-or-nothing, --partial,
--dry-run, modes and match keys, counts that add up, the import record and the audit rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from crm_helpers import audit_rows, cli, fails, fast_cli, one, query, template_store  # noqa: F401


def write(path: Path, text: str, encoding: str = "utf-8") -> str:
    path.write_bytes(text.encode(encoding))
    return str(path)


def imported(cli, *args: str, code: int = 0) -> dict:
    result = cli("import", *args, "--format", "json")
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    data = json.loads(result.stdout)
    assert data["read"] == sum(data[k] for k in ("created", "updated", "unchanged", "rejected", "skipped"))
    return data


CHINESE = """姓名,手机,邮箱,生日,性别,城市,标签,备注,职业
王芳,13800138000,fang@example.com,1990-05-17,女,上海,"vip,新客","喜欢拿铁, 少糖",设计师
李雷,+86 139-0013-9000,LiLei@Example.COM,1988年3月1日,男,北京,vip,,
"""


def test_chinese_headers_create_customers_with_everything(cli, tmp_path):
    data = imported(cli, "customers", write(tmp_path / "客户.csv", CHINESE))
    assert (data["created"], data["rejected"], data["committed"]) == (2, 0, True)
    rows = {r["name"]: r for r in cli.json("customer", "list")}
    fang = rows["王芳"]
    assert (fang["phone"], fang["email"], fang["birthday"], fang["gender"], fang["city"], fang["tags"]) == (
        "+8613800138000", "fang@example.com", "1990-05-17", "female", "上海", ["vip", "新客"])
    lei = rows["李雷"]
    assert (lei["phone"], lei["email"], lei["birthday"]) == ("+8613900139000", "LiLei@example.com", "1988-03-01")
    card = cli.json("customer", "show", "王芳")
    assert card["customer"]["notes"] == "喜欢拿铁, 少糖" and card["customer"]["occupation"] == "设计师"
    run = one(cli.db, "SELECT kind || ' ' || mode || ' ' || status || ' ' || created FROM import_run")
    assert run == "customers create done 2"
    assert one(cli.db, "SELECT COUNT(*) FROM customer WHERE import_id = 1") == 2
    assert not [r for r in audit_rows(cli.db, "add") if r["entity"] == "customer"]  # one row per batch instead
    batches = [r for r in audit_rows(cli.db, "import-batch") if r["entity"] == "customer"]
    assert len(batches) == 1 and batches[0]["command"] == "crm import customers"
    assert (batches[0]["entity_id"], batches[0]["customer_id"]) == (None, None)
    assert {k: batches[0]["after"][k] for k in ("import_id", "count", "first_id", "last_id")} == {
        "import_id": 1, "count": 2, "first_id": 1, "last_id": 2}
    # Each customer's history and privacy export still show that the import created it.
    for who in ("王芳", "李雷"):
        assert [(e["type"], e["id"]) for e in cli.json("customer", "history", who)] == [("change:add", batches[0]["id"])]
        doc = json.loads(cli.ok("customer", "data", who).stdout)
        assert [(a["entity"], a["action"], a["after"]["import_id"]) for a in doc["audit"]] == [
            ("customer", "import-batch", 1)]
    cli.ok("db", "audit", "--verify")
    assert any(r["entity"] == "import" and r["after"]["created"] == 2 for r in audit_rows(cli.db, "import"))


def test_english_aliases_first_and_last_names_and_case_space_insensitive_headers(cli, tmp_path):
    text = "First Name, LAST_NAME ,E-Mail,Mobile Phone,Date of Birth\nAnn,Lee,ann@example.com,13800138000,1990-05-17\n"
    imported(cli, "customers", write(tmp_path / "c.csv", text))
    assert [(r["name"], r["email"], r["birthday"]) for r in cli.json("customer", "list")] == [
        ("Ann Lee", "ann@example.com", "1990-05-17")]


def test_chinese_family_and_given_name_columns_combine_without_space(cli, tmp_path):
    imported(cli, "customers", write(tmp_path / "c.csv", "姓,名,手机\n王,芳,13800138000\n"))
    assert cli.json("customer", "list")[0]["name"] == "王芳"


def test_bad_rows_reject_everything_by_default_with_line_column_value_reason(cli, tmp_path, unchanged):
    text = ("name,phone,email,birthday,gender\n"
            "Good,13800138000,good@example.com,1990-01-01,f\n"
            "Bad phone,12345,,,\n"
            "Bad email,,not-an-email,,\n"
            "Bad date,,,2024-02-30,\n"
            "Bad gender,,,,maybe\n")
    check = unchanged()
    data = imported(cli, "customers", write(tmp_path / "c.csv", text), code=5)
    check()  # all-or-nothing: not even the good row, and no import record
    assert (data["created"], data["rejected"], data["committed"], data["import_id"]) == (1, 4, False, None)
    got = [(r["line"], r["column"], r["value"]) for r in data["rejects"]]
    assert got == [(3, "phone", "12345"), (4, "email", "not-an-email"), (5, "birthday", "2024-02-30"),
                   (6, "gender", "maybe")]
    assert "not a valid phone number" in data["rejects"][0]["reason"]
    assert "no such day" in data["rejects"][2]["reason"]
    result = cli("import", "customers", str(tmp_path / "c.csv"))
    assert result.exit_code == 5
    assert "line 3, phone '12345'" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: 4 of 5 rows were rejected, so nothing was imported.")


def test_partial_commits_the_good_rows_and_still_exits_5(cli, tmp_path):
    text = "name,phone\nGood,13800138000\nBad,12345\n"
    data = imported(cli, "customers", write(tmp_path / "c.csv", text), "--partial", code=5)
    assert (data["created"], data["rejected"], data["committed"]) == (1, 1, True)
    assert [r["name"] for r in cli.json("customer", "list")] == ["Good"]
    assert one(cli.db, "SELECT status FROM import_run") == "partial"


def test_dry_run_validates_everything_and_writes_nothing(cli, tmp_path, unchanged):
    check = unchanged()
    data = imported(cli, "customers", write(tmp_path / "c.csv", "name,phone\nA,13800138000\nB,13900139000\n"),
                    "--dry-run")
    check()
    assert (data["created"], data["committed"], data["dry_run"]) == (2, False, True)


def test_rejects_file_has_the_original_rows_and_a_reason_and_can_be_imported_again(cli, tmp_path):
    text = "姓名,手机,备注\n好,13800138000,\"a, b\"\n坏,12345,\"多行\n备注\"\n"
    rejects = tmp_path / "rejects.csv"
    imported(cli, "customers", write(tmp_path / "c.csv", text), "--partial", "--rejects", str(rejects), code=5)
    with open(rejects, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["姓名", "手机", "备注", "import_error"]
    assert rows[1][:3] == ["坏", "12345", "多行\n备注"] and rows[1][3].startswith("手机: '12345' is not a valid phone")
    fixed = rejects.read_text(encoding="utf-8-sig").replace("12345", "13900139000")
    rejects.write_text(fixed, encoding="utf-8-sig")
    data = imported(cli, "customers", str(rejects))
    assert data["created"] == 1 and data["unknown_columns"] == []
    assert cli.json("customer", "show", "坏")["customer"]["notes"] == "多行\n备注"


def test_ambiguous_dates_need_date_format(cli, tmp_path):
    path = write(tmp_path / "c.csv", "name,birthday\nAnn,03/04/1990\nBob,17/05/1990\n")
    data = imported(cli, "customers", path, code=5)
    assert data["rejects"][0]["line"] == 2 and "either way round" in data["rejects"][0]["reason"]
    assert "--date-format" in data["rejects"][0]["reason"]
    imported(cli, "customers", path, "--date-format", "%d/%m/%Y")
    assert {r["name"]: r["birthday"] for r in cli.json("customer", "list")} == {"Ann": "1990-04-03", "Bob": "1990-05-17"}


def test_map_ignore_keep_extra_and_unknown_columns(cli, tmp_path):
    path = write(tmp_path / "c.csv", "Kunde,Handy,Lieblingsfarbe,Intern\nAnn,13800138000,blau,x\n")
    result = cli("import", "customers", path, "--map", "Kunde=name", "--map", "Handy=phone", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["unknown_columns"] == ["Lieblingsfarbe", "Intern"]
    assert "Columns not imported (unknown): Lieblingsfarbe, Intern" in result.stderr
    cli.ok("import", "undo", "1", "--yes")
    data = imported(cli, "customers", path, "--map", "Kunde=name", "--map", "Handy=phone", "--ignore", "Intern",
                    "--keep-extra")
    assert data["unknown_columns"] == [] and data["ignored_columns"] == ["Intern"]
    assert cli.json("customer", "show", "Ann")["preferences"] == {"Lieblingsfarbe": "blau"}
    fails(cli, 5, "import", "customers", path, "--map", "Nope=name", says=["There is no column 'nope'"])
    fails(cli, 5, "import", "customers", path, "--map", "Kunde=shoe_size", says=["'shoe_size' is not a field"])


def test_a_file_with_no_known_column_is_refused(cli, tmp_path):
    fails(cli, 5, "import", "customers", write(tmp_path / "c.csv", "foo,bar\n1,2\n"),
          says=["No column of", "--map"])


def test_create_mode_rejects_existing_customers_and_duplicates_in_the_file(cli, tmp_path):
    cli.ok("customer", "add", "Ann", "--phone", "13800138000")
    text = "name,phone,email\nAnn again,13800138000,\nNew,13900139000,new@example.com\nNew twin,,NEW@example.com\n"
    data = imported(cli, "customers", write(tmp_path / "c.csv", text), "--partial", code=5)
    assert (data["created"], data["rejected"]) == (1, 2)
    assert "already exists as C000001" in data["rejects"][0]["reason"]
    assert data["rejects"][1]["line"] == 4 and "Line 3 of this file already has" in data["rejects"][1]["reason"]


def test_upsert_updates_matches_and_creates_the_rest_counts_unchanged(cli, tmp_path):
    cli.ok("customer", "add", "Ann", "--phone", "13800138000", "--city", "上海")
    text = "name,phone,city,tags,consent_email\nAnn,13800138000,北京,vip,yes\nBob,13900139000,,,\n"
    path = write(tmp_path / "c.csv", text)
    data = imported(cli, "customers", path, "--mode", "upsert", "--match", "phone")
    assert (data["created"], data["updated"]) == (1, 1)
    ann = cli.json("customer", "show", "C000001")
    assert ann["customer"]["city"] == "北京" and ann["tags"] == ["vip"] and ann["consent"]["email"]["granted"] is True
    again = imported(cli, "customers", path, "--mode", "upsert", "--match", "phone")
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    edits = [r for r in audit_rows(cli.db, "edit") if r["entity_id"] == 1]
    assert edits and edits[0]["after"]["city"] == "北京"


def test_upsert_the_same_new_customer_twice_in_one_file_updates_it(cli, tmp_path):
    text = "name,phone,city\nAnn,13800138000,上海\nAnn,13800138000,北京\n"
    data = imported(cli, "customers", write(tmp_path / "c.csv", text), "--mode", "upsert")
    assert (data["created"], data["updated"]) == (1, 1)
    assert [(r["name"], r["city"]) for r in cli.json("customer", "list")] == [("Ann", "北京")]


def test_update_mode_skips_rows_without_a_match_and_match_keys_in_order(cli, tmp_path):
    cli.ok("customer", "add", "Ann", "--email", "ann@example.com", "--code", "A1")
    cli.ok("customer", "add", "Bob", "--email", "bob@example.com", "--code", "B1")
    # code says A1, e-mail says Bob: --match code,email picks A1 (the first key that matches)
    text = "code,email,city\nA1,bob@example.com,杭州\nZZ,nobody@example.com,广州\n"
    data = imported(cli, "customers", write(tmp_path / "c.csv", text), "--mode", "update", "--match", "code,email",
                    "--allow-duplicate")
    assert (data["updated"], data["skipped"]) == (1, 1)
    assert {r["code"]: r["city"] for r in cli.json("customer", "list")} == {"A1": "杭州", "B1": None}


def test_a_phone_that_matches_two_customers_is_ambiguous(cli, tmp_path):
    cli.ok("customer", "add", "Ann", "--phone", "13800138000")
    cli.ok("customer", "add", "Ann 2", "--phone", "13800138000", "--allow-duplicate")
    data = imported(cli, "customers", write(tmp_path / "c.csv", "name,phone\nAnn,13800138000\n"), "--mode", "upsert",
                    code=5)
    assert "matches 2 customers (C000001, C000002)" in data["rejects"][0]["reason"]


def test_bad_options_are_usage_errors(cli, tmp_path):
    path = write(tmp_path / "c.csv", "name\nAnn\n")
    fails(cli, 2, "import", "customers", path, "--mode", "merge", says=["not an import mode"])
    fails(cli, 2, "import", "customers", path, "--match", "name", says=["match keys"])
    fails(cli, 5, "import", "customers", str(tmp_path / "missing.csv"), says=["No file"])
    fails(cli, 5, "import", "customers", path, "--preset", "salesforce", says=["not a preset"])


def test_stdin_and_big_batches_see_earlier_rows(cli, tmp_path):
    lines = ["name,phone"] + [f"C{i},1380013{i:04d}" for i in range(2500)] + ["Dup,13800130007"]
    result = cli("import", "customers", "-", "--format", "json", "--partial", input="\n".join(lines) + "\n")
    data = json.loads(result.stdout)
    assert (data["created"], data["rejected"], data["source"]) == (2500, 1, "-")
    assert data["rejects"][0]["line"] == 2502 and "already exists as C000008" in data["rejects"][0]["reason"]
    assert one(cli.db, "SELECT COUNT(*) FROM contact_point") == 2500


@pytest.mark.parametrize("encoding,bom", [("utf-8", False), ("utf-8", True), ("gbk", False), ("gb18030", False),
                                          ("utf-16", True), ("utf-16-le", False)])
def test_encodings_are_detected(cli, tmp_path, encoding, bom):
    text = "姓名,手机,城市,备注\n王芳,13800138000,上海,老客户：喜欢拿铁、蛋糕\n张伟,13900139000,广州,\n"
    data = (b"\xef\xbb\xbf" if bom and encoding == "utf-8" else b"") + text.encode(encoding)
    path = tmp_path / "c.csv"
    path.write_bytes(data)
    imported(cli, "customers", str(path))
    assert {r["name"]: r["city"] for r in cli.json("customer", "list")} == {"王芳": "上海", "张伟": "广州"}


def test_encoding_override_and_undecodable_file(cli, tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes("name,city\nAnn,Köln\n".encode("cp1252"))
    imported(cli, "customers", str(path), "--encoding", "cp1252")
    assert cli.json("customer", "list")[0]["city"] == "Köln"
    path.write_bytes("name,city\nAnn,上海\n".encode("utf-8"))
    fails(cli, 5, "import", "customers", str(path), "--encoding", "nope", says=["not an encoding"])


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_delimiters_are_sniffed(cli, tmp_path, sep):
    text = sep.join(["name", "phone", "notes"]) + "\n" + sep.join(["Ann", "13800138000", '"a, b; c"']) + "\n"
    imported(cli, "customers", write(tmp_path / "c.txt", text))
    assert cli.json("customer", "show", "Ann")["customer"]["notes"] == "a, b; c"


def test_delimiter_override(cli, tmp_path):
    imported(cli, "customers", write(tmp_path / "c.txt", "name|city\nAnn|上海\n"), "--delimiter", "|")
    assert cli.json("customer", "list")[0]["city"] == "上海"


def test_import_history_lists_runs(cli, tmp_path):
    imported(cli, "customers", write(tmp_path / "a.csv", "name\nAnn\n"))
    imported(cli, "customers", write(tmp_path / "b.csv", "name,phone\nBob,1\n"), "--partial", code=5)
    runs = cli.json("import", "history")
    assert [(r["id"], r["source"].endswith("b.csv"), r["created"], r["rejected"], r["status"]) for r in runs] == [
        (2, True, 0, 1, "partial"), (1, False, 1, 0, "done")]


def test_progress_bar_only_on_a_terminal(tmp_path, monkeypatch):
    import io as _io

    from crmcli.cli import importer as cli_importer
    from crmcli.core.io import csvread

    path = write(tmp_path / "c.csv", "name\nAnn\n")
    source = csvread.open_source(path)
    with cli_importer._progress(source) as update:
        assert update is None  # not a terminal: silent
    fake = _io.StringIO()
    monkeypatch.setattr(fake, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("sys.stderr", fake)
    from crmcli.render import console

    monkeypatch.setattr(console, "stderr_console", lambda: __import__("rich.console").console.Console(
        file=fake, force_terminal=True, width=80))
    with cli_importer._progress(source) as update:
        assert update is not None
        update(1)
    source.text.close()
    assert "Importing" in fake.getvalue()


def test_backslashes_quotes_and_line_breaks_import_unchanged(cli, tmp_path):
    """The bulk path writes these characters as they are (on PostgreSQL it is COPY, whose text format gives
    backslash, tab, newline and a literal \\N their own meaning)."""
    notes = ['C:\\shop\\new\\Nov', '\\N', 'likes "oat" milk\nand tea', 'tab\there', '王芳 😀 \\ end']
    rows = "".join(f'Guest {i},"{n.replace(chr(34), chr(34) * 2)}",{city}\n'
                   for i, (n, city) in enumerate(zip(notes, ["\\N", "", "上海", "a\\tb", "x"])))
    data = imported(cli, "customers", write(tmp_path / "odd.csv", "name,notes,city\n" + rows))
    assert (data["created"], data["rejected"]) == (5, 0)
    stored = query(cli.db, "SELECT name, notes, city FROM customer ORDER BY id")
    assert stored == [(f"Guest {i}", n, c or None) for i, (n, c) in
                      enumerate(zip(notes, ["\\N", "", "上海", "a\\tb", "x"]))]
    assert cli.json("customer", "show", "Guest 0")["customer"]["notes"] == 'C:\\shop\\new\\Nov'


def test_rows_after_a_mid_batch_write_still_see_the_stored_customers(cli, tmp_path):
    """A referrer (or, in upsert, the same customer twice) makes the batch write its new rows early; the rows
    after it must still find the customers stored before the import (a phone that is taken is not given to a
    second customer)."""
    cli.ok("customer", "add", "Existing", "--phone", "13900000003")
    text = "name,phone,referred_by\nAnn,13900000001,\nBob,13900000002,Existing\nCarl,13900000003,\n"
    data = imported(cli, "customers", write(tmp_path / "c.csv", text), code=5)
    assert [(r["line"], r["column"]) for r in data["rejects"]] == [(4, "phone")]
    assert "already exists as C000001" in data["rejects"][0]["reason"]
    assert one(cli.db, "SELECT COUNT(*) FROM customer") == 1
    text = "name,phone,referred_by\nAnn,13900000001,\nAnn Again,13900000001,\nBob,13900000002,Existing\nCarl,13900000003,\n"
    data = imported(cli, "customers", write(tmp_path / "u.csv", text), "--mode", "upsert")
    assert (data["created"], data["updated"]) == (2, 2)
    assert query(cli.db, "SELECT name FROM customer ORDER BY id") == [("Carl",), ("Ann Again",), ("Bob",)]


def test_duplicates_within_a_file_of_new_customers_are_rejected(cli, tmp_path):
    """A batch with nothing in the store (the quick decision in apply) still refuses a repeated phone, e-mail or
    code, naming the earlier line."""
    text = ("name,phone,email,code\nAnn,13900000001,ann@example.com,\nBob,139 0000 0001,,\n"
            "Carl,13900000003,ANN@example.com,\nDora,13900000004,,K1\nEve,13900000005,,K1\n")
    data = imported(cli, "customers", write(tmp_path / "d.csv", text), "--partial", code=5)
    assert [(r["line"], r["column"], r["value"]) for r in data["rejects"]] == [
        (3, "phone", "+8613900000001"), (4, "email", "ann@example.com"), (6, "code", "K1")]
    assert all("of this file already has" in r["reason"] for r in data["rejects"])
    assert "Line 2 of this file" in data["rejects"][0]["reason"]
    assert query(cli.db, "SELECT name FROM customer ORDER BY id") == [("Ann",), ("Dora",)]
