"""Queries of the review domain: the products a sync asks about, the upsert, the list."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    InventorySku,
    MarketplaceConnection,
    MarketplaceProduct,
    MarketplaceReview,
    MarketplaceStockLevel,
    SkuMapping,
)
from app.platforms.base import NormalizedReview


@dataclass(slots=True)
class Catalogue:
    """A connection's stored products: names, and listings by (product id, variation id)."""

    names: dict[str, str]
    listings: dict[tuple[str, str], int]
    single_listing: dict[str, int]  # products with exactly one listing

    def listing_of(self, review: NormalizedReview) -> int | None:
        if review.external_variation_id:
            found = self.listings.get((review.external_product_id, review.external_variation_id))
            if found is not None:
                return found
        return self.single_listing.get(review.external_product_id)


async def catalogue(session: AsyncSession, connection_id: uuid.UUID) -> Catalogue:
    products = await session.execute(
        select(MarketplaceProduct.external_product_id, MarketplaceProduct.name)
        .where(MarketplaceProduct.connection_id == connection_id)
        .order_by(MarketplaceProduct.id)
    )
    names = {pid: name for pid, name in products.all()}
    rows = await session.execute(
        select(
            MarketplaceStockLevel.id,
            MarketplaceStockLevel.external_product_id,
            MarketplaceStockLevel.external_variation_id,
        ).where(MarketplaceStockLevel.connection_id == connection_id)
    )
    listings: dict[tuple[str, str], int] = {}
    per_product: dict[str, list[int]] = {}
    for listing_id, product_id, variation_id in rows.all():
        listings[(product_id, variation_id or "")] = listing_id
        per_product.setdefault(product_id, []).append(listing_id)
    single = {pid: ids[0] for pid, ids in per_product.items() if len(ids) == 1}
    return Catalogue(names, listings, single)


async def newest_review_at(session: AsyncSession, connection_id: uuid.UUID) -> datetime | None:
    value: datetime | None = await session.scalar(
        select(func.max(MarketplaceReview.review_created_at)).where(
            MarketplaceReview.connection_id == connection_id
        )
    )
    return value


async def upsert_reviews(
    session: AsyncSession,
    connection: MarketplaceConnection,
    reviews: Sequence[NormalizedReview],
    books: Catalogue,
) -> tuple[int, int]:
    """Insert or refresh each review; (created, updated). A reply the platform shows wins; a
    reply it does not show yet (ours, under Lazada's quality check) is kept."""
    unique = {r.external_review_id: r for r in reviews}
    if not unique:
        return 0, 0
    rows = [
        {
            "connection_id": connection.id,
            "user_id": connection.user_id,
            "platform_code": connection.platform_code,
            "external_review_id": r.external_review_id,
            "external_product_id": r.external_product_id,
            "external_variation_id": r.external_variation_id,
            "external_order_id": r.external_order_id,
            "listing_id": books.listing_of(r),
            "product_name": books.names.get(r.external_product_id),
            "rating": r.rating,
            "text": r.text,
            "buyer_name": r.buyer_name,
            "review_created_at": r.created_at,
            "can_reply": r.can_reply,
            "reply_text": r.reply.text if r.reply else None,
            "reply_at": r.reply.at if r.reply else None,
            "raw": r.raw,
        }
        for r in unique.values()
    ]
    statement = insert(MarketplaceReview).values(rows)
    new, table = statement.excluded, MarketplaceReview
    upsert: Any = statement.on_conflict_do_update(
        index_elements=[table.connection_id, table.external_review_id],
        set_={
            "external_variation_id": new.external_variation_id,
            "external_order_id": new.external_order_id,
            "listing_id": func.coalesce(new.listing_id, table.listing_id),
            "product_name": func.coalesce(new.product_name, table.product_name),
            "rating": new.rating,
            "text": new.text,
            "buyer_name": new.buyer_name,
            "review_created_at": new.review_created_at,
            "can_reply": new.can_reply,
            "reply_text": func.coalesce(new.reply_text, table.reply_text),
            "reply_at": func.coalesce(new.reply_at, table.reply_at),
            "raw": new.raw,
            "updated_at": func.now(),
        },
    ).returning(literal_column("(xmax = 0)"))  # true for a row this statement inserted
    outcome = (await session.execute(upsert)).scalars().all()
    created = sum(1 for was_new in outcome if was_new)
    return created, len(outcome) - created


SKU = func.coalesce(InventorySku.sku, MarketplaceStockLevel.sku)


@dataclass(slots=True)
class ReviewFilter:
    user_id: str
    platform_code: str | None = None
    rating: int | None = None
    sku: str | None = None


def _review_rows() -> Any:
    return (
        select(MarketplaceReview, SKU.label("sku"))
        .outerjoin(MarketplaceStockLevel, MarketplaceStockLevel.id == MarketplaceReview.listing_id)
        .outerjoin(SkuMapping, SkuMapping.listing_id == MarketplaceStockLevel.id)
        .outerjoin(InventorySku, InventorySku.id == SkuMapping.master_sku_id)
    )


ReviewRow = tuple[MarketplaceReview, str | None]  # the review and its SKU


def _pairs(rows: Sequence[Row[Any]]) -> list[ReviewRow]:
    return [(row.MarketplaceReview, row.sku) for row in rows]


async def list_reviews(
    session: AsyncSession,
    where: ReviewFilter,
    *,
    limit: int,
    after: tuple[datetime, int] | None,
) -> list[ReviewRow]:
    """Newest first by (created, id), a page after the keyset `after`."""
    query = _review_rows().where(MarketplaceReview.user_id == where.user_id)
    if where.platform_code:
        query = query.where(MarketplaceReview.platform_code == where.platform_code)
    if where.rating is not None:
        query = query.where(MarketplaceReview.rating == where.rating)
    if where.sku:
        query = query.where(where.sku == SKU)
    if after is not None:
        created, review_id = after
        query = query.where(
            or_(
                MarketplaceReview.review_created_at < created,
                and_(
                    MarketplaceReview.review_created_at == created, MarketplaceReview.id < review_id
                ),
            )
        )
    query = query.order_by(
        MarketplaceReview.review_created_at.desc(), MarketplaceReview.id.desc()
    ).limit(limit)
    return _pairs((await session.execute(query)).all())


async def review_row(session: AsyncSession, user_id: str, review_id: int) -> ReviewRow | None:
    query = _review_rows().where(
        MarketplaceReview.id == review_id, MarketplaceReview.user_id == user_id
    )
    rows = _pairs((await session.execute(query)).all())
    return rows[0] if rows else None


async def review_for_update(
    session: AsyncSession, user_id: str, review_id: int
) -> MarketplaceReview | None:
    found: MarketplaceReview | None = await session.scalar(
        select(MarketplaceReview)
        .where(MarketplaceReview.id == review_id, MarketplaceReview.user_id == user_id)
        .with_for_update()
    )
    return found
