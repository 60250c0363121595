"""connections keep the marketplace hosts they were created against (api_base_url,
auth_base_url); existing rows get the hosts the current settings name

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-07 01:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("marketplace_connections", sa.Column("api_base_url", sa.Text(), nullable=True))
    op.add_column("marketplace_connections", sa.Column("auth_base_url", sa.Text(), nullable=True))
    # Existing connections were made against whatever the settings name now: record that.
    from app.config import Settings
    from app.connections.hosts import configured_hosts
    from app.platforms.types import PlatformCode

    settings = Settings()
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT DISTINCT platform_code, country FROM marketplace_connections")
    ).all()
    for platform_code, country in rows:
        try:
            platform = PlatformCode(platform_code)
        except ValueError:
            continue  # a platform this version has no client for: left unbound
        hosts = configured_hosts(settings, platform, country)
        bind.execute(
            sa.text(
                "UPDATE marketplace_connections SET api_base_url = :api, auth_base_url = :auth "
                "WHERE platform_code = :platform AND country IS NOT DISTINCT FROM :country"
            ),
            {"api": hosts.api, "auth": hosts.auth, "platform": platform_code, "country": country},
        )


def downgrade() -> None:
    op.drop_column("marketplace_connections", "auth_base_url")
    op.drop_column("marketplace_connections", "api_base_url")
