"""Translation catalogs: extract marked strings, merge them into the .po files, compile .mo files.

    python tools/i18n.py extract   # src → src/crmcli/locale/crmcli.pot
    python tools/i18n.py update    # .pot → locale/zh/LC_MESSAGES/crmcli.po (keeps existing translations)
    python tools/i18n.py compile   # .po → .mo (shipped in the package; no build step at install time)
    python tools/i18n.py missing   # list msgids without a Chinese translation

Uses Babel's message extraction; `_`, `N_` and `ngettext` are the marking functions.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "crmcli"
LOCALE = SRC / "locale"
POT = LOCALE / "crmcli.pot"
LANGS = ["zh"]
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def po_path(lang: str) -> Path:
    return LOCALE / lang / "LC_MESSAGES" / "crmcli.po"


def extract() -> Catalog:
    catalog = Catalog(project="crmcli", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            str(SRC), method_map=[("**.py", "python")], keywords=KEYWORDS, comment_tags=("TRANSLATORS:",)):
        catalog.add(message, locations=[(f"crmcli/{filename}", lineno)], auto_comments=comments, context=context)
    return catalog


def write_pot() -> Catalog:
    catalog = extract()
    with open(POT, "wb") as f:
        write_po(f, catalog, width=100, omit_header=False, sort_output=True)
    return catalog


def update() -> None:
    template = write_pot()
    for lang in LANGS:
        path = po_path(lang)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with open(path, "rb") as f:
                catalog = read_po(f, locale=lang)
        else:
            catalog = Catalog(locale=lang, project="crmcli", charset="utf-8")
        catalog.update(template, no_fuzzy_matching=True)
        with open(path, "wb") as f:
            write_po(f, catalog, width=100, sort_output=True, ignore_obsolete=True)


def compile_all() -> None:
    for lang in LANGS:
        with open(po_path(lang), "rb") as f:
            catalog = read_po(f, locale=lang)
        with open(po_path(lang).with_suffix(".mo"), "wb") as f:
            write_mo(f, catalog, use_fuzzy=False)


def missing(lang: str = "zh") -> list[str]:
    template = extract()
    path = po_path(lang)
    translated: dict[object, object] = {}
    if path.exists():
        with open(path, "rb") as f:
            translated = {m.id: m.string for m in read_po(f, locale=lang) if m.id and not m.fuzzy}
    out = []
    for message in template:
        if not message.id:
            continue
        value = translated.get(message.id)
        if not value or (isinstance(value, tuple) and not all(value)):
            out.append(message.id if isinstance(message.id, str) else message.id[0])
    return out


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "update"
    if command == "extract":
        write_pot()
    elif command == "update":
        update()
    elif command == "compile":
        compile_all()
    elif command == "missing":
        todo = missing()
        print("\n".join(todo))
        print(f"{len(todo)} missing", file=sys.stderr)
        sys.exit(1 if todo else 0)
    else:
        sys.exit(__doc__)
