"""Input that reaches a terminal or a parser, through the real `goproc` CLI and a real
daemon:

- a process whose argv (or a tag) holds escape sequences and line breaks is printed
  escaped by every human output (`list`, `show`, `rm`, `wait`, `tag`, errors); `--json`
  gives the exact value back;
- numbers are ASCII digits only, everywhere: ids, pids, `--signal`, durations, on the
  CLI (exit 2, one line) and in the daemon (`-32602`); `²` or U+0661 never becomes an id;
- a config file nested 100,000 deep is one line naming the file, exit 2;
- thousands of `--tag` flags parse in linear time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon

from goproc.durations import parse_duration

# A window title, a screen clear, a forged `list` row, a right-to-left override, an
# 8-bit CSI and DEL.
FORGED_ROW = "9   9      root  yes    -     -       /bin/forged"
EVIL_ARG = f"\x1b]0;pwned\x07\x1b[2J\n{FORGED_ROW}\r\u202e\u009b31m\x7f"
EVIL_TAG = "x\u202e\u2066\u200b"  # a label holds no control character, but these


def printable(text: str) -> bool:
    """Nothing in `text` but printable characters and line ends."""
    return all(line.isprintable() for line in text.split("\n"))


def human(r: subprocess.CompletedProcess[str], lines: int | None = None) -> str:
    """A successful run's stdout, checked: printable, with `lines` lines."""
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert printable(r.stdout) and printable(r.stderr), (r.stdout, r.stderr)
    if lines is not None:
        assert len(r.stdout.splitlines()) == lines, r.stdout
    return r.stdout


def usage_error(r: subprocess.CompletedProcess[str], starts: str = "goproc: ") -> str:
    """A run that failed as a usage error: exit 2, one printable line on stderr."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(starts) and lines[0].isprintable(), r.stderr
    return lines[0]


@pytest.fixture
def hostile(daemon: Daemon, sleeper: Any) -> dict[str, Any]:
    """An entry whose command line and tag are hostile, id 1."""
    # Popen returns once the exec has happened: the argv is in place.
    p = sleeper(sys.executable, "-c", "import time; time.sleep(300)", EVIL_ARG)
    proc: dict[str, Any] = daemon.call("add", {"pid": p.pid, "tags": [EVIL_TAG]})
    assert EVIL_ARG in proc["cmd"] and proc["id"] == 1
    return proc


# ---- input that reaches a terminal -------------------------------------------------------


def test_list_prints_a_hostile_command_on_one_escaped_line(
    daemon: Daemon, hostile: dict[str, Any]
) -> None:
    out = human(daemon.cli("list"), lines=2)
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\n9   9" in out
    assert "x\\u202e\\u2066\\u200b" in out
    assert "/bin/forged\\r\\u202e\\x9b31m\\x7f" in out


def test_show_prints_a_hostile_entry_one_field_per_line(
    daemon: Daemon, hostile: dict[str, Any]
) -> None:
    out = human(daemon.cli("show", "1"), lines=len(hostile) + 1)  # and its age
    assert "\\x1b]0;pwned\\x07" in out


def test_json_gives_the_exact_hostile_values_back(daemon: Daemon, hostile: dict[str, Any]) -> None:
    shown = json.loads(human(daemon.cli("show", "1", "--json")))
    listed = json.loads(human(daemon.cli("list", "--json")))
    assert shown["cmd"] == listed[0]["cmd"] == hostile["cmd"]
    assert shown["tags"] == listed[0]["tags"] == [EVIL_TAG]


def test_tag_lines_escape_a_hostile_tag(daemon: Daemon, hostile: dict[str, Any]) -> None:
    human(daemon.cli("tag"), lines=2)
    human(daemon.cli("tag", "add", "--id", "1", "\u202emore"), lines=1)
    human(daemon.cli("tag", "rename", EVIL_TAG, "\u2066t\u2069"), lines=1)


def test_kill_wait_and_rm_escape_the_hostile_command(
    daemon: Daemon, hostile: dict[str, Any]
) -> None:
    human(daemon.cli("kill", "1", "--signal", "KILL"), lines=1)
    out = human(daemon.cli("wait", "1", "--timeout", "10s"), lines=1)
    assert out.startswith(f"id 1 pid {hostile['pid']} exited (") and "\\x1b]0;pwned" in out
    out = human(daemon.cli("rm", "1"), lines=1)
    assert out.startswith(f"Removed id 1 (pid {hostile['pid']}, ") and "\\x1b]0;pwned" in out


def test_error_lines_escape_what_they_echo(daemon: Daemon) -> None:
    line = usage_error(daemon.cli("list", "--id", "\x1b]0;pwned\x07"))
    assert "\\x1b]0;pwned\\x07" in line
    r = daemon.cli("name", "\x1b[2J\u202e", "new")
    assert r.returncode == 1 and printable(r.stderr) and len(r.stderr.splitlines()) == 1


# ---- ASCII digits only -------------------------------------------------------------------


@pytest.mark.parametrize("target", ["²", "\u0661", "\u0663", "\uff11"])
def test_a_target_of_non_ascii_digits_is_a_name_that_matches_nothing(
    daemon: Daemon, hostile: dict[str, Any], target: str
) -> None:
    for command in (["show", target], ["kill", target, "--signal", "KILL"], ["rm", target]):
        r = daemon.cli(*command)
        assert (r.returncode, r.stdout) == (1, ""), (command, r.stdout, r.stderr)
        assert r.stderr == "goproc: no process matches\n", (command, r.stderr)
    assert daemon.call("show", {"ids": [1]})["alive"], "id 1 untouched"


def test_kill_with_arabic_indic_digits_signals_nothing(
    daemon: Daemon, hostile: dict[str, Any]
) -> None:
    r = daemon.cli("kill", "\u0661", "--signal", "\u0663")
    assert r.returncode in (1, 2) and "Traceback" not in r.stderr, r.stderr
    r = daemon.cli("kill", "--id", "\u0661", "--signal", "KILL")
    assert "--id" in usage_error(r)
    assert daemon.call("show", {"ids": [1]})["alive"]


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["show", "--id", "\u0661"], "--id"),
        (["list", "--id", "²"], "--id"),
        (["list", "--pid", "\u0661"], "--pid"),
        (["list", "--id", "1.0"], "--id"),
        (["list", "--id", "0x1"], "--id"),
        (["list", "--id", "1_0"], "--id"),
        (["list", "--id", "+1"], "--id"),
        (["list", "--pid", " 1"], "--pid"),
        (["rm", "--id", "\u0661", "--all"], "--id"),
        (["add", "\u0661"], "PIDS"),
        (["add", "1.9"], "PIDS"),
        (["kill", "1", "--timeout", "\u0663s"], "--timeout"),
        (["wait", "1", "--timeout", "\u0663s"], "--timeout"),
        (["ping", "--timeout", "\u0663"], "--timeout"),
        (["show", "9" * 5000], "ID|NAME"),
        (["kill", "1", "--signal", "9" * 5000], "--signal"),
        (["list", "--id", "9" * 5000], "--id"),
        (["list", "--id", "1", "--id", "\u0661"], "--id"),
        (["list", "--id", "1", "--id", "2", "--pid", "3", "--pid", "0x3"], "--pid"),
    ],
)
def test_numbers_are_ascii_digits_or_a_usage_error(
    daemon: Daemon, hostile: dict[str, Any], command: list[str], flag: str
) -> None:
    line = usage_error(daemon.cli(*command))
    assert flag in line
    assert [p["id"] for p in daemon.call("list")] == [1]
    assert daemon.call("show", {"ids": [1]})["alive"]


@pytest.mark.parametrize(
    "sig",
    [
        "k\u0131ll",
        "\u017figkill",
        "SIGKİLL",
        "\u0669",
        "\uff4b\uff49\uff4c\uff4c",
        "KILL\u200b",
        "\u3000KILL",
    ],
)
def test_daemon_takes_signal_names_in_ascii_only(
    daemon: Daemon, hostile: dict[str, Any], sig: str
) -> None:
    reply = daemon.request("kill", {"ids": [1], "signal": sig})
    assert reply["error"]["code"] == -32602, reply
    assert reply["error"]["message"].startswith("invalid params: signal: ")
    r = daemon.cli("kill", "1", "--signal", sig)
    assert r.returncode in (1, 2) and "Traceback" not in r.stderr and printable(r.stderr)
    assert daemon.call("show", {"ids": [1]})["alive"]
    os.kill(hostile["pid"], 0)  # still there


def test_a_signal_number_in_ascii_digits_is_sent(daemon: Daemon, hostile: dict[str, Any]) -> None:
    r = daemon.cli("kill", "1", "--signal", str(int(signal.SIGKILL)))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("text", ["\u0663s", "\u20035s", "5s\u3000", "1\u0660s", "\uff15s"])
def test_durations_are_ascii_only(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_durations_keep_ascii_padding() -> None:
    assert parse_duration(" 5s\n") == 5.0


# ---- a deeply nested config file ---------------------------------------------------------


@pytest.fixture
def deep_config(tmp_path: Path) -> Path:
    path = tmp_path / "deep.json"
    path.write_text('{"liveness_interval": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return path


def test_cli_refuses_a_deeply_nested_config_in_one_line(daemon: Daemon, deep_config: Path) -> None:
    for args in (["--config", str(deep_config), "ping"], ["ping", "--config", str(deep_config)]):
        line = usage_error(daemon.cli(*args), f"goproc: config {deep_config}: ")
        assert "nested too deeply" in line


def test_daemon_refuses_a_deeply_nested_config_in_one_line(
    spawn_daemon: Any, deep_config: Path
) -> None:
    d = spawn_daemon(start=False)
    r = d.cli("daemon", "--config", str(deep_config))
    usage_error(r, f"goproc: config {deep_config}: ")
    r = subprocess.run(
        [sys.executable, "-m", "goproc.daemon", "--config", str(deep_config)],
        env=d.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    usage_error(r, f"goproc: config {deep_config}: ")
    assert not d.socket.exists()


# ---- many repeated flags -----------------------------------------------------------------


def test_thousands_of_tag_flags_parse_in_linear_time(daemon: Daemon, sleeper: Any) -> None:
    """3,000 `--tag` flags: about a minute and a half when each one re-read the rest."""
    pid = sleeper().pid
    tags = [f"t{i}" for i in range(3000)]
    flags = [a for t in tags for a in ("--tag", t)]
    r = daemon.cli("add", str(pid), *flags, timeout=30)
    assert r.returncode == 0, r.stderr
    assert daemon.call("show", {"pids": [pid]})["tags"] == sorted(tags)
    r = daemon.cli("list", "--json", *flags, "--group", "g", "--group", "h", timeout=30)
    assert (r.returncode, json.loads(r.stdout)) == (0, []), r.stderr


def test_repeated_flags_combine_and_keep_their_errors(
    daemon: Daemon, hostile: dict[str, Any]
) -> None:
    def ids(*args: str) -> list[int]:
        return [p["id"] for p in json.loads(human(daemon.cli("list", "--json", *args)))]

    assert ids("--tag", "nope", "--tag", EVIL_TAG, "--tag", "other") == [1]
    assert ids("--id", "5", "--tag", EVIL_TAG, "--id", "1", "--id", "7") == [1]
    assert ids("--tag-all", EVIL_TAG, "--tag-all", "nope") == []
    assert ids("--group", "g", "--group", "h", "--pid", str(hostile["pid"])) == []
    line = usage_error(daemon.cli("list", "--tag", "a", "--tag"))
    assert "--tag requires an argument" in line
    line = usage_error(daemon.cli("add", "1", "--name", "a", "--name", "b"))
    assert "--name specified multiple times" in line
    line = usage_error(daemon.cli("ping", "--tag", "a", "--tag", "b"))
    assert "--tag" in line


@pytest.mark.parametrize(
    "args",
    [
        ["run", "sleep", "1", "--tag", "a", "--tag", "b"],
        ["run", "--tag", "a", "--tag", "b", "--", "sh", "-c", "x", "--tag", "c", "--tag", "d"],
        ["add", "1", "2", "--tag", "a", "--group", "g", "--tag", "b", "--group", "h"],
        ["list", "--id", "1", "--pid", "2", "--id", "3", "--pid", "4", "--tag-all", "x"],
        ["list", "--tag-all", "x", "--tag-all", "y", "--group-all", "p", "--group-all", "q"],
        ["tag", "add", "--tag", "a", "lab1", "--tag", "b", "lab2"],
        ["kill", "web", "--tag", "a", "--tag", "b", "--all", "--signal", "HUP"],
        ["list", "--tag=a", "--tag", "b", "--tag=c", "--tag=-x", "--tag=", "--tag", "d"],
        ["list", "--id=1", "--id", "2", "--id=3", "--group=", "--group=x=y"],
    ],
)
def test_repeated_flags_bind_what_cyclopts_binds(args: list[str]) -> None:
    """Taking later occurrences out of argv (`lift_repeats`) binds the same values, in
    the same order, as cyclopts reading them all."""
    from goproc.cli.app import app
    from goproc.cli.argv import append_lifted, lift_repeats

    _, whole, _ = app.parse_args(args, exit_on_error=False, print_error=False)
    kept, lifted = lift_repeats(args)
    _, bound, _ = app.parse_args(kept, exit_on_error=False, print_error=False)
    append_lifted(bound.arguments, lifted)
    assert repr(bound.arguments) == repr(whole.arguments)
    flags = kept[: kept.index("--")] if "--" in kept else kept
    assert flags.count("--tag") <= 1 and flags.count("--id") <= 1
