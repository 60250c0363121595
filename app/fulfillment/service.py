"""Fulfillment: ship (one order or hundreds), tracking, labels, cancel and buyer requests.

A ship request only writes a `requested` fulfillment and asks for the ship job in the same
transaction; the job claims what waits for the connection (lease), commits, calls the
marketplace in as few calls as it allows, then writes each result in a short transaction.
Live and Messenger orders are shipped by hand: the tracking number is stored at once."""

from __future__ import annotations

import base64
import io
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.connections.credentials import connection_client
from app.errors import AppError, ConflictError, NotFoundError, ValidationFailed
from app.fulfillment import repository
from app.fulfillment.schemas import (
    BulkShipBody,
    CancelReasonOut,
    FulfillmentOut,
    LabelFormat,
    ShipBody,
    ShipMethod,
    ShipOptions,
    ShippingOptionsOut,
)
from app.inventory import moves
from app.jobs.outbox import enqueue
from app.jobs.policy import RetryPolicy
from app.live.orders import queue_replies
from app.models import MarketplaceConnection, MarketplaceOrder, OrderFulfillment
from app.models.social_order import SocialOrder
from app.platforms.base import MarketplaceClient
from app.platforms.errors import MarketplaceError
from app.platforms.fulfillment import ShipRequest, ShipResult, ShipTarget
from app.worker_context import WorkerContext

SHIP_JOB = "ship_fulfillments"
TRACK_JOB = "read_fulfillment_tracking"
MAX_SHIP_CLAIMS = 10
SHIPPABLE_STATUSES = frozenset({"pending", "ready_to_ship"})
SOCIAL_CHANNELS = frozenset({"live", "messenger"})
# Which methods each kind of order ships with (INTERFACE.md "Methods per platform").
METHODS: dict[str, frozenset[ShipMethod]] = {
    "shopee": frozenset({ShipMethod.PICKUP, ShipMethod.DROPOFF, ShipMethod.TRACKING}),
    "lazada": frozenset({ShipMethod.PICKUP, ShipMethod.DROPOFF}),
    "facebook": frozenset({ShipMethod.TRACKING}),
    "tiktok": frozenset({ShipMethod.PICKUP, ShipMethod.DROPOFF, ShipMethod.TRACKING}),
    "social": frozenset({ShipMethod.TRACKING}),
}
SELLER_CARRIERS = (
    {"code": "KERRY_EXPRESS_THAILAND", "name": "Kerry Express"},
    {"code": "FLASH_EXPRESS", "name": "Flash Express"},
    {"code": "J_T_EXPRESS", "name": "J&T Express"},
    {"code": "THAILAND_THAI_POST", "name": "Thailand Post"},
    {"code": "OTHER", "name": "Other"},
)


class NotShippable(ConflictError):
    code = "not_shippable"


class ShipRunning(ConflictError):
    code = "fulfillment_running"

    def __init__(self, fulfillment_id: uuid.UUID) -> None:
        super().__init__(
            "A ship of this order is already running", fulfillmentId=str(fulfillment_id)
        )


class IdempotencyKeyReused(ConflictError):
    code = "idempotency_key_reused"


class LabelNotReady(ConflictError):
    code = "label_not_ready"


class MarketplaceRefused(ConflictError):
    code = "marketplace_refused"


class NoMarketplaceLabel(ConflictError):
    code = "label_not_available"


def _now() -> datetime:
    return datetime.now(UTC)


def out(fulfillment: OrderFulfillment) -> FulfillmentOut:
    return FulfillmentOut.model_validate(fulfillment)


def _kind(order: MarketplaceOrder) -> str:
    return "social" if order.channel in SOCIAL_CHANNELS else order.platform_code


def _target(order: MarketplaceOrder, fulfillment: OrderFulfillment | None = None) -> ShipTarget:
    if fulfillment is None:
        return ShipTarget(order.external_order_id)
    return ShipTarget(
        order.external_order_id,
        package_number=fulfillment.package_number,
        tracking_number=fulfillment.tracking_number,
        carrier=fulfillment.carrier,
        idempotency_key=str(fulfillment.id),
    )


# --- clients -----------------------------------------------------------------------------


@dataclass
class Clients:
    """How services reach a connection's marketplace: the worker's context, or one built
    from the API process's state (same settings, cipher, HTTP client and Redis)."""

    context: WorkerContext

    async def for_order(self, session: AsyncSession, order: MarketplaceOrder) -> MarketplaceClient:
        connection = await session.get(MarketplaceConnection, order.connection_id)
        if connection is None:
            raise NotFoundError("The order's connection is gone")
        return connection_client(self.context, connection)


async def _end_read(session: AsyncSession) -> None:
    """End the read transaction before a marketplace call (no call with a transaction open)."""
    await session.commit()


async def load_order(session: AsyncSession, owner: str, order_id: int) -> MarketplaceOrder:
    order = await session.get(MarketplaceOrder, order_id)
    if order is None or order.user_id != owner:
        raise NotFoundError("Order not found")
    return order


# --- shipping options --------------------------------------------------------------------


async def shipping_options(
    session: AsyncSession, clients: Clients, owner: str, order_id: int, package: str | None
) -> ShippingOptionsOut:
    order = await load_order(session, owner, order_id)
    if order.channel in SOCIAL_CHANNELS:
        return ShippingOptionsOut(
            methods=[ShipMethod.TRACKING],
            pickup_addresses=[],
            dropoff_branches=[],
            carriers=list(SELLER_CARRIERS),
            packages=[],
            info_needed={"tracking": ["trackingNumber", "carrier"]},
        )
    client = await clients.for_order(session, order)
    target = ShipTarget(order.external_order_id, package_number=package)
    await _end_read(session)
    try:
        options = await client.shipping_options(target)
    except MarketplaceError as error:
        raise _refused(error) from error
    finally:
        await client.aclose()
    return ShippingOptionsOut(
        methods=[ShipMethod(m) for m in options.methods],
        pickup_addresses=options.pickup_addresses,
        dropoff_branches=options.dropoff_branches,
        carriers=options.carriers,
        packages=options.packages,
        info_needed=options.info_needed,
    )


def _refused(error: MarketplaceError) -> AppError:
    if error.retryable:
        return AppError(
            f"The marketplace did not answer: {error.message}",
            code="marketplace_unavailable",
            status_code=503,
        )
    return MarketplaceRefused(error.message, platformCode=error.code)


# --- ship --------------------------------------------------------------------------------


def _check_method(
    order: MarketplaceOrder, options: ShipOptions, tracking: str | None, field: str
) -> None:
    allowed = METHODS.get(_kind(order), frozenset())
    if options.method not in allowed:
        names = ", ".join(sorted(allowed)) or "none"
        raise ValidationFailed(
            f"This order ships with method {names}, not {options.method}", fields=["method"]
        )
    if options.method == ShipMethod.TRACKING and not tracking:
        raise ValidationFailed("The tracking method needs a tracking number", fields=[field])
    if (
        _kind(order) == "shopee"
        and options.method == ShipMethod.PICKUP
        and not (options.address_id and options.pickup_time_id)
    ):
        raise ValidationFailed(
            "A Shopee pickup needs addressId and pickupTimeId (see shipping-options)",
            fields=["addressId", "pickupTimeId"],
        )


def _shippable(order: MarketplaceOrder) -> None:
    if order.status not in SHIPPABLE_STATUSES:
        raise NotShippable(
            f"This order is {order.status} and cannot be shipped", status=order.status
        )


async def _insert(session: AsyncSession, fulfillment: OrderFulfillment) -> OrderFulfillment:
    """Insert, or answer what a concurrent request with the same key or order made."""
    try:
        async with session.begin_nested():
            session.add(fulfillment)
            await session.flush()
    except IntegrityError:
        if fulfillment.idempotency_key:
            same = await repository.by_key(
                session, fulfillment.user_id, fulfillment.idempotency_key
            )
            if same is not None:
                if same.order_id != fulfillment.order_id:
                    raise IdempotencyKeyReused(
                        "This Idempotency-Key was used for another order"
                    ) from None
                return same
        running = await repository.running(session, [fulfillment.order_id])
        found = running.get((fulfillment.order_id, fulfillment.package_number or ""))
        raise ShipRunning(found.id if found else fulfillment.id) from None
    return fulfillment


def _new(
    order: MarketplaceOrder,
    options: ShipOptions,
    *,
    key: str | None,
    tracking: str | None,
    package: str | None,
) -> OrderFulfillment:
    return OrderFulfillment(
        id=uuid.uuid4(),
        user_id=order.user_id,
        order_id=order.id,
        connection_id=order.connection_id,
        platform_code=order.platform_code,
        channel=order.channel,
        method=options.method.value,
        status="requested",
        idempotency_key=key,
        package_number=package,
        tracking_number=tracking,
        carrier=options.carrier,
        address_id=options.address_id,
        pickup_time_id=options.pickup_time_id,
        attempts=0,
        tracking_reads=0,
    )


async def _ship_by_hand(
    session: AsyncSession, order: MarketplaceOrder, fulfillment: OrderFulfillment
) -> None:
    """Live and Messenger orders: this service owns their state, the seller ships them, and
    the buyer is told the carrier and tracking number (one message for this change)."""
    now = _now()
    fulfillment.status = "shipped"
    fulfillment.shipped_at = now
    fulfillment.updated_at = now
    order.status = "shipped"
    order.raw_status = "shipped_by_seller"
    order.order_updated_at = now
    social = await session.scalar(select(SocialOrder).where(SocialOrder.order_id == order.id))
    if social is not None:
        social.version += 1
        await session.flush()
        await queue_replies(session, [(order, social)])


async def request_ship(
    session: AsyncSession, owner: str, order_id: int, body: ShipBody, key: str | None
) -> OrderFulfillment:
    if key:
        existing = await repository.by_key(session, owner, key)
        if existing is not None:
            if existing.order_id != order_id:
                raise IdempotencyKeyReused("This Idempotency-Key was used for another order")
            return existing
    order = await load_order(session, owner, order_id)
    _shippable(order)
    _check_method(order, body, body.tracking_number, "trackingNumber")
    running = await repository.running(session, [order.id])
    found = running.get((order.id, body.package_number or ""))
    if found is not None:
        # The running one may be this key's, committed since the first look.
        if key and found.idempotency_key == key:
            return found
        raise ShipRunning(found.id)
    new = _new(order, body, key=key, tracking=body.tracking_number, package=body.package_number)
    fulfillment = await _insert(session, new)
    if fulfillment is not new:
        return fulfillment  # a concurrent request with the same key made it
    if order.channel in SOCIAL_CHANNELS:
        await _ship_by_hand(session, order, fulfillment)
    else:
        enqueue(session, SHIP_JOB, str(fulfillment.id))
    await session.flush()
    return fulfillment


async def request_bulk(
    session: AsyncSession, owner: str, body: BulkShipBody
) -> list[OrderFulfillment]:
    """One fulfillment per order, in the order given: a running ship is answered as it is,
    an order that cannot ship gets a `failed` one saying why."""
    ids = list(dict.fromkeys(body.order_ids))
    orders = await repository.orders_of(session, owner, ids)
    missing = [i for i in ids if i not in orders]
    if missing:
        raise NotFoundError(f"Orders not found: {', '.join(map(str, missing[:20]))}")
    tracking = body.tracking_numbers or {}
    for order_id in ids:
        _check_method(
            orders[order_id], body, tracking.get(str(order_id)), f"trackingNumbers.{order_id}"
        )
    running = await repository.running(session, ids)
    answered: list[OrderFulfillment] = []
    first_of_connection: dict[uuid.UUID, OrderFulfillment] = {}
    for order_id in ids:
        order = orders[order_id]
        if (order_id, "") in running:
            answered.append(running[(order_id, "")])
            continue
        fulfillment = _new(
            order, body, key=None, tracking=tracking.get(str(order_id)), package=None
        )
        if order.status not in SHIPPABLE_STATUSES:
            fulfillment.status = "failed"
            fulfillment.message = f"This order is {order.status} and cannot be shipped"
        session.add(fulfillment)
        answered.append(fulfillment)
        if fulfillment.status != "requested":
            continue
        if order.channel in SOCIAL_CHANNELS:
            await _ship_by_hand(session, order, fulfillment)
        else:
            first_of_connection.setdefault(order.connection_id, fulfillment)
    await session.flush()
    # One job per connection: it claims every fulfillment waiting for that shop.
    for fulfillment in first_of_connection.values():
        enqueue(session, SHIP_JOB, str(fulfillment.id))
    return answered


async def list_fulfillments(
    session: AsyncSession,
    owner: str,
    *,
    status: str | None,
    order_id: int | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[OrderFulfillment], str | None]:
    after = _decode_cursor(cursor) if cursor else None
    rows = await repository.page(
        session, owner, status=status, order_id=order_id, limit=limit, after=after
    )
    more = len(rows) > limit
    rows = rows[:limit]
    following = _encode_cursor(rows[-1]) if more and rows else None
    return rows, following


def _encode_cursor(last: OrderFulfillment) -> str:
    raw = f"{last.created_at.isoformat()}|{last.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, ident = raw.split("|", 1)
        return datetime.fromisoformat(moment), uuid.UUID(ident)
    except ValueError:
        raise ValidationFailed("Invalid cursor", fields=["cursor"]) from None


# --- the ship job ------------------------------------------------------------------------


async def ship_waiting(wc: WorkerContext, fulfillment_id: uuid.UUID) -> int:
    """Ship everything waiting for the connection of `fulfillment_id`; returns how many
    fulfillments got an answer."""
    settings = wc.settings
    async with wc.sessionmaker() as session, session.begin():
        first = await session.get(OrderFulfillment, fulfillment_id)
        if first is None or first.status != "requested":
            return 0
        claimed = await repository.claim(
            session, first.connection_id, settings.fulfillment_ship_lease_seconds
        )
        if not claimed:
            return 0
        pairs = []
        for fulfillment, order in await repository.with_orders(session, claimed):
            if fulfillment.attempts > MAX_SHIP_CLAIMS:
                # Claimed again and again without an answer (a job that keeps crashing).
                fulfillment.status = "failed"
                fulfillment.lease_until = None
                fulfillment.message = f"Gave up after {fulfillment.attempts - 1} attempts"
            else:
                pairs.append((fulfillment, order))
        connection = await session.get(MarketplaceConnection, first.connection_id)
        if connection is None or not pairs:
            return 0
        client = connection_client(wc, connection)
        groups: dict[tuple[str, str | None, str | None], list[tuple[uuid.UUID, ShipTarget]]]
        groups = defaultdict(list)
        attempts = max(f.attempts for f, _ in pairs)
        for fulfillment, order in pairs:
            key = (fulfillment.method, fulfillment.address_id, fulfillment.pickup_time_id)
            groups[key].append((fulfillment.id, _target(order, fulfillment)))
    answered = 0
    policy = RetryPolicy.from_tuning(settings.clients)
    try:
        for (method, address_id, pickup_time_id), entries in groups.items():
            request = ShipRequest(
                ShipMethod(method).value, address_id=address_id, pickup_time_id=pickup_time_id
            )
            # A single package ships with ship_order, several with the platform's batch call.
            singles = [e for e in entries if e[1].package_number]
            batch = [e for e in entries if not e[1].package_number]
            for part in [[s] for s in singles] + ([batch] if batch else []):
                try:
                    results = await client.ship([t for _, t in part], request)
                except MarketplaceError as error:
                    part_ids = [fid for fid, _ in part]
                    if policy.should_retry(error, attempts):
                        await _retry_later(wc, part_ids, policy.delay_for(error, attempts))
                    else:
                        failed = [ShipResult(t.external_order_id, ok=False) for _, t in part]
                        await _write_results(wc, part_ids, failed, error.message)
                    continue
                await _write_results(wc, [fid for fid, _ in part], results, None)
                answered += len(part)
    finally:
        await client.aclose()
    return answered


async def sweep(wc: WorkerContext) -> int:
    """Cron: ask again for ship jobs that died or were lost, and for tracking reads that
    were; returns how many jobs were asked for."""
    settings = wc.settings
    lease = settings.fulfillment_ship_lease_seconds
    async with wc.sessionmaker() as session, session.begin():
        ships = await repository.stranded(session, lease)
        reads = await repository.tracking_due(
            session,
            settings.fulfillment_tracking_max_reads,
            2 * settings.fulfillment_tracking_retry_seconds + lease,
        )
        for fulfillment_id in ships:
            enqueue(
                session, SHIP_JOB, str(fulfillment_id), dedupe_key=f"{SHIP_JOB}:{fulfillment_id}"
            )
        for fulfillment_id in reads:
            enqueue(
                session, TRACK_JOB, str(fulfillment_id), dedupe_key=f"{TRACK_JOB}:{fulfillment_id}"
            )
    return len(ships) + len(reads)


async def _retry_later(wc: WorkerContext, ids: Sequence[uuid.UUID], delay: float) -> None:
    async with wc.sessionmaker() as session, session.begin():
        await session.execute(
            update(OrderFulfillment)
            .where(OrderFulfillment.id.in_(ids), OrderFulfillment.status == "requested")
            .values(lease_until=None, updated_at=_now())
        )
        enqueue(session, SHIP_JOB, str(ids[0]), defer_seconds=delay)


async def _write_results(
    wc: WorkerContext,
    ids: Sequence[uuid.UUID],
    results: Sequence[ShipResult],
    failure: str | None,
) -> None:
    now = _now()
    async with wc.sessionmaker() as session, session.begin():
        for fulfillment_id, result in zip(ids, results, strict=True):
            fulfillment = await session.get(OrderFulfillment, fulfillment_id)
            if fulfillment is None or fulfillment.status != "requested":
                continue  # answered by an earlier run of this job
            fulfillment.lease_until = None
            fulfillment.updated_at = now
            if not result.ok:
                fulfillment.status = "failed"
                fulfillment.message = failure or result.message or "The marketplace refused"
                continue
            fulfillment.status = "shipped"
            fulfillment.shipped_at = now
            fulfillment.message = None
            fulfillment.tracking_number = result.tracking_number or fulfillment.tracking_number
            fulfillment.carrier = result.carrier or fulfillment.carrier
            fulfillment.package_id = result.package_id or result.package_number
            if not fulfillment.tracking_number:
                enqueue(session, TRACK_JOB, str(fulfillment.id))


async def orders_pushed(
    session: AsyncSession, connection_id: uuid.UUID, external_order_ids: Sequence[str]
) -> None:
    """A push named these orders: shipments of theirs still without a tracking number read it
    now rather than at the next interval."""
    if not external_order_ids:
        return
    waiting = await session.scalars(
        select(OrderFulfillment.id)
        .join(MarketplaceOrder, MarketplaceOrder.id == OrderFulfillment.order_id)
        .where(
            MarketplaceOrder.connection_id == connection_id,
            MarketplaceOrder.external_order_id.in_(list(external_order_ids)),
            OrderFulfillment.status == "shipped",
            OrderFulfillment.tracking_number.is_(None),
        )
    )
    for fulfillment_id in waiting:
        # "push": this read asks nothing again; the periodic chain keeps its pace.
        enqueue(
            session,
            TRACK_JOB,
            str(fulfillment_id),
            "push",
            dedupe_key=f"{TRACK_JOB}:push:{fulfillment_id}",
        )


async def read_tracking(
    wc: WorkerContext, fulfillment_id: uuid.UUID, *, pushed: bool = False
) -> str | None:
    """Read a shipped fulfillment's tracking number; ask again later (no more often than
    FULFILLMENT_TRACKING_RETRY_SECONDS) while the platform has none."""
    settings = wc.settings
    async with wc.sessionmaker() as session, session.begin():
        fulfillment = await session.get(OrderFulfillment, fulfillment_id, with_for_update=True)
        if fulfillment is None or fulfillment.status != "shipped" or fulfillment.tracking_number:
            return None
        order = await session.get(MarketplaceOrder, fulfillment.order_id)
        connection = await session.get(MarketplaceConnection, fulfillment.connection_id)
        if order is None or connection is None:
            return None
        fulfillment.tracking_reads += 1
        reads = fulfillment.tracking_reads
        target = _target(order, fulfillment)
        client = connection_client(wc, connection)
    try:
        number = await client.tracking_number(target)
    except MarketplaceError:
        number = None  # asked again below, like an empty answer
    finally:
        await client.aclose()
    async with wc.sessionmaker() as session, session.begin():
        fulfillment = await session.get(OrderFulfillment, fulfillment_id)
        if fulfillment is None:
            return None
        if number:
            fulfillment.tracking_number = number
        elif not pushed and reads < settings.fulfillment_tracking_max_reads:
            enqueue(
                session,
                TRACK_JOB,
                str(fulfillment_id),
                defer_seconds=settings.fulfillment_tracking_retry_seconds,
            )
    return number


# --- labels ------------------------------------------------------------------------------


async def labels_pdf(
    session: AsyncSession,
    clients: Clients,
    owner: str,
    order_ids: Sequence[int],
    fmt: LabelFormat,
    retry_after: int,
) -> bytes:
    """The airway bills of the orders as one PDF, in the order given."""
    ids = list(dict.fromkeys(order_ids))
    orders = await repository.orders_of(session, owner, ids)
    missing = [i for i in ids if i not in orders]
    if missing:
        raise NotFoundError(f"Orders not found: {', '.join(map(str, missing[:20]))}")
    social = [i for i in ids if orders[i].channel in SOCIAL_CHANNELS]
    if social:
        raise NoMarketplaceLabel(
            "Live and Messenger orders have no marketplace airway bill", orderIds=social
        )
    shipped = await _latest_shipped(session, ids)
    by_connection: dict[uuid.UUID, list[int]] = defaultdict(list)
    for order_id in ids:
        by_connection[orders[order_id].connection_id].append(order_id)
    work: list[tuple[MarketplaceClient, list[int], list[ShipTarget]]] = []
    for order_ids_of_shop in by_connection.values():
        client = await clients.for_order(session, orders[order_ids_of_shop[0]])
        targets = [_target(orders[i], shipped.get(i)) for i in order_ids_of_shop]
        work.append((client, order_ids_of_shop, targets))
    await _end_read(session)
    pdfs: dict[int, bytes] = {}
    try:
        for client, shop_orders, targets in work:
            try:
                results = await client.labels(targets, fmt.value)
            except MarketplaceError as error:
                raise _refused(error) from error
            for order_id, result in zip(shop_orders, results, strict=True):
                if not result.ready or result.pdf is None:
                    raise LabelNotReady(
                        f"The label of order {order_id} is not ready: {result.message}",
                        headers={"Retry-After": str(retry_after)},
                        orderId=order_id,
                    )
                pdfs[order_id] = result.pdf
    finally:
        for client, _, _ in work:
            await client.aclose()
    return merge_pdfs([pdfs[i] for i in ids])


async def _latest_shipped(
    session: AsyncSession, order_ids: Sequence[int]
) -> dict[int, OrderFulfillment]:
    rows = await session.scalars(
        select(OrderFulfillment)
        .where(OrderFulfillment.order_id.in_(order_ids), OrderFulfillment.status == "shipped")
        .order_by(OrderFulfillment.created_at)
    )
    return {f.order_id: f for f in rows}


def merge_pdfs(parts: Sequence[bytes]) -> bytes:
    if len(parts) == 1:
        return parts[0]
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for part in parts:
        for page in PdfReader(io.BytesIO(part)).pages:
            writer.add_page(page)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


# --- cancel ------------------------------------------------------------------------------


async def cancel_reasons(
    session: AsyncSession, clients: Clients, owner: str, order_id: int
) -> list[CancelReasonOut]:
    order = await load_order(session, owner, order_id)
    if order.channel in SOCIAL_CHANNELS:
        return [CancelReasonOut(code="SELLER_CANCELLED", name="Cancelled by the seller")]
    client = await clients.for_order(session, order)
    await _end_read(session)
    try:
        reasons = await client.cancel_reasons(_target(order))
    except MarketplaceError as error:
        raise _refused(error) from error
    finally:
        await client.aclose()
    return [CancelReasonOut(code=r.code, name=r.name) for r in reasons]


async def cancel_marketplace_order(
    session: AsyncSession, clients: Clients, owner: str, order_id: int, reason: str
) -> None:
    """Cancel on the marketplace with one of its reasons, then here; stock goes back."""
    order = await load_order(session, owner, order_id)
    if order.status in ("cancelled", "shipped", "delivered", "completed", "returned"):
        raise ConflictError(
            f"This order is {order.status} and cannot be cancelled",
            code="order_state_conflict",
            status=order.status,
        )
    client = await clients.for_order(session, order)
    target = ShipTarget(order.external_order_id, idempotency_key=f"cancel-{order.id}")
    await _end_read(session)
    try:
        reasons = await client.cancel_reasons(target)
        if reason not in {r.code for r in reasons}:
            codes = ", ".join(r.code for r in reasons)
            raise ValidationFailed(f"reason must be one of: {codes}", fields=["reason"])
        await client.cancel_order(target, reason)
    except MarketplaceError as error:
        raise _refused(error) from error
    finally:
        await client.aclose()
    await _mark_cancelled(session, order_id, f"cancelled by the seller ({reason})")


async def answer_cancellation(
    session: AsyncSession, clients: Clients, owner: str, order_id: int, accept: bool
) -> None:
    order = await load_order(session, owner, order_id)
    if order.channel in SOCIAL_CHANNELS:
        raise ConflictError(
            "Live and Messenger orders have no buyer cancellation requests",
            code="order_state_conflict",
        )
    client = await clients.for_order(session, order)
    await _end_read(session)
    try:
        await client.answer_cancellation(_target(order), accept)
    except MarketplaceError as error:
        raise _refused(error) from error
    finally:
        await client.aclose()
    if accept:
        await _mark_cancelled(session, order_id, "buyer's cancellation accepted")
    else:
        order = await load_order(session, owner, order_id)
        if order.status == "cancelling":
            order.status = "pending"
            order.raw_status = "cancellation_rejected"
            await session.flush()


async def _mark_cancelled(session: AsyncSession, order_id: int, note: str) -> None:
    order = await session.get(MarketplaceOrder, order_id, with_for_update=True)
    if order is None or order.status == "cancelled":
        return
    order.status = "cancelled"
    order.raw_status = "cancelled"
    order.order_updated_at = _now()
    await session.flush()
    await release_stock(session, order, note)


async def release_stock(session: AsyncSession, order: MarketplaceOrder, note: str) -> None:
    """The one place a cancelled order's stock goes back, through the stock mover (its units
    serve the waiting lines first). A later sync of the cancelled order finds nothing left."""
    await moves.release_order(session, order.id, order.connection_id, note)


def as_data(fulfillments: Sequence[OrderFulfillment]) -> list[dict[str, Any]]:
    return [out(f).model_dump(mode="json", by_alias=True) for f in fulfillments]
