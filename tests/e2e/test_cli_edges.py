"""Flags as a user types them: `goproc ping --timeout` is a Go duration or bare
seconds, more than 0, and anything else is one line on stderr and exit 2 (never a
traceback); `--alive` with `--dead` says they exclude each other."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize(
    "value", ["-1", "nan", "inf", "1e308", "-0.5", "0", "0s", "-2s", "25h", "٣s", "²", "1 s"]
)
def test_a_bad_ping_timeout_is_a_usage_error(spawn_daemon: Any, value: str) -> None:
    d = spawn_daemon()
    r = d.cli("ping", f"--timeout={value}")  # the = form: a value may start with "-"
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("goproc: --timeout: "), r.stderr
    assert repr(value) in lines[0]


@pytest.mark.parametrize("value", ["2", "0.5", "500ms", "1m", "1h30m", ".25"])
def test_a_good_ping_timeout_gets_pong(spawn_daemon: Any, value: str) -> None:
    d = spawn_daemon()
    r = d.cli("ping", "--timeout", value)
    assert (r.returncode, r.stdout, r.stderr) == (0, "pong\n", "")


@pytest.mark.parametrize("command", [["list"], ["rm"], ["kill"], ["wait"]])
def test_alive_and_dead_together_say_they_exclude_each_other(
    spawn_daemon: Any, command: list[str]
) -> None:
    d = spawn_daemon()
    r = d.cli(*command, "--alive", "--dead")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr == (
        "goproc: --alive and --dead exclude each other: give one (see 'goproc --help')\n"
    )


@pytest.mark.parametrize(
    ("command", "hint"),
    [
        (["show", "--tag", "two"], "narrow the selection (it acts on one)"),
        (["rm", "--tag", "two"], "narrow the selection or use --all"),
    ],
)
def test_an_ambiguous_selection_suggests_all_only_where_there_is_one(
    spawn_daemon: Any, sleeper: Any, command: list[str], hint: str
) -> None:
    d = spawn_daemon()
    ids = [d.call("add", {"pid": sleeper().pid, "tags": ["two"]})["id"] for _ in range(2)]
    r = d.cli(*command)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr == f"goproc: 2 processes match (ids {ids[0]}, {ids[1]}); {hint}\n"
    assert len(d.call("list")) == 2, "nothing changed"
