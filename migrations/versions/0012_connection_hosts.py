"""connections keep the marketplace hosts they were created against (api_base_url,
auth_base_url); existing rows get the hosts the current settings name

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 01:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("marketplace_connections", sa.Column("api_base_url", sa.Text(), nullable=True))
    op.add_column("marketplace_connections", sa.Column("auth_base_url", sa.Text(), nullable=True))
    # Existing connections were made against whatever the settings name now: record that
    # (the hosts as app/connections/hosts.py computes them, written out so that this
    # migration keeps its meaning whatever that module becomes).
    from app.config import Settings

    settings = Settings()
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT DISTINCT platform_code, country FROM marketplace_connections")
    ).all()
    for platform_code, country in rows:
        if platform_code == "shopee":
            api, auth = settings.shopee_base_url, None
        elif platform_code == "lazada":
            api, auth = settings.lazada_country_url(country), settings.lazada_auth_url
        elif platform_code == "facebook":
            api, auth = settings.facebook_graph_url, None
        else:
            continue  # a platform this version has no client for: left unbound
        bind.execute(
            sa.text(
                "UPDATE marketplace_connections SET api_base_url = :api, auth_base_url = :auth "
                "WHERE platform_code = :platform AND country IS NOT DISTINCT FROM :country"
            ),
            {
                "api": api.rstrip("/"),
                "auth": auth.rstrip("/") if auth else None,
                "platform": platform_code,
                "country": country,
            },
        )


def downgrade() -> None:
    op.drop_column("marketplace_connections", "auth_base_url")
    op.drop_column("marketplace_connections", "api_base_url")
