"""`crm config`: the settings kept in the store."""

from __future__ import annotations

from typing import Annotated

import typer

from crmcli.cli.common import FormatOpt, info, state
from crmcli.i18n import _

app = typer.Typer(help=_("Show and change the settings kept in the store.\n\nExample: crm config set currency CNY"),
                  no_args_is_help=True)


@app.command("list", help=_("List all settings with their values.\n\nExample: crm config list --format json"))
def list_(fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Column, Units, emit
    from crmcli.core import settings

    with state().store().read() as session:
        values = settings.get_many(session)
    # "help" stays English in JSON/CSV (the same bytes in every language) and is translated in tables
    rows = [{"key": k, "value": v, "help": settings.SPECS[k].help} for k, v in values.items()]
    emit(rows, [Column("key", _("Setting")), Column("value", _("Value")), Column("help", _("Meaning"), "message")],
         fmt, Units())


def _text(value: object) -> str:
    """A setting's value as `config get` prints it: strings bare, anything else as JSON (true, 3, [..])."""
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@app.command("get", help=_("Print one setting's value.\n\nExample: crm config get currency"))
def get(key: Annotated[str, typer.Argument(help=_("The setting's name."))]) -> None:
    from crmcli.core import settings

    with state().store().read() as session:
        value = settings.get(session, key)
    typer.echo(_text(value))


@app.command("set", help=_("Change one setting.\n\nExample: crm config set phone.region CN"))
def set_(key: Annotated[str, typer.Argument(help=_("The setting's name."))],
         value: Annotated[str, typer.Argument(help=_("The new value."))],
         force: Annotated[bool, typer.Option("--force", help=_("Change the currency although amounts are recorded (they are not converted)."))] = False) -> None:
    from crmcli.core import settings

    with state().store().write() as session:
        if key == "currency":
            _check_currency_change(session, value, force)
        parsed = settings.set_value(session, key, value)
    info(_("{key} = {value}").format(key=key, value=_text(parsed)))


def _check_currency_change(session: object, text: str, force: bool) -> None:
    """Amounts are stored in minor units of the store's currency: relabelling them is refused once any are
    recorded (a different number of decimals would change every amount), unless --force with the same
    number of decimals."""
    from sqlalchemy import func, select

    from crmcli.core import money, settings
    from crmcli.errors import Conflict
    from crmcli.store.models import Purchase

    old = settings.get(session, "currency")  # type: ignore[arg-type]
    new = text.strip().upper()
    if new == old or not money.is_known_currency(new):
        return  # nothing changes, or settings.set_value rejects the code with its own message
    count = session.execute(select(func.count()).select_from(Purchase.__table__)).scalar()  # type: ignore[attr-defined]
    if not count:
        return
    if money.precision(new) != money.precision(old):
        raise Conflict(_("The store holds {n} amounts in {old}; {new} has {digits} decimals instead of {old_digits}, "
                         "so every amount would change.").format(n=count, old=old, new=new, digits=money.precision(new),
                                                                 old_digits=money.precision(old)),
                       hint=_("Keep {old}, or start a new store for {new}.").format(old=old, new=new))
    if not force:
        raise Conflict(_("The store holds {n} amounts in {old}; changing the currency relabels them as {new} "
                         "without converting them.").format(n=count, old=old, new=new),
                       hint=_("Pass --force if the amounts really are in {new}.").format(new=new))
