"""`crm db`: encryption at rest, the audit trail, backups, restore and checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from crmcli.cli.common import FormatOpt, LimitOpt, YesOpt, confirm, info, state
from crmcli.i18n import _

app = typer.Typer(help=_("Keep the store safe: encryption, audit trail, backups and checks.\n\n"
                         "Example: crm db backup --keep 7"), no_args_is_help=True)

KeyFileOpt = Annotated[Optional[str], typer.Option(
    "--key-file", metavar="FILE", help=_("Read the key from this file (mode 0600) instead of the keyring or CRM_DB_KEY."))]


def _location() -> str | None:
    return state().db


@app.command("encrypt", help=_("Encrypt the store file (SQLCipher). The key comes from --key-file or CRM_DB_KEY; "
                               "without either a new random key is made and kept in the system keyring.\n\n"
                               "Example: crm db encrypt"))
def encrypt(key_file: KeyFileOpt = None) -> None:
    from crmcli.core.safety import encryption

    state().close()
    outcome = encryption.encrypt(_location(), key_file)
    info(_("Encrypted {path} ({tables} tables, {rows} rows checked); the key is in {origin}.").format(
        path=outcome.converted.path, tables=outcome.converted.tables, rows=outcome.converted.rows,
        origin=outcome.key_origin))
    info(_("Keep a copy of the key somewhere safe: without it the store cannot be read."))


@app.command("decrypt", help=_("Turn an encrypted store back into a plain SQLite file.\n\nExample: crm db decrypt"))
def decrypt(key_file: KeyFileOpt = None) -> None:
    from crmcli.core.safety import encryption

    state().close()
    done = encryption.decrypt(_location(), key_file)
    info(_("Decrypted {path} ({tables} tables, {rows} rows checked).").format(
        path=done.path, tables=done.tables, rows=done.rows))


@app.command("rekey", help=_("Re-encrypt the store with a new key: from --new-key-file, else a new random key kept "
                             "in the system keyring.\n\nExample: crm db rekey --new-key-file new.key"))
def rekey(key_file: KeyFileOpt = None,
          new_key_file: Annotated[Optional[str], typer.Option(
              "--new-key-file", metavar="FILE", help=_("The new key, in a file of mode 0600."))] = None) -> None:
    from crmcli.core.safety import encryption

    state().close()
    outcome = encryption.rekey(_location(), key_file, new_key_file)
    info(_("Re-encrypted {path} ({tables} tables, {rows} rows checked); the new key is in {origin}.").format(
        path=outcome.converted.path, tables=outcome.converted.tables, rows=outcome.converted.rows,
        origin=outcome.key_origin))


@app.command("audit", help=_("Show the audit trail (oldest first), or check its hash chain with --verify.\n\n"
                             "Example: crm db audit C000001 --since 30d"))
def audit_(
    customer: Annotated[Optional[str], typer.Argument(help=_("Only this customer's rows (code, phone, e-mail, name)."))] = None,
    since: Annotated[Optional[str], typer.Option("--since", metavar="DATE", help=_("Only rows from this day on."))] = None,
    verify: Annotated[bool, typer.Option("--verify", help=_("Check the hash chain; exit 1 naming the first broken row."))] = False,
    limit: LimitOpt = None,
    fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.common import parse_day, store_context
    from crmcli.cli.output import Column, Units, emit
    from crmcli.core import audit
    from crmcli.core.clock import start_of_day_utc
    from crmcli.core.safety import audit_view, check, privacy
    from crmcli.errors import CrmError

    with state().store().read() as session:
        ctx = store_context(session)
        if verify:
            result = check.audit_chain(session)
            count, last = audit.head(session)
            if not result.ok:
                raise CrmError(_("The audit trail is {detail}.").format(detail=result.detail),
                               hint=_("Compare with a backup (crm db restore) to see what was changed."))
            emit([{"rows": count, "head": last, "intact": True}],
                 [Column("intact", _("Intact"), "bool"), Column("rows", _("Rows"), "int"), Column("head", _("Head hash"))],
                 fmt, Units(ctx.currency, ctx.tz))
            return
        cid = None
        if customer is not None:
            cid = privacy.find_for_privacy(session, customer, ctx).id  # erased ones by code too
        day = parse_day(since, ctx, "--since")
        start = start_of_day_utc(day, ctx.tz) if day else None
        rows = list(audit_view.entries(session, customer_id=cid, since=start, limit=limit))
    import json

    for r in rows:
        for key in ("before", "after"):
            r[key] = None if r[key] is None else json.dumps(r[key], ensure_ascii=False, sort_keys=True)
    columns = [Column("id", _("#"), "int"), Column("at", _("When"), "datetime"), Column("actor", _("Who")),
               Column("command", _("Command")), Column("entity", _("Entity")), Column("entity_id", _("Id"), "int"),
               Column("customer", _("Customer"), source="customer_code"), Column("action", _("Action")),
               Column("before", _("Before")), Column("after", _("After")), Column("hash", _("Hash"))]
    emit(rows, columns, fmt, Units(ctx.currency, ctx.tz), empty_message=_("No audit rows match."))


@app.command("backup", help=_("Copy the store with SQLite's online backup (safe while others write), check the copy "
                              "and name it with the time. DEST is a folder (default: STORE-backups beside the store) "
                              "or a new file name.\n\nExample: crm db backup /mnt/usb/crm --keep 14"))
def backup_(
    dest: Annotated[Optional[str], typer.Argument(help=_("A folder for a timestamped copy, or a new file name."))] = None,
    keep: Annotated[Optional[int], typer.Option("--keep", metavar="N", help=_("Then delete all but the N newest timestamped backups in that folder."))] = None,
) -> None:
    from crmcli.core.safety import backup

    result = backup.backup(state().store(), dest, keep)
    info(_("Backed up to {path} ({size} bytes, {kind}, integrity ok).").format(
        path=result.path, size=result.size, kind=_("encrypted") if result.encrypted else _("not encrypted")))
    for p in result.pruned:
        info(_("Deleted the old backup {path}.").format(path=p))
    typer.echo(str(result.path))


@app.command("restore", help=_("Replace the store by a backup, after checking the backup. The current file is kept "
                               "as STORE-backups/STORE-<time>-pre-restore.sqlite.\n\n"
                               "Example: crm db restore shop-backups/shop-20240615-103000.sqlite --yes"))
def restore_(
    src: Annotated[str, typer.Argument(help=_("The backup file."))],
    yes: YesOpt = False,
) -> None:
    from crmcli.core.safety import backup
    from crmcli.store.engine import default_location
    from crmcli.store.keys import key_file_option

    location = _location() or default_location()
    if "://" in location:
        from crmcli.core.safety.server import servers_job

        raise servers_job(_("Restoring a database server's store"), state().store().location)
    target = Path(location).expanduser().absolute()
    source = Path(src).expanduser().absolute()
    # Checked before the question, so nobody confirms a restore that would be refused anyway.
    backup.verify_file(source, target, key_file_option.get())
    confirm(_("Replace the store {path} by the backup {src}?").format(path=target, src=source), yes)
    state().close()
    done = backup.restore(target, source, key_file_option.get())
    if done.kept:
        info(_("The replaced store was kept as {path}.").format(path=done.kept))
    info(_("Restored {path} from {src}.").format(path=done.path, src=source))
    # Opened once now, so a backup from an older crmcli is migrated before anyone else uses it.
    state().store()


@app.command("check", help=_("Check the store: file integrity, foreign keys, the audit chain (and, encrypted, every "
                             "page's authentication). Exit 1 naming what is wrong.\n\nExample: crm db check"))
def check_(fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Column, Units, emit
    from crmcli.core.safety import check
    from crmcli.errors import CrmError

    results = check.run(state().store())
    emit([{"check": c.name, "ok": c.ok, "detail": c.detail} for c in results],
         [Column("check", _("Check")), Column("ok", _("OK"), "bool"), Column("detail", _("Detail"))], fmt, Units())
    failed = [c for c in results if not c.ok]
    if failed:
        raise CrmError(_("The store {path} failed {checks}: {details}.").format(
            path=state().store().location, checks=", ".join(c.name for c in failed),
            details="; ".join(c.detail for c in failed)),
            hint=_("Restore a good backup with `crm db restore`, or see docs/data-safety.md."))


@app.command("copy", help=_("Copy the whole store into a new one (SQLite file <-> PostgreSQL, either way), then "
                            "check every table's row count and the audit chain; the source is not changed.\n\n"
                            "Example: crm db copy --to postgresql+psycopg://shop@dbhost/crm"))
def copy_(
    to: Annotated[str, typer.Option("--to", metavar="URL|FILE", help=_("The new store: a PostgreSQL URL (an empty database) or a new file."))],
    fmt: FormatOpt = None,
) -> None:
    from crmcli.cli.output import Column, Units, emit
    from crmcli.core.safety.copy import copy_store

    result = copy_store(state().store(), to)
    emit([{"table": t.table, "source_rows": t.source, "copied_rows": t.target} for t in result.tables],
         [Column("table", _("Table")), Column("source_rows", _("Source rows"), "int"),
          Column("copied_rows", _("Copied rows"), "int")], fmt, Units())
    info(_("Copied {rows} rows in {tables} tables to {target} in {seconds:.1f} s; every count matches and the audit "
           "chain verifies.").format(rows=result.rows, tables=len(result.tables), target=result.target,
                                     seconds=result.seconds))
