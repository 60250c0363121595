from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cli import main
from app.config import get_settings
from app.models.user import User


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, clean: None) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def _create(monkeypatch: pytest.MonkeyPatch, email: str, stdin: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    # The command runs its own event loop, as it does from a shell.
    await asyncio.to_thread(main, ["user", "create", "--email", email, "--password-stdin"])


async def test_user_create_prints_the_id_and_stores_an_argon2_hash(
    cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await _create(monkeypatch, "Ann@Example.com", "a long passphrase \n")
    user_id = uuid.UUID(capsys.readouterr().out.strip())
    async with session_factory() as session:
        user = (await session.execute(select(User))).scalar_one()
    assert user.id == user_id
    assert user.email == "ann@example.com"
    assert user.password_hash.startswith("$argon2id$")
    # The line ending is dropped, the trailing space (part of the passphrase) kept.
    assert PasswordHasher().verify(user.password_hash, "a long passphrase ")


async def test_user_create_refuses_a_duplicate_email_in_any_case(
    cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await _create(monkeypatch, "ann@example.com", "a long passphrase\n")
    with pytest.raises(SystemExit) as exit_info:
        await _create(monkeypatch, " ANN@example.COM", "another passphrase\n")
    assert exit_info.value.code == 2
    assert "exists already" in capsys.readouterr().err
    async with session_factory() as session:
        assert len((await session.execute(select(User))).scalars().all()) == 1


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("ann@example.com", "short\n", "at least 12 characters"),
        ("not-an-email", "a long passphrase\n", "not an e-mail address"),
    ],
)
async def test_user_create_refuses_a_short_password_or_a_bad_email(
    cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    session_factory: async_sessionmaker[AsyncSession],
    email: str,
    password: str,
    message: str,
) -> None:
    with pytest.raises(SystemExit):
        await _create(monkeypatch, email, password)
    assert message in capsys.readouterr().err
    async with session_factory() as session:
        assert (await session.execute(select(User))).first() is None


def test_user_create_without_a_terminal_asks_for_password_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(SystemExit):
        main(["user", "create", "--email", "ann@example.com"])
    assert "--password-stdin" in capsys.readouterr().err


def test_user_create_asks_twice_and_refuses_a_mismatch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["a long passphrase", "a different one!"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    with pytest.raises(SystemExit):
        main(["user", "create", "--email", "ann@example.com"])
    assert "differ" in capsys.readouterr().err
