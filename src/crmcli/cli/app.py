"""The root ``crm`` app: global options and the one place where errors become messages and exit codes."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from crmcli import __version__
from crmcli.cli import typer_i18n
from crmcli.cli.common import reset_state, state
from crmcli.cli.lazy_groups import LazyCommands, typer_info
from crmcli.errors import CrmError, ExitCode
from crmcli.i18n import _


typer_i18n.apply()


def _one_line(text: str) -> str:
    """Input echoed in a message (a name with a newline or a terminal escape) must neither break the one-line
    error nor drive the terminal: control and line-separator characters are shown escaped (\\r, \\x1b)."""
    import unicodedata

    return "".join(c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in ("Cc", "Zl", "Zp")
                   else c for c in text)


def _report(message: str, hint: str | None = None) -> None:
    line = _("Error: {message}").format(message=_one_line(message))
    if hint:
        line += " " + _one_line(hint)
    typer.echo(line, err=True)


class CrmGroup(TyperGroup):
    """Root group: maps CrmError (and driver errors) to one line on stderr and a documented exit code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from crmcli.cli.headers import install

        install(self)  # --headers keys|zh on the root and on every command with --format
        # The groups are built when first asked for: a run builds one group, not all ~120 commands.
        self.commands = LazyCommands(dict(self.commands), GROUPS, _build_group)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # Typer's walks items(), which would build every group

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """Typer's command listing, with groups not built yet listed from their Typer settings (the same
        help and flags their built group would have), so `crm --help` builds no group."""
        commands = [(name, self.commands.peek(name)) for name in self.list_commands(ctx)]
        commands = [(name, cmd) for name, cmd in commands if not cmd.hidden]
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _cmd in commands)
            with formatter.section(_("Commands")):
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in commands])

    def invoke(self, ctx: Any) -> Any:
        from crmcli.core.command import current_command

        words = [t for t in [*getattr(ctx, "_protected_args", []), *ctx.args] if not t.startswith("-")]
        first = self.get_command(ctx, words[0]) if words else None
        # "crm customer add", but "crm init" (not "crm init CNY" from `crm init --currency CNY`)
        tokens = words[:2] if hasattr(first, "list_commands") else words[:1]
        token = current_command.set("crm " + " ".join(tokens))
        try:
            return super().invoke(ctx)
        except CrmError as e:
            if state().debug:
                raise
            _report(e.message, e.hint)
            raise typer.Exit(int(e.exit_code)) from None
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:
            # `crm customer list | head`: the reader has gone. Stop quietly, not with "Error: Broken pipe".
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):
                pass  # not a real file descriptor (tests)
            raise typer.Exit(int(ExitCode.ERROR)) from None
        except OverflowError as e:
            if state().debug:
                raise
            # A number typed beyond SQLite's 64-bit integers (`purchase refund 9223372036854775808`).
            _report(_("A number is too large ({error}).").format(error=e),
                    _("Numbers stay below 9223372036854775808; check the value you typed."))
            raise typer.Exit(int(ExitCode.REJECTED)) from None
        except KeyboardInterrupt:
            typer.echo(_("Interrupted; the store is unchanged by the unfinished command."), err=True)
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as e:  # noqa: BLE001 - the last line of defence against tracebacks
            if type(e).__module__.startswith("typer") or state().debug:
                raise
            if "sqlalchemy" in sys.modules or "sqlite3" in sys.modules:
                from crmcli.store.engine import store_error_from

                import sqlite3

                orig = getattr(e, "orig", None)
                if orig is not None or isinstance(e, sqlite3.Error):
                    err = store_error_from(orig or e, state().db or "store")
                    _report(err.message, err.hint)
                    raise typer.Exit(int(ExitCode.ERROR)) from None
            if isinstance(e, OSError):
                _report(_("{error}").format(error=f"{e.strerror or e}: {e.filename}" if e.filename else str(e)))
                raise typer.Exit(int(ExitCode.ERROR)) from None
            _report(_("unexpected {kind}: {error}.").format(kind=type(e).__name__, error=e),
                    _("This is a bug in crmcli; run again with --debug for the details and report it."))
            raise typer.Exit(int(ExitCode.ERROR)) from None
        finally:
            current_command.reset(token)
            state().close()


app = typer.Typer(
    cls=CrmGroup,
    name="crm",
    help=_("crmcli: keep your customers, their purchases, loyalty and feedback in one local file.\n\n"
           "Example: crm customer add 'Ann Lee' --phone '+86 138 0013 8000'"),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"crm {__version__}")  # i18n: not text
        raise typer.Exit()


@app.callback()
def root(
    db: Annotated[Optional[str], typer.Option("--db", envvar="CRM_DB", metavar="PATH",
                                              help=_("The store file (default: CRM_DB, else crm.sqlite in your user data folder)."))] = None,
    format: Annotated[Optional[str], typer.Option("--format", "-f", metavar="FORMAT",
                                                  help=_("Default output format for commands that print rows."))] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=_("Print data only, no messages."))] = False,
    debug: Annotated[bool, typer.Option("--debug", help=_("Show tracebacks for errors."))] = False,
    mask: Annotated[bool, typer.Option("--mask", help=_("Partly hide phones and e-mails in the output."))] = False,
    key_file: Annotated[Optional[str], typer.Option("--key-file", envvar="CRM_DB_KEY_FILE", metavar="FILE",
                                                    help=_("Key of an encrypted store, read from a file only you may read (mode 0600)."))] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help=_("Show the version and exit."))] = False,
) -> None:
    from crmcli.store.keys import key_file_option

    reset_state(db=db, format=format, quiet=quiet, debug=debug, mask=mask)
    key_file_option.set(key_file)


@app.command("init", help=_("Create the store (if missing) and say where it is. Safe to run again.\n\n"
                            "Example: crm --db shop.sqlite init --currency CNY --region CN"))
def init(
    currency: Annotated[Optional[str], typer.Option(help=_("Currency for a new store (ISO code, e.g. CNY)."))] = None,
    region: Annotated[Optional[str], typer.Option(help=_("Default phone region for a new store (e.g. CN)."))] = None,
    timezone: Annotated[Optional[str], typer.Option(help=_("Time zone for a new store (e.g. Asia/Shanghai)."))] = None,
) -> None:
    from crmcli.core import stores

    st = state()
    result = stores.init_store(st.db, currency=currency, region=region, timezone=timezone)
    st._store = result.store
    if result.created:
        typer.echo(_("Created a new store at {path}.").format(path=result.store.location), err=True)
    else:
        typer.echo(_("The store at {path} is ready (nothing to do).").format(path=result.store.location), err=True)
    typer.echo(_("Currency {currency}, phone region {region}, time zone {tz}. Change them with `crm config set`.").format(
        currency=result.settings["currency"], region=result.settings["phone.region"] or "—",
        tz=result.settings["timezone"]), err=True)
    typer.echo(result.store.location)


@app.command("demo", help=_("Build a demo store from the bundled example data and show a customer card and a summary.\n\n"
                            "Example: crm demo   (then: crm --db crm-demo.sqlite customer list)"))
def demo(
    force: Annotated[bool, typer.Option("--force", help=_("Replace an existing demo store."))] = False,
) -> None:
    from crmcli.cli import demo as demo_cli

    demo_cli.run(force=force)


# Command groups: (name, module in crmcli.cli), imported and built on first use (CrmGroup). Modules import
# only typer and i18n at load time, so `crm --help` never loads SQLAlchemy (a test guards this).
GROUPS: list[tuple[str, str]] = [
    ("customer", "customer"),
    ("purchase", "purchase"),
    ("card", "card"),
    ("config", "config"),
    ("points", "points"),
    ("tier", "tier"),
    ("survey", "survey"),
    ("feedback", "feedback"),
    ("report", "report"),
    ("care", "care"),
    ("churn", "churn"),
    ("import", "importer"),
    ("export", "exporter"),
    ("db", "db"),
]


def _build_group(name: str, sub: typer.Typer) -> Any:
    """The Click group that ``app.add_typer(sub, name=name)`` would have put in the tree, with --headers."""
    from typer.main import get_group_from_info

    from crmcli.cli.headers import install_below

    group = get_group_from_info(typer_info(sub, name), pretty_exceptions_short=app.pretty_exceptions_short,
                                rich_markup_mode=app.rich_markup_mode, suggest_commands=app.suggest_commands)
    install_below(group)
    return group


def main() -> None:  # pragma: no cover - kept for `python -c 'from crmcli.cli.app import main'`
    from crmcli.cli.entry import main as entry_main

    entry_main()
