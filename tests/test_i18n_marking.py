"""Every user-facing string is marked for translation (the extraction check of issue 12).

A string literal with letters in it, passed where people will read it — help texts, messages printed with
echo/info/warn, confirmation questions, error messages of the CrmError family, table headings — must be
wrapped in _() (or N_()). Machine strings (JSON keys, column keys) are not affected; a line that prints
something that is not language (a program name, a path) says so with the comment `# i18n: not text`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "crmcli"
ERRORS = {"CrmError", "StoreError", "NotFound", "Conflict", "Ambiguous", "InvalidInput", "UsageError"}
MESSAGE_FUNCS = {"echo", "secho", "info", "warn", "confirm", "prompt", "_report",
                 # Rich and Click output that people read
                 "print", "add_column", "Text", "Panel", "Rule", "BadParameter"}
TEXT_KEYWORDS = {"help", "hint", "title", "empty_message", "prompt", "label", "subtitle", "caption", "message"}
LETTERS = re.compile(r"[A-Za-z\u4e00-\u9fff]{2,}")


def _is_bare_text(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(LETTERS.search(node.value))
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.Constant) and isinstance(v.value, str) and LETTERS.search(v.value)
                   for v in node.values)
    if isinstance(node, ast.BinOp):
        return _is_bare_text(node.left) or _is_bare_text(node.right)
    return False


def _name(func: ast.AST) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def unmarked_strings() -> list[str]:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            candidates: list[ast.AST] = []
            if name in ERRORS or name in MESSAGE_FUNCS:
                candidates.extend(node.args[:1])
            if name == "Column" and len(node.args) >= 2:
                candidates.append(node.args[1])
            candidates.extend(k.value for k in node.keywords if k.arg in TEXT_KEYWORDS)
            for c in candidates:
                line = lines[getattr(c, "lineno", 1) - 1]
                if _is_bare_text(c) and "i18n: not text" not in line:
                    problems.append(f"{path.relative_to(SRC.parent)}:{getattr(c, 'lineno', '?')}: {ast.unparse(c)[:70]}")
    return problems


def calls_inside_fstrings() -> list[str]:
    """_() inside an f-string is invisible to Babel's extractor: the string would never be translated."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                for inner in ast.walk(node):
                    if (isinstance(inner, ast.Call) and _name(inner.func) in ("_", "N_", "ngettext") and inner.args
                            and isinstance(inner.args[0], ast.Constant)):  # _(variable) is marked where it is made
                        found.append(f"{path.relative_to(SRC.parent)}:{inner.lineno}: {ast.unparse(inner)[:70]}")
    return found


def test_no_translation_call_hides_inside_an_fstring() -> None:
    assert calls_inside_fstrings() == []


def test_user_facing_strings_are_marked_for_translation() -> None:
    assert unmarked_strings() == []


def test_the_checker_catches_an_unmarked_string(tmp_path: Path) -> None:
    sample = 'raise NotFound("No such thing")\ninfo(f"Saved {path}")\nok = _("fine")\n'
    tree = ast.parse(sample)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _name(n.func) in ERRORS | MESSAGE_FUNCS]
    assert sum(_is_bare_text(c.args[0]) for c in calls) == 2
