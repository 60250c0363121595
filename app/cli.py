"""The `omni-sales` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from datetime import timedelta
from pathlib import Path

from app.config import Settings, get_settings


def _fail(message: str) -> None:
    print(f"omni-sales: {message}", file=sys.stderr)
    raise SystemExit(2)


def _alembic_ini() -> Path:
    for candidate in (Path(__file__).resolve().parent.parent / "alembic.ini", Path("alembic.ini")):
        if candidate.exists():
            return candidate
    _fail("alembic.ini not found; run from the repository folder")
    raise AssertionError


def run_migrations(database_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(_alembic_ini()))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


def _require_both_urls(settings: Settings) -> None:
    if settings.database_url and not settings.redis_url:
        _fail("DATABASE_URL is set but REDIS_URL is not; set both, or neither for embedded mode")
    if settings.redis_url and not settings.database_url:
        _fail("REDIS_URL is set but DATABASE_URL is not; set both, or neither for embedded mode")


def _require_secrets(settings: Settings) -> None:
    if settings.auth_jwt_secret is None and not settings.auth_jwt_public_key:
        _fail("AUTH_JWT_SECRET (or AUTH_JWT_PUBLIC_KEY) must be set outside embedded mode")
    if not settings.credentials_encryption_keys:
        _fail("CREDENTIALS_ENCRYPTION_KEYS must be set outside embedded mode")


def _embedded_secrets_into_env(data_dir: Path) -> None:
    from app.embedded import load_or_create_secrets

    generated = load_or_create_secrets(data_dir)
    if not os.environ.get("AUTH_JWT_SECRET") and not os.environ.get("AUTH_JWT_PUBLIC_KEY"):
        os.environ["AUTH_JWT_SECRET"] = generated.jwt_secret
    if not os.environ.get("CREDENTIALS_ENCRYPTION_KEYS"):
        os.environ["CREDENTIALS_ENCRYPTION_KEYS"] = generated.encryption_key


def cmd_serve(args: argparse.Namespace) -> None:
    from app.embedded import EmbeddedServices

    settings = get_settings()
    _require_both_urls(settings)
    services = None
    if settings.embedded:
        print(f"Starting embedded PostgreSQL and Redis in {settings.data_dir.resolve()} ...")
        services = EmbeddedServices(settings.data_dir)
        database_url, redis_url = services.start()
        os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = database_url, redis_url
        _embedded_secrets_into_env(settings.data_dir)
        get_settings.cache_clear()
        settings = get_settings()
    _require_secrets(settings)
    try:
        if services is not None:
            assert settings.database_url is not None
            run_migrations(settings.database_url)
        asyncio.run(_serve(settings, args.host, args.port, with_worker=services is not None))
    except KeyboardInterrupt:
        pass
    finally:
        if services is not None:
            services.stop()
        print("Stopped.")


async def _serve(settings: Settings, host: str, port: int, *, with_worker: bool) -> None:
    import uvicorn

    from app.logging import configure_logging
    from app.main import create_app
    from app.worker import create_worker

    configure_logging(settings.log_level)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host=host, port=port, log_config=None)
    )
    worker = create_worker(settings, handle_signals=False) if with_worker else None
    worker_task = asyncio.create_task(worker.async_run()) if worker is not None else None

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.05)
        base = f"http://{host}:{port}"
        print(f"Omni Sales API: {base}\nSwagger UI:     {base}/docs", flush=True)
        if with_worker:
            print("Embedded mode: PostgreSQL, Redis and one worker are running. Ctrl-C stops.")

    announcer = asyncio.create_task(announce())
    try:
        await server.serve()
    finally:
        announcer.cancel()
        if worker is not None and worker_task is not None:
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
            await worker.close()


def cmd_worker(args: argparse.Namespace) -> None:
    from app.logging import configure_logging
    from app.worker import create_worker

    settings = get_settings()
    if not settings.database_url or not settings.redis_url:
        _fail("the worker needs DATABASE_URL and REDIS_URL")
    _require_secrets(settings)
    configure_logging(settings.log_level)
    create_worker(settings).run()


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = get_settings()
    if not settings.database_url:
        _fail("DATABASE_URL is not set")
    assert settings.database_url is not None
    run_migrations(settings.database_url)
    print("Migrations applied.")


_TTL = re.compile(r"^(\d+)([smhd])$")


def parse_ttl(value: str) -> timedelta:
    match = _TTL.match(value.strip())
    if not match:
        raise argparse.ArgumentTypeError("use a number and a unit, e.g. 30m, 1h, 7d")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(seconds=amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


def cmd_token(args: argparse.Namespace) -> None:
    from app.auth import issue_token

    settings = get_settings()
    common = {"audience": settings.auth_jwt_audience, "issuer": settings.auth_jwt_issuer}
    if args.private_key:
        key = Path(args.private_key).read_text()
        print(issue_token(args.user, ttl=args.ttl, private_key=key, **common))
        return
    if settings.auth_jwt_public_key:
        _fail("AUTH_JWT_PUBLIC_KEY is set (RS256): pass --private-key FILE to sign a token")
    secret = settings.auth_jwt_secret.get_secret_value() if settings.auth_jwt_secret else None
    if secret is None and settings.embedded:
        from app.embedded import load_or_create_secrets

        secret = load_or_create_secrets(settings.data_dir).jwt_secret
    if secret is None:
        _fail("AUTH_JWT_SECRET is not set")
    print(issue_token(args.user, ttl=args.ttl, secret=secret, **common))


def cmd_openapi(args: argparse.Namespace) -> None:
    from app.openapi import openapi_yaml

    text = openapi_yaml()
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)


def cmd_rotate_keys(args: argparse.Namespace) -> None:
    from app.connections.rotation import rotate_all

    settings = get_settings()
    if settings.embedded:
        _embedded_env_for_tools(settings)
        settings = get_settings()
    if not settings.database_url:
        _fail("DATABASE_URL is not set")
    _require_secrets(settings)
    count = asyncio.run(rotate_all(settings))
    print(f"Re-encrypted {count} connection(s) with the first key.")


def _embedded_env_for_tools(settings: Settings) -> None:
    """Point a one-off command at a running embedded instance's database."""
    socket_dir = (settings.data_dir / "postgres").resolve()
    os.environ["DATABASE_URL"] = f"postgresql+asyncpg://postgres@/omni_sales?host={socket_dir}"
    _embedded_secrets_into_env(settings.data_dir)
    get_settings.cache_clear()


def cmd_sandbox(args: argparse.Namespace) -> None:
    import uvicorn

    from app.logging import configure_logging
    from app.sandbox.app import create_sandbox_app, describe_demo

    configure_logging("INFO")
    app, demo = create_sandbox_app(public_base_url=f"http://{args.host}:{args.port}")
    print(describe_demo(demo), flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omni-sales", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve", help="run the API (embedded mode without DATABASE_URL/REDIS_URL)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("worker", help="run an arq worker").set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="print a bearer token for a user")
    token.add_argument("--user", required=True)
    token.add_argument("--ttl", type=parse_ttl, default=timedelta(hours=1))
    token.add_argument("--private-key", help="PEM file (RS256 set-ups)")
    token.set_defaults(func=cmd_token)

    sandbox = sub.add_parser("sandbox", help="run the Shopee, Lazada and Meta sandboxes")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8100)
    sandbox.set_defaults(func=cmd_sandbox)

    openapi = sub.add_parser("openapi", help="print the OpenAPI document (YAML)")
    openapi.add_argument("--output", "-o")
    openapi.set_defaults(func=cmd_openapi)

    sub.add_parser("rotate-keys", help="re-encrypt credentials with the first key").set_defaults(
        func=cmd_rotate_keys
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
