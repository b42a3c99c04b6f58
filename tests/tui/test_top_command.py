"""`goproc top` as a command: it needs a terminal, its flags are the selector flags, and
no other command loads Textual (tests/unit/test_cli_imports.py holds the rest)."""

from __future__ import annotations

import subprocess

from conftest import GOPROC, Daemon


def test_top_without_a_terminal_is_a_usage_error(daemon: Daemon) -> None:
    r = subprocess.run(
        [*GOPROC, "top"],
        env=daemon.env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    assert r.returncode == 2 and r.stdout == ""
    assert (
        r.stderr.strip()
        == "goproc: goproc top needs a terminal; use 'goproc list --watch' elsewhere"
    )


def test_top_help_names_the_selector_flags(daemon: Daemon) -> None:
    r = daemon.cli("top", "--help")
    assert r.returncode == 0
    for flag in ("--tag", "--group", "--name", "--alive", "--search", "--config"):
        assert flag in r.stdout


def test_top_is_listed_and_other_commands_do_not_load_textual(daemon: Daemon) -> None:
    assert "top" in daemon.cli("--help").stdout
    code = "import sys; from goproc.cli.commands import top; print('textual' in sys.modules)"
    r = subprocess.run([*GOPROC[:1], "-c", code], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "False", r.stderr
