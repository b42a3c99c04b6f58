"""The upstream Go goproc's own tests (vovakirdan/goproc, internal/app/*_test.go and
cmd/goproc/ping_test.go), case by case in intent, against a real daemon: here `add`,
`list`, `ping`, `reset` and `rm`; `kill`, `tag` and `group` are in
test_upstream_actions.py.

Upstream unit-tests its client layer against a stubbed gRPC connection; each case is
read for what it means to a user and checked through the CLI (or the socket).  Each
test's docstring names the upstream test.  Where goproc answers differently on purpose,
the docstring says so and why ("goproc:").  Upstream's "daemon is not running" and
"connect to daemon: dial failed" cases, which every file repeats, are one parametrized
test per file: no socket at all, and a socket nobody listens on (a daemon killed -9).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Daemon
from helpers import break_journal, one_line

from goproc.errors import ALREADY_TRACKED, AMBIGUOUS, INVALID_PARAMS

Sleeper = Callable[..., subprocess.Popen[bytes]]
BROKEN_CONFIG = {"snapshot_delay": "10ms", "last_seen_interval": "1h"}
NOT_SAVED = "goproc: could not save the change, so it was not made: "


def add(d: Daemon, p: subprocess.Popen[bytes], **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = d.call("add", {"pid": p.pid, **fields})
    return entry


UNREACHABLE = [
    ("Add", ["add", "123"]),
    ("List", ["list"]),
    ("Ping", ["ping"]),
    ("Reset", ["reset", "--confirm", "RESET"]),
    ("Remove", ["rm", "--id", "1"]),
]


@pytest.mark.parametrize(
    "args",
    [pytest.param(a, id=f"TestApp{n}DaemonNotRunning") for n, a in UNREACHABLE]
    + [pytest.param(["ping", "--timeout", "1"], id="cmd-TestPingError")],
)
def test_daemon_not_running(no_daemon: Daemon, args: list[str]) -> None:
    """TestApp{Add,List,Ping,Reset,Remove}DaemonNotRunning, and cmd/goproc's
    TestPingError (the error reaches the user): without a daemon every command fails
    with one line saying so.  goproc: exit 3 (unreachable), saying how to start one."""
    line = one_line(no_daemon.cli(*args), 3)
    assert line == (
        f"goproc: cannot reach the daemon at {no_daemon.socket} (no socket); "
        "start it with 'goproc daemon'"
    )


@pytest.mark.parametrize(
    "args", [pytest.param(a, id=f"TestApp{n}DialError") for n, a in UNREACHABLE]
)
def test_dial_error(stale_daemon: Daemon, args: list[str]) -> None:
    """TestApp{Add,List,Ping,Reset,Remove}DialError: the connection fails ("connect to
    daemon: dial failed").  goproc: exit 3, naming why (nobody listens)."""
    assert "(nobody listens)" in one_line(stale_daemon.cli(*args), 3)


# ---- add_test.go ----------------------------------------------------------------------


def test_add_rejects_invalid_pid(daemon: Daemon) -> None:
    """TestAppAddRejectsInvalidPID: pid 0 is refused ("invalid pid 0").  goproc: the
    daemon refuses it (-32602, naming pid), so the CLI exits 2 once it reaches one."""
    line = one_line(daemon.cli("add", "0"), 2)
    assert line.startswith("goproc: invalid params: pid: ") and "got 0" in line
    assert daemon.error("add", {"pid": 0})["code"] == INVALID_PARAMS
    assert daemon.call("list") == []


def test_add_already_exists(daemon: Daemon, sleeper: Sleeper) -> None:
    """TestAppAddAlreadyExists: adding a tracked pid again reports that it is tracked.
    goproc: a refusal (-32003 with the entry's id in data; the CLI exits 1), where
    upstream prints the reason and exits 0: a script must be able to tell that nothing
    was added."""
    p = sleeper()
    first = add(daemon, p)
    line = one_line(daemon.cli("add", str(p.pid)), 1)
    assert line == f"goproc: pid {p.pid} is already tracked as id {first['id']}"
    error = daemon.error("add", {"pid": p.pid})
    assert (error["code"], error["data"]) == (ALREADY_TRACKED, {"id": first["id"]})
    assert [e["id"] for e in daemon.call("list")] == [first["id"]]


@pytest.mark.parametrize(
    "tags",
    [
        pytest.param(["--tag", "a", "--tag", "b"], id="repeated"),
        pytest.param(["--tag", "a,b"], id="comma"),
    ],
)
def test_add_success(daemon: Daemon, sleeper: Sleeper, tags: list[str]) -> None:
    """TestAppAddSuccess: pid, tags a and b, group g1 and the name "  custom  " reach
    the daemon, the name trimmed; the new id comes back.  (Upstream's tag flag splits
    at commas; its check that the slices are copied is Go aliasing, nothing to carry
    over.)"""
    p = sleeper()
    r = daemon.cli("add", str(p.pid), *tags, "--group", "g1", "--name", "  custom  ", "--json")
    assert r.returncode == 0, r.stderr
    [entry] = json.loads(r.stdout)  # add prints an array, as any command that may add several
    assert (entry["pid"], entry["name"]) == (p.pid, "custom")
    assert (entry["tags"], entry["groups"]) == (["a", "b"], ["g1"])
    assert daemon.call("list") == [entry]


def test_add_success_no_label_holds_a_comma(daemon: Daemon, sleeper: Sleeper) -> None:
    """TestAppAddSuccess: upstream's --tag and --group split at commas, so no label holds
    one.  goproc: the daemon refuses such a label (-32602 naming it), which no comma
    list flag could select."""
    p = sleeper()
    for field in ("tags", "groups"):
        error = daemon.error("add", {"pid": p.pid, field: ["ok", "a,b"]})
        assert error["code"] == INVALID_PARAMS and f"{field}[1]" in error["message"]
    assert daemon.call("list") == []


# ---- list_test.go ---------------------------------------------------------------------


def test_list_rejects_invalid_name_filter(daemon: Daemon) -> None:
    """TestAppListRejectsInvalidNameFilter: a blank name among the filters is refused
    ("name filters must not be empty").  goproc: -32602 naming it, exit 2."""
    line = one_line(daemon.cli("list", "--name", "ok", "--name", " "), 2)
    assert line == "goproc: invalid params: names[1]: must not be blank, got ' '"
    error = daemon.error("list", {"names": ["ok", " "]})
    assert (error["code"], error["message"][:24]) == (INVALID_PARAMS, "invalid params: names[1]")


def test_list_rejects_invalid_pid_filter(daemon: Daemon) -> None:
    """TestAppListRejectsInvalidPIDFilter: pid -2 among the filters is refused ("invalid
    pid filter: -2").  goproc: the CLI refuses what is not ASCII digits (exit 2); the
    daemon refuses pids below 1 (-32602 naming pids[1])."""
    line = one_line(daemon.cli("list", "--pid", "1", "--pid=-2"), 2)
    assert "--pid" in line and "'-2'" in line
    error = daemon.error("list", {"pids": [1, -2]})
    assert (error["code"], error["message"][:23]) == (INVALID_PARAMS, "invalid params: pids[1]")
    line = one_line(daemon.cli("list", "--pid", "0"), 2)
    assert line.startswith("goproc: invalid params: pids[0]: ")


def test_list_success(daemon: Daemon, sleeper: Sleeper) -> None:
    """TestAppListSuccess: every filter (tags any and all, groups any and all, names,
    alive only, text search, pids, ids) is passed on, and the entries come back.
    goproc: the filters combine with AND: the one entry that meets all of them."""
    a, b = sleeper("sleep", "301"), sleeper("sleep", "302")
    want = add(daemon, a, tags=["a", "b"], groups=["ga", "gb"], name="svc")
    add(daemon, b, tags=["a", "b"], groups=["ga", "gb"], name="other")
    flags = ["--tag", "a", "--tag-all", "b", "--group", "ga", "--group-all", "gb"]
    flags += ["--name", "svc", "--name", "other", "--alive", "--search", "301"]
    flags += ["--pid", str(a.pid), "--pid", str(b.pid), "--id", "1", "--id", "2"]
    r = daemon.cli("list", *flags, "--json")
    assert r.returncode == 0, r.stderr
    assert [e["id"] for e in json.loads(r.stdout)] == [want["id"]]
    r = daemon.cli("list", *flags, "--tag-all", "c", "--json")
    assert (r.returncode, json.loads(r.stdout)) == (0, [])


def test_list_success_comma_lists(daemon: Daemon, sleeper: Sleeper) -> None:
    """TestAppListSuccess, with upstream's comma-separated list flags (IntSliceVar,
    StringSliceVar): `--id 1,2`, `--pid P,Q`, `--name x,y` are two values each."""
    a, b = sleeper(), sleeper()
    add(daemon, a, name="x")
    add(daemon, b, name="y")
    for flags in (["--id", "1,2"], ["--pid", f"{a.pid},{b.pid}"], ["--name", "x,y"]):
        r = daemon.cli("list", *flags, "--json")
        assert r.returncode == 0, (flags, r.stderr)
        assert [e["id"] for e in json.loads(r.stdout)] == [1, 2], flags


# ---- ping_test.go, cmd/goproc/ping_test.go --------------------------------------------


def test_ping_success(daemon: Daemon) -> None:
    """TestAppPingSuccess (500ms) and TestPingSuccess (cmd/goproc: timeout 2, in bare
    seconds as upstream takes it): the daemon answers pong, printed as one line."""
    for timeout in ("500ms", "2"):
        r = daemon.cli("ping", "--timeout", timeout)
        assert (r.returncode, r.stdout, r.stderr) == (0, "pong\n", "")


def test_ping_invalid_timeout(no_daemon: Daemon) -> None:
    """TestAppPingInvalidTimeout: a timeout of 0 is refused before any dialling."""
    line = one_line(no_daemon.cli("ping", "--timeout", "0"), 2)
    assert line == "goproc: --timeout: must be more than 0 and at most 24h, got '0'"


# ---- reset_test.go --------------------------------------------------------------------


def test_reset_requires_confirmation(daemon: Daemon, sleeper: Sleeper) -> None:
    """TestAppResetRequiresConfirmation: without the confirmation nothing is reset.
    goproc: the confirmation is `--confirm RESET`, checked by the daemon (-32602, exit
    2) as every value it takes, so without a daemon this is exit 3, not a usage error."""
    kept = add(daemon, sleeper())
    for args in ([], ["--confirm", "yes"], ["--confirm", "reset"]):
        line = one_line(daemon.cli("reset", *args), 2)
        assert line == "goproc: invalid params: confirm: must be exactly 'RESET'", args
    assert daemon.call("list") == [kept]


def test_reset_rpc_error(spawn_daemon: Callable[..., Daemon], sleeper: Sleeper) -> None:
    """TestAppResetRPCError: a reset the daemon fails is an error.  goproc: one it cannot
    save (-32005) is not made: exit 1, every entry kept."""
    d = spawn_daemon(config=BROKEN_CONFIG)
    kept = add(d, sleeper())
    break_journal(d.state_dir, entries=1)
    assert one_line(d.cli("reset", "--confirm", "RESET"), 1).startswith(NOT_SAVED)
    assert d.call("list") == [kept]


def test_reset_success(daemon: Daemon, sleeper: Sleeper) -> None:
    """TestAppResetSuccess: a confirmed reset reaches the daemon and empties it."""
    add(daemon, sleeper())
    add(daemon, sleeper())
    r = daemon.cli("reset", "--confirm", "RESET")
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert daemon.call("list") == [] and daemon.call("status")["next_id"] == 1


# ---- remove_test.go -------------------------------------------------------------------


def test_remove_requires_selector(daemon: Daemon, sleeper: Sleeper) -> None:
    """TestAppRemoveRequiresSelector: a bare rm is refused, even with one entry only."""
    kept = add(daemon, sleeper())
    line = one_line(daemon.cli("rm"), 2)
    assert line == "goproc: give an ID or NAME, a selector (--id, --tag, ...) or --all"
    assert daemon.call("list") == [kept]


def test_remove_invalid_filter(daemon: Daemon, sleeper: Sleeper) -> None:
    """TestAppRemoveInvalidFilter: a blank name filter is refused even with --all, and
    nothing is removed."""
    kept = add(daemon, sleeper(), name="ok")
    line = one_line(daemon.cli("rm", "--all", "--name", "ok", "--name", " "), 2)
    assert line == "goproc: invalid params: names[1]: must not be blank, got ' '"
    assert daemon.call("list") == [kept]


def test_remove_no_matches(daemon: Daemon, sleeper: Sleeper) -> None:
    """TestAppRemoveNoMatches: nothing matches.  goproc: a refusal (-32006, exit 1) where
    upstream prints "No matching processes registered" and exits 0: an rm of an id that
    is not there is most likely a mistyped one."""
    kept = add(daemon, sleeper())
    assert one_line(daemon.cli("rm", "--id", "99"), 1) == "goproc: no process matches"
    assert daemon.call("list") == [kept]


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(["--tag", "six"], id="tag"),
        pytest.param(["--id", "1", "--id", "2"], id="ids"),
        pytest.param(["--id", "1,2"], id="comma"),
    ],
)
def test_remove_multiple_without_all(daemon: Daemon, sleeper: Sleeper, flags: list[str]) -> None:
    """TestAppRemoveMultipleWithoutAll: several matches without --all are refused,
    naming the first five ids and "..." for more; nothing is removed.  goproc: -32007
    (exit 1), with the count and five ids in data."""
    entries = [add(daemon, sleeper(), tags=["six"]) for _ in range(6)]
    line = one_line(daemon.cli("rm", *flags), 1)
    if flags[0] == "--tag":
        assert line == (
            "goproc: 6 processes match (ids 1, 2, 3, 4, 5, ...); narrow the selection or use --all"
        )
        error = daemon.error("remove", {"tags_any": ["six"]})
        assert (error["code"], error["data"]["count"], error["data"]["ids"]) == (
            AMBIGUOUS, 6, [1, 2, 3, 4, 5],
        )  # fmt: skip
    else:
        assert line.startswith("goproc: 2 processes match (ids 1, 2); ")
    assert daemon.call("list") == entries


def test_remove_rm_failure(spawn_daemon: Callable[..., Daemon], sleeper: Sleeper) -> None:
    """TestAppRemoveRmFailure: a removal the daemon fails is an error naming it.  goproc:
    one it cannot save (-32005) is not made: exit 1, the entry kept."""
    d = spawn_daemon(config=BROKEN_CONFIG)
    kept = add(d, sleeper())
    break_journal(d.state_dir, entries=1)
    assert one_line(d.cli("rm", "--id", str(kept["id"])), 1).startswith(NOT_SAVED)
    assert d.call("list") == [kept]


def test_remove_success(daemon: Daemon, sleeper: Sleeper) -> None:
    """TestAppRemoveSuccess: rm --id 9 removes that entry and reports it (id, pid,
    command; on the socket the whole entry, name and all); the process is not touched."""
    p = sleeper()
    entry = add(daemon, p, tags=["x"], groups=["y"], name="proc")
    other = add(daemon, sleeper(), name="other")
    r = daemon.cli("rm", "--id", str(entry["id"]))
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == f"Removed id {entry['id']} (pid {p.pid}, sleep 300)\n"
    assert daemon.call("list") == [other] and p.poll() is None
    assert daemon.call("remove", {"ids": [other["id"]]}) == [other]
