"""`goproc daemon`'s usual forms go straight to the daemon program (the same arguments
the cyclopts command would give it); anything else goes through the app."""

from __future__ import annotations

import pytest

from goproc.cli.launch import daemon_argv


@pytest.mark.parametrize(
    ("args", "argv"),
    [
        (["daemon"], []),
        (["daemon", "--force"], ["--force"]),
        (["daemon", "-f"], ["--force"]),
        (["--config", "c.json", "daemon"], ["--config=c.json"]),
        (["--config=c.json", "daemon", "-f"], ["--force", "--config=c.json"]),
        (["daemon", "--config", "-odd.json"], ["--config=-odd.json"]),
        (["--config", "a.json", "daemon", "--config=b.json"], ["--config=b.json"]),
    ],
)
def test_plain_daemon_command_lines_exec_at_once(args: list[str], argv: list[str]) -> None:
    assert daemon_argv(args) == argv


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["ping"],
        ["daemon", "--help"],
        ["daemon", "-h"],
        ["daemon", "--forc"],
        ["daemon", "extra"],
        ["daemon", "daemon"],
        ["-f", "daemon"],
        ["daemon", "--config"],
        ["daemon", "--config="],
        ["list", "daemon"],
    ],
)
def test_anything_else_goes_through_the_app(args: list[str]) -> None:
    assert daemon_argv(args) is None
