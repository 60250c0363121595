"""The FastAPI application: wiring only; the domains hold the logic."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import httpx
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.accounts.router import auth_router, keys_router
from app.analytics.router import router as analytics_router
from app.auth import TokenVerifier
from app.authorize.router import router as authorize_router
from app.buyers.router import router as buyers_router
from app.config import Settings, get_settings
from app.connections.router import router as connections_router
from app.crypto import CredentialCipher
from app.customers.router import router as customers_router
from app.db import Database
from app.errors import (
    BodyLimitMiddleware,
    StorableTextMiddleware,
    UnhandledErrorMiddleware,
    install_error_handlers,
)
from app.exports.router import router as exports_router
from app.fulfillment.router import router as fulfillment_router
from app.headers import SecurityHeadersMiddleware
from app.inventory.bulk_router import router as inventory_bulk_router
from app.inventory.router import router as inventory_router
from app.jobs import lazy_redis
from app.jobs.relay import Relay
from app.live.router import router as live_router
from app.logging import RequestIdMiddleware, configure_logging
from app.metrics.middleware import HttpMetricsMiddleware
from app.metrics.router import router as metrics_router
from app.metrics.service import Flusher
from app.orders.bulk_router import router as orders_bulk_router
from app.orders.router import router as orders_router
from app.platforms.registry import PlatformGateway
from app.products.router import router as products_router
from app.reviews.router import router as reviews_router
from app.sync.router import router as sync_router
from app.webhooks.intake import PushIntakeMiddleware
from app.webhooks.router import router as webhooks_router


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(examples=[{"database": "ok", "redis": "ok"}])


def create_app(
    settings: Settings | None = None, *, platform_http: httpx.AsyncClient | None = None
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.database_url is None or settings.redis_url is None:
            raise RuntimeError("DATABASE_URL and REDIS_URL must be set before the API starts")
        database = Database(settings)
        redis = lazy_redis(settings.redis_url)
        # Hands committed outbox rows to arq: right after each commit, and polling.
        relay = Relay.from_settings(settings, database.sessionmaker, redis).start()
        own_http = platform_http is None
        http = platform_http or httpx.AsyncClient(timeout=settings.clients.timeout_seconds)
        app.state.settings = settings
        app.state.database = database
        app.state.sessionmaker = database.sessionmaker
        app.state.redis = redis
        app.state.relay = relay
        app.state.platform_gateway = PlatformGateway(settings, http_client=http)
        flusher = Flusher(redis).start()
        # Start-up objects move to the permanent generation, so full garbage collections stop
        # walking them (60-300 ms pauses were the webhook intake's p99 tail).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await flusher.stop()
            await relay.stop()
            if own_http:
                await http.aclose()
            await redis.aclose()
            await database.dispose()

    # The docs pages load Swagger UI and ReDoc from the installed package, not a CDN, so they
    # work on an offline machine; the validator badge would call out to swagger.io.
    app = FastAPIOffline(
        title="Omni Sales",
        version="0.1.0",
        summary="Shopee, Lazada and Facebook Shop orders and products in one database",
        lifespan=lifespan,
        swagger_ui_parameters={"validatorUrl": None},
    )
    # Fail at start-up, not at the first request, when a secret is missing or malformed.
    app.state.cipher = CredentialCipher(
        [k.get_secret_value() for k in settings.credentials_encryption_keys]
    )
    app.state.token_verifier = TokenVerifier(settings)

    install_error_handlers(app)
    # Added innermost first: request id, CORS, last-resort errors, body limit, text check.
    app.add_middleware(StorableTextMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
    )
    app.add_middleware(UnhandledErrorMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(RequestIdMiddleware)
    # Push POSTs skip the rest of the stack (they keep the request id and answer their own
    # errors and 1 MB cap): marketplaces want an answer within 500 ms, at high rates.
    app.add_middleware(PushIntakeMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    # Outermost: it times the whole stack and sees the status the client got.
    app.add_middleware(HttpMetricsMiddleware)
    # Before the domain routers: /orders/export is not /orders/{orderId}.
    app.include_router(exports_router)
    app.include_router(connections_router)
    app.include_router(orders_router)
    app.include_router(orders_bulk_router)
    app.include_router(sync_router)
    app.include_router(webhooks_router)
    app.include_router(metrics_router)
    app.include_router(buyers_router)
    app.include_router(authorize_router)
    app.include_router(products_router)
    app.include_router(inventory_bulk_router)
    app.include_router(inventory_router)
    app.include_router(analytics_router)
    # Before live_router: its POST .../orders/{id}/cancel serves live orders and reason-less calls.
    app.include_router(fulfillment_router)
    app.include_router(live_router)
    app.include_router(auth_router)
    app.include_router(keys_router)
    app.include_router(reviews_router)
    app.include_router(customers_router)

    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["operations"],
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "The database or Redis is down"}},
    )
    async def ready(request: Request) -> JSONResponse:
        """The database and Redis answer (200), or which of them does not (503)."""
        checks: dict[str, str] = {}
        try:
            async with request.app.state.sessionmaker() as session:
                await session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # any failure means "not ready"; the type is what we report
            checks["database"] = f"unavailable: {type(exc.__cause__ or exc).__name__}"
        try:
            await request.app.state.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unavailable: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    return app


def app_factory() -> FastAPI:
    """Entry point for `uvicorn --factory app.main:app_factory`."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
