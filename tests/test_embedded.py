"""Start `omni-sales serve` in embedded mode in a temporary folder, as a new user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port


def _start(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "REDIS_URL",
            "AUTH_JWT_SECRET",
            "AUTH_JWT_PUBLIC_KEY",
            "CREDENTIALS_ENCRYPTION_KEYS",
        )
    }
    env["OMNI_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        cwd=data_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_ready(base: str, process: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("embedded service did not become ready")


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    return output


def test_embedded_serve_starts_everything_and_reuses_its_data(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = _start(tmp_path, port)
    try:
        _wait_ready(base, process)
        platforms = httpx.get(f"{base}/api/marketplace/platforms", timeout=5)
        assert [p["code"] for p in platforms.json()["data"]] == ["shopee", "lazada", "facebook"]
        assert httpx.get(f"{base}/docs", timeout=5).status_code == 200
    finally:
        output = _stop(process)
    assert process.returncode == 0, output
    assert f"Swagger UI:     {base}/docs" in output
    secrets = json.loads((tmp_path / "secrets.json").read_text())
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert not list((tmp_path / "postgres").glob("postmaster.pid"))

    process = _start(tmp_path, port)
    try:
        _wait_ready(base, process)
    finally:
        _stop(process)
    assert json.loads((tmp_path / "secrets.json").read_text()) == secrets
