"""`omni-sales --help` and each command's help: what it does, its defaults, what it reads."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest

from app.cli import build_parser, main
from app.config import ClientTuning, Settings

COMMANDS = [
    "serve",
    "worker",
    "migrate",
    "token",
    "sandbox",
    "openapi",
    "rotate-keys",
    "archive",
    "move-hosts",
    "user",
    "rebuild-customers",
]


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def _environment_names() -> list[str]:
    names = []
    for model in (Settings, ClientTuning):
        for field in model.model_fields.values():
            alias = field.validation_alias
            if isinstance(alias, str):
                names.append(alias)
            elif alias is not None:
                names.append(str(alias.choices[0]))
    return names


def test_top_level_help_lists_every_command_with_what_it_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _help(capsys)
    subcommands = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    assert sorted(subcommands.choices) == sorted(COMMANDS)
    summaries = {action.dest: action.help for action in subcommands._choices_actions}
    for command in COMMANDS:
        assert summaries[command], f"{command} has no summary"
        assert command in text
        assert " ".join(str(summaries[command]).split()[:3]) in " ".join(text.split())


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_says_what_it_does(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    text = _help(capsys, command)
    description = " ".join(text.split("\noptions:")[0].split("\n\n")[1:])
    assert len(description.split()) >= 6, text


@pytest.mark.parametrize(
    ("argv", "defaults"),
    [
        (["serve"], ["(default: 127.0.0.1)", "(default: 8000)"]),
        (["sandbox"], ["(default: 127.0.0.1)", "(default: 8100)"]),
        (["token"], ["(default: 1h)"]),
        (["openapi"], ["(default: stdout)"]),
    ],
)
def test_options_show_their_defaults(
    capsys: pytest.CaptureFixture[str], argv: list[str], defaults: list[str]
) -> None:
    text = " ".join(_help(capsys, *argv).split())
    for default in defaults:
        assert default in text
    assert "(default: None)" not in text


def test_serve_and_worker_help_list_every_setting_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command in ("serve", "worker"):
        text = _help(capsys, command)
        environment = text.split("environment")[1]
        for name in _environment_names():
            assert f"  {name} " in environment, f"{command} --help lacks {name}"
        flat = " ".join(environment.split())
        assert "OMNI_DATA_DIR embedded mode's folder" in flat
        assert "default: .omni-sales" in flat
        assert "default: 10.0" in flat  # MARKETPLACE_CALLS_PER_SECOND


@pytest.mark.parametrize(
    ("command", "names"),
    [
        ("migrate", ["DATABASE_URL"]),
        ("token", ["AUTH_JWT_SECRET", "AUTH_JWT_PUBLIC_KEY", "OMNI_DATA_DIR"]),
        ("rotate-keys", ["DATABASE_URL", "CREDENTIALS_ENCRYPTION_KEYS", "OMNI_DATA_DIR"]),
        ("archive", ["DATABASE_URL", "OMNI_DATA_DIR", "ORDER_ARCHIVE_AFTER_DAYS"]),
    ],
)
def test_tool_help_lists_the_environment_it_reads(
    capsys: pytest.CaptureFixture[str], command: str, names: list[str]
) -> None:
    environment = _help(capsys, command).split("environment")[1]
    for name in names:
        assert f"  {name} " in environment


def test_token_ttl_defaults_to_one_hour() -> None:
    args = build_parser().parse_args(["token", "--user", "seller-1"])
    assert args.ttl == timedelta(hours=1)
