"""`crm import`: customers, purchases and interactions from CSV/TSV (and customers from vCard), history, undo."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from crmcli.cli.common import (AsOfOpt, FormatOpt, LimitOpt, YesOpt, confirm, info, is_interactive, state, store_context,
                               warn)
from crmcli.i18n import _

app = typer.Typer(help=_("Import customers, purchases and interactions from CSV or vCard files; see and undo imports.\n\n"
                         "Example: crm import customers contacts.csv --dry-run"), no_args_is_help=True)

FileArg = Annotated[str, typer.Argument(help=_("The file (CSV, TSV or .vcf), or - for standard input."), metavar="FILE")]
ModeOpt = Annotated[str, typer.Option("--mode", help=_("create (new records only), upsert (update matches, create the rest) or update (matches only)."))]
MatchOpt = Annotated[str, typer.Option("--match", help=_("How rows find existing customers, tried in order: code, email, phone."))]
MapOpt = Annotated[Optional[list[str]], typer.Option("--map", help=_("\"CSV column=field\": read a column as this field (repeatable)."))]
IgnoreOpt = Annotated[Optional[list[str]], typer.Option("--ignore", help=_("A column not to import (repeatable)."))]
KeepExtraOpt = Annotated[bool, typer.Option("--keep-extra", help=_("Keep unknown columns as preferences (key = the column name)."))]
PresetOpt = Annotated[Optional[str], typer.Option("--preset", help=_("Column names of a known export: shopify, hubspot or khard."))]
EncodingOpt = Annotated[Optional[str], typer.Option("--encoding", help=_("The file's encoding (default: detected; e.g. utf-8, gb18030, utf-16)."))]
DelimiterOpt = Annotated[Optional[str], typer.Option("--delimiter", help=_("Column separator: ',', ';', tab or '|' (default: detected)."))]
DateFormatOpt = Annotated[Optional[str], typer.Option("--date-format", help=_("How the file writes dates, e.g. %d/%m/%Y or %m/%d/%Y (needed when day and month could be swapped)."))]
PartialOpt = Annotated[bool, typer.Option("--partial", help=_("Import the good rows even if some are rejected (still exits 5)."))]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help=_("Check everything and report, but write nothing."))]
RejectsOpt = Annotated[Optional[str], typer.Option("--rejects", help=_("Write the rejected rows, with the reason, to this CSV file."), metavar="FILE")]
AllowDupOpt = Annotated[bool, typer.Option("--allow-duplicate", help=_("Allow a phone or e-mail that another customer already has."))]


def _run(kind: str, file: str, *, mode: str = "create", match: str = "code,email,phone", map_: Optional[list[str]] = None,
         ignore: Optional[list[str]] = None, keep_extra: bool = False, preset: Optional[str] = None,
         encoding: Optional[str] = None, delimiter: Optional[str] = None, date_format: Optional[str] = None,
         partial: bool = False, dry_run: bool = False, rejects: Optional[str] = None, allow_duplicate: bool = False,
         as_of: Optional[str] = None, fmt: Optional[str] = None) -> None:
    from crmcli.core.io import csvread, importer, mapping, reading
    from crmcli.errors import InvalidInput, UsageError

    if mode not in importer.MODES:
        raise UsageError(_("'{value}' is not an import mode.").format(value=mode),
                         hint=_("Use one of: {choices}.").format(choices=", ".join(importer.MODES)))
    if kind != "customers" and mode != "create":
        raise UsageError(_("--mode {mode} is for customers; purchases and interactions are only added (a re-run "
                           "skips what is already there).").format(mode=mode))
    keys = tuple(k.strip().lower() for k in match.split(",") if k.strip())
    bad = [k for k in keys if k not in importer.MATCH_KEYS]
    if bad or not keys:
        raise UsageError(_("'{value}' is not a list of match keys.").format(value=match),
                         hint=_("Use code, email and/or phone, e.g. --match email,phone."))
    if date_format and "%" not in date_format:
        raise InvalidInput(_("'{value}' is not a date format.").format(value=date_format), field="--date-format",
                           value=date_format, hint=_("Write it with % codes, e.g. %d/%m/%Y or %m/%d/%Y."))
    source = csvread.open_source(file, encoding=encoding, delimiter=delimiter)
    try:
        plan: Optional[mapping.Plan] = None
        if reading.is_vcard(file, source):
            if kind != "customers":
                raise InvalidInput(_("vCard files hold customers; import them with `crm import customers`."),
                                   field="file", value=file)
            rows: Any = reading.VcardRows(source)
            headers = None
        else:
            stream, headers = reading.header(source)
            plan = mapping.plan(kind, headers, mapping=mapping.parse_map(map_ or [], kind), ignore=ignore,
                                preset_name=preset, keep_extra=keep_extra)
            if not plan.mapped():
                raise InvalidInput(_("No column of {file} is one crmcli knows ({columns}).").format(
                    file=source.name, columns=", ".join(headers)), field="file", value=file,
                    hint=_("Name the columns with --map \"Column=field\" or pick a --preset; see docs/import-export.md."))
            rows = reading.csv_rows(stream, plan)
        writer = reading.RejectsWriter(rejects, headers, source.delimiter) if rejects else None
        options = importer.Options(kind=kind, source=source.name, mode=mode, match=keys, partial=partial,
                                   dry_run=dry_run, date_format=date_format, allow_duplicate=allow_duplicate,
                                   input_bytes=source.size,
                                   extra={"preset": preset, "map": map_ or [], "ignore": ignore or [],
                                          "keep_extra": keep_extra, "encoding": source.encoding})
        result = importer.Result(kind=kind, source=source.name, mode=mode)
        if plan is not None:
            result.unknown_columns = plan.unknown
            result.ignored_columns = plan.ignored
        store = state().store()
        with _progress(source) as progress:
            try:
                result = importer.run(store, lambda s: store_context(s, as_of), iter(rows),
                                      _handler_factory(kind, plan, options), options,
                                      on_reject=writer, progress=progress, result=result)
            finally:
                if writer is not None:
                    writer.close()
    finally:
        source.text.close()
    _report(result, fmt, rejects)


def _handler_factory(kind: str, plan: Any, options: Any) -> Any:
    if kind == "customers":
        from crmcli.core.io.import_customers import CustomerHandler as Handler
    elif kind == "purchases":
        from crmcli.core.io.import_purchases import PurchaseHandler as Handler  # type: ignore[assignment]
    else:
        from crmcli.core.io.import_interactions import InteractionHandler as Handler  # type: ignore[assignment]
    return lambda session, ctx, run_id: Handler(session, ctx, run_id, plan, options)


class _progress:
    """A Rich progress bar on stderr while the file is read, only when stderr is a terminal."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not sys.stderr.isatty() or state().quiet:
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        from crmcli.render.console import stderr_console

        self.bar = Progress(TextColumn(_("Importing")), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                            TextColumn(_("{task.fields[rows]} rows")), console=stderr_console(), transient=True)
        self.bar.start()
        task = self.bar.add_task("import", total=self.source.size, rows=0)

        def update(rows: int) -> None:
            raw = self.source.raw
            self.bar.update(task, completed=raw.consumed if raw is not None else None, rows=rows)
        return update

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def _report(result: Any, fmt: Optional[str], rejects_file: Optional[str]) -> None:
    from crmcli.cli.output import Column, Units, choose_format, emit, emit_record
    from crmcli.errors import InvalidInput

    chosen = choose_format(fmt)
    if chosen in ("json", "jsonl"):
        emit_record(result.to_json(), chosen)
    else:
        columns = [Column(k, label, "int" if k not in ("kind", "source", "mode") else "text") for k, label in (
            ("kind", _("Kind")), ("source", _("File")), ("mode", _("Mode")), ("read", _("Read")),
            ("created", _("Created")), ("updated", _("Updated")), ("unchanged", _("Unchanged")),
            ("rejected", _("Rejected")), ("skipped", _("Skipped")))]
        columns.insert(0, Column("import_id", _("Import"), "int"))
        row = {**result.counts(), "kind": result.kind, "source": result.source, "mode": result.mode,
               "import_id": result.run_id if result.committed else None}
        emit([row], columns, chosen, Units())
    if result.unknown_columns:
        info(_("Columns not imported (unknown): {columns}. Map them with --map \"Column=field\", keep them with "
               "--keep-extra, or silence them with --ignore.").format(columns=", ".join(result.unknown_columns)))
    for reject in result.rejects[:20]:
        where = _("line {line}").format(line=reject.line)
        if reject.column:
            where += f", {reject.column}"
        value = f" '{reject.value}'" if reject.value not in (None, "") else ""
        typer.echo(f"  {where}{value}: {reject.reason}", err=True)
    if result.rejected > 20:
        typer.echo("  " + _("... and {n} more rejected rows.").format(n=result.rejected - 20), err=True)
    if rejects_file and result.rejected:
        info(_("Rejected rows, with the reason, are in {file}: fix them and import that file.").format(file=rejects_file))
    if result.dry_run:
        info(_("Dry run: nothing was written."))
    elif result.committed:
        info(_("Import #{id} done. See it with `crm import history`; `crm import undo {id}` removes what it created.")
             .format(id=result.run_id))
    if result.rejected:
        if result.committed:
            message = _("{n} of {total} rows were rejected; the other rows were imported (--partial).")
        elif result.dry_run:
            message = _("{n} of {total} rows would be rejected.")
        else:
            message = _("{n} of {total} rows were rejected, so nothing was imported.")
        raise InvalidInput(message.format(n=result.rejected, total=result.read), field="file",
                           hint=_("Fix the rows listed above (see --rejects FILE) and import again, or pass --partial "
                                  "to import the good rows.") if not result.committed else None)


@app.command("customers", help=_("Import customers from a CSV/TSV file or a vCard (.vcf) file.\n\n"
                                 "Example: crm import customers 客户.csv --mode upsert --match phone,email --rejects bad.csv"))
def customers(file: FileArg, mode: ModeOpt = "create", match: MatchOpt = "code,email,phone", map_: MapOpt = None,
              ignore: IgnoreOpt = None, keep_extra: KeepExtraOpt = False, preset: PresetOpt = None,
              encoding: EncodingOpt = None, delimiter: DelimiterOpt = None, date_format: DateFormatOpt = None,
              partial: PartialOpt = False, dry_run: DryRunOpt = False, rejects: RejectsOpt = None,
              allow_duplicate: AllowDupOpt = False, as_of: AsOfOpt = None, fmt: FormatOpt = None) -> None:
    _run("customers", file, mode=mode, match=match, map_=map_, ignore=ignore, keep_extra=keep_extra, preset=preset,
         encoding=encoding, delimiter=delimiter, date_format=date_format, partial=partial, dry_run=dry_run,
         rejects=rejects, allow_duplicate=allow_duplicate, as_of=as_of, fmt=fmt)


@app.command("purchases", help=_("Import sales and refunds from a CSV/TSV file; rows whose order ref is already "
                                 "recorded are skipped, so a re-run changes nothing.\n\n"
                                 "Example: crm import purchases orders.csv --date-format %d/%m/%Y"))
def purchases(file: FileArg, map_: MapOpt = None, ignore: IgnoreOpt = None, encoding: EncodingOpt = None,
              delimiter: DelimiterOpt = None, date_format: DateFormatOpt = None, partial: PartialOpt = False,
              dry_run: DryRunOpt = False, rejects: RejectsOpt = None, as_of: AsOfOpt = None,
              fmt: FormatOpt = None) -> None:
    _run("purchases", file, map_=map_, ignore=ignore, encoding=encoding, delimiter=delimiter,
         date_format=date_format, partial=partial, dry_run=dry_run, rejects=rejects, as_of=as_of, fmt=fmt)


@app.command("interactions", help=_("Import interactions (calls, visits, messages) from a CSV/TSV file.\n\n"
                                    "Example: crm import interactions calls.csv"))
def interactions(file: FileArg, map_: MapOpt = None, ignore: IgnoreOpt = None, encoding: EncodingOpt = None,
                 delimiter: DelimiterOpt = None, date_format: DateFormatOpt = None, partial: PartialOpt = False,
                 dry_run: DryRunOpt = False, rejects: RejectsOpt = None, as_of: AsOfOpt = None,
                 fmt: FormatOpt = None) -> None:
    _run("interactions", file, map_=map_, ignore=ignore, encoding=encoding, delimiter=delimiter,
         date_format=date_format, partial=partial, dry_run=dry_run, rejects=rejects, as_of=as_of, fmt=fmt)


@app.command("history", help=_("List past imports, newest first.\n\nExample: crm import history --limit 5"))
def history(limit: LimitOpt = None, fmt: FormatOpt = None) -> None:
    from crmcli.cli.output import Column, Units, emit
    from crmcli.core.io import importer

    with state().store().read() as session:
        ctx = store_context(session)
        rows = importer.history(session, limit=limit)
    columns = [Column("id", _("ID"), "int"), Column("started_at", _("Started"), "datetime"),
               Column("kind", _("Kind")), Column("source", _("File")), Column("mode", _("Mode")),
               Column("read", _("Read"), "int"), Column("created", _("Created"), "int"),
               Column("updated", _("Updated"), "int"), Column("unchanged", _("Unchanged"), "int"),
               Column("rejected", _("Rejected"), "int"), Column("skipped", _("Skipped"), "int"),
               Column("status", _("Status")), Column("undone_at", _("Undone"), "datetime"),
               Column("finished_at", _("Finished"), "datetime"), Column("actor", _("By")),
               Column("undo_removed", _("Undo removed"), "int"), Column("undo_kept", _("Undo kept"), "int")]
    emit(rows, columns, fmt, Units(ctx.currency, ctx.tz), empty_message=_("No imports yet."))


@app.command("undo", help=_("Remove what one import created (refused if those records were changed or used since).\n\n"
                            "Example: crm import undo 3 --yes"))
def undo(import_id: Annotated[int, typer.Argument(help=_("The import's number (see `crm import history`)."), metavar="ID")],
         yes: YesOpt = False) -> None:
    from crmcli.core.io import importer, undo as undo_core

    with state().store().read() as session:
        runs = [r for r in importer.history(session) if r["id"] == import_id]
    if runs and is_interactive() and not yes:
        r = runs[0]
        confirm(_("Remove the {n} {kind} created by import #{id} ({file})?").format(
            n=r["created"], kind=r["kind"], id=import_id, file=r["source"]), yes)
    elif not yes:
        confirm(_("Undo import #{id}?").format(id=import_id), yes)
    finished = [d for d in state().recovered if d.undo and d.run_id == import_id]
    if finished:  # an earlier undo of it was killed, and opening the store has just finished it
        info(_("Import #{id} undone: {n} {kind} removed.").format(id=import_id, n=finished[0].removed,
                                                                   kind=finished[0].kind))
        return
    # In steps, each its own short transaction: other commands get the store in between (core/io/undo.py).
    done = undo_core.undo(state().store(), import_id)
    info(_("Import #{id} undone: {n} {kind} removed.").format(id=import_id, n=done["removed"], kind=done["kind"]))
    if done["kept"]:
        warn(_("{n} of its records were used or changed by other commands while the undo ran and were kept: "
               "{ids} (see `crm db audit`).").format(n=len(done["kept"]), ids=", ".join(map(str, done["kept"][:20]))
                                                    + (" …" if len(done["kept"]) > 20 else "")))
