"""The `omni-sales` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import re
import signal
import socket
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from app.config import Settings, get_settings

if TYPE_CHECKING:
    from app.embedded import Supervisor

logger = logging.getLogger("app.cli")


def _fail(message: str, *, code: int = 2) -> NoReturn:
    print(f"omni-sales: {message}", file=sys.stderr)
    raise SystemExit(code)


def _alembic_ini() -> Path:
    for candidate in (Path(__file__).resolve().parent.parent / "alembic.ini", Path("alembic.ini")):
        if candidate.exists():
            return candidate
    _fail("alembic.ini not found; run from the repository folder")


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


class StopRequest:
    """SIGINT, SIGTERM and SIGHUP, from the first line of start-up to the last of shutdown.

    Python-level handlers (not the event loop's) so a signal during start-up or teardown is
    seen too: while services start it is only noted, and start-up stops at the next step; a
    running API and worker are told through the loop. Without this SIGTERM and SIGHUP killed
    the process outright, leaving PostgreSQL and Redis orphaned.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._callback: Callable[[bool], None] | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def install(self) -> None:
        for signum in self.SIGNALS:
            signal.signal(signum, self._handle)

    def attach(self, loop: asyncio.AbstractEventLoop, callback: Callable[[bool], None]) -> None:
        """Call `callback(first)` in `loop` for each signal (and at once for an earlier one)."""
        self._loop, self._callback = loop, callback
        if self.requested:
            loop.call_soon(callback, True)

    def detach(self) -> None:
        self._loop = self._callback = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signal_name is None
        if first:
            self.signal_name = signal.Signals(signum).name
        if self._loop is not None and self._callback is not None:
            self._loop.call_soon_threadsafe(self._callback, first)


def _say(message: str) -> None:
    # After SIGHUP the terminal may be gone; losing a status line must not stop the shutdown.
    with contextlib.suppress(OSError):
        print(message, flush=True)


def _require_free_port(host: str, port: int) -> None:
    """One plain line and exit 1 when the address cannot be listened on, before anything is
    started or any folder is made (uvicorn only finds out after the services are up)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            # As uvicorn binds: a port whose old connections wait in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            reason = "the address is already in use (another program listens there); "
            reason += "stop it or choose another --port"
        else:
            reason = error.strerror or str(error)
        _fail(f"cannot listen on {host}:{port}: {reason}", code=1)
    except OverflowError:
        _fail(f"cannot listen on {host}:{port}: a port is 0 to 65535", code=1)


def cmd_serve(args: argparse.Namespace) -> None:
    settings = get_settings()
    _require_both_urls(settings)
    _require_free_port(args.host, args.port)
    stop = StopRequest()
    stop.install()
    if not settings.embedded:
        _require_secrets(settings)
        asyncio.run(_serve(settings, args.host, args.port, stop))
        _say("Stopped API.")
        return

    from app.embedded import GIVE_UP_EXIT_STATUS, DataFolderInUse, EmbeddedServices, Supervisor

    data_dir = settings.data_dir.resolve()
    services = EmbeddedServices(data_dir)
    try:
        services.claim_folder()
    except DataFolderInUse as error:
        _fail(str(error), code=1)
    gave_up: str | None = None
    try:
        _say(f"Starting embedded PostgreSQL and Redis in {data_dir} ...")
        database_url, redis_url = services.start()
        if left_over := services.left_over_report():
            _say(left_over)
        os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = database_url, redis_url
        _embedded_secrets_into_env(data_dir)
        get_settings.cache_clear()
        settings = get_settings()
        _require_secrets(settings)
        if not stop.requested:
            run_migrations(database_url)
        if not stop.requested:
            supervisor = Supervisor(services, report=_say)
            gave_up = asyncio.run(_serve(settings, args.host, args.port, stop, supervisor))
    finally:
        if stop.requested:
            _say(f"Received {stop.signal_name}; stopping Redis and PostgreSQL ...")
        elif gave_up:
            _say(f"{gave_up}; stopping ...")
        services.stop()
        _say("Stopped API, worker, Redis and PostgreSQL.")
    if gave_up:
        _fail(gave_up, code=GIVE_UP_EXIT_STATUS)


async def _serve(
    settings: Settings,
    host: str,
    port: int,
    stop: StopRequest,
    supervisor: Supervisor | None = None,
) -> str | None:
    """The API, and in embedded mode (with a supervisor) one worker and the watch over
    PostgreSQL and Redis. Returns why the supervisor gave up, if it did."""
    import uvicorn

    from app.logging import configure_logging
    from app.main import create_app
    from app.worker import run_worker_until_stopped

    class ApiServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # StopRequest has the signals: uvicorn's handlers re-raise SIGTERM once the API
            # has stopped, which would kill this process before Redis and PostgreSQL stop.
            yield

    configure_logging(settings.log_level)
    server = ApiServer(uvicorn.Config(create_app(settings), host=host, port=port, log_config=None))
    worker_stop = asyncio.Event()

    def on_signal(first: bool) -> None:
        if first:
            server.should_exit = True
            worker_stop.set()
        else:
            server.force_exit = True  # a second signal: do not wait for open connections

    stop.attach(asyncio.get_running_loop(), on_signal)
    with_worker = supervisor is not None
    worker_task = None
    watch: asyncio.Task[str | None] | None = None
    if supervisor is not None:
        worker_task = asyncio.create_task(run_worker_until_stopped(settings, worker_stop))
        worker_task.add_done_callback(_log_worker_failure)
        watch = asyncio.create_task(supervisor.run(worker_stop))

        def give_up(task: asyncio.Task[str | None]) -> None:
            if not task.cancelled() and task.exception() is None and task.result():
                server.should_exit = True
                worker_stop.set()

        watch.add_done_callback(give_up)

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.05)
        base = f"http://{host}:{port}"
        _say(f"Omni Sales API: {base}\nSwagger UI:     {base}/docs")
        if with_worker:
            _say("Embedded mode: PostgreSQL, Redis and one worker are running. Ctrl-C stops.")

    announcer = asyncio.create_task(announce())
    try:
        await server.serve()
    finally:
        announcer.cancel()
        worker_stop.set()
        if worker_task is not None:
            await asyncio.gather(worker_task, return_exceptions=True)
        stop.detach()
    if watch is None:
        return None
    outcome = (await asyncio.gather(watch, return_exceptions=True))[0]
    if isinstance(outcome, BaseException):
        logger.error("the embedded supervisor stopped", exc_info=outcome)
        return None
    return outcome


def _log_worker_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.error("the embedded worker stopped", exc_info=error)


def cmd_worker(args: argparse.Namespace) -> None:
    from app.logging import configure_logging
    from app.worker import run_worker_until_stopped

    settings = get_settings()
    if not settings.database_url or not settings.redis_url:
        _fail("the worker needs DATABASE_URL and REDIS_URL")
    _require_secrets(settings)
    configure_logging(settings.log_level)
    stop = StopRequest()
    stop.install()

    async def until_signal() -> None:
        stopped = asyncio.Event()
        stop.attach(asyncio.get_running_loop(), lambda first: stopped.set())
        await run_worker_until_stopped(settings, stopped)

    asyncio.run(until_signal())
    _say("Stopped worker.")


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = get_settings()
    if settings.embedded:
        from app.embedded import embedded_database

        # The running `serve`'s database, or the folder's PostgreSQL started for this alone.
        try:
            with embedded_database(settings.data_dir.resolve()) as database_url:
                run_migrations(database_url)
        except RuntimeError as error:
            _fail(str(error), code=1)
        print("Migrations applied.")
        return
    if not settings.database_url:
        _fail("DATABASE_URL is not set (with neither DATABASE_URL nor REDIS_URL: embedded mode)")
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
    max_ttl = settings.auth_max_token_ttl_seconds
    if args.ttl.total_seconds() > max_ttl:
        # The API would refuse such a token (401), so none is printed.
        _fail(
            f"--ttl ({int(args.ttl.total_seconds())} s) is longer than "
            f"AUTH_MAX_TOKEN_TTL_SECONDS ({max_ttl} s), "
            "which the API enforces; use a shorter --ttl or raise that setting"
        )
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

    settings = _tool_settings()
    _require_secrets(settings)
    count = asyncio.run(rotate_all(settings))
    print(f"Re-encrypted {count} connection(s) with the first key.")


def cmd_archive(args: argparse.Namespace) -> None:
    from app.db import Database
    from app.orders.service import archive_finished_orders

    settings = _tool_settings()

    async def archive() -> int:
        database = Database(settings)
        try:
            return await archive_finished_orders(
                database.sessionmaker, settings.order_archive_after_days
            )
        finally:
            await database.dispose()

    count = asyncio.run(archive())
    print(
        f"Archived {count} finished order(s) placed more than "
        f"{settings.order_archive_after_days} days ago."
    )


def cmd_rebuild_customers(args: argparse.Namespace) -> None:
    from app.customers.service import rebuild
    from app.db import Database

    settings = _tool_settings()

    async def run() -> int:
        database = Database(settings)
        try:
            return await rebuild(database.sessionmaker, args.user)
        finally:
            await database.dispose()

    linked = asyncio.run(run())
    print(f"Linked {linked} order(s) to customers.")


def cmd_move_hosts(args: argparse.Namespace) -> None:
    from app.connections.hosts import configured_hosts, move_to_configured_hosts
    from app.db import Database
    from app.platforms.types import PlatformCode

    settings = _tool_settings()
    platform = PlatformCode(args.platform) if args.platform else None

    async def move() -> int:
        database = Database(settings)
        try:
            async with database.sessionmaker() as session:
                moved = await move_to_configured_hosts(session, settings, platform)
                await session.commit()
                return len(moved)
        finally:
            await database.dispose()

    count = asyncio.run(move())
    for code in [platform] if platform else list(PlatformCode):
        print(f"{code.value}: {configured_hosts(settings, code, None).api}")
    print(f"Moved {count} connection(s) to the hosts above; their next calls go there.")


def _read_new_password(from_stdin: bool) -> str:
    import getpass

    if from_stdin:
        # One line; only its line ending is dropped (spaces may be part of a passphrase).
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        _fail("no terminal to ask for the password on: pass it with --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        _fail("the two passwords differ; nothing was stored")
    return first


def cmd_user_create(args: argparse.Namespace) -> None:
    from app.accounts.service import (
        EmailTaken,
        InvalidAccount,
        check_new_account,
        create_user,
        normalize_email,
    )
    from app.db import Database

    password = _read_new_password(args.password_stdin)
    try:
        check_new_account(normalize_email(args.email), password)
    except InvalidAccount as exc:
        _fail(str(exc))
    settings = _tool_settings()

    async def create() -> str:
        database = Database(settings)
        try:
            async with database.sessionmaker() as session:
                user = await create_user(session, args.email, password)
                await session.commit()
                return str(user.id)
        finally:
            await database.dispose()

    try:
        print(asyncio.run(create()))
    except EmailTaken:
        _fail(f"an account with the e-mail {normalize_email(args.email)} exists already")


def _tool_settings() -> Settings:
    """The settings of a one-off command that needs the database: in embedded mode, those of
    the `serve` running on OMNI_DATA_DIR."""
    settings = get_settings()
    if settings.embedded:
        _embedded_env_for_tools(settings)
        settings = get_settings()
    if not settings.database_url:
        _fail("DATABASE_URL is not set")
    return settings


def _embedded_env_for_tools(settings: Settings) -> None:
    """Point a one-off command at a running embedded instance's database."""
    from app.embedded import running_database_url

    database_url = running_database_url(settings.data_dir)
    if database_url is None:
        _fail(
            f"no `omni-sales serve` is running on {settings.data_dir.resolve()}: start it, "
            "or set DATABASE_URL"
        )
    os.environ["DATABASE_URL"] = database_url
    _embedded_secrets_into_env(settings.data_dir)
    get_settings.cache_clear()


def cmd_sandbox(args: argparse.Namespace) -> None:
    import uvicorn

    from app.logging import configure_logging
    from app.sandbox.app import create_sandbox_app, describe_demo

    configure_logging("INFO")
    app, demo = create_sandbox_app(
        public_base_url=f"http://{args.host}:{args.port}", service_url=args.service_url
    )
    print(describe_demo(demo), flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None)


# What each setting is for, shown by `--help`; the names and defaults come from Settings itself,
# so a new setting is listed even before it gets a line here.
_SETTING_HELP = {
    "DATABASE_URL": "PostgreSQL URL (postgresql:// or postgresql+asyncpg://)",
    "REDIS_URL": "Redis URL for the job queue (redis://, rediss:// or unix://)",
    "OMNI_DATA_DIR": "embedded mode's folder: PostgreSQL, Redis, secrets.json",
    "AUTH_JWT_SECRET": "HS256 secret for bearer tokens (generated in embedded mode)",
    "AUTH_JWT_PUBLIC_KEY": "RS256 public key (PEM) instead of AUTH_JWT_SECRET",
    "AUTH_JWT_AUDIENCE": "required `aud` of tokens, checked when set",
    "AUTH_JWT_ISSUER": "required `iss` of tokens, checked when set",
    "AUTH_MAX_TOKEN_TTL_SECONDS": "tokens whose exp lies further ahead are refused (401); "
    "`token --ttl` stays within it",
    "AUTH_ACCESS_TOKEN_TTL_SECONDS": "lifetime of a login's access token (at most "
    "AUTH_MAX_TOKEN_TTL_SECONDS)",
    "AUTH_REFRESH_TOKEN_TTL_SECONDS": "a refresh token unused this long expires",
    "AUTH_LOGIN_MAX_FAILURES": "failed logins per e-mail or client address within the window "
    "before 429",
    "AUTH_LOGIN_WINDOW_SECONDS": "the window failed logins are counted in",
    "METRICS_TOKEN": "bearer token /metrics then requires; it also adds the lag per connection",
    "CREDENTIALS_ENCRYPTION_KEYS": "comma-separated Fernet keys; the first encrypts "
    "(generated in embedded mode)",
    "CORS_ORIGINS": "comma-separated origins of the frontend",
    "SHOPEE_BASE_URL": "Shopee host (the client adds /api/v2/...)",
    "LAZADA_BASE_URL": "Lazada API, ending in /rest",
    "LAZADA_AUTH_URL": "Lazada token API, ending in /rest",
    "FACEBOOK_GRAPH_URL": "Graph API with its version",
    "TIKTOK_BASE_URL": "TikTok Shop Open API host (paths carry their version)",
    "TIKTOK_AUTH_URL": "TikTok Shop token host (/api/v2/token/...)",
    "SYNC_WAIT_SECONDS": "how long POST sync-orders waits before answering 202",
    "SYNC_BACKFILL_DAYS": "how far back a first sync reads",
    "SYNC_OVERLAP_SECONDS": "re-read before the high-water mark on each sync",
    "SYNC_STALE_SECONDS": "a running sync silent this long is taken as dead",
    "PUBLIC_BASE_URL": "this service's public URL (webhook signatures; connect flow callbacks)",
    "CONNECT_REDIRECT_URL": "where a connect flow's browser lands with its grant",
    "CONNECT_REDIRECT_ALLOWLIST": "comma-separated origins a start's redirectUrl may use "
    "(default: CONNECT_REDIRECT_URL's)",
    "META_WEBHOOK_VERIFY_TOKEN": "token of Meta's webhook handshake",
    "LOG_LEVEL": "log level",
    "MARKETPLACE_CALLS_PER_SECOND": "calls per second per connection",
    "MARKETPLACE_DETAIL_CONCURRENCY": "concurrent detail batches per sync",
    "MARKETPLACE_BACKOFF_BASE": "first retry back-off, seconds (doubles)",
    "MARKETPLACE_BACKOFF_CAP": "longest retry back-off, seconds",
    "MARKETPLACE_MAX_ATTEMPTS": "attempts per marketplace call",
    "MARKETPLACE_MAX_WAIT": "longest wait a platform may ask for, seconds",
    "MARKETPLACE_TIMEOUT": "timeout of one marketplace call, seconds",
    "ORDER_ARCHIVE_AFTER_DAYS": "finished orders placed longer ago are archived (hidden from "
    "the order list by default)",
}


def _setting_defaults() -> dict[str, str]:
    """Every environment name Settings reads, with its default as a reader would say it."""
    from pydantic import BaseModel

    from app.config import ClientTuning

    def describe(value: object) -> str:
        if value is None:
            return "unset"
        if value == []:
            return "empty"
        return str(value)

    defaults: dict[str, str] = {}
    model: type[BaseModel]
    for model in (Settings, ClientTuning):
        for field in model.model_fields.values():
            alias = field.validation_alias
            if alias is None:
                continue
            name = alias if isinstance(alias, str) else str(alias.choices[0])  # type: ignore[union-attr]
            default = field.get_default(call_default_factory=True)
            defaults[name] = describe(default)
    return defaults


def _environment_help(names: list[str] | None = None, note: str = "") -> str:
    defaults = _setting_defaults()
    lines = ["environment (also read from ./.env):"]
    for name in names if names is not None else list(defaults):
        parts = [_SETTING_HELP.get(name, ""), f"default: {defaults[name]}"]
        lines += textwrap.wrap(
            "; ".join(part for part in parts if part),
            width=96,
            initial_indent=f"  {name:<31} ",
            subsequent_indent=" " * 34,
            break_on_hyphens=False,
        )
    return "\n".join(lines) + (f"\n\n{note}" if note else "")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and the environment list keep their lines; options show their defaults."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shows_default = action.option_strings and not action.required
        if shows_default and action.default not in (None, False, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omni-sales",
        description="Omni Sales: Shopee, Lazada and Facebook Shop orders in one PostgreSQL "
        "database, behind one JSON API.",
        epilog="`omni-sales COMMAND --help` tells what a command does and what it reads.",
        formatter_class=_HelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, summary: str, description: str, epilog: str = ""
    ) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=summary,
            description=description,
            epilog=epilog or None,
            formatter_class=_HelpFormatter,
        )

    serve = command(
        "serve",
        "run the API (and, in embedded mode, PostgreSQL, Redis and a worker)",
        "Run the API. With neither DATABASE_URL nor REDIS_URL set (embedded mode) it also\n"
        "starts PostgreSQL and Redis in OMNI_DATA_DIR, applies the migrations and runs one\n"
        "worker; SIGINT (Ctrl-C), SIGTERM and SIGHUP stop all of it. One `serve` per data\n"
        "folder: a second one exits at once. A PostgreSQL or Redis that stops is restarted\n"
        "(after 0.5 s, doubling to 10 s); the sixth stop within 5 minutes ends `serve` with\n"
        "exit status 3. With both URLs set: the API only (run `migrate` and `worker` on\n"
        "their own). A port in use is exit status 1 before anything starts.",
        _environment_help(),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.set_defaults(func=cmd_serve)

    command(
        "worker",
        "run a job worker (syncs, schedules, webhooks)",
        "Run one arq worker: order syncs, their schedule, connection checks and webhook\n"
        "events. SIGINT, SIGTERM and SIGHUP stop it.",
        _environment_help(note="DATABASE_URL and REDIS_URL are required."),
    ).set_defaults(func=cmd_worker)

    command(
        "migrate",
        "apply the database migrations",
        "Bring the database schema up to date (alembic upgrade head). In embedded mode it\n"
        "migrates the database of the `serve` running on OMNI_DATA_DIR, or, when none runs,\n"
        "starts the folder's PostgreSQL for the migration and stops it after.",
        _environment_help(["DATABASE_URL", "REDIS_URL", "OMNI_DATA_DIR"]),
    ).set_defaults(func=cmd_migrate)

    token = command(
        "token",
        "print a bearer token for a user",
        "Print a JWT whose subject is the user id: HS256 with AUTH_JWT_SECRET (in embedded\n"
        "mode the generated one), or RS256 with --private-key.",
        _environment_help(
            [
                *("AUTH_JWT_SECRET", "AUTH_JWT_PUBLIC_KEY", "AUTH_JWT_AUDIENCE", "AUTH_JWT_ISSUER"),
                "AUTH_MAX_TOKEN_TTL_SECONDS",
                *("DATABASE_URL", "REDIS_URL", "OMNI_DATA_DIR"),
            ],
            note="With neither URL set, the secret comes from OMNI_DATA_DIR/secrets.json.",
        ),
    )
    token.add_argument("--user", required=True, help="user id, the token's `sub`")
    token.add_argument(
        "--ttl",
        type=parse_ttl,
        default="1h",
        help="lifetime: a number and s, m, h or d; at most AUTH_MAX_TOKEN_TTL_SECONDS",
    )
    token.add_argument(
        "--private-key", metavar="FILE", help="PEM private key to sign with (RS256 set-ups)"
    )
    token.set_defaults(func=cmd_token)

    user = command(
        "user",
        "manage local accounts (e-mail and password)",
        "Manage local accounts: they log in with their e-mail and password\n"
        "(`POST /api/auth/login`) instead of a token from the CLI or an identity provider.",
    )
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    user_create = user_sub.add_parser(
        "create",
        help="create an account and print its user id",
        description="Create an account and print its user id (the `sub` of its tokens and the\n"
        "`userId` of its requests). The password is asked twice on the terminal, or read\n"
        "as one line from standard input with --password-stdin; at least 12 characters.\n"
        "An e-mail that exists already (in any letter case) is refused. In embedded mode\n"
        "it uses the database of the `serve` running on OMNI_DATA_DIR.",
        epilog=_environment_help(["DATABASE_URL", "REDIS_URL", "OMNI_DATA_DIR"]),
        formatter_class=_HelpFormatter,
    )
    user_create.add_argument("--email", required=True, help="the account's e-mail address")
    user_create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    user_create.set_defaults(func=cmd_user_create)

    sandbox = command(
        "sandbox",
        "run the simulated Shopee, Lazada, Meta and TikTok Shop APIs",
        "Run the Shopee, Lazada, Meta and TikTok Shop sandboxes on one port, each with a seeded\n"
        "demo shop;\n"
        "prints the *_BASE_URL settings and demo credentials to use them. Reads no settings.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument("--port", type=int, default=8100, help="port to listen on")
    sandbox.add_argument(
        "--service-url",
        default="http://127.0.0.1:8000",
        help="the Omni Sales service's URL, printed as its PUBLIC_BASE_URL",
    )
    sandbox.set_defaults(func=cmd_sandbox)

    openapi = command(
        "openapi",
        "print the OpenAPI document (YAML)",
        "Print the API's OpenAPI document as YAML. Reads no settings.",
    )
    openapi.add_argument("--output", "-o", metavar="FILE", help="write to FILE (default: stdout)")
    openapi.set_defaults(func=cmd_openapi)

    command(
        "rotate-keys",
        "re-encrypt stored credentials with the first key",
        "Re-encrypt every connection's credentials with the first of\n"
        "CREDENTIALS_ENCRYPTION_KEYS (all keys decrypt). In embedded mode it uses the\n"
        "database of the `serve` running on OMNI_DATA_DIR.",
        _environment_help(
            ["DATABASE_URL", "REDIS_URL", "OMNI_DATA_DIR", "CREDENTIALS_ENCRYPTION_KEYS"]
        ),
    ).set_defaults(func=cmd_rotate_keys)

    command(
        "archive",
        "archive old finished orders once",
        "Archive finished orders (completed, delivered, cancelled, returned, failed) placed\n"
        "more than ORDER_ARCHIVE_AFTER_DAYS ago, as the worker's daily job does: the order\n"
        "list leaves them out unless includeArchived=true; order detail and analytics keep\n"
        "them. Safe to run any number of times. In embedded mode it uses the database of the\n"
        "`serve` running on OMNI_DATA_DIR.",
        _environment_help(
            ["DATABASE_URL", "REDIS_URL", "OMNI_DATA_DIR", "ORDER_ARCHIVE_AFTER_DAYS"]
        ),
    ).set_defaults(func=cmd_archive)

    rebuild_customers = command(
        "rebuild-customers",
        "link every order to customers again",
        "Forget the customers (of --user, or everyone's) and link all their orders again by\n"
        "phone, e-mail and platform buyer id, as the worker's refresh job does incrementally.\n"
        "Safe to run any number of times. In embedded mode it uses the database of the\n"
        "`serve` running on OMNI_DATA_DIR.",
        _environment_help(["DATABASE_URL", "REDIS_URL", "OMNI_DATA_DIR"]),
    )
    rebuild_customers.add_argument("--user", help="only this user's customers")
    rebuild_customers.set_defaults(func=cmd_rebuild_customers)

    move_hosts = command(
        "move-hosts",
        "move connections to the marketplace hosts the settings name now",
        "A connection keeps the marketplace hosts it was created against; when\n"
        "SHOPEE_BASE_URL, LAZADA_BASE_URL(_XX), LAZADA_AUTH_URL or FACEBOOK_GRAPH_URL name\n"
        "others, it is `misconfigured` and never called (its tokens stay off the new host).\n"
        "This binds the connections (of --platform) to the hosts configured now and makes\n"
        "them active again: their stored tokens go to those hosts from then on. In embedded\n"
        "mode it uses the database of the `serve` running on OMNI_DATA_DIR.",
        _environment_help(["DATABASE_URL", "OMNI_DATA_DIR", "SHOPEE_BASE_URL", "LAZADA_BASE_URL"]),
    )
    move_hosts.add_argument(
        "--platform",
        choices=["shopee", "lazada", "facebook", "tiktok"],
        help="only this platform's",
    )
    move_hosts.set_defaults(func=cmd_move_hosts)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
