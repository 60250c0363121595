"""analytics and archive: orders by counting date, archived_at, the archive job's queue, the
list's live-orders index, each connection's last processed push

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-01 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# When an order counts in analytics: cash on delivery when placed, prepaid when paid, or when
# placed where the platform gives no payment time. Not STRICT, so the planner inlines it (in
# the queries and in the index alike) and matches the index. Only pg_catalog inside: safe under
# the restricted search_path of maintenance commands.
COUNTED_AT_FUNCTION = """
CREATE FUNCTION order_counted_at(is_cod boolean, paid_at timestamptz, created_at timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN is_cod OR paid_at IS NULL THEN created_at ELSE paid_at END $$
"""
# The same texts as app/models/order.py (a migration must not import the app's models).
COUNTED_AT_SQL = "order_counted_at(is_cod, paid_at, order_created_at)"
ARCHIVE_DUE_SQL = (
    "archived_at IS NULL AND status IN "
    "('completed', 'delivered', 'cancelled', 'returned', 'failed')"
)

# (name, table, columns, partial-index predicate)
INDEXES: list[tuple[str, str, list[sa.TextClause | str], str | None]] = [
    (
        "ix_marketplace_orders_user_counted",
        "marketplace_orders",
        ["user_id", sa.text(COUNTED_AT_SQL)],
        None,
    ),
    (
        "ix_marketplace_orders_user_created_live",
        "marketplace_orders",
        ["user_id", "order_created_at", "id"],
        "archived_at IS NULL",
    ),
    (
        "ix_marketplace_orders_archive_due",
        "marketplace_orders",
        ["order_created_at"],
        ARCHIVE_DUE_SQL,
    ),
    (
        "ix_marketplace_webhooks_connection_processed",
        "marketplace_webhooks",
        ["connection_id", "processed_at"],
        "status = 'processed'",
    ),
]


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.execute(COUNTED_AT_FUNCTION)
    # A nullable column without a default: a catalog change only, no table rewrite.
    op.add_column(
        "marketplace_orders",
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
    )
    # CONCURRENTLY: a shop with millions of orders keeps syncing while the indexes build.
    with op.get_context().autocommit_block():
        for name, table, columns, where in INDEXES:
            op.create_index(
                name,
                table,
                columns,
                unique=False,
                postgresql_where=sa.text(where) if where else None,
                postgresql_concurrently=True,
                if_not_exists=True,
            )
    # Statistics of the new index expression, so the planner sizes analytics ranges right
    # from the start rather than after the next autovacuum (ANALYZE samples; writes go on).
    op.execute("ANALYZE marketplace_orders")


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    with op.get_context().autocommit_block():
        for name, table, _, _ in reversed(INDEXES):
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
    op.drop_column("marketplace_orders", "archived_at")
    op.execute("DROP FUNCTION order_counted_at(boolean, timestamptz, timestamptz)")
