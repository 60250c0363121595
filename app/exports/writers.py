"""Spreadsheet writers that stream: rows arrive in batches and leave as bytes, so an export of
a million orders holds one batch in memory, never the result.

CSV: UTF-8 with a byte order mark (Excel reads Thai text right only with it), a header row,
text cells that a spreadsheet would run as a formula prefixed with `'` (OWASP's CSV injection
advice; a plain signed number such as a phone `+66812345678` is left alone). XLSX: a minimal
workbook written into a zip that streams as it is written (no temporary file); its cells are
typed (text as inline strings, never a formula), so XLSX needs no prefix."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

BOM = "\ufeff".encode()
# Cells starting with these are formulas (or DDE) to Excel, LibreOffice and Google Sheets.
_FORMULA_STARTS = frozenset("=+-@\t\r")
# A plain signed number (a phone such as +66812345678) runs nothing; it is left as it is.
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
XLSX_MAX_ROWS = 1_048_576  # per worksheet, the header included


class ExportFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


class Kind(StrEnum):
    TEXT = "text"  # any text, guarded against formula injection in CSV
    NUMBER = "number"  # an int
    MONEY = "money"  # a decimal string with the currency's minor units
    TIME = "time"  # ISO-8601 text in the export's time zone


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind = Kind.TEXT


Row = Sequence[Any]
Batches = AsyncIterator[Sequence[Row]]

MEDIA_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def guard_formula(value: str) -> str:
    """`=HYPERLINK(...)` -> `'=HYPERLINK(...)`: shown as text, never evaluated."""
    if value[:1] in _FORMULA_STARTS and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def _guarded(columns: Sequence[Column], row: Row) -> Row:
    """The row with its text cells guarded; most rows have nothing to guard and are kept."""
    for column, value in zip(columns, row, strict=True):
        if column.kind is Kind.TEXT and isinstance(value, str) and value[:1] in _FORMULA_STARTS:
            return [
                guard_formula(v) if c.kind is Kind.TEXT and isinstance(v, str) else v
                for c, v in zip(columns, row, strict=True)
            ]
    return row


async def csv_stream(columns: Sequence[Column], batches: Batches) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([column.name for column in columns])
    yield BOM + buffer.getvalue().encode()
    async for batch in batches:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(_guarded(columns, row) for row in batch)
        yield buffer.getvalue().encode()


# ---------------------------------------------------------------------------- XLSX
# A minimal SpreadsheetML package, written straight into a streamed zip: the sheet's XML goes
# out batch by batch (inline strings, so there is no shared-string table to keep), and the
# parts that name the sheets come last, once their number is known.

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
# Cell styles (cellXfs in _STYLES): 0 general, then money with 0, 2 and 3 decimals.
_MONEY_STYLE = {0: 1, 2: 2, 3: 3}
_STYLES = (
    f'{_XML}<styleSheet xmlns="{_MAIN}">'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="0.000"/></numFmts>'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="1" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="2" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    "</cellXfs>"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
# XML text: the three special characters escaped, control characters XML 1.0 forbids dropped.
_XML_TEXT = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
    | {chr(c): None for c in range(32) if chr(c) not in "\t\n\r"}
    | {"\ufffe": None, "\uffff": None}
)


def _column_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _text_cell(ref: str, value: str) -> str:
    text = value.translate(_XML_TEXT)
    space = ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ""
    return f'<c r="{ref}" t="inlineStr"><is><t{space}>{text}</t></is></c>'


class _Drain(io.RawIOBase):
    """The zip's output: what was written since the last take()."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


class _Workbook:
    def __init__(self, title: str, columns: Sequence[Column]) -> None:
        self.title, self.columns = title, columns
        self.letters = [_column_letters(i) for i in range(len(columns))]
        self.out = _Drain()
        # Level 1: most of the gain of compression for a fraction of its CPU.
        self.zip = zipfile.ZipFile(self.out, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        self.sheets = 0
        self.sheet: Any = None
        self.row = XLSX_MAX_ROWS

    def _next_sheet(self) -> None:
        self._end_sheet()
        self.sheets += 1
        self.sheet = self.zip.open(f"xl/worksheets/sheet{self.sheets}.xml", "w", force_zip64=True)
        header = "".join(
            _text_cell(f"{letter}1", column.name)
            for letter, column in zip(self.letters, self.columns, strict=True)
        )
        self.sheet.write(
            f'{_XML}<worksheet xmlns="{_MAIN}"><sheetData><row r="1">{header}</row>'.encode()
        )
        self.row = 1

    def _end_sheet(self) -> None:
        if self.sheet is not None:
            self.sheet.write(b"</sheetData></worksheet>")
            self.sheet.close()
            self.sheet = None

    def write(self, batch: Sequence[Row]) -> bytes:
        parts: list[str] = []
        for values in batch:
            if self.row >= XLSX_MAX_ROWS:
                if parts:
                    self.sheet.write("".join(parts).encode())
                    parts = []
                self._next_sheet()
            self.row += 1
            n = self.row
            cells = [f'<row r="{n}">']
            for letter, column, value in zip(self.letters, self.columns, values, strict=True):
                if value is None or value == "":
                    continue
                if column.kind is Kind.NUMBER:
                    cells.append(f'<c r="{letter}{n}"><v>{int(value)}</v></c>')
                elif column.kind is Kind.MONEY:
                    places = len(value.partition(".")[2])
                    style = _MONEY_STYLE.get(places, 0)
                    cells.append(f'<c r="{letter}{n}" s="{style}"><v>{value}</v></c>')
                else:
                    cells.append(_text_cell(f"{letter}{n}", str(value)))
            cells.append("</row>")
            parts.append("".join(cells))
        if parts:
            self.sheet.write("".join(parts).encode())
        return self.out.take()

    def finish(self) -> bytes:
        if self.sheets == 0:
            self._next_sheet()  # an empty export still has its header row
        self._end_sheet()
        names = [self.title if i == 1 else f"{self.title} {i}" for i in range(1, self.sheets + 1)]
        sheet_types = "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            for i in range(1, self.sheets + 1)
        )
        parts = {
            "[Content_Types].xml": (
                f'{_XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                'content-types"><Default Extension="rels" ContentType="application/'
                'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" '
                'ContentType="application/xml"/><Override PartName="/xl/workbook.xml" '
                'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
                'sheet.main+xml"/><Override PartName="/xl/styles.xml" ContentType="'
                'application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
                f"{sheet_types}</Types>"
            ),
            "_rels/.rels": (
                f'{_XML}<Relationships xmlns="{_RELS}"><Relationship Id="rId1" '
                f'Type="{_DOC}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
            ),
            "xl/workbook.xml": (
                f'{_XML}<workbook xmlns="{_MAIN}" xmlns:r="{_DOC}"><sheets>'
                + "".join(
                    f'<sheet name="{name.translate(_XML_TEXT)}" sheetId="{i}" r:id="rId{i}"/>'
                    for i, name in enumerate(names, start=1)
                )
                + "</sheets></workbook>"
            ),
            "xl/_rels/workbook.xml.rels": (
                f'{_XML}<Relationships xmlns="{_RELS}">'
                + "".join(
                    f'<Relationship Id="rId{i}" Type="{_DOC}/worksheet" '
                    f'Target="worksheets/sheet{i}.xml"/>'
                    for i in range(1, self.sheets + 1)
                )
                + f'<Relationship Id="rIdStyles" Type="{_DOC}/styles" Target="styles.xml"/>'
                "</Relationships>"
            ),
            "xl/styles.xml": _STYLES,
        }
        for name, content in parts.items():
            self.zip.writestr(name, content)
        self.zip.close()
        return self.out.take()


async def xlsx_stream(
    columns: Sequence[Column], batches: Batches, *, title: str
) -> AsyncIterator[bytes]:
    workbook = _Workbook(title, columns)
    async for batch in batches:
        if chunk := workbook.write(batch):
            yield chunk
    yield workbook.finish()


def stream(
    fmt: ExportFormat, columns: Sequence[Column], batches: Batches, *, title: str
) -> AsyncIterator[bytes]:
    if fmt is ExportFormat.XLSX:
        return xlsx_stream(columns, batches, title=title)
    return csv_stream(columns, batches)
