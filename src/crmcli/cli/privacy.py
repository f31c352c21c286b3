"""`crm customer data` and `crm customer forget`: privacy requests (registered on the customer group)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from crmcli.cli.common import YesOpt, confirm, info, state, store_context
from crmcli.i18n import _

CustomerArg = Annotated[str, typer.Argument(help=_("The customer: id, code, phone, e-mail or part of the name."),
                                            metavar="CUSTOMER")]

DATA_HELP = _("Everything stored about one person, as JSON (a subject-access request): record, contacts, consents, "
              "purchases, interactions, points, surveys, feedback, greetings and audit rows.\n\n"
              "Example: crm customer data C000001 --out ann.json")
FORGET_HELP = _("Erase one person: personal fields replaced, contacts and free text removed, the customer marked "
                "erased; purchases and points totals stay so reports do not change.\n\n"
                "Example: crm customer forget C000001 --yes")


def data(customer: CustomerArg,
         out: Annotated[Optional[str], typer.Option("--out", "-o", metavar="FILE",
                                                    help=_("Write the JSON to this new file (mode 0600) instead of stdout."))] = None) -> None:
    import json
    import os

    from crmcli.core.safety import privacy

    with state().store().read() as session:
        ctx = store_context(session)
        record = privacy.find_for_privacy(session, customer, ctx)
        doc = privacy.customer_data(session, record, ctx)
    text = json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        fd = os.open(out, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        from crmcli.errors import Conflict

        raise Conflict(_("{file} already exists.").format(file=out), hint=_("Choose another file name.")) from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    info(_("Wrote everything stored about {code} to {file}.").format(code=doc["customer"]["code"], file=out))


def forget(customer: CustomerArg, yes: YesOpt = False) -> None:
    from crmcli.cli.common import choose_customer
    from crmcli.core import customers
    from crmcli.core.safety import privacy

    from crmcli.errors import NotFound

    try:
        cid = choose_customer(customer, include_deleted=True)
    except NotFound:
        with state().store().read() as session:  # an erased one (by code or id) says so below
            cid = privacy.find_for_privacy(session, customer, store_context(session)).id  # type: ignore[assignment]
    with state().store().read() as session:
        label = customers.candidates(session, [cid])[0].label()
    confirm(_("Erase {customer} for good? This cannot be undone.").format(customer=label), yes)
    with state().store().write() as session:
        ctx = store_context(session)
        done = privacy.forget(session, customers.get(session, cid), ctx)
    info(_("Erased {code}: personal data removed ({n} audit rows stripped); purchases and points totals kept.")
         .format(code=done.code, n=done.audit_rows_stripped))
    typer.echo(done.code)
