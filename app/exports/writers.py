"""Spreadsheet writers that stream: rows arrive in batches and leave as bytes, so an export of
a million orders holds one batch in memory, never the result.

CSV: UTF-8 with a byte order mark (Excel reads Thai text right only with it), a header row,
text cells that a spreadsheet would run as a formula prefixed with `'` (OWASP's CSV injection
advice; a plain signed number such as a phone `+66812345678` is left alone). XLSX: XlsxWriter in constant-memory mode writes each row to a temporary file as it
comes; the finished workbook is then streamed from disk and deleted. Its cells are typed
(text as text, never a formula), so XLSX needs no prefix."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import xlsxwriter  # type: ignore[import-untyped]

BOM = "\ufeff".encode()
# Cells starting with these are formulas (or DDE) to Excel, LibreOffice and Google Sheets.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A plain signed number (a phone such as +66812345678) runs nothing; it is left as it is.
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
XLSX_MAX_ROWS = 1_048_576  # per worksheet, the header included
_FILE_CHUNK = 256 * 1024


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
    if value.startswith(_FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def _csv_cells(columns: Sequence[Column], row: Row) -> list[Any]:
    return [
        guard_formula(value) if column.kind is Kind.TEXT and isinstance(value, str) else value
        for column, value in zip(columns, row, strict=True)
    ]


async def csv_stream(columns: Sequence[Column], batches: Batches) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([column.name for column in columns])
    yield BOM + buffer.getvalue().encode()
    async for batch in batches:
        buffer.seek(0)
        buffer.truncate()
        for row in batch:
            writer.writerow(_csv_cells(columns, row))
        yield buffer.getvalue().encode()


class _Sheet:
    """Rows into worksheets of at most XLSX_MAX_ROWS rows (a new sheet past that)."""

    def __init__(self, workbook: Any, title: str, columns: Sequence[Column]) -> None:
        self.workbook, self.title, self.columns = workbook, title, columns
        self.money = {
            places: workbook.add_format({"num_format": _money_format(places)})
            for places in range(4)
        }
        self.sheets = 0
        self.row = XLSX_MAX_ROWS

    def _next_sheet(self) -> None:
        self.sheets += 1
        name = self.title if self.sheets == 1 else f"{self.title} {self.sheets}"
        self.sheet = self.workbook.add_worksheet(name)
        for col, column in enumerate(self.columns):
            self.sheet.write_string(0, col, column.name)
        self.row = 1

    def write(self, batch: Sequence[Row]) -> None:
        for values in batch:
            if self.row >= XLSX_MAX_ROWS:
                self._next_sheet()
            for col, (column, value) in enumerate(zip(self.columns, values, strict=True)):
                if value is None or value == "":
                    continue
                if column.kind is Kind.NUMBER:
                    self.sheet.write_number(self.row, col, value)
                elif column.kind is Kind.MONEY:
                    _, _, fraction = value.partition(".")
                    self.sheet.write_number(
                        self.row, col, float(value), self.money[min(len(fraction), 3)]
                    )
                else:
                    self.sheet.write_string(self.row, col, str(value))
            self.row += 1

    def finish(self) -> None:
        if self.sheets == 0:
            self._next_sheet()  # an empty export still has its header row
        self.workbook.close()


def _money_format(places: int) -> str:
    return "0." + "0" * places if places else "0"


async def xlsx_stream(
    columns: Sequence[Column], batches: Batches, *, title: str
) -> AsyncIterator[bytes]:
    folder = Path(tempfile.mkdtemp(prefix="omni-export-"))
    try:
        path = folder / "export.xlsx"
        workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True, "tmpdir": str(folder)})
        sheet = _Sheet(workbook, title, columns)
        async for batch in batches:
            # Off the event loop: a batch's cells are CPU work other requests must not wait on.
            await asyncio.to_thread(sheet.write, batch)
        await asyncio.to_thread(sheet.finish)
        with path.open("rb") as file:
            while chunk := await asyncio.to_thread(file.read, _FILE_CHUNK):
                yield chunk
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def stream(
    fmt: ExportFormat, columns: Sequence[Column], batches: Batches, *, title: str
) -> AsyncIterator[bytes]:
    if fmt is ExportFormat.XLSX:
        return xlsx_stream(columns, batches, title=title)
    return csv_stream(columns, batches)
