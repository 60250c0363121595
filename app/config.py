"""Settings from the environment (and an optional `.env`), with the flat names INTERFACE.md pins."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ClientTuning(BaseSettings):
    """How hard the marketplace clients may push a marketplace; one set for all three."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    calls_per_second: float = Field(10.0, validation_alias="MARKETPLACE_CALLS_PER_SECOND", gt=0)
    # One app's calls over all its shops and every process (unset: 5 x the per-shop rate).
    app_calls_per_second: float | None = Field(
        None, validation_alias="MARKETPLACE_APP_CALLS_PER_SECOND", gt=0
    )
    detail_concurrency: int = Field(4, validation_alias="MARKETPLACE_DETAIL_CONCURRENCY", ge=1)
    backoff_base_seconds: float = Field(0.5, validation_alias="MARKETPLACE_BACKOFF_BASE", gt=0)
    backoff_cap_seconds: float = Field(30.0, validation_alias="MARKETPLACE_BACKOFF_CAP", gt=0)
    max_attempts: int = Field(6, validation_alias="MARKETPLACE_MAX_ATTEMPTS", ge=1)
    # A platform asking us to wait longer than this fails the call instead of holding a sync
    # (Meta can say "come back in an hour"); the next scheduled sync picks up from there.
    max_wait_seconds: float = Field(300.0, validation_alias="MARKETPLACE_MAX_WAIT", gt=0)
    timeout_seconds: float = Field(30.0, validation_alias="MARKETPLACE_TIMEOUT", gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")
    data_dir: Path = Field(Path(".omni-sales"), validation_alias="OMNI_DATA_DIR")

    auth_jwt_secret: SecretStr | None = Field(None, validation_alias="AUTH_JWT_SECRET")
    auth_jwt_public_key: str | None = Field(None, validation_alias="AUTH_JWT_PUBLIC_KEY")
    auth_jwt_audience: str | None = Field(None, validation_alias="AUTH_JWT_AUDIENCE")
    auth_jwt_issuer: str | None = Field(None, validation_alias="AUTH_JWT_ISSUER")

    credentials_encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, validation_alias="CREDENTIALS_ENCRYPTION_KEYS"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="CORS_ORIGINS"
    )

    shopee_base_url: str = Field(
        "https://partner.shopeemobile.com", validation_alias="SHOPEE_BASE_URL"
    )
    lazada_base_url: str = Field(
        "https://api.lazada.co.th/rest", validation_alias="LAZADA_BASE_URL"
    )
    lazada_auth_url: str = Field("https://auth.lazada.com/rest", validation_alias="LAZADA_AUTH_URL")
    facebook_graph_url: str = Field(
        "https://graph.facebook.com/v18.0", validation_alias="FACEBOOK_GRAPH_URL"
    )

    sync_wait_seconds: float = Field(25.0, validation_alias="SYNC_WAIT_SECONDS", ge=0)
    sync_backfill_days: int = Field(90, validation_alias="SYNC_BACKFILL_DAYS", ge=1)
    # Each incremental sync re-reads this much before the high-water mark, so an order whose
    # update lands at a page boundary or with clock skew is never missed.
    sync_overlap_seconds: int = Field(600, validation_alias="SYNC_OVERLAP_SECONDS", ge=0)
    # A "running" sync whose worker has not reported for this long is taken as dead.
    sync_stale_seconds: int = Field(120, validation_alias="SYNC_STALE_SECONDS", ge=10)
    # How far back the daily reconcile re-reads every shop.
    reconcile_days: int = Field(3, validation_alias="RECONCILE_DAYS", ge=1, le=90)
    public_base_url: str | None = Field(None, validation_alias="PUBLIC_BASE_URL")
    meta_webhook_verify_token: SecretStr | None = Field(
        None, validation_alias="META_WEBHOOK_VERIFY_TOKEN"
    )
    # --- webhooks: a signed push whose own timestamp is older than this is refused (401);
    # platforms retry for hours (Lazada 12 x 30 min), so this only stops replays.
    webhook_max_age_hours: float = Field(72, validation_alias="WEBHOOK_MAX_AGE_HOURS", gt=0)
    # Buyer fields of orders older than this are erased by a daily job (unset: kept).
    buyer_data_retention_days: int | None = Field(
        None, validation_alias="BUYER_DATA_RETENTION_DAYS", ge=1
    )
    # Finished orders placed longer ago than this are archived daily (hidden from the list).
    order_archive_after_days: int = Field(180, validation_alias="ORDER_ARCHIVE_AFTER_DAYS", ge=1)
    alert_webhook_url: str | None = Field(None, validation_alias="ALERT_WEBHOOK_URL")
    # `whsec_` + base64, the Standard Webhooks format.
    alert_webhook_secret: SecretStr | None = Field(None, validation_alias="ALERT_WEBHOOK_SECRET")
    # Request bodies above this are refused (413) before they are parsed or authenticated.
    max_body_bytes: int = Field(1_048_576, validation_alias="MAX_BODY_BYTES", ge=1)
    log_level: str = Field("INFO", validation_alias=AliasChoices("LOG_LEVEL"))

    # --- the edge (h6): metrics access and bearer-token lifetimes
    # With it, /metrics needs `Authorization: Bearer <METRICS_TOKEN>` and also gives the sync
    # lag per connection id (without it only per platform: ids are every tenant's).
    metrics_token: SecretStr | None = Field(None, validation_alias="METRICS_TOKEN")
    # A token whose `exp` lies further ahead than this is refused: a leaked long-lived token
    # could not otherwise be stopped short of changing the signing key.
    auth_max_token_ttl_seconds: int = Field(
        86400, validation_alias="AUTH_MAX_TOKEN_TTL_SECONDS", ge=60
    )
    # --- job runtime (app/jobs/): outbox relay, leases, retention
    # A started job holds a lease of this long, renewed while it runs; a worker killed
    # mid-job has its jobs re-driven by another worker once the lease runs out.
    job_lease_seconds: float = Field(30.0, validation_alias="JOB_LEASE_SECONDS", ge=1)
    # How often each API process and worker polls the outbox (commits also nudge it at once).
    job_relay_interval_seconds: float = Field(
        0.5, validation_alias="JOB_RELAY_INTERVAL_SECONDS", gt=0
    )
    # Finished and failed outbox rows are deleted this long after they ended.
    job_keep_done_hours: float = Field(24.0, validation_alias="JOB_KEEP_DONE_HOURS", ge=0)

    # --- accounts (h10): login tokens, refresh tokens and login throttling
    # Lifetime of a login's access token; AUTH_MAX_TOKEN_TTL_SECONDS caps it.
    auth_access_token_ttl_seconds: int = Field(
        900, validation_alias="AUTH_ACCESS_TOKEN_TTL_SECONDS", ge=60
    )
    # A refresh token unused for this long expires (each refresh starts a new one).
    auth_refresh_token_ttl_seconds: int = Field(
        2_592_000, validation_alias="AUTH_REFRESH_TOKEN_TTL_SECONDS", ge=300
    )
    # This many failed logins within the window, for one e-mail or one client address: 429.
    auth_login_max_failures: int = Field(10, validation_alias="AUTH_LOGIN_MAX_FAILURES", ge=1)
    auth_login_window_seconds: int = Field(900, validation_alias="AUTH_LOGIN_WINDOW_SECONDS", ge=1)

    # --- connect flows: the operator's app on each marketplace (INTERFACE "Authorization flows")
    shopee_partner_id: str | None = Field(None, validation_alias="SHOPEE_PARTNER_ID")
    shopee_partner_key: SecretStr | None = Field(None, validation_alias="SHOPEE_PARTNER_KEY")
    lazada_app_key: str | None = Field(None, validation_alias="LAZADA_APP_KEY")
    lazada_app_secret: SecretStr | None = Field(None, validation_alias="LAZADA_APP_SECRET")
    meta_app_id: str | None = Field(None, validation_alias="META_APP_ID")
    meta_app_secret: SecretStr | None = Field(None, validation_alias="META_APP_SECRET")
    # Where the seller's browser lands after a connect flow (unless `redirectUrl` was given).
    connect_redirect_url: str | None = Field(None, validation_alias="CONNECT_REDIRECT_URL")
    # The origins a start request's `redirectUrl` may point at (unset: CONNECT_REDIRECT_URL's).
    connect_redirect_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="CONNECT_REDIRECT_ALLOWLIST"
    )
    lazada_oauth_url: str = Field(
        "https://auth.lazada.com/oauth/authorize", validation_alias="LAZADA_OAUTH_URL"
    )
    facebook_dialog_url: str = Field(
        "https://www.facebook.com/v18.0/dialog/oauth", validation_alias="FACEBOOK_DIALOG_URL"
    )
    # Lazada's API gateway per seller country (reference §2.1). TH follows LAZADA_BASE_URL unless
    # set, so pointing LAZADA_BASE_URL at a sandbox moves Thai shops with it.
    lazada_base_url_th: str | None = Field(None, validation_alias="LAZADA_BASE_URL_TH")
    lazada_base_url_my: str = Field(
        "https://api.lazada.com.my/rest", validation_alias="LAZADA_BASE_URL_MY"
    )
    lazada_base_url_sg: str = Field(
        "https://api.lazada.sg/rest", validation_alias="LAZADA_BASE_URL_SG"
    )
    lazada_base_url_ph: str = Field(
        "https://api.lazada.com.ph/rest", validation_alias="LAZADA_BASE_URL_PH"
    )
    lazada_base_url_vn: str = Field(
        "https://api.lazada.vn/rest", validation_alias="LAZADA_BASE_URL_VN"
    )
    lazada_base_url_id: str = Field(
        "https://api.lazada.co.id/rest", validation_alias="LAZADA_BASE_URL_ID"
    )

    # --- reviews (h13): product review sync and replies (docs/reviews.md)
    # A connection's first review sync reads this far back (Lazada serves at most 90 days).
    review_backfill_days: int = Field(90, validation_alias="REVIEW_BACKFILL_DAYS", ge=1, le=365)
    # Later syncs re-read reviews created since the newest stored one less this, so replies
    # and edits of recent reviews are picked up.
    review_resync_days: int = Field(14, validation_alias="REVIEW_RESYNC_DAYS", ge=1, le=365)
    # Both platforms document 500 characters per reply; kept a setting should one change.
    review_reply_max_chars: int = Field(
        500, validation_alias="REVIEW_REPLY_MAX_CHARS", ge=1, le=5000
    )

    # --- TikTok Shop (h9): the fourth channel (reference fulfillment-and-tiktok.md §4) --------
    tiktok_app_key: str | None = Field(None, validation_alias="TIKTOK_APP_KEY")
    tiktok_app_secret: SecretStr | None = Field(None, validation_alias="TIKTOK_APP_SECRET")
    tiktok_base_url: str = Field(
        "https://open-api.tiktokglobalshop.com", validation_alias="TIKTOK_BASE_URL"
    )
    tiktok_auth_url: str = Field(
        "https://auth.tiktok-shops.com", validation_alias="TIKTOK_AUTH_URL"
    )
    # The seller's authorization page (the non-US services link; `service_id` is the app's).
    tiktok_authorize_url: str = Field(
        "https://services.tiktokshop.com/open/authorize", validation_alias="TIKTOK_AUTHORIZE_URL"
    )
    tiktok_service_id: str | None = Field(None, validation_alias="TIKTOK_SERVICE_ID")
    # API version per endpoint (in the path since 202309; newer ones are documented for some).
    tiktok_version_orders_search: str = Field(
        "202309", validation_alias="TIKTOK_VERSION_ORDERS_SEARCH"
    )
    tiktok_version_order_detail: str = Field(
        "202309", validation_alias="TIKTOK_VERSION_ORDER_DETAIL"
    )
    tiktok_version_shops: str = Field("202309", validation_alias="TIKTOK_VERSION_SHOPS")
    tiktok_version_products_search: str = Field(
        "202309", validation_alias="TIKTOK_VERSION_PRODUCTS_SEARCH"
    )
    tiktok_version_inventory_update: str = Field(
        "202309", validation_alias="TIKTOK_VERSION_INVENTORY_UPDATE"
    )
    tiktok_version_fulfillment: str = Field("202309", validation_alias="TIKTOK_VERSION_FULFILLMENT")
    tiktok_version_cancellations: str = Field(
        "202309", validation_alias="TIKTOK_VERSION_CANCELLATIONS"
    )
    # Push signature (unconfirmed officially): HMAC-SHA256(app_secret, <prefix> + raw body),
    # where the prefix is the app key ("app_key", two third-party clients) or nothing ("none").
    tiktok_webhook_sign_prefix: Literal["app_key", "none"] = Field(
        "app_key", validation_alias="TIKTOK_WEBHOOK_SIGN_PREFIX"
    )

    # Batch Ship Packages' most packages per call (unconfirmed; reference §4.7).
    tiktok_ship_batch_size: int = Field(
        50, ge=1, le=1000, validation_alias="TIKTOK_SHIP_BATCH_SIZE"
    )

    def tiktok_options(self) -> dict[str, str]:
        """TikTok settings the client and push parser read: the API version of each endpoint
        group (by the client's names) and the push signature prefix."""
        return {
            "orders_search": self.tiktok_version_orders_search,
            "order_detail": self.tiktok_version_order_detail,
            "shops": self.tiktok_version_shops,
            "products_search": self.tiktok_version_products_search,
            "inventory_update": self.tiktok_version_inventory_update,
            "fulfillment": self.tiktok_version_fulfillment,
            "cancellations": self.tiktok_version_cancellations,
            "webhook_sign_prefix": self.tiktok_webhook_sign_prefix,
            "ship_batch_size": str(self.tiktok_ship_batch_size),
        }

    def lazada_country_url(self, country: str | None) -> str:
        """The API gateway for a Lazada seller of `country` (LAZADA_BASE_URL when unknown)."""
        hosts = {
            "th": self.lazada_base_url_th,
            "my": self.lazada_base_url_my,
            "sg": self.lazada_base_url_sg,
            "ph": self.lazada_base_url_ph,
            "vn": self.lazada_base_url_vn,
            "id": self.lazada_base_url_id,
        }
        return hosts.get((country or "").lower()) or self.lazada_base_url

    # --- fulfillment (h8): values the references leave open are settings ---------------------
    # Shopee allows get_tracking_number "within 5 minutes interval" until a number appears.
    fulfillment_tracking_retry_seconds: float = Field(
        300.0, ge=0, validation_alias="FULFILLMENT_TRACKING_RETRY_SECONDS"
    )
    fulfillment_tracking_max_reads: int = Field(
        12, ge=1, validation_alias="FULFILLMENT_TRACKING_MAX_READS"
    )
    # How long a claimed ship may run before another job may take it over.
    fulfillment_ship_lease_seconds: float = Field(
        300.0, gt=0, validation_alias="FULFILLMENT_SHIP_LEASE_SECONDS"
    )
    # Retry-After of a 409 label_not_ready (Shopee's document result has no stated delay).
    fulfillment_label_retry_seconds: int = Field(
        5, ge=1, validation_alias="FULFILLMENT_LABEL_RETRY_SECONDS"
    )

    clients: ClientTuning = Field(default_factory=ClientTuning)

    @field_validator(
        "credentials_encryption_keys", "cors_origins", "connect_redirect_allowlist", mode="before"
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("database_url")
    @classmethod
    def _asyncpg_url(cls, value: str | None) -> str | None:
        if value and value.startswith(("postgresql://", "postgres://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        return value

    @property
    def embedded(self) -> bool:
        return self.database_url is None and self.redis_url is None


@lru_cache
def get_settings() -> Settings:
    return Settings()
