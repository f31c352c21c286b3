"""The Chinese interface (issue 12): how the language is chosen, a complete catalog, help in both languages,
layouts with wide characters, machine output that does not depend on the language, --headers zh."""

from __future__ import annotations

import csv
import gettext
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from rich.cells import cell_len

from crmcli import i18n
from crmcli.cli.entry import stored_language

ROOT = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).resolve().parent / "i18n_probe.py"
PO = ROOT / "src" / "crmcli" / "locale" / "zh" / "LC_MESSAGES" / "crmcli.po"
CJK = re.compile(r"[\u4e00-\u9fff]")
HOW_TO_FIX = ("run `python tools/i18n.py extract && python tools/i18n.py update`, translate the new entries in "
              "src/crmcli/locale/zh/LC_MESSAGES/crmcli.po (see docs/i18n.md), then `python tools/i18n.py compile`")


def _env(lang: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CRM_LANG", "LC_ALL", "LC_MESSAGES", "LANG", "CRM_DB")}
    env.update({"NO_COLOR": "1", "COLUMNS": "80", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"})
    if lang is not None:
        env["CRM_LANG"] = lang
    env.update(extra)
    return env


def _crm(*args: str, lang: str | None, cwd: Path | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crmcli", *args], capture_output=True, text=True, encoding="utf-8",
                          env=_env(lang, **extra), cwd=cwd, timeout=120)


def _probe(*args: str, lang: str | None, **extra: str) -> object:
    """Run crm commands in one fresh interpreter (the language is chosen once per process)."""
    proc = subprocess.run([sys.executable, str(PROBE), *args], capture_output=True, text=True, encoding="utf-8",
                          env=_env(lang, **extra), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


# ----------------------------------------------------------------------------- choosing the language

@pytest.mark.parametrize(("env", "expected"), [
    ({}, "en"),
    ({"LANG": "zh_CN.UTF-8"}, "zh"),
    ({"LANG": "zh_TW.UTF-8"}, "zh"),
    ({"LANG": "en_US.UTF-8"}, "en"),
    ({"LANG": "de_DE.UTF-8"}, "en"),
    ({"LC_ALL": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}, "zh"),
    ({"LC_ALL": "en_US.UTF-8", "LANG": "zh_CN.UTF-8"}, "en"),
    ({"CRM_LANG": "en", "LANG": "zh_CN.UTF-8"}, "en"),
    ({"CRM_LANG": "zh", "LANG": "en_US.UTF-8"}, "zh"),
    ({"CRM_LANG": "zh-Hans"}, "zh"),
    ({"CRM_LANG": "fr", "LANG": "zh_CN.UTF-8"}, "zh"),  # an unsupported CRM_LANG falls through to the locale
])
def test_language_from_the_environment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for var in ("CRM_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert i18n.language_from_environment() == expected


def test_the_store_setting_is_read_before_the_cli_loads(cli, db_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli.ok("init")
    assert stored_language(str(db_path)) is None
    cli.ok("config", "set", "ui.language", "zh")
    assert stored_language(str(db_path)) == "zh"
    assert stored_language(str(db_path.with_name("missing.sqlite"))) is None


def test_setting_beats_crm_lang_beats_locale(cli, db_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Through the real `crm` entry point (a new process each time: the language is chosen at start-up)."""
    db = str(db_path)
    cli.ok("init")
    # no setting: CRM_LANG, then the locale, then English
    assert _crm("--db", db, "--help", lang="zh", LANG="en_US.UTF-8").stdout.startswith("用法：crm")
    assert _crm("--db", db, "--help", lang=None, LANG="zh_CN.UTF-8").stdout.startswith("用法：crm")
    assert _crm("--db", db, "--help", lang=None).stdout.startswith("Usage: crm")
    # the store's setting wins over both, wherever the store is named
    cli.ok("config", "set", "ui.language", "zh")
    out = _crm("--db", db, "--help", lang="en", LANG="en_US.UTF-8")
    assert out.stdout.startswith("用法：crm"), out.stdout[:200]
    assert _crm(f"--db={db}", "customer", "--help", lang="en").stdout.startswith("用法：crm customer")
    assert _crm("customer", "--help", lang="en", CRM_DB=db).stdout.startswith("用法：crm customer")
    cli.ok("config", "set", "ui.language", "en")
    assert _crm("--db", db, "--help", lang="zh", LANG="zh_CN.UTF-8").stdout.startswith("Usage: crm")
    # empty: back to CRM_LANG / the locale
    cli.ok("config", "set", "ui.language", "")
    assert _crm("--db", db, "--help", lang="zh").stdout.startswith("用法：crm")


def test_errors_and_messages_in_chinese(tmp_path: Path) -> None:
    db = str(tmp_path / "shop.sqlite")
    made, missing, usage = _probe("run", db, '["init"]', '["customer", "show", "nobody"]', '["customer", "show"]',
                                  lang="zh")  # type: ignore[misc]
    assert "已在" in made["stderr"] and "创建新数据库" in made["stderr"]
    assert missing["code"] == 3
    assert missing["stderr"].startswith("错误：没有客户匹配 'nobody'。")
    assert usage["code"] == 2 and "缺少参数" in usage["stderr"] and "错误：" in usage["stderr"]


def test_a_new_store_under_a_chinese_locale_counts_in_yuan(tmp_path: Path) -> None:
    for locale, currency, region in (("zh_CN.UTF-8", "CNY", "CN"), ("en_US.UTF-8", "USD", "US")):
        db = str(tmp_path / f"{currency}.sqlite")
        made, got = _probe("run", db, '["init"]', '["config", "get", "currency"]', lang=None,  # type: ignore[misc]
                           LANG=locale)
        assert made["code"] == 0 and got["stdout"].strip() == currency
        assert f"{region}" in made["stderr"]


# ----------------------------------------------------------------------------- the catalog

def _catalog() -> dict[str, object]:
    with open(PO, "rb") as f:
        return {m.id: m for m in read_po(f, locale="zh") if m.id}


def _extracted() -> list[object]:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import importlib

        tool = importlib.import_module("i18n")
        return [m.id for m in tool.extract() if m.id]
    finally:
        sys.path.remove(str(ROOT / "tools"))
        sys.modules.pop("i18n", None)


def test_every_marked_string_has_a_chinese_translation() -> None:
    catalog = _catalog()
    missing = []
    for msgid in _extracted():
        entry = catalog.get(msgid)
        strings = (entry.string if isinstance(entry.string, tuple) else (entry.string,)) if entry else ("",)
        if entry is None or entry.fuzzy or not all(strings):
            missing.append(msgid if isinstance(msgid, str) else msgid[0])
    assert missing == [], f"{len(missing)} strings have no Chinese translation; {HOW_TO_FIX}:\n" + "\n".join(
        repr(m) for m in missing[:40])


def _placeholders(text: str) -> list[str]:
    text = text.replace("{{", "").replace("}}", "")
    return sorted(re.findall(r"\{[^{}]*\}", text) + re.findall(r"%\([^)]+\)[sd]", text))


def test_translations_keep_placeholders_markup_and_paragraphs() -> None:
    bad = []
    for msgid, entry in _catalog().items():
        pairs = zip(msgid, entry.string) if isinstance(msgid, tuple) else [(msgid, entry.string)]
        for source, text in pairs:
            if not text:
                continue
            if _placeholders(source) != _placeholders(text):
                bad.append(f"placeholders: {source!r} -> {text!r}")
            if sorted(re.findall(r"\[/?[a-z][a-z0-9 _.#-]*\]", source)) != sorted(re.findall(r"\[/?[a-z][a-z0-9 _.#-]*\]", text)):
                bad.append(f"markup: {source!r} -> {text!r}")
            if source.count("\n\n") != text.count("\n\n"):
                bad.append(f"paragraphs: {source!r} -> {text!r}")
            if "Example:" in source and "示例：" not in text:
                bad.append(f"example: {source!r} -> {text!r}")
    assert bad == []


def test_the_compiled_catalog_matches_the_po_file() -> None:
    mo = PO.with_suffix(".mo")
    with open(mo, "rb") as f:
        compiled = gettext.GNUTranslations(f)
    stale = [msgid for msgid, entry in _catalog().items()
             if isinstance(msgid, str) and entry.string and not entry.fuzzy and compiled.gettext(msgid) != entry.string]
    assert stale == [], f"{len(stale)} entries differ from the .mo: run `python tools/i18n.py compile`"


def test_a_missing_translation_falls_back_to_english() -> None:
    with open(PO.with_suffix(".mo"), "rb") as f:
        compiled = gettext.GNUTranslations(f)
    assert compiled.gettext("No such text was ever marked") == "No such text was ever marked"
    assert i18n.translate("Customer", "zh") == "客户"
    assert i18n.translate("客户", "zh") == "客户"
    assert i18n.translate("Not in the catalog", "zh") == "Not in the catalog"


def test_glossary_terms_are_used_in_the_catalog() -> None:
    """The core terms of docs/glossary-zh.md are the ones the catalog uses for the English headings."""
    glossary = (ROOT / "docs" / "glossary-zh.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| *([^|*]+?) *\| *([^|]+?) *\|", glossary, flags=re.M)
    terms = {en: zh for en, zh in rows if en not in ("English", "---") and not en.startswith("-")}
    catalog = _catalog()
    checked = 0
    for en, zh in terms.items():
        entry = catalog.get(en)
        if entry is not None and entry.string:
            assert entry.string == zh, f"{en!r}: catalog says {entry.string!r}, glossary {zh!r}"
            checked += 1
    assert checked >= 15


# ----------------------------------------------------------------------------- help in both languages

@pytest.fixture(scope="module")
def helps() -> dict[str, dict[str, dict[str, object]]]:
    return {lang: _probe("help", lang=lang) for lang in ("en", "zh")}  # type: ignore[misc]


def test_every_help_renders_in_both_languages(helps: dict[str, dict[str, dict[str, object]]]) -> None:
    en, zh = helps["en"], helps["zh"]
    assert set(en) == set(zh) and len(en) > 60
    for path in en:
        assert en[path]["code"] == 0 and zh[path]["code"] == 0, path
        english, chinese = str(en[path]["text"]), str(zh[path]["text"])
        assert english.startswith("Usage: ") and "Options:" in english, path
        assert chinese.startswith("用法："), path
        assert "Usage:" not in chinese and "Show this message and exit." not in chinese, path
        assert "选项:" in chinese and "显示此帮助信息并退出。" in chinese, path
        # the command's own description (the paragraph after the usage line) is Chinese
        description = chinese.split("\n\n")[1]
        assert CJK.search(description), f"{path}: {description!r}"


def test_chinese_help_fits_80_columns(helps: dict[str, dict[str, dict[str, object]]]) -> None:
    too_long = [f"{path}: {line!r}" for path, result in helps["zh"].items()
                for line in str(result["text"]).splitlines() if cell_len(line) > 80]
    assert too_long == []


def test_every_option_help_is_chinese(helps: dict[str, dict[str, dict[str, object]]]) -> None:
    """Each option line's help (the text after the option names) has Chinese in it."""
    english_only = []
    for path, result in helps["zh"].items():
        section = str(result["text"]).split("选项:\n", 1)[1].split("\n\n")[0]
        for line in section.splitlines():
            m = re.match(r"^  (-\S.*?)\s{2,}(\S.*)$", line)
            if m and not CJK.search(m.group(2)):
                english_only.append(f"{path}: {line.strip()}")
    assert english_only == []


# ----------------------------------------------------------------------------- the demo store

@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    db = folder / "demo.sqlite"
    (built,) = _probe("run", str(db), '["demo"]', lang="zh")  # type: ignore[misc]
    assert built["code"] == 0, built["stderr"]
    assert "已在" in built["stderr"] and "建立演示数据库" in built["stderr"]  # the narration is Chinese
    assert "消费额最高的客户：" in built["stdout"] and "试试：" in built["stderr"]
    return db


def _copy(store: Path, tmp_path: Path, name: str) -> str:
    target = tmp_path / name
    shutil.copy(store, target)
    return str(target)


AS_OF = "2026-12-01"
MACHINE = [
    ["customer", "list", "-f", "json"],
    ["customer", "list", "-f", "csv"],
    ["customer", "list", "-f", "tsv", "--sort", "spend", "--desc"],
    ["customer", "show", "DEMO001", "-f", "json"],
    ["customer", "history", "DEMO001", "-f", "csv"],
    ["card", "show", "DEMO001", "--format", "json"],
    ["purchase", "list", "-f", "csv", "--customer", "DEMO003"],
    ["purchase", "list", "-f", "jsonl", "-n", "20"],
    ["report", "summary", "-f", "json", "--as-of", AS_OF],
    ["report", "sales", "-f", "csv", "--by", "month", "--as-of", AS_OF],
    ["report", "repeat", "-f", "json", "--as-of", AS_OF],
    ["report", "products", "-f", "csv", "--as-of", AS_OF],
    ["report", "cohort", "-f", "csv", "--as-of", AS_OF],
    ["care", "agenda", "-f", "csv", "--as-of", AS_OF, "--days", "14"],
    ["config", "list", "-f", "json"],
    ["feedback", "list", "-f", "json"],
    ["survey", "list", "-f", "csv"],
    ["churn", "scan", "--as-of", AS_OF, "-f", "json"],
    ["churn", "list", "-f", "json"],
    ["churn", "list", "-f", "csv"],
    ["churn", "show", "DEMO001", "--as-of", AS_OF, "-f", "json"],
    ["churn", "show", "DEMO002", "--as-of", AS_OF, "-f", "json"],
]


def test_machine_output_is_the_same_in_both_languages(demo_store: Path, tmp_path: Path) -> None:
    runs = {}
    for lang in ("en", "zh"):
        db = _copy(demo_store, tmp_path, f"{lang}.sqlite")
        runs[lang] = _probe("run", db, *[json.dumps(c) for c in MACHINE], lang=lang)
    for en, zh in zip(runs["en"], runs["zh"]):  # type: ignore[call-overload]
        assert en["code"] == 0, (en["args"], en["stderr"])
        assert en["stdout"].strip(), en["args"]
        assert en["stdout"].encode() == zh["stdout"].encode(), en["args"]
        assert zh["code"] == 0
    # win-back lists: the same bytes except the message, which is written for the shop's customers in the
    # shop's language on purpose
    winback = ["churn", "winback", "--as-of", AS_OF, "--min-risk", "low", "-f", "json"]
    lists = {lang: _probe("run", _copy(demo_store, tmp_path, f"w{lang}.sqlite"), json.dumps(["churn", "scan", "--as-of", AS_OF, "-f", "json"]),
                          json.dumps(winback), lang=lang)[1] for lang in ("en", "zh")}
    rows = {lang: json.loads(out["stdout"]) for lang, out in lists.items()}  # type: ignore[index]
    assert rows["en"] and any(r["reasons"] for r in rows["en"])
    assert [{**r, "message": None} for r in rows["en"]] == [{**r, "message": None} for r in rows["zh"]]
    # ... while the messages around them are in the language asked for
    failing = {lang: _probe("run", _copy(demo_store, tmp_path, f"x{lang}.sqlite"), json.dumps(["customer", "show", "nobody"]),
                            lang=lang) for lang in ("en", "zh")}
    assert failing["en"][0]["code"] == failing["zh"][0]["code"] == 3  # type: ignore[index]
    assert failing["zh"][0]["stderr"].startswith("错误：")  # type: ignore[index]


def test_headers_zh_gives_chinese_csv_headings_for_spreadsheets(demo_store: Path, tmp_path: Path) -> None:
    commands = [["customer", "list", "-f", "csv", "--headers", "zh"],
                ["--headers", "zh", "customer", "list", "-f", "tsv"],
                ["customer", "list", "-f", "csv", "--headers", "keys"],
                ["report", "sales", "-f", "csv", "--as-of", AS_OF, "--headers", "zh"],
                ["customer", "list", "-f", "json", "--headers", "zh"]]
    for lang in ("en", "zh"):
        out = _probe("run", _copy(demo_store, tmp_path, f"h{lang}.sqlite"), *[json.dumps(c) for c in commands], lang=lang)
        zh_csv, zh_tsv, keys_csv, sales, as_json = (r["stdout"] for r in out)  # type: ignore[union-attr, attr-defined]
        assert zh_csv.startswith("\ufeff")  # Excel needs the byte order mark to read UTF-8
        header = next(csv.reader(io.StringIO(zh_csv.lstrip("\ufeff"))))
        assert header[:4] == ["ID", "编号", "姓名", "电话"] and "消费额" in header
        assert zh_tsv.lstrip("\ufeff").split("\n", 1)[0].split("\t")[:3] == ["ID", "编号", "姓名"]
        assert keys_csv.split("\n", 1)[0].startswith("id,code,name,phone")
        # only the heading row changes: the data rows are those of the default output
        assert zh_csv.split("\n", 1)[1] == keys_csv.split("\n", 1)[1]
        assert CJK.search(sales.split("\n", 1)[0])
        assert json.loads(as_json)[0]["code"] == "DEMO001"  # JSON keys never change
    bad = _probe("run", _copy(demo_store, tmp_path, "bad.sqlite"), json.dumps(["customer", "list", "-f", "csv", "--headers", "fr"]),
                 lang="en")
    assert bad[0]["code"] == 2 and "--headers" in bad[0]["stderr"]  # type: ignore[index]


# ----------------------------------------------------------------------------- layouts at 80 columns

def _lines_fit(text: str, width: int = 80) -> list[str]:
    return [line for line in text.splitlines() if cell_len(line) > width]


LAYOUTS = [["card", "show", "DEMO001"],
           ["report", "summary", "--as-of", AS_OF, "-f", "table"],
           ["report", "sales", "--by", "month", "--as-of", AS_OF, "-f", "table"],
           ["customer", "list", "-f", "table"]]


@pytest.fixture(scope="module")
def layouts(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, object]]]:
    folder = tmp_path_factory.mktemp("layouts")
    return {lang: _probe("run", _copy(demo_store, folder, f"{lang}.sqlite"), *[json.dumps(c) for c in LAYOUTS],
                         lang=lang) for lang in ("en", "zh")}  # type: ignore[misc]


def test_the_card_keeps_its_layout_in_chinese(layouts: dict[str, list[dict[str, object]]]) -> None:
    cards = {lang: str(runs[0]["stdout"]) for lang, runs in layouts.items()}
    for lang, card in cards.items():
        assert _lines_fit(card) == [], lang
        lines = card.rstrip("\n").splitlines()
        # a closed frame: every line is exactly as wide as the top border, and the borders line up
        assert {cell_len(line) for line in lines} == {cell_len(lines[0])} == {80}, lang
        assert all(line[0] in "┏┃┗" and line[-1] in "┓┃┛" for line in lines), lang
    zh = cards["zh"]
    for label in ("身份", "联系方式", "客户等级", "积分", "满意度", "流失风险", "累计消费", "最近购买", "互动记录"):
        assert label in zh
    assert "¥3,248.00" in zh  # CNY shows as ¥ in Chinese


def test_a_report_keeps_its_layout_in_chinese(layouts: dict[str, list[dict[str, object]]]) -> None:
    for i, args in enumerate(LAYOUTS[1:], 1):
        zh, en = layouts["zh"][i], layouts["en"][i]
        assert zh["code"] == en["code"] == 0, zh["stderr"]
        assert _lines_fit(str(zh["stdout"])) == [] and _lines_fit(str(en["stdout"])) == [], args
        assert CJK.search(str(zh["stdout"])), args
        # table rules are as wide as the rows they underline: the columns line up in cells
        for text in (str(zh["stdout"]), str(en["stdout"])):
            for block in text.split("\n\n"):
                lines = block.splitlines()
                for j, line in enumerate(lines):
                    if line and set(line.strip()) <= set("─━ ") and "─" in line and j + 1 < len(lines):
                        assert cell_len(lines[j + 1].rstrip()) <= cell_len(line.rstrip()) + 1, (args, line, lines[j + 1])


def test_chinese_dates_are_accepted(tmp_path: Path) -> None:
    commands = [["init", "--currency", "CNY"],
                ["customer", "add", "王芳", "--phone", "13800138000", "--birthday", "1990年5月17日"],
                ["purchase", "add", "王芳", "88", "--at", "2024年3月1日"],
                ["purchase", "add", "王芳", "88", "--at", "2024/3/2"],
                ["purchase", "add", "王芳", "88", "--at", "2024-03-03"],
                ["purchase", "list", "-f", "json"],
                ["customer", "show", "王芳", "-f", "json"],
                ["purchase", "list", "-f", "json", "--since", "3月2日", "--as-of", "2024-03-10"]]
    runs = _probe("run", str(tmp_path / "shop.sqlite"), *[json.dumps(c) for c in commands], lang="zh")
    assert [r["code"] for r in runs] == [0] * len(commands), [r["stderr"] for r in runs]  # type: ignore[index]
    for added in runs[2:5]:  # type: ignore[index]
        assert "¥88.00" in added["stderr"]
    rows = json.loads(runs[5]["stdout"])  # type: ignore[index]
    assert sorted(r["date"][:10] for r in rows) == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert json.loads(runs[6]["stdout"])["customer"]["birthday"] == "1990-05-17"  # type: ignore[index]
    assert sorted(r["date"][:10] for r in json.loads(runs[7]["stdout"])) == ["2024-03-02", "2024-03-03"]  # type: ignore[index]
