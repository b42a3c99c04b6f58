"""Flags as a user types them: `goproc ping --timeout` is a Go duration or bare
seconds, more than 0, and anything else is one line on stderr and exit 2 (never a
traceback); `--alive` with `--dead` says they exclude each other; blank or
out-of-range selector values are refused; whatever the daemon refuses as invalid
params exits 2, like a usage error the CLI finds itself."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest
from helpers import one_line, wait_until as helpers_wait_until


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


@pytest.mark.parametrize(
    ("flags", "field", "why"),
    [
        (["--name", "ok", "--name", " "], "names[1]", "must not be blank"),
        (["--name", ""], "names[0]", "must not be blank"),
        (["--tag-all", "  "], "tags_all[0]", "must not be blank"),
        (["--group-all", ""], "groups_all[0]", "must not be blank"),
        (["--tag", "\t"], "tags_any[0]", "must not be blank"),
        (["--id", "0"], "ids[0]", "must be a positive integer id"),
    ],
)
def test_a_blank_or_out_of_range_selector_is_refused_and_acts_on_nothing(
    daemon: Any, sleeper: Any, flags: list[str], field: str, why: str
) -> None:
    """A blank selector value matches nothing, so with AND it would go unnoticed:
    `rm --name ok --name ' ' --all` used to remove `ok`.  Refused (exit 2, the field
    named); nothing changes."""
    daemon.call("add", {"pid": sleeper().pid, "name": "ok"})
    line = one_line(daemon.cli("rm", *flags, "--all"), 2)
    assert line.startswith(f"goproc: invalid params: {field}: {why}"), line
    assert [e["name"] for e in daemon.call("list")] == ["ok"]


def test_a_refused_value_is_quoted_as_it_was_sent(daemon: Any) -> None:
    """The CLI prints the daemon's message with its spaces: they used to be squeezed,
    so a refused "   " was quoted as ' '.  Line breaks and controls are escaped."""
    for value in ("  ", "   ", " \t ", " \n "):
        line = one_line(daemon.cli("list", "--tag-all", value), 2)
        assert line.endswith(f"got {value!r}"), line


def test_invalid_params_from_the_daemon_exit_2_like_any_usage_error(
    daemon: Any, sleeper: Any
) -> None:
    """One rule: a value the daemon refuses (-32602) is a usage error, exit 2; other
    daemon errors (no match, already tracked) exit 1."""
    p = sleeper()
    entry = daemon.call("add", {"pid": p.pid})
    assert one_line(daemon.cli("kill", str(entry["id"]), "--signal", "BOGUS"), 2).startswith(
        "goproc: invalid params: signal"
    )
    assert one_line(daemon.cli("add", "0"), 2).startswith("goproc: invalid params: pid")
    assert one_line(daemon.cli("name", str(entry["id"]), "bad name"), 2).startswith(
        "goproc: invalid params: name"
    )
    assert one_line(daemon.cli("show", "--tag", "nothing-has-it"), 1) == (
        "goproc: no process matches"
    )
    assert one_line(daemon.cli("add", str(p.pid)), 1).startswith("goproc: ")
    assert p.poll() is None


def test_renaming_a_tag_to_itself_changes_nothing_writes_nothing_tells_nobody(
    spawn_daemon: Any, sleeper: Any
) -> None:
    d = spawn_daemon(config={"snapshot_delay": "1h"})
    d.call("add", {"pid": sleeper().pid, "tags": ["x"]})
    journals = sorted(d.state_dir.glob("goproc.journal.*"))
    sizes = [j.stat().st_size for j in journals]
    with d.connect() as s:
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"subscribe"}\n')
        assert b'"result"' in s.recv(65536)
        assert d.call("tag.rename", {"old": "x", "new": "x"}) == {"changed": 0}
        assert d.call("tag.add", {"ids": [1], "labels": ["x"]})[0]["tags"] == ["x"]
        d.call("tag.add", {"ids": [1], "labels": ["y"]})  # a real change, as a marker
        s.settimeout(5)
        first = json.loads(s.recv(65536).split(b"\n")[0])
    assert first["params"]["kind"] == "updated" and first["params"]["proc"]["tags"] == ["x", "y"]
    assert len(journals) == 1
    since = journals[0].read_bytes()[sizes[0] :]
    assert since.count(b"\n") == 1 and b'"y"' in since, "only the marker was journaled"


THREADED = (
    sys.executable,
    "-c",
    "import threading, time; threading.Thread(target=time.sleep, args=(300,), daemon=True)"
    ".start(); time.sleep(300)",
)


def threads_of(pid: int) -> list[int]:
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)


def test_the_daemon_itself_its_threads_and_thread_ids_are_refused(
    daemon: Any, sleeper: Any
) -> None:
    """`goproc add <the daemon's pid>` would let `kill` stop the daemon (leaving its
    socket and PID file behind); a thread id is a task of another process and would be
    shown with that process's command.  Both are -32602 naming the pid, exit 2."""
    assert daemon.proc is not None
    own = daemon.proc.pid
    line = one_line(daemon.cli("add", str(own)), 2)
    assert line == f"goproc: invalid params: pid: {own} is this goproc daemon itself"
    daemon.call("status")  # the daemon runs threads once it has swept once
    for tid in threads_of(own)[:1]:
        line = one_line(daemon.cli("add", str(tid)), 2)
        assert line == f"goproc: invalid params: pid: {tid} is this goproc daemon itself"
    p = sleeper(*THREADED)
    helpers_wait_until(lambda: threads_of(p.pid), what="the thread to start")
    [tid] = threads_of(p.pid)
    line = one_line(daemon.cli("add", str(tid)), 2)
    assert (
        line == f"goproc: invalid params: pid: {tid} is a thread of process {p.pid}, not a process"
    )
    assert daemon.call("list") == []
    assert daemon.call("add", {"pid": p.pid})["pid"] == p.pid, "the process itself is fine"


def test_a_name_is_trimmed_and_never_all_digits(daemon: Any, sleeper: Any) -> None:
    """`show 123` reads 123 as an id, so a name made of digits could never be used:
    refused (exit 2, naming `name`).  Names are trimmed like tags."""
    p = sleeper()
    r = daemon.cli("add", str(p.pid), "--name", "  api  ")
    assert r.returncode == 0, r.stderr
    [entry] = daemon.call("list")
    assert entry["name"] == "api"
    assert one_line(daemon.cli("name", "api", "123"), 2) == (
        "goproc: invalid params: name: must contain a non-digit (an id is all digits), got '123'"
    )
    assert one_line(daemon.cli("add", str(sleeper().pid), "--name", "007"), 2).startswith(
        "goproc: invalid params: name: must contain a non-digit"
    )
    assert [e["name"] for e in daemon.call("list")] == ["api"], "nothing changed"
    assert daemon.cli("name", "api", "v2.1").returncode == 0
    assert daemon.cli("show", "v2.1").returncode == 0


@pytest.mark.parametrize(
    "command", [["kill"], ["rm"], ["tag", "add", "x"], ["tag", "rm", "x"], ["group", "add", "g"]]
)
def test_a_changing_command_without_any_selection_is_a_usage_error(
    daemon: Any, sleeper: Any, command: list[str]
) -> None:
    """With one entry, a bare `goproc kill` used to kill it.  A changing command needs
    an ID or NAME, a selector or --all (as upstream goproc asks)."""
    p = sleeper()
    daemon.call("add", {"pid": p.pid})
    assert one_line(daemon.cli(*command), 2) == (
        "goproc: give an ID or NAME, a selector (--id, --tag, ...) or --all"
    )
    [entry] = daemon.call("list")
    assert (entry["alive"], entry["tags"], entry["groups"]) == (True, [], [])
    assert p.poll() is None
    assert daemon.cli(*command, "--all").returncode == 0, "--all alone is a selection"


@pytest.mark.parametrize("kind", ["tag", "group"])
def test_tag_list_is_the_same_as_bare_tag(daemon: Any, sleeper: Any, kind: str) -> None:
    """`goproc tag list` used to fail with "Unused Tokens"; it lists, as bare `tag` does."""
    proc_id = daemon.call("add", {"pid": sleeper().pid})["id"]
    daemon.call(f"{kind}.add", {"ids": [proc_id], "labels": ["web"]})
    bare, listed = daemon.cli(kind), daemon.cli(kind, "list")
    assert bare.returncode == listed.returncode == 0, (bare.stderr, listed.stderr)
    assert bare.stdout == listed.stdout
    assert [line.split() for line in listed.stdout.splitlines()] == [
        [kind.upper(), "COUNT"],
        ["web", "1"],
    ]
    assert "'list'" in daemon.cli(kind, "--help").stdout


def test_run_with_the_commands_own_options_hints_at_the_double_dash(daemon: Any) -> None:
    line = one_line(daemon.cli("run", "ls", "-la"), 2)
    assert line.startswith("goproc: Unknown option: -la"), line
    assert "put -- before it: goproc run [FLAGS] -- CMD ARGS" in line
    assert daemon.call("list") == [], "nothing was started"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["name", "1", "a", "b"], "goproc: unexpected argument: 'b' (see 'goproc --help')"),
        (["show", "1", "2", "3"], "goproc: unexpected arguments: '2', '3' (see 'goproc --help')"),
        (["ping", "x"], "goproc: unexpected argument: 'x' (see 'goproc --help')"),
    ],
)
def test_an_argument_too_many_is_named_plainly(
    spawn_daemon: Any, args: list[str], line: str
) -> None:
    r = spawn_daemon().cli(*args)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", line + "\n")


@pytest.mark.parametrize("value", ["2", "0.5", "500ms"])
def test_every_timeout_takes_bare_seconds_as_ping_does(
    daemon: Any, sleeper: Any, value: str
) -> None:
    """`kill --timeout 2` and `wait --timeout 2` as `ping --timeout 2`: seconds."""
    p = sleeper()
    daemon.call("add", {"pid": p.pid})
    r = daemon.cli("wait", "1", "--timeout", value)
    assert (r.returncode, r.stderr) == (
        1,
        f"goproc: timed out after {value}; still alive: id 1 (pid {p.pid})\n",
    )
    r = daemon.cli("kill", "1", "--timeout", value)
    assert (r.returncode, r.stdout) == (0, f"id 1 pid {p.pid}: exited\n"), r.stderr
