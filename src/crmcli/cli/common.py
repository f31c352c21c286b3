"""What every command shares: global state, common options, confirmation, customer picking, messages."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Optional

import re

import typer
from typer.core import TyperCommand

from crmcli.errors import Ambiguous, UsageError
from crmcli.i18n import _

if TYPE_CHECKING:
    from sqlmodel import Session

    from crmcli.core.context import StoreContext
    from crmcli.store.engine import Store
    from crmcli.store.models import Customer

FORMATS = ("table", "json", "jsonl", "csv", "tsv", "markdown")
_NEGATIVE = re.compile(r"^-\d[\d,]*(\.\d*)?$")


@dataclass
class State:
    db: str | None = None
    format: str | None = None
    debug: bool = False
    quiet: bool = False
    mask: bool = False
    _store: Any = field(default=None, repr=False)
    # What opening the store took back or finished (core/io/rollback.recover): `crm import undo ID` of an undo
    # that the opening just finished reports it done instead of "already undone".
    recovered: list[Any] = field(default_factory=list, repr=False)

    def store(self, *, create: bool = False) -> "Store":
        if self._store is None:
            from crmcli.store.engine import open_store

            self._store = open_store(self.db, create=create)
            self.recovered = _take_back_interrupted_imports(self._store)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.dispose()
            self._store = None


def _take_back_interrupted_imports(store: "Store") -> list[Any]:
    """An import whose process died between two of its steps is removed before anything else reads the store,
    like SQLite rolls back a hot journal, and an undo whose process died is finished (core/io/rollback.py)."""
    from crmcli.core.io.rollback import recover
    from crmcli.errors import StoreError

    try:
        taken = recover(store)
    except StoreError as e:  # a read-only store: reads still work; the next writable open cleans up
        warn(_("An interrupted import could not be taken back yet: {error}").format(error=e.message))
        return []
    for d in taken:
        if d.undo:
            warn(_("The undo of import #{id} was interrupted (its process ended); it has now been finished: {n} "
                   "records removed in all.").format(id=d.run_id, n=d.removed) + (" " + _(
                       "{n} records that other commands had used or changed meanwhile were kept; see `crm db audit`.")
                       .format(n=len(d.kept)) if d.kept else ""))
            continue
        warn(_("Import #{id} was interrupted (its process ended); its {n} records were taken back.").format(
            id=d.run_id, n=d.removed) + (" " + _("{n} customers it had changed were put back as they were.").format(
                n=d.restored) if d.restored else "") + (" " + _("{n} records that other commands had already used were kept; see "
                                              "`crm import history`.").format(n=len(d.kept)) if d.kept else ""))
    return taken


_state = State()


def state() -> State:
    return _state


def reset_state(**values: Any) -> State:
    global _state
    _state.close()
    _state = State(**values)
    return _state


# ----------------------------------------------------------------------------- shared option types

FormatOpt = Annotated[Optional[str], typer.Option(
    "--format", "-f", help=_("Output format: table, json, jsonl, csv, tsv or markdown (default: table on a terminal, tsv otherwise)."),
    metavar="FORMAT")]
AsOfOpt = Annotated[Optional[str], typer.Option(
    "--as-of", help=_("Pretend today is this date (for reproducible cron runs and reports)."), metavar="DATE")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help=_("Do not ask for confirmation (required when not on a terminal)."))]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", "-n", help=_("Show at most this many rows."), min=1)]


def is_interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def info(message: str) -> None:
    """A message for people, on stderr; silenced by --quiet."""
    if not _state.quiet:
        typer.echo(message, err=True)


def warn(message: str) -> None:
    typer.echo(_("Warning: {message}").format(message=message), err=True)


def confirm(question: str, yes: bool) -> None:
    """Go on when --yes was given or the person at the terminal agrees; never prompts off a terminal."""
    if yes:
        return
    if not is_interactive():
        raise UsageError(_("{question} Not on a terminal: add --yes to confirm.").format(question=question))
    if not typer.confirm(question, default=False, err=True):
        raise typer.Exit(1)


def store_context(session: "Session", as_of: str | None = None) -> "StoreContext":
    from crmcli.core.context import StoreContext
    from crmcli.core.dates import parse_date

    ctx = StoreContext.load(session)
    if as_of:
        ctx = ctx.at(parse_date(as_of, today=ctx.today, field="--as-of"))
    return ctx


def parse_day(text: str | None, ctx: "StoreContext", field_name: str) -> date | None:
    if text is None:
        return None
    from crmcli.core.dates import parse_date

    return parse_date(text, today=ctx.today, field=field_name)


def pick_customer(session: "Session", ref: str, ctx: "StoreContext", *, include_deleted: bool = False) -> "Customer":
    """Resolve a customer reference; on a terminal, several matches become a numbered choice."""
    from crmcli.core import customers

    try:
        return customers.resolve(session, ref, ctx, include_deleted=include_deleted)
    except Ambiguous as e:
        if not is_interactive():
            raise
        options = customers.candidates(session, [int(i) for i in e.candidates])
        typer.echo(_("'{ref}' matches several customers:").format(ref=ref), err=True)
        for n, option in enumerate(options, 1):
            typer.echo(f"  {n}. {option.label()}", err=True)
        choice = typer.prompt(_("Number"), type=int, err=True)
        if not 1 <= choice <= len(options):
            raise UsageError(_("{n} is not one of the choices.").format(n=choice)) from None
        return customers.get(session, options[choice - 1].id)


def choose_customer(ref: str, *, include_deleted: bool = False) -> int:
    """Resolve a customer reference in a read transaction and return the id.

    Commands that change data call this before opening their write transaction, so that a numbered
    choice (or a confirmation) on a terminal never keeps the store locked while a person decides.
    """
    with state().store().read() as session:
        ctx = store_context(session)
        customer = pick_customer(session, ref, ctx, include_deleted=include_deleted)
        assert customer.id is not None
        return customer.id


def masking(session: "Session") -> bool:
    """Whether phones and e-mails are partly hidden: --mask, or the store's privacy.mask setting."""
    from crmcli.core import settings

    return state().mask or bool(settings.get(session, "privacy.mask"))


def masking_now() -> bool:
    """masking() without a session at hand: reads privacy.mask from the command's open store, if any."""
    if state().mask:
        return True
    if state()._store is None:
        return False
    with state().store().read() as session:
        return masking(session)


class NegativeNumbersCommand(TyperCommand):
    """A command whose arguments may be negative numbers: `crm purchase add ann -5` then gets the amount's
    own message ("Amount '-5' is negative ...") instead of Click's "No such option: -5".

    A token like -5 or -12.50 that is not the value of an option is moved behind a `--`, keeping the
    order of the positional arguments.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self._negatives_as_arguments(list(args)))

    def _negatives_as_arguments(self, args: list[str]) -> list[str]:
        valued = {name for p in self.params if getattr(p, "param_type_name", "") == "option"
                  and not getattr(p, "is_flag", False) and not getattr(p, "count", False)
                  for name in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}
        options: list[str] = []
        positional: list[str] = []
        moved = False
        i = 0
        while i < len(args):
            token = args[i]
            if token == "--":
                positional.extend(args[i + 1:])
                moved = True
                break
            if token in valued and i + 1 < len(args):
                options.extend(args[i:i + 2])
                i += 2
                continue
            if _NEGATIVE.match(token):
                positional.append(token)
                moved = True
            elif token.startswith("-") and token != "-":
                options.append(token)
            else:
                positional.append(token)
            i += 1
        return [*options, "--", *positional] if moved else args
