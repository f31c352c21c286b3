"""Reading a delimited text file as a stream of (line number, cells): encoding detected, delimiter sniffed.

Encodings: a byte-order mark decides first (UTF-8, UTF-16 LE/BE); then strict UTF-8 on a sample; then
charset-normalizer chooses among the encodings spreadsheets in our users' hands write (GB18030, the superset
of GBK/GB2312 that Excel in China writes; UTF-16 without a BOM; Big5; Windows-1252). ``--encoding`` overrides.
The file is decoded incrementally, so memory stays flat whatever its size.
"""

from __future__ import annotations

import codecs
import csv
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from crmcli.errors import InvalidInput
from crmcli.i18n import _

SAMPLE_BYTES = 64 * 1024
DELIMITERS = {",": ",", "comma": ",", ";": ";", "semicolon": ";", "\\t": "\t", "\t": "\t", "tab": "\t",
              "|": "|", "pipe": "|"}
# What charset-normalizer may answer: the encodings real exports come in. Everything GBK-like is read as
# GB18030 (a strict superset, so no GBK file is misread).
_CANDIDATES = ["gb18030", "utf_16", "big5", "cp1252", "shift_jis", "euc_kr"]
_GB = {"gbk", "gb2312", "gb18030", "cp936", "hz"}

csv.field_size_limit(16 * 1024 * 1024)  # long notes are text, not an attack; the default 128 KB is too small


@dataclass
class Source:
    """An opened input: the decoded text stream and what was decided about it."""

    name: str
    encoding: str
    delimiter: str
    text: io.TextIOBase
    first_line: str = ""
    size: int | None = None  # bytes, when known (for a progress bar)
    raw: "_Prefixed | None" = None


class _Prefixed(io.RawIOBase):
    """The bytes already read for sniffing, then the rest of the stream (stdin cannot seek back)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest
        self.consumed = 0  # bytes handed to the decoder so far (progress)

    def close(self) -> None:
        if self._rest is not sys.stdin.buffer:
            self._rest.close()
        super().close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            self.consumed += n
            return n
        data = self._rest.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.consumed += n
        return n


def normalize_encoding(name: str) -> str:
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        raise InvalidInput(_("'{value}' is not an encoding Python knows.").format(value=name), field="encoding",
                           value=name, hint=_("Use e.g. utf-8, utf-8-sig, gb18030, gbk, utf-16.")) from None
    return "gb18030" if canonical.replace("-", "").replace("_", "") in {g.replace("_", "") for g in _GB} else canonical


def detect_encoding(sample: bytes, *, complete: bool) -> str:
    """The encoding of a file from its first bytes. ``complete``: the sample is the whole file (so a
    multi-byte character cut at the end of the sample is an error, not an artefact)."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith(codecs.BOM_UTF16_LE) or sample.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if sample[1::2].count(0) > len(sample) // 4:  # ASCII text in UTF-16LE without a BOM: every other byte 0
        return "utf-16-le"
    if sample[0::2].count(0) > len(sample) // 4:
        return "utf-16-be"
    from charset_normalizer import from_bytes

    best = from_bytes(sample, cp_isolation=_CANDIDATES).best()
    if best is None:
        raise InvalidInput(_("The file's encoding cannot be recognised."), field="encoding",
                           hint=_("Pass --encoding, e.g. --encoding gb18030 or --encoding utf-16."))
    return normalize_encoding(best.encoding)


def sniff_delimiter(first_line: str) -> str:
    """The header line's most frequent separator among comma, semicolon and tab (outside quotes); comma when
    there is none (a one-column file)."""
    counts = {",": 0, ";": 0, "\t": 0}
    quoted = False
    for ch in first_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def parse_delimiter(value: str) -> str:
    d = DELIMITERS.get(value) or DELIMITERS.get(value.lower())
    if d is None:
        raise InvalidInput(_("'{value}' is not a delimiter.").format(value=value), field="delimiter", value=value,
                           hint=_("Use ',', ';', tab (or \\t) or '|'."))
    return d


def open_source(path: str, *, encoding: str | None = None, delimiter: str | None = None) -> Source:
    """Open FILE (or '-' for stdin) for reading rows."""
    if path == "-":
        raw: BinaryIO = sys.stdin.buffer
        name = "-"
    else:
        try:
            raw = open(path, "rb")  # noqa: SIM115 - closed by the caller through Source.text
        except FileNotFoundError:
            raise InvalidInput(_("No file {path}.").format(path=path), field="file", value=path,
                               hint=_("Check the name, or give - to read standard input.")) from None
        except IsADirectoryError:
            raise InvalidInput(_("{path} is a directory, not a file.").format(path=path), field="file",
                               value=path) from None
        name = path
    head = raw.read(SAMPLE_BYTES)
    complete = len(head) < SAMPLE_BYTES
    enc = normalize_encoding(encoding) if encoding else detect_encoding(head, complete=complete)
    prefixed = _Prefixed(head, raw)
    buffered = io.BufferedReader(prefixed, buffer_size=SAMPLE_BYTES)
    text = io.TextIOWrapper(buffered, encoding=enc, errors="strict", newline="")
    sample = head.decode(enc, errors="ignore").lstrip("\ufeff")
    first = next((line for line in sample.splitlines() if line.strip()), "")
    delim = parse_delimiter(delimiter) if delimiter else sniff_delimiter(first)
    size = len(head) if complete else None  # a short standard input was read whole
    if path != "-":
        import os

        size = os.fstat(raw.fileno()).st_size
    return Source(name=name, encoding=enc, delimiter=delim, text=text, first_line=first, size=size, raw=prefixed)


def rows(source: Source) -> Iterator[tuple[int, list[str]]]:
    """(line number where the record starts, cells), the header first (line 1). Blank lines are skipped.
    A decoding error names the line and suggests --encoding."""
    reader = csv.reader(source.text, delimiter=source.delimiter, strict=False)
    start = 1
    first = True
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as e:
            raise InvalidInput(_("Line {line} of {file} is not valid {encoding} ({error}).").format(
                line=reader.line_num + 1, file=source.name, encoding=source.encoding, error=e.reason),
                field="encoding", value=source.encoding,
                hint=_("Pass the file's encoding with --encoding (e.g. gb18030, utf-16, cp1252).")) from None
        except csv.Error as e:
            raise InvalidInput(_("Line {line} of {file} cannot be read as CSV ({error}).").format(
                line=reader.line_num, file=source.name, error=e), field="file", value=source.name,
                hint=_("Check the quotes on that line, or the --delimiter.")) from None
        line = start
        start = reader.line_num + 1
        if not cells or (not cells[0].strip() and all(not c.strip() for c in cells)):
            continue
        if first:
            cells[0] = cells[0].lstrip("\ufeff")
            first = False
        yield line, cells
