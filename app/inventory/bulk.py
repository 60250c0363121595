"""Bulk stock changes: many `PUT inventory/{sku}` in one request, as JSON or a CSV upload.

Every row is checked on its own, then applied through the same service as the single PUT
(ledger, waiting lines, low-stock alert): the valid rows together in one savepoint, or, should
that fail, each in its own savepoint so that only the rows at fault fail. The pushes of the
whole bulk are asked for once at the end: one push round per connection, however many rows
touched it. A SKU not seen before is created, as the single PUT creates it. A SKU named twice
in one request is an error on its later rows (the first applies): which one should win is not
ours to guess. CSV cells: empty leaves the field unchanged, `null` removes a rule."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.bulk import RowError, RowStatus, apply_row
from app.inventory.requests import coalesced_pushes
from app.inventory.schemas import SkuMappingUpdate
from app.inventory.service import apply_inventory_updates, update_mapping_in
from app.orders.service import invalid
from app.schemas import CamelModel, unstorable_text

MAX_ROWS = 5000
MAX_SKU_CHARS = 128
MAX_FIGURE = 2**31 - 1
# Wire name -> the service's field; `sku` is the row's key.
FIELDS = {
    "available": "available",
    "buffer": "buffer",
    "maxQuantity": "max_quantity",
    "zeroBelow": "zero_below",
    "lowStockAt": "low_stock_at",
}
_INTEGER = re.compile(r"[+-]?\d+")


class BulkInventoryResult(CamelModel):
    sku: str | None
    status: RowStatus
    row: int | None = Field(
        None, description="CSV only: the row as a spreadsheet numbers it (the header is 1)"
    )
    error: RowError | None = None


class BulkInventoryResults(CamelModel):
    data: list[BulkInventoryResult]


@dataclass(slots=True)
class BulkRow:
    sku: str | None
    changes: dict[str, int | None]
    error: RowError | None
    csv_row: int | None = None
    field_prefix: str = ""


def _problem(code: str, message: str, field: str) -> RowError:
    return RowError(code=code, message=message, field=field)


def _figure(name: str, value: Any, *, from_csv: bool) -> tuple[bool, int | None, RowError | None]:
    """(given, value, error) of one figure or rule cell."""
    if from_csv:
        cell = str(value).strip()
        if cell == "":
            return False, None, None
        if cell.lower() == "null":
            value = None
        elif _INTEGER.fullmatch(cell):
            value = int(cell)
        else:
            return True, None, _problem("invalid_value", f"{name} must be a whole number", name)
    if value is None:
        if name == "available":
            return (
                True,
                None,
                _problem("invalid_value", "available cannot be removed; send a number", name),
            )
        return True, None, None
    if isinstance(value, bool) or not isinstance(value, int):
        return True, None, _problem("invalid_value", f"{name} must be a whole number", name)
    if value < 0:
        return True, None, _problem("invalid_value", f"{name} must not be negative", name)
    if value > MAX_FIGURE:
        return True, None, _problem("invalid_value", f"{name} must be at most {MAX_FIGURE}", name)
    return True, value, None


def _row(item: Mapping[str, Any], *, from_csv: bool) -> BulkRow:
    raw_sku = item.get("sku")
    sku = raw_sku.strip() if from_csv and isinstance(raw_sku, str) else raw_sku
    shown = sku if isinstance(sku, str) else None
    unknown = sorted(set(item) - set(FIELDS) - {"sku"})
    if unknown:
        field = str(unknown[0])
        return BulkRow(shown, {}, _problem("unknown_field", f"Unknown field {field}", field))
    if sku is None or sku == "":
        return BulkRow(shown, {}, _problem("missing_field", "sku is required", "sku"))
    if not isinstance(sku, str):
        return BulkRow(None, {}, _problem("invalid_value", "sku must be text", "sku"))
    problem = unstorable_text(sku)
    if len(sku) > MAX_SKU_CHARS or problem:
        message = problem or f"sku must be at most {MAX_SKU_CHARS} characters"
        return BulkRow(shown, {}, _problem("invalid_value", f"sku {message}", "sku"))
    changes: dict[str, int | None] = {}
    for name, target in FIELDS.items():
        if name not in item:
            continue
        given, value, error = _figure(name, item[name], from_csv=from_csv)
        if error is not None:
            return BulkRow(sku, {}, error)
        if given:
            changes[target] = value
    return BulkRow(sku, changes, None)


def rows_from_json(body: Any) -> tuple[str | None, list[BulkRow]]:
    """(userId, rows) of a JSON body; a body that is not one is a 422 naming the field."""
    if not isinstance(body, dict):
        raise invalid("body", "Send a JSON object {userId, items: [...]}")
    user_id = body.get("userId")
    if user_id is not None and (not isinstance(user_id, str) or not 1 <= len(user_id) <= 128):
        raise invalid("userId", "userId must be text of 1 to 128 characters")
    unknown = sorted(set(body) - {"userId", "items"})
    if unknown:
        raise invalid(str(unknown[0]), "Unknown field; send userId and items")
    items = body.get("items")
    if not isinstance(items, list):
        raise invalid("items", "items must be a list of rows")
    _check_size(len(items))
    rows: list[BulkRow] = []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            row = _row(item, from_csv=False)
        else:
            row = BulkRow(None, {}, _problem("invalid_row", "A row must be an object", "items"))
        row.field_prefix = f"items[{index}]."
        rows.append(row)
    return user_id, rows


def rows_from_csv(content: bytes) -> list[BulkRow]:
    """Rows of a CSV upload: UTF-8 with or without a BOM (Excel's "CSV UTF-8"), Excel-style
    quoting, a header row naming the columns (any letter case)."""
    try:
        decoded = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise invalid("body", "The CSV must be UTF-8 (Excel: save as CSV UTF-8)") from exc
    if unstorable_text(decoded):
        raise invalid("body", "The CSV must not contain NUL characters")
    reader = csv.reader(io.StringIO(decoded, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise invalid("body", "The CSV is empty; send a header row and the rows")
        by_lower = {name.lower(): name for name in ("sku", *FIELDS)}
        columns: list[str] = []
        for cell in header:
            name = by_lower.get(cell.strip().lower())
            if name is None:
                raise invalid(cell.strip() or "header", f"Unknown column {cell.strip()!r}")
            if name in columns:
                raise invalid(name, f"The column {name} is given twice")
            columns.append(name)
        if "sku" not in columns:
            raise invalid("sku", "The header must have a sku column")
        rows: list[BulkRow] = []
        # The spreadsheet's row number: one per record (a cell spanning lines is one row, a
        # blank line is a row too), the header being row 1.
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue  # blank lines, which spreadsheets leave at the end
            _check_size(len(rows) + 1)
            if len(cells) > len(columns):
                row = BulkRow(
                    cells[0].strip() if cells else None,
                    {},
                    _problem("invalid_row", "The row has more cells than the header", "items"),
                )
            else:
                row = _row(dict(zip(columns, cells, strict=False)), from_csv=True)
            row.csv_row = number
            rows.append(row)
    except csv.Error as exc:
        raise invalid("body", f"Malformed CSV at line {reader.line_num}: {exc}") from exc
    return rows


def parse_json(content: bytes) -> tuple[str | None, list[BulkRow]]:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise invalid("body", "The body is not valid JSON") from exc
    return rows_from_json(body)


def _check_size(count: int) -> None:
    if count > MAX_ROWS:
        raise invalid("items", f"At most {MAX_ROWS} rows per request")


def _mark_duplicates(rows: Sequence[BulkRow]) -> None:
    seen: set[str] = set()
    for row in rows:
        if row.error is not None or row.sku is None:
            continue
        if row.sku in seen:
            row.error = _problem(
                "duplicate_sku", "This SKU is already changed by an earlier row", "sku"
            )
        seen.add(row.sku)


async def apply_rows(
    session: AsyncSession, user_id: str, rows: Sequence[BulkRow]
) -> list[BulkInventoryResult]:
    """Apply the valid rows; one result per row, in order. All of them are first applied
    together in one savepoint (one lock round in id order, one mover write: the fast path
    for rows already checked); should that fail (a lock held too long, a deadlock, a
    constraint), it is rolled back and each row is applied in its own savepoint instead, so
    only the rows at fault fail."""
    _mark_duplicates(rows)
    valid = [row for row in rows if row.error is None and row.sku is not None]
    async with coalesced_pushes(session) as batch:
        if valid:

            async def apply_all() -> None:
                with batch.row():
                    await apply_inventory_updates(
                        session, user_id, {row.sku: row.changes for row in valid if row.sku}
                    )

            if await apply_row(session, apply_all, field="sku", attempts=1) is not None:
                for row in valid:
                    assert row.sku is not None
                    sku, changes = row.sku, row.changes

                    async def apply_one(
                        sku: str = sku, changes: dict[str, int | None] = changes
                    ) -> None:
                        with batch.row():
                            await apply_inventory_updates(session, user_id, {sku: changes})

                    row.error = await apply_row(session, apply_one, field="sku")
    return [
        BulkInventoryResult(
            sku=row.sku,
            status=RowStatus.OK if row.error is None else RowStatus.ERROR,
            row=row.csv_row,
            error=_named(row) if row.error is not None else None,
        )
        for row in rows
    ]


def _named(row: BulkRow) -> RowError:
    """A JSON row's error names the field as `items[i].field`; a CSV row's names the column
    (the row number is beside it)."""
    assert row.error is not None
    field = row.error.field
    if row.csv_row is None and field is not None and field != "items":
        field = f"{row.field_prefix}{field}"
    elif row.csv_row is None and field == "items":
        field = row.field_prefix.rstrip(".")
    return row.error.model_copy(update={"field": field})


# --- many SKU mappings in one PUT sku-mappings ----------------------------------------------


class BulkMappingResult(CamelModel):
    listing_id: int | None
    status: RowStatus
    error: RowError | None = None


class BulkMappingResults(CamelModel):
    data: list[BulkMappingResult]


def _mapping_row(item: Any) -> tuple[int | None, str | None, RowError | None]:
    if not isinstance(item, dict):
        return None, None, _problem("invalid_row", "A row must be an object", "")
    listing_id = item.get("listingId")
    shown = listing_id if isinstance(listing_id, int) and not isinstance(listing_id, bool) else None
    unknown = sorted(set(item) - {"listingId", "masterSku"})
    if unknown:
        return shown, None, _problem("unknown_field", f"Unknown field {unknown[0]}", unknown[0])
    if shown is None or not 1 <= shown <= 2**63 - 1:
        return None, None, _problem("invalid_value", "listingId must be a listing id", "listingId")
    if "masterSku" not in item:
        return (
            shown,
            None,
            _problem("missing_field", "masterSku is required (null unlinks)", "masterSku"),
        )
    master_sku = item["masterSku"]
    if master_sku is not None:
        if not isinstance(master_sku, str) or not 1 <= len(master_sku) <= MAX_SKU_CHARS:
            return (
                shown,
                None,
                _problem(
                    "invalid_value",
                    f"masterSku must be text of 1 to {MAX_SKU_CHARS} characters",
                    "masterSku",
                ),
            )
        if problem := unstorable_text(master_sku):
            return shown, None, _problem("invalid_value", f"masterSku {problem}", "masterSku")
    return shown, master_sku, None


async def apply_mappings(
    session: AsyncSession, user_id: str, items: Sequence[Any]
) -> list[BulkMappingResult]:
    """Link (or unlink) many listings, each row in its savepoint as the single PUT does it;
    the listings' pushes are asked for once at the end."""
    results: list[BulkMappingResult] = []
    seen: set[int] = set()
    async with coalesced_pushes(session) as batch:
        for index, item in enumerate(items):
            listing_id, master_sku, error = _mapping_row(item)
            if error is None and listing_id is not None:
                if listing_id in seen:
                    error = _problem(
                        "duplicate_listing",
                        "This listing is already linked by an earlier row",
                        "listingId",
                    )
                else:
                    seen.add(listing_id)
                    change = SkuMappingUpdate(
                        user_id=user_id, listing_id=listing_id, master_sku=master_sku
                    )

                    async def apply(change: SkuMappingUpdate = change) -> None:
                        with batch.row():
                            await update_mapping_in(session, user_id, change)

                    error = await apply_row(session, apply, field="listingId")
            if error is not None and error.field is not None:
                field = f"items[{index}].{error.field}" if error.field else f"items[{index}]"
                error = error.model_copy(update={"field": field})
            results.append(
                BulkMappingResult(
                    listing_id=listing_id,
                    status=RowStatus.OK if error is None else RowStatus.ERROR,
                    error=error,
                )
            )
    return results
