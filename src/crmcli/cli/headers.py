"""`--headers keys|zh`: the heading row of csv/tsv output.

Scripts read CSV columns by their machine names (the Column keys, the same as the JSON keys), so those stay
the default whatever the interface language. People who open an export in Excel can ask for Chinese
headings instead with ``--headers zh`` (then the file also starts with a UTF-8 byte order mark, which is
what makes Excel read Chinese text in a CSV correctly).

The option is accepted globally (``crm --headers zh customer list -f csv``) and on every command that has
``--format`` (``crm customer list -f csv --headers zh``); it is added to those commands here, once, when
the root group is built (and on a command group when it is built on first use), so that no command module
needs its own parameter.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Annotated, Any, Callable, Optional

import typer

from crmcli.i18n import _

HEADER_STYLES = ("keys", "zh")

headers_style: ContextVar[str] = ContextVar("crm_headers_style", default="keys")


def _parse(value: str | None) -> str | None:
    if value is None:
        return None
    chosen = value.strip().lower()
    if chosen not in HEADER_STYLES:
        raise typer.BadParameter(_("Use one of: {choices}.").format(choices=", ".join(HEADER_STYLES)))
    return chosen


def _root_callback(value: Optional[str]) -> None:
    # Runs on every invocation (with the default too), so one CliRunner call never leaks into the next.
    headers_style.set(_parse(value) or "keys")


def _command_callback(value: Optional[str]) -> None:
    chosen = _parse(value)
    if chosen is not None:
        headers_style.set(chosen)


_HELP = _("Heading row of csv/tsv output: keys (the column names scripts use; default) "
          "or zh (Chinese headings for spreadsheets).")


# Typer builds the option objects from these signatures (the functions themselves never run).
def _root_signature(headers: Annotated[Optional[str], typer.Option(
        "--headers", metavar="keys|zh", expose_value=False, callback=_root_callback, help=_HELP)] = None) -> None:
    pass  # pragma: no cover


def _command_signature(headers: Annotated[Optional[str], typer.Option(
        "--headers", metavar="keys|zh", expose_value=False, callback=_command_callback, help=_HELP)] = None) -> None:
    pass  # pragma: no cover


_made: dict[Callable[..., None], Any] = {}


def _option(signature: Callable[..., None]) -> Any:
    """A Typer-made --headers option that sets the style and is not passed to the command function.

    Built once per process (Typer's signature inspection is slow), then copied for each command."""
    import copy

    if signature not in _made:
        from typer.main import get_command

        helper = typer.Typer()
        helper.command()(signature)
        _made[signature] = next(p for p in get_command(helper).params if "--headers" in getattr(p, "opts", ()))
    return copy.copy(_made[signature])


def _has(command: Any, name: str) -> bool:
    return any(name in getattr(p, "opts", ()) for p in command.params)


def install(root: Any) -> None:
    """Add --headers to the root group and to every command under it that has a --format option.

    The root's command groups are built on first use (cli/lazy_groups.py); each gets the option from
    ``install_below`` then."""
    if not _has(root, "--headers"):
        root.params.append(_option(_root_signature))
    for sub in root.commands.values():
        install_below(sub)


def install_below(command: Any) -> None:
    """Add --headers to ``command`` (or, for a group, to every command in it) where it has --format."""
    commands = getattr(command, "commands", None)
    if commands is not None:
        for sub in commands.values():
            install_below(sub)
    elif _has(command, "--format") and not _has(command, "--headers"):
        command.params.append(_option(_command_signature))


def heading_row(keys: list[str], labels: list[str]) -> list[str]:
    """The csv/tsv heading row for the style in force."""
    if headers_style.get() != "zh":
        return keys
    from crmcli.i18n import translate

    return [translate(label, "zh") for label in labels]


def wants_bom() -> bool:
    return headers_style.get() == "zh"
