"""Translate the help and error chrome that Typer prints itself ("Usage:", "Options", "Show this message and
exit.", "Missing argument ...") when the interface language is not English.

Typer's vendored Click hard-codes these English strings, so this module wraps the few methods that print
them. It runs once, only for a non-English interface; English output is Typer's own, untouched. If a Typer
release moves these internals, the wrappers are skipped and the chrome simply stays English.
"""

from __future__ import annotations

import re
from typing import Any

from crmcli.i18n import _, current_language

_applied = False

# Typer's English message shapes → our msgids (translated at display time).
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Missing argument '(?P<name>[^']+)'\.$"), "Missing argument '{name}'."),
    (re.compile(r"^Missing option '(?P<name>[^']+)'\.$"), "Missing option '{name}'."),
    (re.compile(r"^No such option: (?P<name>\S+)(?P<rest>.*)$"), "No such option: {name}"),
    (re.compile(r"^No such command '(?P<name>[^']+)'\.$"), "No such command '{name}'."),
    (re.compile(r"^Invalid value for (?P<name>.+?): (?P<reason>.+)$"), "Invalid value for {name}: {reason}"),
    (re.compile(r"^Got unexpected extra argument(?:s|\(s\))? \((?P<name>.+)\)$"), "Unexpected extra argument(s): {name}"),
    (re.compile(r"^Option '(?P<name>[^']+)' requires an argument\.$"), "Option '{name}' requires an argument."),
    (re.compile(r"^Missing command\.$"), "Missing command."),
]

# Extraction sees these through the _() calls below.
_MSGIDS = (
    lambda: _("Missing argument '{name}'."), lambda: _("Missing option '{name}'."),
    lambda: _("No such option: {name}"), lambda: _("No such command '{name}'."),
    lambda: _("Invalid value for {name}: {reason}"), lambda: _("Unexpected extra argument(s): {name}"),
    lambda: _("Option '{name}' requires an argument."), lambda: _("Missing command."),
    lambda: _("Options"), lambda: _("Arguments"), lambda: _("Commands"), lambda: _("required"),
    lambda: _("default: {default}"), lambda: _("env var: {var}"), lambda: _("Aborted!"),
    lambda: _("No such command {name!r}."), lambda: _("(dynamic)"),
)


def translate_message(message: str) -> str:
    for pattern, msgid in _PATTERNS:
        m = pattern.match(message)
        if m:
            return _(msgid).format(**m.groupdict())
    return message


def cells(text: str) -> int:
    """Terminal cells of ``text``: Chinese characters and full-width punctuation take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 0 if unicodedata.combining(ch) else 1
               for ch in text)


# A wide character (with the closing punctuation that must not start a line), or a run of anything else.
_CHUNK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\u3000-\u303f]"
                    r"[，。、；：！？）》」』】”’,.;:!?)\]]*|[^\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\u3000-\u303f]+")


_CLOSING = "，。、；：！？）》」』】”’"


def _cjk_wrapper(base: type) -> type:
    """Click's TextWrapper measuring cells and allowed to break between Chinese characters."""

    class CellTextWrapper(base):  # type: ignore[misc, valid-type]
        def _split(self, text: str) -> list[str]:
            out: list[str] = []
            for chunk in super()._split(text):
                for piece in (_CHUNK.findall(chunk) if cells(chunk) != len(chunk) else [chunk]):
                    if out and piece[0] in _CLOSING and out[-1].strip():
                        out[-1] += piece  # never start a line with a closing bracket or punctuation
                    else:
                        out.append(piece)
            return out

        def _wrap_chunks(self, chunks: list[str]) -> list[str]:
            lines: list[str] = []
            chunks.reverse()
            while chunks:
                line: list[str] = []
                used = 0
                indent = self.subsequent_indent if lines else self.initial_indent
                width = self.width - cells(indent)
                if self.drop_whitespace and lines and chunks[-1].strip() == "":
                    del chunks[-1]
                while chunks and used + cells(chunks[-1]) <= width:
                    used += cells(chunks[-1])
                    line.append(chunks.pop())
                if chunks and cells(chunks[-1]) > width:
                    self._handle_long_word(chunks, line, used, width)
                if self.drop_whitespace and line and line[-1].strip() == "":
                    del line[-1]
                if line:
                    lines.append(indent + "".join(line))
            return lines

    return CellTextWrapper


def apply() -> None:
    """Install the wrappers (idempotent; a no-op in English)."""
    global _applied
    if _applied or current_language() == "en":
        return
    _applied = True
    try:
        import typer.core as tcore
        from typer._click import core as ccore
        from typer._click import exceptions as cexc
        from typer._click import formatting as cfmt
        from typer._click.utils import echo
    except ImportError:  # pragma: no cover - Typer reorganised; keep English chrome
        return

    tcore._ = _  # type: ignore[attr-defined]  # Typer's own gettext-marked labels ("Options", ...)

    # Chinese help text: wrap and align by terminal cells (Click counts characters, so lines ran past the
    # terminal and the option column went out of line).
    try:
        from typer._click import _textwrap as ctextwrap

        ctextwrap.TextWrapper = _cjk_wrapper(ctextwrap.TextWrapper)  # type: ignore[misc]
        from typer._click._compat import strip_ansi

        cfmt.term_len = lambda text: cells(strip_ansi(text))  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - Typer reorganised; wrapping stays by characters
        pass

    original_usage = cfmt.HelpFormatter.write_usage

    def write_usage(self: Any, prog: str, args: str = "", prefix: str | None = None) -> None:
        original_usage(self, prog, args, _("Usage: ") if prefix is None else prefix)

    cfmt.HelpFormatter.write_usage = write_usage  # type: ignore[method-assign]

    original_help_option = ccore.Command.get_help_option

    def get_help_option(self: Any, ctx: Any) -> Any:
        option = original_help_option(self, ctx)
        if option is not None:
            option.help = _("Show this message and exit.")
        return option

    ccore.Command.get_help_option = get_help_option  # type: ignore[method-assign]

    def usage_show(self: Any, file: Any = None) -> None:
        from typer._click._compat import get_text_stderr

        file = file or get_text_stderr()
        hint = ""
        if self.ctx is not None and self.ctx.command.get_help_option(self.ctx) is not None:
            hint = _("Try '{command} {option}' for help.").format(
                command=self.ctx.command_path, option=self.ctx.help_option_names[0]) + "\n"
        if self.ctx is not None:
            echo(f"{self.ctx.get_usage()}\n{hint}", file=file, color=self.ctx.color)
        echo(_("Error: {message}").format(message=translate_message(self.format_message())), file=file)

    cexc.UsageError.show = usage_show  # type: ignore[method-assign]
