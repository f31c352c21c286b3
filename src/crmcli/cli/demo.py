"""`crm demo`: build a demo store and show what crmcli does."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from crmcli.cli.common import info, state
from crmcli.errors import Conflict
from crmcli.i18n import _

DEMO_FILE = "crm-demo.sqlite"


def _is_demo(path: Path) -> bool:
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM setting WHERE key = 'store.demo'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return bool(row and row[0] == "true")


def run(*, force: bool) -> None:
    from crmcli.core import customers, demo, settings, stores
    from crmcli.core.context import StoreContext

    st = state()
    path = Path(st.db or DEMO_FILE).expanduser().absolute()
    if path.exists():
        if not (_is_demo(path) or force and path.stat().st_size == 0):
            raise Conflict(_("{path} exists and is not a demo store; the demo never overwrites real data.").format(path=path),
                           hint=_("Run the demo in another folder or with --db demo.sqlite."))
        for suffix in ("", "-wal", "-shm"):
            try:
                os.remove(f"{path}{suffix}")
            except FileNotFoundError:
                pass
    result = stores.init_store(str(path), currency="CNY", region="CN", timezone="Asia/Shanghai")
    st._store = result.store
    with result.store.write() as session:
        settings.set_value(session, "store.demo", "true")
        ctx = StoreContext.load(session)
        counts = demo.load(session, ctx)
    info(_("Built a demo store at {path}: {customers} customers, {purchases} purchases, {interactions} interactions.").format(
        path=path, **counts))
    from crmcli.core import card as card_core
    from crmcli.render.card import render_card
    from crmcli.render.console import stdout_console

    console = stdout_console()
    with result.store.read() as session:
        ctx = StoreContext.load(session)
        featured = customers.resolve(session, "DEMO001", ctx)
        data = card_core.build_card(session, featured, ctx)
        top = customers.list_customers(session, customers.ListFilter(sort="spend", descending=True, limit=5), ctx)
    console.print(render_card(data))
    from crmcli.cli.customer import list_columns
    from crmcli.cli.output import Units, emit

    typer.echo(_("Top customers by spend:"))
    cols = [c for c in list_columns() if c.key in ("code", "name", "city", "orders", "net_spent", "last_purchase")]
    emit(top, cols, "table", Units(ctx.currency, ctx.tz))
    info(_("Explore it: crm --db {path} customer list   |   crm --db {path} card show 张伟").format(path=path))
