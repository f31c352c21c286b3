"""`crm card`: the customer card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from crmcli.cli.common import AsOfOpt, info, masking, pick_customer, state, store_context
from crmcli.errors import UsageError
from crmcli.i18n import _

app = typer.Typer(help=_("The customer card: everything about a customer on one screen.\n\nExample: crm card show 王芳"),
                  no_args_is_help=True)


@app.command("show", help=_("Show a customer's card; save it as SVG or HTML; or print its data as JSON.\n\n"
                            "Example: crm card show C000001 --svg card.svg"))
def show(
    customer: Annotated[str, typer.Argument(help=_("The customer: id, code, phone, e-mail or name."), metavar="CUSTOMER")],
    svg: Annotated[Optional[Path], typer.Option("--svg", help=_("Also save the card as an SVG image."), dir_okay=False)] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help=_("Also save the card as an HTML page."), dir_okay=False)] = None,
    width: Annotated[Optional[int], typer.Option("--width", min=40, max=300, help=_("Width in columns (default: the terminal's)."))] = None,
    as_of: AsOfOpt = None,
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", metavar="FORMAT",
                                               help=_("table (the card; default) or json / jsonl (its data)."))] = None,
) -> None:
    from crmcli.cli.output import emit_record
    from crmcli.core import card as card_core

    with state().store().read() as session:
        ctx = store_context(session, as_of)
        record = pick_customer(session, customer, ctx, include_deleted=True)
        data = card_core.build_card(session, record, ctx)
        mask = masking(session)
    default = (state().format or "").lower()
    chosen = (fmt or (default if default in ("json", "jsonl") else "table")).lower()
    if chosen in ("json", "jsonl"):
        payload = card_core.card_json(data)
        if mask:
            card_core.mask_card_json(payload)
        emit_record(payload, chosen)
        return
    if chosen != "table":
        raise UsageError(_("The card prints as a table or as JSON, not as {format}.").format(format=chosen),
                         hint=_("Use --format json, or `crm customer list --format {format}` for rows.").format(format=chosen))
    from crmcli.core.files import write_private_text
    from crmcli.render.card import render_card
    from crmcli.render.console import stdout_console

    console = stdout_console(record=bool(svg or html), width=width)
    console.print(render_card(data, mask=mask))
    if svg:
        write_private_text(svg, console.export_svg(title=f"{data.customer['name']} {data.customer['code']}",
                                                   clear=False))
        info(_("Saved {path}").format(path=svg))
    if html:
        write_private_text(html, console.export_html(clear=False))
        info(_("Saved {path}").format(path=html))
