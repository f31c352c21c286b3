"""`crm export`: customers (CSV or vCard), purchases and interactions, with the filters of the list commands."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Optional, TextIO

import typer

from crmcli.cli.purchase_filters import (CategoryFilter, ChannelFilter, CustomerFilter, KindFilter, ProductFilter,
                                         SinceFilter, UntilFilter, purchase_query)
from crmcli.cli.customer_filters import (BirthdayMonthFilter, CityFilter, CreatedSinceFilter, CreatedUntilFilter,
                                         DeletedFilter, DescOpt, DueFilter, LevelFilter, SegmentFilter, SortOpt,
                                         SourceFilter, StageFilter, TagFilter, TierFilter)
from crmcli.cli.common import AsOfOpt, LimitOpt, info, masking, parse_day, pick_customer, state, store_context
from crmcli.i18n import _

app = typer.Typer(help=_("Export customers, purchases and interactions as CSV (customers also as vCard).\n\n"
                         "Example: crm export customers customers.csv --tag vip --bom"), no_args_is_help=True)

OutArg = Annotated[Optional[str], typer.Argument(help=_("The file to write (default: standard output)."), metavar="FILE")]
BomOpt = Annotated[bool, typer.Option("--bom", help=_("Start the file with a UTF-8 byte-order mark (for Excel)."))]
EncodingOpt = Annotated[str, typer.Option("--encoding", help=_("Encoding of the file: utf-8 (default), gbk, gb18030, utf-16 ..."))]
DelimiterOpt = Annotated[str, typer.Option("--delimiter", help=_("Column separator: ',' (default), ';', tab or '|'."))]
MaskOpt = Annotated[bool, typer.Option("--mask", help=_("Partly hide phones and e-mails (also on with the global --mask or privacy.mask)."))]


@contextmanager
def _output(path: Optional[str], encoding: str, bom: bool) -> Iterator[TextIO]:
    """stdout, or FILE written through a temporary file that replaces FILE only when the export completed."""
    import codecs

    from crmcli.errors import InvalidInput

    try:
        enc = codecs.lookup(encoding).name  # written as asked: 'gbk' is GBK, which Excel in China reads
    except LookupError:
        raise InvalidInput(_("'{value}' is not an encoding Python knows.").format(value=encoding), field="encoding",
                           value=encoding, hint=_("Use e.g. utf-8, gbk, gb18030, utf-16.")) from None
    if bom:
        if enc not in ("utf-8", "utf-8-sig"):
            raise InvalidInput(_("--bom is for UTF-8 files."), field="--bom", value=encoding,
                               hint=_("Leave out --encoding, or --bom."))
        enc = "utf-8-sig"
    try:
        if path is None or path == "-":
            stream = sys.stdout
            if enc == "utf-8-sig":
                stream.write("\ufeff")
            elif enc != "utf-8" and hasattr(stream, "reconfigure"):
                stream.reconfigure(encoding=enc)
            yield stream
            stream.flush()
            return
        from crmcli.core.files import private_file

        with private_file(path, encoding=enc, newline="") as out:  # 0600, complete or absent
            yield out
    except UnicodeEncodeError as e:
        bad = e.object[e.start:e.end] if isinstance(e.object, str) else "?"
        raise InvalidInput(_("'{char}' cannot be written in {encoding}.").format(char=bad, encoding=enc),
                           field="--encoding", value=encoding,
                           hint=_("Export as UTF-8 (the default, --bom for Excel) to keep every character.")) from None


def _delimiter(value: str) -> str:
    from crmcli.core.io.csvread import parse_delimiter

    return parse_delimiter(value)


def _done(count: int, what: str, path: Optional[str]) -> None:
    if path:
        info(_("Exported {n} {what} to {file}.").format(n=count, what=what, file=path))
    else:
        info(_("Exported {n} {what}.").format(n=count, what=what))


@app.command("customers", help=_("Export customers with every phone, e-mail, tag, consent and preference, filtered "
                                 "like `crm customer list`; --vcf writes vCards.\n\n"
                                 "Example: crm export customers vip.csv --tag vip --city 上海"))
def customers(
    file: OutArg = None,
    tag: TagFilter = None, city: CityFilter = None, source: SourceFilter = None,
    created_since: CreatedSinceFilter = None, created_until: CreatedUntilFilter = None,
    birthday_month: BirthdayMonthFilter = None, due: DueFilter = False, deleted: DeletedFilter = False,
    tier: TierFilter = None, segment: SegmentFilter = None, stage: StageFilter = None, level: LevelFilter = None,
    sort: SortOpt = "code", desc: DescOpt = False,
    limit: LimitOpt = None, as_of: AsOfOpt = None,
    vcf: Annotated[bool, typer.Option("--vcf", help=_("Write vCards instead of CSV."))] = False,
    vcard_version: Annotated[str, typer.Option("--vcard-version", help=_("vCard version: 4.0 (default) or 3.0."))] = "4.0",
    bom: BomOpt = False, encoding: EncodingOpt = "utf-8", delimiter: DelimiterOpt = ",", mask: MaskOpt = False,
) -> None:
    from crmcli.cli.customer_filters import build_filter
    from crmcli.core.io import exporter, vcard
    from crmcli.errors import UsageError

    if vcard_version not in ("3.0", "4.0"):
        raise UsageError(_("'{value}' is not a vCard version.").format(value=vcard_version), hint=_("Use 3.0 or 4.0."))
    sep = _delimiter(delimiter)
    with state().store().read() as session:
        ctx = store_context(session, as_of)
        flt = build_filter(ctx, tag=tag, city=city, source=source, created_since=created_since,
                           created_until=created_until, birthday_month=birthday_month, due=due, deleted=deleted,
                           sort=sort, desc=desc, limit=limit, tier=tier, segment=segment, stage=stage, level=level)
        hide = mask or masking(session)
        records = exporter.customer_records(session, flt, ctx, mask=hide)
        with _output(file, encoding, bom) as out:
            if vcf:
                count = vcard.write_cards(exporter.vcard_records(records), out, version=vcard_version)
            else:
                count = exporter.write_csv(out, exporter.CUSTOMER_COLUMNS, records, sep)
    if hide:
        info(_("Phones and e-mails are masked: this file cannot be imported back as it is."))
    _done(count, _("customers"), file)


def _customer_id(session: Any, ref: Optional[str], ctx: Any) -> Optional[int]:
    return pick_customer(session, ref, ctx, include_deleted=True).id if ref else None


@app.command("purchases", help=_("Export purchases and refunds (oldest first), filtered like `crm purchase list`.\n\n"
                                 "Example: crm export purchases q1.csv --since 2024-01-01 --until 2024-03-31"))
def purchases(
    file: OutArg = None,
    customer: CustomerFilter = None, since: SinceFilter = None, until: UntilFilter = None,
    category: CategoryFilter = None, channel: ChannelFilter = None, product: ProductFilter = None,
    kind: KindFilter = None,
    limit: LimitOpt = None, as_of: AsOfOpt = None,
    bom: BomOpt = False, encoding: EncodingOpt = "utf-8", delimiter: DelimiterOpt = ",",
) -> None:
    from crmcli.core import purchases as core
    from crmcli.core.io import exporter

    sep = _delimiter(delimiter)
    with state().store().read() as session:
        ctx = store_context(session, as_of)
        rows = core.iter_purchases(session, ctx, descending=False, **purchase_query(
            session, ctx, customer=customer, since=since, until=until, category=category, channel=channel,
            product=product, kind=kind, limit=limit))
        with _output(file, encoding, bom) as out:
            count = exporter.write_csv(out, exporter.PURCHASE_COLUMNS, exporter.purchase_records(rows, session, ctx), sep)
    _done(count, _("purchases"), file)


@app.command("interactions", help=_("Export interactions (oldest first): calls, visits, messages.\n\n"
                                    "Example: crm export interactions --customer C000001 --since 90d"))
def interactions(
    file: OutArg = None,
    customer: CustomerFilter = None, since: SinceFilter = None, until: UntilFilter = None,
    channel: Annotated[Optional[str], typer.Option(help=_("Only this channel: phone, email, sms, wechat, visit, social, other."))] = None,
    limit: LimitOpt = None, as_of: AsOfOpt = None,
    bom: BomOpt = False, encoding: EncodingOpt = "utf-8", delimiter: DelimiterOpt = ",",
) -> None:
    from crmcli.core.customers import parse_channel
    from crmcli.core.io import exporter

    sep = _delimiter(delimiter)
    with state().store().read() as session:
        ctx = store_context(session, as_of)
        records = exporter.interaction_records(
            session, ctx, customer_id=_customer_id(session, customer, ctx), since=parse_day(since, ctx, "--since"),
            until=parse_day(until, ctx, "--until"), channel=parse_channel(channel) if channel else None, limit=limit)
        with _output(file, encoding, bom) as out:
            count = exporter.write_csv(out, exporter.INTERACTION_COLUMNS, records, sep)
    _done(count, _("interactions"), file)

