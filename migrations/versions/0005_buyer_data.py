"""buyer data: erasure time, buyer phone key for the export, the retention job's index

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Digits only; a Thai number loses its country code (66 or 0066, with or without the trunk 0
# people write after it) and a national one its leading 0: +66 81-234-5678, 66812345678 and
# 081 234 5678 all give 812345678. Other countries' numbers keep their digits less leading 0s.
# Only pg_catalog functions inside, so it is safe under the restricted search_path that
# maintenance commands (VACUUM, REINDEX, restore) use for index expressions.
PHONE_KEY_FUNCTION = r"""
CREATE FUNCTION buyer_phone_key(phone text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN digits ~ '^(00)?660?[1-9][0-9]{7,8}$' THEN regexp_replace(digits, '^(00)?660?', '')
        ELSE ltrim(digits, '0')
    END
    FROM (SELECT regexp_replace(phone, '[^0-9]', '', 'g') AS digits) AS normalized
$$
"""
HOLDS_BUYER_DATA = (
    "buyer_erased_at IS NULL OR buyer_name IS NOT NULL OR buyer_phone IS NOT NULL "
    "OR buyer_email IS NOT NULL OR shipping_address IS NOT NULL"
)


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column(
        "marketplace_orders",
        sa.Column("buyer_erased_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.execute(PHONE_KEY_FUNCTION)
    op.create_index(
        "ix_marketplace_orders_user_phone_key",
        "marketplace_orders",
        ["user_id", sa.text("buyer_phone_key(buyer_phone)")],
    )
    op.create_index(
        "ix_marketplace_orders_buyer_data_by_created",
        "marketplace_orders",
        ["order_created_at"],
        postgresql_where=sa.text(HOLDS_BUYER_DATA),
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_index("ix_marketplace_orders_buyer_data_by_created", table_name="marketplace_orders")
    op.drop_index("ix_marketplace_orders_user_phone_key", table_name="marketplace_orders")
    op.execute("DROP FUNCTION buyer_phone_key(text)")
    op.drop_column("marketplace_orders", "buyer_erased_at")
