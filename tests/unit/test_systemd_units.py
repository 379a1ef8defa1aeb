"""docs/systemd/*.service: one unit per long-running command, whose ExecStart the `cise` parser
takes as written (every option exists), logging JSON with a metrics port, stopped by SIGTERM,
and never holding a password on the command line."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from cise.main import build_parser

UNITS = Path(__file__).resolve().parents[2] / "docs" / "systemd"
COMMANDS = {("hub", "serve"), ("agent", "receive"), ("watchtower", "serve"), ("asset", "run"),
            ("api", "serve")}  # fmt: skip


def settings(unit: Path) -> dict[str, str]:
    """KEY=value lines of a unit (the last of a repeated key), comments left out."""
    found = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found[key.strip()] = value.strip()
    return found


def test_there_is_a_unit_for_each_long_running_command() -> None:
    commands = {tuple(shlex.split(settings(u)["ExecStart"])[1:3]) for u in UNITS.glob("*.service")}
    assert commands == COMMANDS


@pytest.mark.parametrize("unit", sorted(UNITS.glob("*.service")), ids=lambda p: p.name)
def test_a_unit_runs_a_command_the_parser_takes(unit: Path) -> None:
    conf = settings(unit)
    argv = shlex.split(conf["ExecStart"].replace("%d", "/run/credentials/unit"))
    args = build_parser().parse_args(argv[1:])
    assert args.log_format == "json" and args.metrics_port is not None
    assert args.metrics_host == "127.0.0.1"
    assert conf["KillSignal"] == "SIGTERM" and conf["Restart"] == "on-failure"
    assert "--password" not in argv  # only --password-file: no secret in `ps`
    if "--password-file" in argv:
        assert argv[argv.index("--password-file") + 1].startswith("/run/credentials/")
        assert conf["LoadCredential"].startswith("password:")
