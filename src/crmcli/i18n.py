"""Translation of every user-facing string.

``_`` is gettext over the catalogs shipped in ``crmcli/locale``; a missing translation falls back to the
English text, never to an empty string. The language is chosen once per process, before the CLI modules
are imported (their help texts are translated at import time): the store's ``ui.language`` setting, else
``CRM_LANG``, else the locale (``LC_ALL``/``LC_MESSAGES``/``LANG`` starting with ``zh``), else English.

Machine-readable output (JSON keys, CSV columns, exit codes) never goes through here.
"""

from __future__ import annotations

import gettext
import os
from pathlib import Path

SUPPORTED = ("en", "zh")
DOMAIN = "crmcli"
LOCALE_DIR = Path(__file__).parent / "locale"

_translation: gettext.NullTranslations | None = None
_language: str | None = None


def normalize_language(value: str | None) -> str | None:
    """Map 'zh_CN.UTF-8', 'zh-Hans', 'ZH' to 'zh' and 'en_US' to 'en'; anything else to None."""
    if not value:
        return None
    code = value.strip().lower().replace("-", "_").split(".")[0].split("_")[0]
    return code if code in SUPPORTED else None


def language_from_environment() -> str:
    explicit = normalize_language(os.environ.get("CRM_LANG"))
    if explicit:
        return explicit
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return normalize_language(value) or "en"
    return "en"


def set_language(language: str | None) -> str:
    """Choose the interface language for this process; returns the language in force."""
    global _translation, _language
    _language = normalize_language(language) or language_from_environment()
    _translation = gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[_language], fallback=True)
    return _language


def current_language() -> str:
    if _language is None:
        set_language(None)
    assert _language is not None
    return _language


def _(message: str) -> str:
    if _translation is None:
        set_language(None)
    assert _translation is not None
    return _translation.gettext(message) or message


def ngettext(singular: str, plural: str, n: int) -> str:
    if _translation is None:
        set_language(None)
    assert _translation is not None
    return _translation.ngettext(singular, plural, n)


_others: dict[str, gettext.NullTranslations] = {}


def translate(message: str, language: str) -> str:
    """``message`` in ``language`` whatever the interface language (``--headers zh`` under an English UI).

    Accepts the English msgid or a text already translated into ``language`` (returned unchanged)."""
    if language not in _others:
        _others[language] = gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[language], fallback=True)
    return _others[language].gettext(message) or message


class Message(str):
    """A sentence kept in English as data (JSON, CSV: the same bytes in every language) and translated only
    where people read it (tables, the terminal): ``Message(N_("turns {age}"), age=36)``.

    ``str(m)`` and ``json.dumps`` give the English text; ``m.translated()`` (``cli/output.py`` does this for
    table cells) gives it in the interface language. Arguments that are Messages are translated too."""

    msgid: str
    args: dict[str, object]

    def __new__(cls, msgid: str, /, **args: object) -> "Message":
        made = super().__new__(cls, msgid.format(**args) if args else msgid)
        made.msgid = msgid
        made.args = args
        return made

    def translated(self) -> str:
        args = {k: shown(v) for k, v in self.args.items()}
        text = _(self.msgid)
        return text.format(**args) if args else text


def shown(value: object) -> str:
    """Text for people: a Message (or any value with ``translated()``) translated, anything else as str()."""
    translated = getattr(value, "translated", None)
    return translated() if callable(translated) else str(value)


class Joined(str):
    """Messages joined into one text: English as data, each part translated where people read it."""

    parts: tuple[object, ...]
    separator: str

    def __new__(cls, parts: "list[object] | tuple[object, ...]", separator: str = "; ") -> "Joined":
        made = super().__new__(cls, separator.join(str(p) for p in parts))
        made.parts = tuple(parts)
        made.separator = separator
        return made

    def translated(self) -> str:
        return self.separator.join(shown(p) for p in self.parts)


def N_(message: str) -> str:
    """Mark a string for extraction without translating it yet (translated where it is shown)."""
    return message
