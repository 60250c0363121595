"""Customer queries: reading orders to link, the link writes, the figures and the list.

Every statement names the user first; the list is one range scan of (user_id, last_order_at,
id), and a customer's orders one probe of customer_orders (customer_id, order_id)."""

# SQL text here is assembled from constant fragments only; every value is a bind parameter.
# ruff: noqa: S608

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.order import HOLDS_BUYER_DATA_SQL
from app.orders.repository import ITEMS, ORDER_COLUMNS, WAITLIST, fetch

# Orders that do not count towards what a customer spent.
NOT_SPENT_STATUSES = ("cancelled", "returned", "failed")
# A phone key shorter than a Thai landline without its 0 (8 digits) cannot single out a buyer.
MIN_PHONE_KEY_DIGITS = 8

# The keys of each order, computed by the same SQL function as the buyer export's index. An
# order whose buyer data was erased gives none (its Messenger id stays, but must not link it).
# Shopee names its buyer in the raw payload only; live and Messenger orders carry their id.
_CHANGED_ORDERS = text(f"""
SELECT o.id, o.updated_at, co.customer_id AS linked_to, co.order_version,
    CASE WHEN {HOLDS_BUYER_DATA_SQL.replace("buyer_", "o.buyer_")} THEN true ELSE false END
        AS holds_buyer_data,
    CASE WHEN length(buyer_phone_key(o.buyer_phone)) >= {MIN_PHONE_KEY_DIGITS}
        THEN buyer_phone_key(o.buyer_phone) END AS phone_key,
    NULLIF(lower(btrim(o.buyer_email)), '') AS email_key,
    o.platform_code || ':' || COALESCE(
        o.buyer_external_id,
        CASE WHEN o.platform_code = 'shopee' THEN NULLIF(o.raw->>'buyer_user_id', '0') END
    ) AS buyer_key
FROM marketplace_orders o LEFT JOIN customer_orders co ON co.order_id = o.id
WHERE o.connection_id = :connection_id AND (o.updated_at, o.id) > (:after_time, :after_id)
ORDER BY o.updated_at, o.id
LIMIT :limit""")

_LOCK_USER = text("SELECT pg_advisory_xact_lock(hashtext(:key))")
# Short statements over a few thousand rows: compiling them (JIT) costs more than running them.
_NO_JIT = text("SET LOCAL jit = off")
_CONNECTION_USER = text("SELECT user_id FROM marketplace_connections WHERE id = :id")
_MARK = text("SELECT refreshed_to FROM customer_refresh_marks WHERE connection_id = :id")
_SET_MARK = text(
    "INSERT INTO customer_refresh_marks (connection_id, refreshed_to) VALUES (:id, :to) "
    "ON CONFLICT (connection_id) DO UPDATE SET refreshed_to = "
    "greatest(customer_refresh_marks.refreshed_to, EXCLUDED.refreshed_to)"
)
_KEY_OWNERS = text(
    "SELECT u.kind, u.value, k.customer_id "
    "FROM unnest(CAST(:kinds AS text[]), CAST(:values AS text[])) AS u(kind, value) "
    "CROSS JOIN LATERAL (SELECT customer_id FROM customer_keys k WHERE k.user_id = :user_id "
    "AND k.kind = u.kind AND k.value = u.value OFFSET 0) AS k"
)
_NEW_CUSTOMERS = text(
    "INSERT INTO customers (user_id) SELECT :user_id FROM generate_series(1, :n) RETURNING id"
)
_MERGE_KEYS = text(
    "UPDATE customer_keys k SET customer_id = m.survivor "
    "FROM unnest(CAST(:losers AS bigint[]), CAST(:survivors AS bigint[])) AS m(loser, survivor) "
    "WHERE k.customer_id = m.loser"
)
_MERGE_ORDERS = text(
    "UPDATE customer_orders co SET customer_id = m.survivor "
    "FROM unnest(CAST(:losers AS bigint[]), CAST(:survivors AS bigint[])) AS m(loser, survivor) "
    "WHERE co.customer_id = m.loser"
)
_DELETE_CUSTOMERS = text("DELETE FROM customers WHERE id = ANY(CAST(:ids AS bigint[]))")
_PUT_KEYS = text(
    "INSERT INTO customer_keys (user_id, kind, value, customer_id) "
    "SELECT :user_id, u.kind, u.value, u.customer_id FROM unnest(CAST(:kinds AS text[]), "
    "CAST(:values AS text[]), CAST(:customers AS bigint[])) AS u(kind, value, customer_id) "
    "ON CONFLICT (user_id, kind, value) DO UPDATE SET customer_id = EXCLUDED.customer_id"
)
_PUT_LINKS = text(
    "INSERT INTO customer_orders (order_id, customer_id, order_version) "
    "SELECT * FROM unnest(CAST(:orders AS bigint[]), CAST(:customers AS bigint[]), "
    "CAST(:versions AS timestamptz[])) "
    "ON CONFLICT (order_id) DO UPDATE SET customer_id = EXCLUDED.customer_id, "
    "order_version = EXCLUDED.order_version"
)
_UNLINK = text("DELETE FROM customer_orders WHERE order_id = ANY(CAST(:ids AS bigint[]))")
_NOT_SPENT = ", ".join(f"'{status}'" for status in NOT_SPENT_STATUSES)
# Everything shown about a customer, from their orders. Driven by the ids (OFFSET 0 keeps
# each lateral from being flattened into a join), so the plan stays index probes per customer
# even while a rebuild leaves the tables' statistics far behind. The newest order with a name
# (phone, e-mail) gives it; the search text holds every name, phone (digits, key) and e-mail.
_RECOMPUTE = text(f"""
WITH linked AS (
    SELECT u.id AS customer_id, o.*
    FROM unnest(CAST(:ids AS bigint[])) AS u(id)
    CROSS JOIN LATERAL (
        SELECT co.order_id FROM customer_orders co WHERE co.customer_id = u.id OFFSET 0
    ) AS co
    CROSS JOIN LATERAL (
        SELECT o.id, o.platform_code, o.buyer_name, o.buyer_phone, o.buyer_email, o.currency,
            o.total, o.status, o.order_created_at
        FROM marketplace_orders o WHERE o.id = co.order_id OFFSET 0
    ) AS o
), spent AS (
    SELECT customer_id, jsonb_object_agg(currency, total::text) AS total_spent
    FROM (SELECT customer_id, currency, sum(total) AS total FROM linked
          WHERE status NOT IN ({_NOT_SPENT}) GROUP BY customer_id, currency) AS per_currency
    GROUP BY customer_id
), summary AS (
    SELECT customer_id, count(*) AS order_count, min(order_created_at) AS first_order_at,
        max(order_created_at) AS last_order_at,
        array_agg(DISTINCT platform_code ORDER BY platform_code) AS channels,
        (array_agg(buyer_name ORDER BY order_created_at DESC, id DESC)
            FILTER (WHERE buyer_name IS NOT NULL))[1] AS name,
        (array_agg(buyer_phone ORDER BY order_created_at DESC, id DESC)
            FILTER (WHERE buyer_phone IS NOT NULL))[1] AS phone,
        (array_agg(buyer_email ORDER BY order_created_at DESC, id DESC)
            FILTER (WHERE buyer_email IS NOT NULL))[1] AS email,
        lower(concat_ws(' ', string_agg(DISTINCT buyer_name, ' '),
            string_agg(DISTINCT regexp_replace(buyer_phone, '[^0-9]', '', 'g'), ' '),
            string_agg(DISTINCT buyer_phone_key(buyer_phone), ' '),
            string_agg(DISTINCT buyer_email, ' '))) AS search_text
    FROM linked GROUP BY customer_id
)
UPDATE customers c SET name = s.name, phone = s.phone, email = s.email, channels = s.channels,
    order_count = s.order_count, total_spent = COALESCE(sp.total_spent, '{{}}'::jsonb),
    first_order_at = s.first_order_at, last_order_at = s.last_order_at,
    search_text = s.search_text, updated_at = now()
FROM summary s LEFT JOIN spent sp USING (customer_id)
WHERE c.id = s.customer_id""")
# A customer left without orders (all erased or moved) is gone, and its keys with it.
_DROP_EMPTY = text(
    "DELETE FROM customers c WHERE c.id = ANY(CAST(:ids AS bigint[])) "
    "AND NOT EXISTS (SELECT 1 FROM customer_orders co WHERE co.customer_id = c.id)"
)
_CONNECTIONS_BEHIND = text(
    "SELECT c.id FROM marketplace_connections c "
    "LEFT JOIN customer_refresh_marks m ON m.connection_id = c.id "
    "WHERE EXISTS (SELECT 1 FROM marketplace_orders o WHERE o.connection_id = c.id "
    "AND o.updated_at > COALESCE(m.refreshed_to, '-infinity'::timestamptz)) ORDER BY c.id"
)
_USER_CONNECTIONS = text(
    "SELECT id FROM marketplace_connections "
    "WHERE (CAST(:user_id AS text) IS NULL OR user_id = :user_id) "
    "ORDER BY id"
)
_FORGET = text("DELETE FROM customers WHERE (CAST(:user_id AS text) IS NULL OR user_id = :user_id)")
_FORGET_MARKS = text(
    "DELETE FROM customer_refresh_marks m USING marketplace_connections c "
    "WHERE c.id = m.connection_id AND (CAST(:user_id AS text) IS NULL OR c.user_id = :user_id)"
)

CUSTOMER_COLUMNS = (
    "c.id, c.name, c.phone, c.email, c.channels, c.order_count, c.total_spent::text AS "
    "total_spent, c.first_order_at, c.last_order_at"
)


async def lock_user(session: AsyncSession, user_id: str) -> None:
    """Serializes the linking of one user's orders (two connections' jobs may meet on one
    buyer); held until the transaction ends."""
    await session.execute(_LOCK_USER, {"key": f"customers:{user_id}"})
    await session.execute(_NO_JIT)


async def connection_user(session: AsyncSession, connection_id: uuid.UUID) -> str | None:
    user_id: str | None = await session.scalar(_CONNECTION_USER, {"id": connection_id})
    return user_id


async def mark(session: AsyncSession, connection_id: uuid.UUID) -> datetime | None:
    refreshed_to: datetime | None = await session.scalar(_MARK, {"id": connection_id})
    return refreshed_to


async def set_mark(session: AsyncSession, connection_id: uuid.UUID, to: datetime) -> None:
    await session.execute(_SET_MARK, {"id": connection_id, "to": to})


async def changed_orders(
    session: AsyncSession,
    connection_id: uuid.UUID,
    after: tuple[datetime, int],
    limit: int,
) -> Sequence[Any]:
    result = await session.execute(
        _CHANGED_ORDERS,
        {
            "connection_id": connection_id,
            "after_time": after[0],
            "after_id": after[1],
            "limit": limit,
        },
    )
    return result.all()


async def key_owners(
    session: AsyncSession, user_id: str, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    if not keys:
        return {}
    result = await session.execute(
        _KEY_OWNERS,
        {"user_id": user_id, "kinds": [k for k, _ in keys], "values": [v for _, v in keys]},
    )
    return {(row.kind, row.value): row.customer_id for row in result}


async def new_customers(session: AsyncSession, user_id: str, n: int) -> list[int]:
    if n == 0:
        return []
    result = await session.execute(_NEW_CUSTOMERS, {"user_id": user_id, "n": n})
    return sorted(row.id for row in result)


async def merge(session: AsyncSession, into: dict[int, int]) -> None:
    """Move the keys and orders of each customer (key) to its survivor (value); drop it."""
    if not into:
        return
    args = {"losers": list(into), "survivors": list(into.values())}
    await session.execute(_MERGE_KEYS, args)
    await session.execute(_MERGE_ORDERS, args)
    await session.execute(_DELETE_CUSTOMERS, {"ids": list(into)})


async def put_keys(session: AsyncSession, user_id: str, keys: dict[tuple[str, str], int]) -> None:
    if keys:
        await session.execute(
            _PUT_KEYS,
            {
                "user_id": user_id,
                "kinds": [k for k, _ in keys],
                "values": [v for _, v in keys],
                "customers": list(keys.values()),
            },
        )


async def put_links(session: AsyncSession, links: Sequence[tuple[int, int, datetime]]) -> None:
    if links:
        await session.execute(
            _PUT_LINKS,
            {
                "orders": [o for o, _, _ in links],
                "customers": [c for _, c, _ in links],
                "versions": [v for _, _, v in links],
            },
        )


async def unlink(session: AsyncSession, order_ids: Sequence[int]) -> None:
    if order_ids:
        await session.execute(_UNLINK, {"ids": list(order_ids)})


async def recompute(session: AsyncSession, customer_ids: Sequence[int]) -> None:
    """The figures of these customers from their linked orders; those left with none go."""
    if customer_ids:
        ids = sorted(set(customer_ids))
        await session.execute(_RECOMPUTE, {"ids": ids})
        await session.execute(_DROP_EMPTY, {"ids": ids})


async def connections_behind(session: AsyncSession) -> list[uuid.UUID]:
    """Connections with orders changed after their mark (or never read)."""
    return list((await session.scalars(_CONNECTIONS_BEHIND)).all())


async def user_connections(session: AsyncSession, user_id: str | None) -> list[uuid.UUID]:
    return list((await session.scalars(_USER_CONNECTIONS, {"user_id": user_id})).all())


async def forget(session: AsyncSession, user_id: str | None) -> None:
    """Every customer (of one user, or all) and the marks: the next refresh reads all again."""
    await session.execute(_FORGET, {"user_id": user_id})
    await session.execute(_FORGET_MARKS, {"user_id": user_id})


class _Args:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _search(q: str | None, arg: _Args) -> list[str]:
    if not q:
        return []
    term = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    matches = [f"c.search_text LIKE {arg('%' + term + '%')}"]
    # A national number (0812...) must match the stored international form (+66812...).
    digits = "".join(c for c in q if c.isascii() and c.isdigit()).lstrip("0")
    if len(digits) >= 4 and digits != term:
        matches.append(f"c.search_text LIKE {arg('%' + digits + '%')}")
    return ["(" + " OR ".join(matches) + ")"]


async def page(
    session: AsyncSession,
    user_id: str,
    *,
    q: str | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[Any]:
    """Up to `limit` customers, the most recent buyer first, after the keyset `after`."""
    arg = _Args()
    where = [f"c.user_id = {arg(user_id)}", "c.last_order_at IS NOT NULL", *_search(q, arg)]
    if after is not None:
        where.append(
            f"(c.last_order_at, c.id) < ({arg(after[0])}::timestamptz, {arg(after[1])}::bigint)"
        )
    sql = (
        f"SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE {' AND '.join(where)} "
        f"ORDER BY c.last_order_at DESC, c.id DESC LIMIT {arg(limit)}::bigint"
    )
    return await fetch(session, sql, arg.values)


async def get(session: AsyncSession, user_id: str, customer_id: int) -> Any | None:
    rows = await fetch(
        session,
        f"SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.id = $1 AND c.user_id = $2",
        [customer_id, user_id],
    )
    return rows[0] if rows else None


_ORDERS_OF = (
    f"SELECT {ORDER_COLUMNS}, {ITEMS.format(order='o')} AS items, "
    f"{WAITLIST.format(order='o')} AS waitlist{{raw}} "
    "FROM customer_orders co JOIN marketplace_orders o ON o.id = co.order_id "
    "WHERE co.customer_id = $1 ORDER BY o.order_created_at DESC, o.id DESC LIMIT $2"
)


async def orders_of(
    session: AsyncSession, customer_id: int, limit: int, *, with_raw: bool = False
) -> list[Any]:
    """The customer's orders, newest first, with items (and the raw payload if asked)."""
    sql = _ORDERS_OF.format(raw=", o.raw::text AS raw" if with_raw else "")
    return await fetch(session, sql, [customer_id, limit])


async def order_ids_of(session: AsyncSession, customer_id: int) -> list[int]:
    rows = await fetch(
        session,
        "SELECT order_id FROM customer_orders WHERE customer_id = $1 ORDER BY order_id",
        [customer_id],
    )
    return [row["order_id"] for row in rows]
