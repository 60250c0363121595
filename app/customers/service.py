"""The customer unified view: a user's buyers across channels, one customer per buyer.

Orders are linked by their keys: the buyer's phone (buyer_phone_key: one key per Thai number,
+66812345678 = 0812345678), e-mail (lower-cased) and the platform's buyer id. Keys are
transitive: a phone seen with an e-mail on Shopee and that e-mail on Lazada is one customer;
an order whose keys belong to two customers merges them (the older id survives).

Linking is incremental: ingest asks for `refresh_customers(connection_id)` after writing
orders; the job reads that connection's orders changed since its mark, in batches, each its
own transaction under a per-user lock. A cron does the same for every connection behind (live
and Messenger orders, and existing data: a connection never read starts at its first order).
`omni-sales rebuild-customers` forgets a user's customers and links everything again."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import from_json, to_json
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.buyers import service as buyers
from app.customers import repository
from app.errors import NotFoundError
from app.money import format_amount
from app.orders.service import clean_search, invalid, mask_email, mask_phone, render_order

logger = logging.getLogger("app.customers")

REFRESH_BATCH = 2000
# Orders are read again from this long before the mark: a transaction that began before the
# mark was set may commit an older `updated_at` after it. Orders seen at the same version are
# skipped, so the overlap costs a read, not a write.
REFRESH_OVERLAP = timedelta(seconds=60)
# The detail lists this many of the customer's orders (newest first); orderCount tells all.
DETAIL_ORDERS = 200
# A customer's export and erasure cover every order; this bounds one statement, not the set.
EXPORT_ORDERS = 100_000
_CURSOR_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Components:
    """Union-find over orders, keys and existing customers."""

    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, node: Any) -> Any:
        parent = self.parent.setdefault(node, node)
        while parent != node:
            grand = self.parent[parent]
            self.parent[node] = grand
            node, parent = parent, grand
        return node

    def union(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb


@dataclass(slots=True)
class _Group:
    orders: list[Any] = field(default_factory=list)
    keys: set[tuple[str, str]] = field(default_factory=set)
    customers: set[int] = field(default_factory=set)


def order_keys(row: Any) -> list[tuple[str, str]]:
    """The keys an order links by (none once its buyer data is erased)."""
    if not row.holds_buyer_data:
        return []
    keys = [("phone", row.phone_key), ("email", row.email_key), ("buyer", row.buyer_key)]
    return [(kind, value[:255]) for kind, value in keys if value]


async def link_orders(session: AsyncSession, user_id: str, rows: Sequence[Any]) -> int:
    """Link these orders (of one user, read under its lock) to customers: new ones, merged
    ones, or none when an order has no keys left. Returns how many orders were linked."""
    keys_of = {row.id: order_keys(row) for row in rows}
    wanted = sorted({key for keys in keys_of.values() for key in keys})
    owners = await repository.key_owners(session, user_id, wanted)
    parts = _Components()
    for row in rows:
        keys = keys_of[row.id]
        if not keys:
            continue
        node = ("order", row.id)
        parts.find(node)
        for key in keys:
            parts.union(node, ("key", key))
        if row.linked_to is not None:
            # The order linked this customer before (other keys then): they are one buyer.
            parts.union(node, ("customer", row.linked_to))
    for key, customer_id in owners.items():
        parts.union(("key", key), ("customer", customer_id))

    groups: dict[Any, _Group] = defaultdict(_Group)
    for row in rows:
        if keys_of[row.id]:
            group = groups[parts.find(("order", row.id))]
            group.orders.append(row)
            group.keys.update(keys_of[row.id])
            if row.linked_to is not None:
                group.customers.add(row.linked_to)
    for key, customer_id in owners.items():
        root = parts.find(("key", key))
        if root in groups:
            groups[root].customers.add(customer_id)

    fresh = iter(
        await repository.new_customers(
            session, user_id, sum(1 for g in groups.values() if not g.customers)
        )
    )
    merged_into: dict[int, int] = {}
    put_keys: dict[tuple[str, str], int] = {}
    links: list[tuple[int, int, datetime]] = []
    touched: set[int] = set()
    for group in groups.values():
        survivor = min(group.customers) if group.customers else next(fresh)
        merged_into.update({c: survivor for c in group.customers if c != survivor})
        put_keys.update({key: survivor for key in group.keys if owners.get(key) != survivor})
        links.extend((row.id, survivor, row.updated_at) for row in group.orders)
        touched.add(survivor)
    await repository.merge(session, merged_into)
    await repository.put_keys(session, user_id, put_keys)
    await repository.put_links(session, links)
    # Orders without keys (erased) leave the customer they were linked to.
    keyless = [row for row in rows if not keys_of[row.id] and row.linked_to is not None]
    await repository.unlink(session, [row.id for row in keyless])
    touched.update(row.linked_to for row in keyless if row.linked_to not in merged_into)
    await repository.recompute(session, sorted(touched))
    if merged_into:
        logger.info("customers merged", extra={"user_id": user_id, "merged": len(merged_into)})
    return len(links)


async def refresh_connection(
    sessionmaker: async_sessionmaker[AsyncSession],
    connection_id: uuid.UUID,
    *,
    batch_size: int = REFRESH_BATCH,
) -> int:
    """Link the connection's orders changed since its mark; each batch commits on its own (a
    crash keeps the progress). Returns how many orders were (re)linked."""
    linked = 0
    after: tuple[datetime, int] | None = None
    while True:
        async with sessionmaker() as session, session.begin():
            user_id = await repository.connection_user(session, connection_id)
            if user_id is None:
                return linked  # disconnected and deleted meanwhile
            await repository.lock_user(session, user_id)
            if after is None:
                mark = await repository.mark(session, connection_id)
                after = ((mark - REFRESH_OVERLAP) if mark is not None else _EPOCH, 0)
            rows = await repository.changed_orders(session, connection_id, after, batch_size)
            changed = [row for row in rows if row.order_version != row.updated_at]
            if changed:
                linked += await link_orders(session, user_id, changed)
            if rows:
                after = (rows[-1].updated_at, rows[-1].id)
                await repository.set_mark(session, connection_id, rows[-1].updated_at)
        if len(rows) < batch_size:
            return linked


async def refresh_behind(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Refresh every connection with orders changed after its mark (or never read)."""
    async with sessionmaker() as session:
        behind = await repository.connections_behind(session)
    linked = 0
    for connection_id in behind:
        linked += await refresh_connection(sessionmaker, connection_id)
    return linked


async def rebuild(sessionmaker: async_sessionmaker[AsyncSession], user_id: str | None) -> int:
    """Forget the customers of `user_id` (None: everyone's) and link all their orders again."""
    async with sessionmaker() as session, session.begin():
        await repository.forget(session, user_id)
        connections = await repository.user_connections(session, user_id)
    linked = 0
    for connection_id in connections:
        linked += await refresh_connection(sessionmaker, connection_id)
    return linked


def encode_cursor(last_order_at: datetime, customer_id: int) -> str:
    payload = json.dumps([_CURSOR_VERSION, last_order_at.isoformat(), customer_id])
    return base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, at, customer_id = json.loads(base64.urlsafe_b64decode(padded))
        if version != _CURSOR_VERSION or not isinstance(at, str):
            raise ValueError("unknown cursor version")
        if type(customer_id) is not int or not 0 < customer_id < 2**63:
            raise ValueError("bad id")
        key = datetime.fromisoformat(at)
        if key.tzinfo is None:
            raise ValueError("naive time")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise invalid("cursor", "Malformed cursor; pass nextCursor from a previous page") from exc
    return key.astimezone(UTC), customer_id


def total_spent(stored: str | None) -> dict[str, str]:
    """{currency: sum} with the currency's minor units, currencies in alphabetical order."""
    sums: dict[str, str] = from_json(stored) if stored else {}
    return {currency: format_amount(sums[currency], currency) for currency in sorted(sums)}


def render_customer(row: Any, *, include_buyer: bool = False) -> dict[str, Any]:
    """The wire shape (CustomerOut); phone and e-mail masked as order lists mask them."""
    return {
        "id": row["id"],
        "name": row["name"],
        "phone": row["phone"] if include_buyer else mask_phone(row["phone"]),
        "email": row["email"] if include_buyer else mask_email(row["email"]),
        "channels": list(row["channels"]),
        "orderCount": row["order_count"],
        "totalSpent": total_spent(row["total_spent"]),
        "firstOrderAt": row["first_order_at"],
        "lastOrderAt": row["last_order_at"],
    }


async def list_customers(
    session: AsyncSession,
    user_id: str,
    *,
    q: str | None,
    limit: int,
    cursor: str | None,
    include_buyer: bool = False,
) -> bytes:
    """The response body (CustomerListResponse) as JSON."""
    after = decode_cursor(cursor) if cursor is not None else None
    rows = await repository.page(session, user_id, q=clean_search(q), after=after, limit=limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["last_order_at"], rows[-1]["id"])
    return to_json(
        {
            "data": [render_customer(row, include_buyer=include_buyer) for row in rows],
            "pagination": {"limit": limit, "nextCursor": next_cursor},
        }
    )


async def _customer(session: AsyncSession, user_id: str, customer_id: int) -> Any:
    row = await repository.get(session, user_id, customer_id)
    if row is None:
        raise NotFoundError("Customer not found")
    return row


async def get_customer(
    session: AsyncSession, user_id: str, customer_id: int, *, include_buyer: bool = False
) -> bytes:
    """The response body (CustomerDetailResponse): the customer and their newest orders,
    rendered and masked as the order list renders them."""
    row = await _customer(session, user_id, customer_id)
    orders = await repository.orders_of(session, customer_id, DETAIL_ORDERS)
    return to_json(
        {
            "data": {
                **render_customer(row, include_buyer=include_buyer),
                "orders": [render_order(o, include_buyer=include_buyer) for o in orders],
            }
        }
    )


async def export_customer(
    session: AsyncSession, user_id: str, customer_id: int, *, now: datetime | None = None
) -> bytes:
    """Everything stored about one customer (PDPA right of access), as the buyer export gives
    it for one phone: the customer in full and every order with its raw payload."""
    row = await _customer(session, user_id, customer_id)
    orders = await repository.orders_of(session, customer_id, EXPORT_ORDERS, with_raw=True)
    return to_json(
        {
            "data": {
                "customer": render_customer(row, include_buyer=True),
                **buyers.export_document(orders, now=now),
            }
        }
    )


async def erase_customer(session: AsyncSession, user_id: str, customer_id: int) -> int:
    """Erase the buyer data of every order of the customer (app/buyers' erasure: columns and
    raw payloads) and forget the customer and its keys, in the caller's transaction. Returns
    how many orders were erased."""
    await _customer(session, user_id, customer_id)
    await repository.lock_user(session, user_id)
    order_ids = await repository.order_ids_of(session, customer_id)
    erased = await buyers.erase_orders_buyer_data(session, order_ids)
    await repository.unlink(session, order_ids)
    await repository.recompute(session, [customer_id])
    return erased
