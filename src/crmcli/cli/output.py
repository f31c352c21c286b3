"""One renderer for every list and report: table | json | jsonl | csv | tsv | markdown.

Commands build rows (dicts) and a list of Columns, then call ``emit``. JSON/CSV keys are the columns'
``key`` and never change with the interface language; only table/markdown headings are translated.
Money leaves here as a decimal string in machine formats ('12.50') and with its symbol in tables;
times as ISO 8601 in the store's zone.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from crmcli.cli.common import FORMATS, state
from crmcli.errors import UsageError
from crmcli.i18n import Joined, Message, _, shown


@dataclass(frozen=True)
class Column:
    key: str  # the machine name (JSON key, CSV header)
    label: str  # the translated heading for people
    kind: str = "text"  # text | int | money | date | datetime | list | bool | contact | message
    source: str | None = None  # the row key, when it differs from ``key``
    justify: str | None = None


@dataclass(frozen=True)
class Units:
    currency: str = "USD"
    tz: ZoneInfo = ZoneInfo("UTC")
    mask: bool = False


def choose_format(fmt: str | None) -> str:
    chosen = (fmt or state().format or ("table" if sys.stdout.isatty() else "tsv")).lower()
    if chosen not in FORMATS:
        raise UsageError(_("Unknown format '{format}'.").format(format=chosen),
                         hint=_("Use one of: {formats}.").format(formats=", ".join(FORMATS)))
    return chosen


def machine_value(value: Any, column: Column, units: Units) -> Any:
    """JSON-ready value with a stable type: money as decimal string, dates/times ISO, lists as lists."""
    if value is None:
        return None
    if column.kind == "money":
        from crmcli.core.money import money_str

        return money_str(int(value), units.currency)
    if column.kind == "datetime" and isinstance(value, datetime):
        from crmcli.core.clock import utc_to_local

        return utc_to_local(value, units.tz).isoformat(timespec="seconds")
    if column.kind == "contact" and units.mask:
        from crmcli.core.contacts import mask_email, mask_phone

        return mask_email(value) if "@" in str(value) else mask_phone(str(value))
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (list, tuple)):
        return list(value)
    return value


def text_value(value: Any, column: Column, units: Units) -> str:
    """Human cell text for tables and markdown."""
    if value is None:
        return ""
    if isinstance(value, (Message, Joined)):
        return value.translated()
    if column.kind == "money":
        from crmcli.core.money import format_money

        return format_money(int(value), units.currency)
    if column.kind == "datetime" and isinstance(value, datetime):
        from crmcli.core.clock import utc_to_local

        return utc_to_local(value, units.tz).strftime("%Y-%m-%d %H:%M")
    if column.kind == "bool":
        return _("yes") if value else _("no")
    if column.kind == "message":  # an English msgid kept as data in JSON/CSV, translated for people
        return _(str(value))
    machine = machine_value(value, column, units)
    if isinstance(machine, list):
        return ", ".join(shown(v) for v in machine)
    return str(machine)


def flat_value(value: Any, column: Column, units: Units) -> str:
    """CSV/TSV cell: the machine value, lists joined with '; ', booleans as true/false."""
    machine = machine_value(value, column, units)
    if machine is None:
        return ""
    if isinstance(machine, bool):
        return "true" if machine else "false"
    if isinstance(machine, list):
        return "; ".join(str(v) for v in machine)
    return str(machine)


def emit(rows: Iterable[dict[str, Any]], columns: list[Column], fmt: str | None, units: Units, *,
         title: str | None = None, out: TextIO | None = None, empty_message: str | None = None) -> int:
    """Write rows in the chosen format on stdout; returns how many rows were written."""
    stream = out or sys.stdout
    chosen = choose_format(fmt)
    if not units.mask and any(c.kind == "contact" for c in columns):
        from crmcli.cli.common import masking_now

        # privacy.mask applies to every list with contacts, also those whose command did not look it up
        units = Units(units.currency, units.tz, masking_now())
    count = 0

    def get(row: dict[str, Any], c: Column) -> Any:
        return row.get(c.source or c.key)

    if chosen in ("json", "jsonl"):
        first = True
        if chosen == "json":
            stream.write("[")
        for row in rows:
            record = {c.key: machine_value(get(row, c), c, units) for c in columns}
            text = json.dumps(record, ensure_ascii=False)
            if chosen == "json":
                stream.write(("\n  " if first else ",\n  ") + text)
            else:
                stream.write(text + "\n")
            first = False
            count += 1
        if chosen == "json":
            stream.write("\n]\n" if count else "]\n")
        return count
    if chosen in ("csv", "tsv"):
        from crmcli.cli.headers import heading_row, wants_bom

        if wants_bom():
            stream.write("\ufeff")  # --headers zh: Excel reads a CSV as UTF-8 only with a byte order mark
        writer = csv.writer(stream, delimiter="," if chosen == "csv" else "\t", lineterminator="\n")
        writer.writerow(heading_row([c.key for c in columns], [c.label for c in columns]))
        for row in rows:
            writer.writerow([flat_value(get(row, c), c, units) for c in columns])
            count += 1
        return count
    materialized = [[text_value(get(row, c), c, units) for c in columns] for row in rows]
    count = len(materialized)
    if chosen == "markdown":
        from tabulate import tabulate

        if title:
            stream.write(f"## {title}\n\n")
        stream.write(tabulate(materialized, headers=[c.label for c in columns], tablefmt="github",
                              disable_numparse=True) + "\n")
        return count
    if not materialized and empty_message:
        from crmcli.cli.common import info

        info(empty_message)
        return 0
    from rich import box
    from rich.table import Table

    from crmcli.render.console import stdout_console

    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    from rich.cells import cell_len

    console = stdout_console(stream)
    # Numbers, amounts, dates and phones should not break across lines (headings may), and free text keeps
    # at least 10 cells (or its longest value, if shorter) so that codes and short names stay whole. When
    # the terminal is too narrow for all of that, the columns on the left get their floor first and the
    # rest simply fold: no column is ever dropped.
    atomic = [c.kind in ("money", "int", "date", "datetime", "contact", "bool") for c in columns]
    widest = [max((cell_len(cells[i]) for cells in materialized), default=0) for i in range(len(columns))]
    floor = [w if a else min(w, 10) for w, a in zip(widest, atomic)]
    # Rich's own minimum for a column: its longest word (heading or cell). Only when those fit can minimum
    # widths be given without Rich squeezing every column evenly (which would then overflow).
    base = [max((cell_len(word) for text in (c.label, *(cells[i] for cells in materialized)) for word in text.split()),
                default=0) for i, c in enumerate(columns)]
    spare = console.width - 3 * max(len(columns) - 1, 0) - sum(base)  # 3 = padding, rule, padding
    for i, c in enumerate(columns):
        extra = max(floor[i] - base[i], 0)
        keep = spare >= 0 and spare >= extra
        if keep:
            spare -= extra
        justify = c.justify or ("right" if c.kind in ("money", "int") else "left")
        table.add_column(c.label, justify=justify, overflow="fold",  # type: ignore[arg-type]
                         min_width=(floor[i] or None) if keep else None)
    for cells in materialized:
        table.add_row(*cells)
    console.print(table)
    return count


def emit_record(record: dict[str, Any], fmt: str | None) -> None:
    """One JSON document (card data, a summary): indented for --format json, one line for jsonl."""
    indent = None if (fmt or "").lower() == "jsonl" else 2
    sys.stdout.write(json.dumps(record, ensure_ascii=False, indent=indent, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)
