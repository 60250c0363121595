"""`omni-sales serve` in embedded mode as real processes, as a new user (or systemd) runs it.

One data folder for the whole module, so PostgreSQL's initdb runs once; every test leaves the
folder stopped and unlocked, and the module fixture kills whatever a failing test left behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import free_port

_STOPPED = "Stopped API, worker, Redis and PostgreSQL."


def _serve_env(data_dir: Path) -> dict[str, str]:
    unset = (
        "DATABASE_URL",
        "REDIS_URL",
        "AUTH_JWT_SECRET",
        "AUTH_JWT_PUBLIC_KEY",
        "CREDENTIALS_ENCRYPTION_KEYS",
    )
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["OMNI_DATA_DIR"] = str(data_dir)
    return env


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    base: str
    output_path: Path

    @property
    def output(self) -> str:
        return self.output_path.read_text()


_started: list[Serve] = []


def _start(data_dir: Path) -> Serve:
    port = free_port()
    output_path = data_dir.parent / f"serve-{len(_started)}.out"
    with output_path.open("wb") as output:
        # A file, not a pipe: a pipe nobody reads would block the server once it fills.
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=_serve_env(data_dir),
            cwd=data_dir.parent,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    serve = Serve(process, f"http://127.0.0.1:{port}", output_path)
    _started.append(serve)
    return serve


def _wait_ready(serve: Serve, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert serve.process.poll() is None, serve.output
        try:
            if httpx.get(f"{serve.base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"embedded service did not become ready:\n{serve.output}")


def _stop(serve: Serve, signum: int = signal.SIGINT) -> str:
    serve.process.send_signal(signum)
    serve.process.wait(timeout=60)
    return serve.output


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie (exited; PID 1 in a container may never reap
    an orphan, and os.kill(pid, 0) succeeds on a zombie)."""
    try:
        os.kill(pid, 0)
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (ProcessLookupError, psutil.NoSuchProcess):
        return False


def _folder_pids(data_dir: Path) -> tuple[int, int]:
    """The postmaster's pid (from the folder's postmaster.pid) and the folder's one Redis."""
    postmaster = (data_dir / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0]
    redis = _redis_servers_of(data_dir)
    assert len(redis) == 1, f"{len(redis)} redis-server processes on one folder"
    return int(postmaster), redis[0]


def _servers_of(data_dir: Path) -> list[psutil.Process]:
    """Every live postgres or redis-server process whose command line names the folder."""
    found = []
    for process in psutil.process_iter(["name", "cmdline", "status"]):
        if process.info["name"] not in ("postgres", "redis-server"):
            continue
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if str(data_dir) in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def _redis_servers_of(data_dir: Path) -> list[int]:
    return [p.pid for p in _servers_of(data_dir) if p.info["name"] == "redis-server"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("embedded") / "data"
    try:
        yield folder
    finally:
        for serve in _started:
            if serve.process.poll() is None:
                serve.process.kill()
                serve.process.wait()
        for process in _servers_of(folder):
            process.kill()


def test_embedded_serve_starts_everything_and_reuses_its_data(data_dir: Path) -> None:
    serve = _start(data_dir)
    try:
        _wait_ready(serve)
        platforms = httpx.get(f"{serve.base}/api/marketplace/platforms", timeout=5)
        assert [p["code"] for p in platforms.json()["data"]] == [
            "shopee",
            "lazada",
            "facebook",
            "tiktok",
        ]
        assert httpx.get(f"{serve.base}/docs", timeout=5).status_code == 200
    finally:
        output = _stop(serve)
    assert serve.process.returncode == 0, output
    assert f"Swagger UI:     {serve.base}/docs" in output
    assert _STOPPED in output
    secrets = json.loads((data_dir / "secrets.json").read_text())
    assert (data_dir / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert not (data_dir / "postgres" / "postmaster.pid").exists()

    serve = _start(data_dir)
    try:
        _wait_ready(serve)
    finally:
        _stop(serve)
    assert json.loads((data_dir / "secrets.json").read_text()) == secrets


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_stops_api_worker_redis_and_postgres(data_dir: Path, signum: int) -> None:
    serve = _start(data_dir)
    _wait_ready(serve)
    postgres_pid, redis_pid = _folder_pids(data_dir)
    assert _alive(postgres_pid) and _alive(redis_pid)

    output = _stop(serve, signum)

    assert serve.process.returncode == 0, output
    assert _STOPPED in output
    assert not _alive(postgres_pid), output
    assert not _alive(redis_pid), output
    assert _servers_of(data_dir) == []
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{serve.base}/health", timeout=2)


def test_start_and_stop_print_no_library_noise(data_dir: Path) -> None:
    serve = _start(data_dir)
    _wait_ready(serve)
    output = _stop(serve, signal.SIGTERM)
    assert "XDG_RUNTIME_DIR" not in output
    assert "pg_ctl" not in output
    assert "pginstall" not in output  # no command lines with the binaries' paths


def test_signal_during_start_up_stops_what_was_started(data_dir: Path) -> None:
    serve = _start(data_dir)
    deadline = time.monotonic() + 30
    while "Starting embedded" not in serve.output:
        assert time.monotonic() < deadline and serve.process.poll() is None, serve.output
        time.sleep(0.02)

    output = _stop(serve, signal.SIGTERM)

    assert serve.process.returncode == 0, output
    assert _STOPPED in output
    assert _servers_of(data_dir) == []


def test_second_serve_on_the_folder_exits_at_once_naming_the_pid(data_dir: Path) -> None:
    first = _start(data_dir)
    try:
        _wait_ready(first)
        redis_socket = data_dir / "redis" / "redis.sock"
        files = ("postgres/postmaster.pid", "redis/redis.pid", "serve.lock")

        def contents() -> dict[str, str | None]:
            paths = {name: data_dir / name for name in files}
            return {
                name: path.read_text() if path.exists() else None for name, path in paths.items()
            }

        before = contents()
        socket_inode = redis_socket.stat().st_ino
        servers_before = sorted(p.pid for p in _servers_of(data_dir))

        second = subprocess.run(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(free_port())],
            env=_serve_env(data_dir),
            cwd=data_dir.parent,
            capture_output=True,
            text=True,
            timeout=30,
        )

        assert second.returncode != 0
        assert f"pid {first.process.pid}" in second.stderr
        assert contents() == before
        assert redis_socket.stat().st_ino == socket_inode
        assert sorted(p.pid for p in _servers_of(data_dir)) == servers_before
        assert httpx.get(f"{first.base}/ready", timeout=5).status_code == 200
    finally:
        output = _stop(first, signal.SIGTERM)
    assert first.process.returncode == 0, output


def test_start_after_kill_9_stops_what_the_killed_one_left(data_dir: Path) -> None:
    killed = _start(data_dir)
    _wait_ready(killed)
    old_postgres, old_redis = _folder_pids(data_dir)
    killed.process.kill()
    killed.process.wait()
    assert _alive(old_postgres) and _alive(old_redis)  # orphaned, as after any kill -9

    serve = _start(data_dir)
    try:
        _wait_ready(serve)
        assert f"Redis (pid {old_redis})" in serve.output
        assert f"PostgreSQL (pid {old_postgres})" in serve.output
        assert not _alive(old_postgres)
        assert not _alive(old_redis)
        new_postgres, new_redis = _folder_pids(data_dir)  # and only one Redis
        assert _alive(new_postgres) and _alive(new_redis)
        assert httpx.get(f"{serve.base}/ready", timeout=5).status_code == 200
    finally:
        output = _stop(serve, signal.SIGTERM)
    assert serve.process.returncode == 0, output
    assert _servers_of(data_dir) == []


# --- supervision: a dead child is restarted, one that keeps dying stops `serve` -----------


def _wait_for(condition: Callable[[], bool], serve: Serve, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, serve.output
        time.sleep(0.2)


def _ready(serve: Serve) -> bool:
    try:
        return httpx.get(f"{serve.base}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _new_redis(data_dir: Path, old: int) -> int | None:
    pids = [pid for pid in _redis_servers_of(data_dir) if pid != old and _alive(pid)]
    return pids[0] if len(pids) == 1 else None


def _new_postmaster(data_dir: Path, old: int) -> int | None:
    try:
        pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid != old and _alive(pid) else None


def test_a_killed_redis_is_restarted_and_the_api_recovers(data_dir: Path) -> None:
    serve = _start(data_dir)
    try:
        _wait_ready(serve)
        _, old_redis = _folder_pids(data_dir)
        os.kill(old_redis, signal.SIGKILL)
        # The line is printed once the restart returned, which can be after /ready is 200.
        _wait_for(
            lambda: (
                "Redis restarted" in serve.output
                and _new_redis(data_dir, old_redis) is not None
                and _ready(serve)
            ),
            serve,
        )
        assert serve.process.poll() is None
        assert "Redis stopped unexpectedly" in serve.output
    finally:
        output = _stop(serve, signal.SIGTERM)
    assert serve.process.returncode == 0, output
    assert _servers_of(data_dir) == []


def test_a_killed_postgres_is_restarted_and_the_api_recovers(data_dir: Path) -> None:
    serve = _start(data_dir)
    try:
        _wait_ready(serve)
        old_postgres, _ = _folder_pids(data_dir)
        os.kill(old_postgres, signal.SIGKILL)
        _wait_for(
            lambda: (
                "PostgreSQL restarted" in serve.output
                and _new_postmaster(data_dir, old_postgres) is not None
                and _ready(serve)
            ),
            serve,
        )
        assert serve.process.poll() is None
        token = subprocess.run(
            [sys.executable, "-m", "app.cli", "token", "--user", "seller-1"],
            env=_serve_env(data_dir),
            cwd=data_dir.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        listed = httpx.get(
            f"{serve.base}/api/marketplace/connections",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert listed.status_code == 200, listed.text
    finally:
        output = _stop(serve, signal.SIGTERM)
    assert serve.process.returncode == 0, output
    assert _servers_of(data_dir) == []


def test_a_child_that_keeps_dying_makes_serve_exit_non_zero(data_dir: Path) -> None:
    serve = _start(data_dir)
    log = data_dir / "redis" / "redis.log"
    try:
        _wait_ready(serve)
        _, redis_pid = _folder_pids(data_dir)
        # redis-server refuses to start when its log file cannot be opened.
        log.unlink()
        log.mkdir()
        os.kill(redis_pid, signal.SIGKILL)
        serve.process.wait(timeout=120)
    finally:
        if serve.process.poll() is None:
            _stop(serve, signal.SIGTERM)
        if log.is_dir():
            log.rmdir()
    output = serve.output
    assert serve.process.returncode == 3, output
    assert "Redis kept stopping" in output
    assert _STOPPED in output
    assert _servers_of(data_dir) == []
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


# --- one-off commands in embedded mode ---------------------------------------------------


def _cli(data_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *argv],
        env=_serve_env(data_dir),
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_uses_the_embedded_database_with_or_without_a_running_serve(
    data_dir: Path,
) -> None:
    serve = _start(data_dir)
    try:
        _wait_ready(serve)
        beside = _cli(data_dir, "migrate")
        assert beside.returncode == 0, beside.stderr
        assert "Migrations applied." in beside.stdout
        assert _ready(serve)
    finally:
        _stop(serve, signal.SIGTERM)

    alone = _cli(data_dir, "migrate")
    assert alone.returncode == 0, alone.stderr
    assert "Migrations applied." in alone.stdout
    assert _servers_of(data_dir) == []  # what it started for the migration is stopped
    assert not (data_dir / "serve.lock").read_text().strip()


def test_a_port_in_use_is_one_plain_line_before_any_data_folder(tmp_path: Path) -> None:
    fresh = tmp_path / "never-built"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=_serve_env(fresh),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert not fresh.exists()
