"""Turning an opened file into import rows: CSV/TSV through a column plan, vCard through vobject."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any, TextIO

from crmcli.core.io import csvread, mapping, vcard
from crmcli.core.io.importer import REASON_COLUMN, Reject, Row, RowError
from crmcli.errors import CrmError, InvalidInput
from crmcli.i18n import _


def is_vcard(path: str, source: csvread.Source) -> bool:
    return path.lower().endswith((".vcf", ".vcard")) or source.first_line.strip().upper() == "BEGIN:VCARD"


def header(source: csvread.Source) -> tuple[Iterator[tuple[int, list[str]]], list[str]]:
    stream = csvread.rows(source)
    for _line, cells in stream:
        headers = [c.strip() for c in cells]
        if not any(headers):
            continue
        return stream, headers
    raise InvalidInput(_("{file} is empty: there is no header line.").format(file=source.name), field="file",
                       value=source.name, hint=_("The first line must name the columns, e.g. name,phone,email."))


def csv_rows(stream: Iterator[tuple[int, list[str]]], plan: mapping.Plan) -> Iterator[Row]:
    for line, cells in stream:
        fields, prefs = plan.values(cells)
        yield Row(line, fields, prefs, cells)


class VcardRows:
    """Cards as rows; a card vobject cannot read becomes a row whose preparation fails with the reason."""

    def __init__(self, source: csvread.Source) -> None:
        self.source = source

    def __iter__(self) -> Iterator[Row]:
        for line, text in vcard.split_cards(_lines(self.source.text)):
            try:
                fields, prefs = vcard.card_fields(text)
            except CrmError as e:
                yield Row(line, {"__error__": RowError.of(e, "vcard", None)}, {}, [text])
                continue
            yield Row(line, fields, prefs, [text])


def _lines(text: Any) -> Iterator[str]:
    try:
        yield from text
    except UnicodeDecodeError as e:
        raise InvalidInput(_("The vCard file is not valid {encoding} ({error}).").format(
            encoding=getattr(text, "encoding", "?"), error=e.reason), field="encoding",
            hint=_("Pass the file's encoding with --encoding.")) from None


class RejectsWriter:
    """--rejects FILE: the header and each rejected row as it was, plus the reason (UTF-8 with a BOM so that
    spreadsheet programs open it correctly); fix the rows and import the file again."""

    def __init__(self, path: str, headers: list[str] | None, delimiter: str = ",") -> None:
        self.file: TextIO = open(path, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed by close()
        self.writer = csv.writer(self.file, delimiter=delimiter)
        self.vcard = headers is None
        self.writer.writerow(["line", "card", REASON_COLUMN] if headers is None else [*headers, REASON_COLUMN])
        self.width = 0 if headers is None else len(headers)

    def __call__(self, reject: Reject) -> None:
        reason = reject.reason if not reject.column else f"{reject.column}: {reject.reason}"
        if self.vcard:
            self.writer.writerow([reject.line, reject.raw[0] if reject.raw else "", reason])
        else:
            cells = list(reject.raw) + [""] * (self.width - len(reject.raw))
            self.writer.writerow([*cells, reason])

    def close(self) -> None:
        self.file.close()
