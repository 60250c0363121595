"""Listing and reading orders: parameter checks, opaque keyset cursors, the unified shape."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import from_json, to_json
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import FieldProblem, NotFoundError, ValidationFailed
from app.money import format_amount
from app.orders import repository
from app.orders.repository import OrderFilter, PageRequest
from app.orders.schemas import AddressOut, OrderSort
from app.platforms.types import OrderStatus, PlatformCode
from app.timezones import iana_zone

logger = logging.getLogger("app.orders")

_CURSOR_VERSION = 1
# Orders archived per transaction: short row locks beside running syncs, progress kept.
ARCHIVE_BATCH = 1000
_STATUSES = {s.value for s in OrderStatus}


def invalid(parameter: str, message: str) -> ValidationFailed:
    """A 422 in the same shape as FastAPI's own parameter errors."""
    return ValidationFailed(
        f"Invalid request: {parameter}", field_messages=[FieldProblem(parameter, message)]
    )


def parse_statuses(values: Sequence[str] | None) -> list[str]:
    """`status=a&status=b` and `status=a,b` both work; unknown values are a 422."""
    statuses: list[str] = []
    for value in values or ():
        for part in value.split(","):
            status = part.strip().lower()
            if not status:
                continue
            if status not in _STATUSES:
                raise invalid(
                    "status",
                    f"Unknown status '{part.strip()[:40]}'; expected any of "
                    + ", ".join(s.value for s in OrderStatus),
                )
            if status not in statuses:
                statuses.append(status)
    return statuses


def clean_search(q: str | None) -> str | None:
    if q is None or not q.strip():
        return None
    # PostgreSQL text cannot hold NUL; the driver would fail the whole query.
    if "\x00" in q:
        raise invalid("q", "q must not contain NUL characters")
    return q.strip()


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = TypeAdapter(datetime)


def time_bound(value: str | None, parameter: str, zone: ZoneInfo, *, end: bool) -> datetime | None:
    """A list bound in UTC. A date alone is a whole day in `zone`: from its first instant, or
    to its last (PostgreSQL keeps microseconds, so `<=` the last one is `<` the next day); a
    time without an offset is in `zone` too."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if _DATE_ONLY.fullmatch(text):
            day = date.fromisoformat(text) + timedelta(days=1 if end else 0)
            bound = datetime.combine(day, time(), zone) - timedelta(microseconds=1 if end else 0)
        else:
            bound = _DATETIME.validate_python(text)
            if bound.tzinfo is None:
                bound = bound.replace(tzinfo=zone)
        return bound.astimezone(UTC)
    except ValidationError as exc:
        raise invalid(
            parameter, "Use a date (YYYY-MM-DD, the whole day in tz) or an ISO-8601 date-time"
        ) from exc
    except (ValueError, OverflowError) as exc:  # 2024-13-01; year 1 with a positive offset
        raise invalid(parameter, "Date or time out of range") from exc


def _sort_key_kind(sort: OrderSort) -> str:
    return "money" if sort in (OrderSort.TOTAL_DESC, OrderSort.TOTAL_ASC) else "time"


def encode_cursor(sort: OrderSort, key: datetime | Decimal, order_id: int) -> str:
    text = key.isoformat() if isinstance(key, datetime) else format(key, "f")
    payload = json.dumps([_CURSOR_VERSION, sort.value, text, order_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str, sort: OrderSort) -> tuple[datetime | Decimal, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, cursor_sort, text, order_id = json.loads(base64.urlsafe_b64decode(padded))
        if version != _CURSOR_VERSION or not isinstance(text, str):
            raise ValueError("unknown cursor version")
        if type(order_id) is not int or not 0 < order_id < 2**63:
            raise ValueError("bad id")
        key: datetime | Decimal
        if _sort_key_kind(OrderSort(cursor_sort)) == "money":
            key = Decimal(text)
            # Bounds keep a tampered cursor from overflowing the numeric type in PostgreSQL.
            if not key.is_finite() or abs(key.adjusted()) > 100:
                raise ValueError("bad amount")
        else:
            key = datetime.fromisoformat(text)
            if key.tzinfo is None:
                raise ValueError("naive time")
            key = key.astimezone(UTC)
    except (
        ValueError,
        TypeError,
        OverflowError,
        binascii.Error,
        InvalidOperation,
        UnicodeDecodeError,
    ) as exc:
        raise invalid("cursor", "Malformed cursor; pass nextCursor from a previous page") from exc
    if cursor_sort != sort.value:
        raise invalid(
            "cursor", f"This cursor belongs to sort={cursor_sort}; repeat that sort or start over"
        )
    return key, order_id


@dataclass(slots=True)
class ListParams:
    filter: OrderFilter
    sort: OrderSort
    limit: int
    offset: int
    cursor: str | None
    include_total: bool = True
    include_buyer: bool = False


def list_params(
    owner: str,
    *,
    platform_code: PlatformCode | None,
    connection_id: uuid.UUID | None,
    statuses: Sequence[str] | None,
    created_from: str | None,
    created_to: str | None,
    q: str | None,
    sort: OrderSort,
    limit: int,
    offset: int,
    cursor: str | None,
    include_total: bool,
    include_buyer: bool = False,
    include_archived: bool = False,
    tz: str = "UTC",
) -> ListParams:
    """The checks FastAPI's parameter types cannot express, each a 422 naming its parameter."""
    zone = iana_zone(tz)
    if zone is None:
        raise invalid("tz", f"Unknown time zone '{tz[:64]}'; use an IANA name such as Asia/Bangkok")
    start = time_bound(created_from, "createdFrom", zone, end=False)
    end = time_bound(created_to, "createdTo", zone, end=True)
    if start is not None and end is not None and start > end:
        raise invalid("createdFrom", "createdFrom must not be later than createdTo")
    if cursor is not None and offset:
        raise invalid("cursor", "Use either cursor or offset, not both")
    return ListParams(
        filter=OrderFilter(
            user_id=owner,
            platform_code=platform_code.value if platform_code else None,
            connection_id=connection_id,
            statuses=parse_statuses(statuses),
            created_from=start,
            created_to=end,
            q=clean_search(q),
            include_archived=include_archived,
        ),
        sort=sort,
        limit=limit,
        offset=offset,
        cursor=cursor,
        include_total=include_total,
        include_buyer=include_buyer,
    )


_ADDRESS_KEYS = tuple((name, to_camel(name)) for name in AddressOut.model_fields)


def _address(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    stored = from_json(text)
    # The ORM writes a missing address as JSON null rather than SQL NULL.
    if not isinstance(stored, dict):
        return None
    return {camel: stored.get(name) for name, camel in _ADDRESS_KEYS}


# Thailand's PDPA: a list (what support staff and dashboards see) shows enough to recognize a
# buyer, not to reach them. The fixed-width masks tell nothing about the hidden length.
PHONE_MASK = "******"
TEXT_MASK = "****"
_MASKED_STREET_KEYS = ("line1", "line2", "fullAddress")


def mask_phone(phone: str | None) -> str | None:
    """`+66812345678` -> `******5678`: the last 4 digits, nothing when there are no more."""
    if phone is None:
        return None
    digits = [c for c in phone if c.isascii() and c.isdigit()]
    return PHONE_MASK + "".join(digits[-4:]) if len(digits) > 4 else PHONE_MASK


def mask_email(email: str | None) -> str | None:
    """`somchai@example.com` -> `s****@example.com`: the first letter and the domain."""
    if email is None:
        return None
    local, at, domain = email.rpartition("@")
    if not at or not local:
        return TEXT_MASK
    return f"{local[0]}{TEXT_MASK}@{domain}"


def mask_buyer(order: dict[str, Any]) -> dict[str, Any]:
    """An order of the wire shape with the buyer's contact details masked, in place: phone and
    e-mail, and the address's street lines and phone (name, area and postal code stay)."""
    order["buyerPhone"] = mask_phone(order["buyerPhone"])
    order["buyerEmail"] = mask_email(order["buyerEmail"])
    address = order["shippingAddress"]
    if address is not None:
        address["phone"] = mask_phone(address["phone"])
        for key in _MASKED_STREET_KEYS:
            if address[key] is not None:
                address[key] = TEXT_MASK
    return order


def render_order(row: Any, *, include_buyer: bool = True) -> dict[str, Any]:
    """The wire shape of a repository row; buyer contact details masked unless included."""
    order = _order(row)
    return order if include_buyer else mask_buyer(order)


def _order(row: Any) -> dict[str, Any]:
    """The wire shape (OrderOut, by alias) of a repository row, with no validation pass: the
    values come typed from the database, and the tests hold this shape to the schema. Amounts
    come as numeric text and leave with exactly the currency's minor units."""
    currency = row["currency"]
    return {
        "id": row["id"],
        "connectionId": row["connection_id"],
        "platformCode": row["platform_code"],
        "externalOrderId": row["external_order_id"],
        "status": row["status"],
        "rawStatus": row["raw_status"],
        "buyerName": row["buyer_name"],
        "buyerPhone": row["buyer_phone"],
        "buyerEmail": row["buyer_email"],
        "shippingAddress": _address(row["shipping_address"]),
        "currency": row["currency"],
        "subtotal": format_amount(row["subtotal"], currency),
        "shippingFee": format_amount(row["shipping_fee"], currency),
        "discount": format_amount(row["discount"], currency),
        "total": format_amount(row["total"], currency),
        "paymentMethod": row["payment_method"],
        "isCod": row["is_cod"],
        "createdAt": row["order_created_at"],
        "updatedAt": row["order_updated_at"],
        "paidAt": row["paid_at"],
        "syncedAt": row["updated_at"],
        "buyerErasedAt": row["buyer_erased_at"],
        "archivedAt": row["archived_at"],
        # Facebook social orders (app/live) have a channel, the buyer's id and waiting lines.
        "channel": row["channel"],
        "buyerExternalId": row["buyer_external_id"],
        "waitingOnly": row["waiting_only"],
        # The latest shipment (app/fulfillment), or null.
        "fulfillment": from_json(row["fulfillment"]) if row["fulfillment"] else None,
        "waitlist": [
            {"sku": sku, "name": name, "code": code, "quantity": int(quantity)}
            for sku, name, code, quantity in row["waitlist"] or ()
        ],
        # Each item is a text array in the element order of repository.ITEMS.
        "items": [
            {
                "sku": sku,
                "name": name,
                "variation": variation,
                "quantity": int(quantity),
                "unitPrice": format_amount(unit_price, currency),
                "discount": format_amount(discount, currency),
                "externalItemId": external_item_id,
                "externalProductId": external_product_id,
            }
            for (
                sku,
                name,
                variation,
                quantity,
                unit_price,
                discount,
                external_item_id,
                external_product_id,
            ) in row["items"]
        ],
    }


async def list_orders(session: AsyncSession, params: ListParams) -> bytes:
    """The response body (OrderListResponse) as JSON."""
    after = decode_cursor(params.cursor, params.sort) if params.cursor is not None else None
    page = await repository.list_page(
        session,
        params.filter,
        PageRequest(
            sort=params.sort,
            limit=params.limit,
            offset=params.offset,
            after=after,
            include_total=params.include_total,
        ),
    )
    next_cursor = None
    if page.has_more:
        last = page.rows[-1]
        next_cursor = encode_cursor(params.sort, last["sort_key"], last["id"])
    return to_json(
        {
            "data": [render_order(row, include_buyer=params.include_buyer) for row in page.rows],
            "pagination": {
                "total": page.total,
                "limit": params.limit,
                "offset": params.offset,
                "nextCursor": next_cursor,
            },
        }
    )


async def get_order(session: AsyncSession, user_id: str, order_id: int) -> bytes:
    """The response body (OrderDetailResponse) as JSON."""
    row = await repository.get_for_user(session, user_id, order_id)
    if row is None:
        raise NotFoundError("Order not found")
    return to_json({"data": {**render_order(row), "raw": from_json(row["raw"])}})


async def archive_finished_orders(
    sessionmaker: async_sessionmaker[AsyncSession],
    after_days: int,
    *,
    now: datetime | None = None,
    batch_size: int = ARCHIVE_BATCH,
) -> int:
    """Archive finished orders (completed, delivered, cancelled, returned, failed) placed more
    than `after_days` ago: only `archived_at` is set, nothing else changes. Each batch commits
    on its own; a second run finds nothing left to do."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=after_days)
    archived = 0
    while True:
        async with sessionmaker() as session, session.begin():
            done = await repository.archive_batch(session, cutoff, batch_size)
        archived += done
        if done < batch_size:
            break
    if archived:
        logger.info("orders archived", extra={"orders": archived, "after_days": after_days})
    return archived
