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
