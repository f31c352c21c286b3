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
    rows = [{"key": k, "value": v, "help": _(settings.SPECS[k].help)} for k, v in values.items()]
    emit(rows, [Column("key", _("Setting")), Column("value", _("Value")), Column("help", _("Meaning"))], fmt, Units())


@app.command("get", help=_("Print one setting's value.\n\nExample: crm config get currency"))
def get(key: Annotated[str, typer.Argument(help=_("The setting's name."))]) -> None:
    import json

    from crmcli.core import settings

    with state().store().read() as session:
        value = settings.get(session, key)
    typer.echo(value if isinstance(value, str) else json.dumps(value))


@app.command("set", help=_("Change one setting.\n\nExample: crm config set phone.region CN"))
def set_(key: Annotated[str, typer.Argument(help=_("The setting's name."))],
         value: Annotated[str, typer.Argument(help=_("The new value."))]) -> None:
    from crmcli.core import settings

    with state().store().write() as session:
        parsed = settings.set_value(session, key, value)
    info(_("{key} = {value}").format(key=key, value=parsed))
