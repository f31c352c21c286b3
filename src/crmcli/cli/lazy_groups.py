"""The root group's commands, with each command group built on first use.

Typer turns a Typer app into Click commands all at once: every one of the ~120 commands has its signature
inspected and its string annotations evaluated, which cost about half a second on every `crm` run while a
run uses one group. Here the root keeps its own commands (init, demo) as Typer built them and holds each
group as (name, module) until it is asked for; then the group is built exactly as ``app.add_typer(sub,
name=name)`` would have built it. ``crm --help`` lists the groups from their Typer settings (help, hidden)
without building them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from typer._click import Command


@dataclass(frozen=True)
class _Pending:
    module: str


class LazyCommands(MutableMapping[str, Command]):
    """A name → Click command mapping (what Click groups keep in ``.commands``) that builds a group when it
    is first looked up. Iterating names builds nothing; ``values()``/``items()`` build everything (a walk
    over the whole tree still sees the whole tree)."""

    def __init__(self, built: dict[str, Command], groups: Sequence[tuple[str, str]],
                 build: Callable[[str, Any], Command]) -> None:
        self._entries: dict[str, Command | _Pending] = dict(built)
        for name, module in groups:
            self._entries.setdefault(name, _Pending(module))
        self._build = build

    def __getitem__(self, name: str) -> Command:
        entry = self._entries[name]
        if isinstance(entry, _Pending):
            entry = self._entries[name] = self._build(name, self.typer_app(name))
        return entry

    def __setitem__(self, name: str, command: Command) -> None:
        self._entries[name] = command

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def built(self) -> list[str]:
        """Names whose Click command exists (tests use it to check that a run builds only its group)."""
        return [name for name, entry in self._entries.items() if not isinstance(entry, _Pending)]

    def typer_app(self, name: str) -> Any:
        entry = self._entries[name]
        if not isinstance(entry, _Pending):
            raise KeyError(name)
        return import_module(f"crmcli.cli.{entry.module}").app

    def peek(self, name: str) -> Command:
        """The command if built; else a command-less stand-in with the group's name, help, short help,
        hidden and deprecated flags, the same values the built group would get (for the help listing)."""
        entry = self._entries[name]
        if not isinstance(entry, _Pending):
            return entry
        from typer.core import TyperGroup
        from typer.main import solve_typer_info_defaults

        info = solve_typer_info_defaults(typer_info(self.typer_app(name), name))
        return TyperGroup(name=name, help=info.help, short_help=info.short_help, hidden=info.hidden,
                          deprecated=info.deprecated)


def typer_info(sub: Any, name: str) -> Any:
    """The TyperInfo that ``app.add_typer(sub, name=name)`` registers, made by Typer itself on a throwaway
    app (so its defaults stay Typer's)."""
    import typer

    holder = typer.Typer()
    holder.add_typer(sub, name=name)
    return holder.registered_groups[0]
