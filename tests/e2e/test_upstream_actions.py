"""The upstream Go goproc's own tests (vovakirdan/goproc, internal/app/*_test.go), case
by case in intent, against a real daemon: here `kill`, `tag` and `group`; the rest, and
how the cases are read, in test_upstream_entries.py.

Upstream's `goproc tag NAME [--rename NEW]` (and `group`) renames a label, then lists
the entries that carry it; goproc's are `tag rename OLD NEW` and `list --tag-all NAME`.
The tag and group cases are the same test, run for each.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon
from helpers import break_journal, one_line, wait_until

from goproc.errors import AMBIGUOUS, INVALID_PARAMS, NO_MATCH

Sleeper = Callable[..., subprocess.Popen[bytes]]
BROKEN_CONFIG = {"snapshot_delay": "10ms", "last_seen_interval": "1h"}
NOT_SAVED = "goproc: could not save the change, so it was not made: "
NEEDS_SELECTOR = "goproc: give an ID or NAME, a selector (--id, --tag, ...) or --all"
NOBODY = 65534


def add(d: Daemon, p: subprocess.Popen[bytes], **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = d.call("add", {"pid": p.pid, **fields})
    return entry


def json_of(r: subprocess.CompletedProcess[str]) -> Any:
    assert (r.returncode, r.stderr) == (0, ""), (r.returncode, r.stderr)
    return json.loads(r.stdout)


UNREACHABLE = [
    ("Kill", ["kill", "--id", "1"]),
    ("Tag", ["tag", "rename", "db", "web"]),
    ("Group", ["group", "rename", "ops", "dev"]),
]


@pytest.mark.parametrize(
    "args", [pytest.param(a, id=f"TestApp{n}DaemonNotRunning") for n, a in UNREACHABLE]
)
def test_daemon_not_running(no_daemon: Daemon, args: list[str]) -> None:
    """TestApp{Kill,Tag,Group}DaemonNotRunning: exit 3, one line (see the entries file)."""
    assert "(no socket); start it with 'goproc daemon'" in one_line(no_daemon.cli(*args), 3)


@pytest.mark.parametrize(
    "args", [pytest.param(a, id=f"TestApp{n}DialError") for n, a in UNREACHABLE]
)
def test_dial_error(stale_daemon: Daemon, args: list[str]) -> None:
    """TestApp{Kill,Tag,Group}DialError: exit 3, naming why."""
    assert "(nobody listens)" in one_line(stale_daemon.cli(*args), 3)


# ---- kill_test.go ---------------------------------------------------------------------


def test_kill_requires_selector(daemon: Daemon, sleeper: Sleeper) -> None:
    """TestAppKillRequiresSelector: a bare kill is refused (exit 2), even with one entry
    only, and nothing is signalled."""
    p = sleeper()
    kept = add(daemon, p)
    assert one_line(daemon.cli("kill"), 2) == NEEDS_SELECTOR
    assert daemon.call("list") == [kept] and p.poll() is None


def test_kill_no_matches(daemon: Daemon) -> None:
    """TestAppKillNoMatches: nothing matches.  goproc: a refusal (-32006, exit 1) where
    upstream prints "No processes match the provided selectors" and exits 0: a kill
    that reaches no process has not done what was asked."""
    assert one_line(daemon.cli("kill", "--id", "1"), 1) == "goproc: no process matches"
    assert daemon.error("kill", {"ids": [1]})["code"] == NO_MATCH


def test_kill_no_alive(daemon: Daemon, sleeper: Sleeper) -> None:
    """TestAppKillNoAlive: the matches exist but none is alive: no error, nothing sent.
    goproc: one outcome line per entry, `not alive`, exit 0."""
    p = sleeper()
    entry = add(daemon, p)
    p.kill()
    p.wait()
    wait_until(lambda: daemon.call("list", {"alive": False}), what="the exit to be seen")
    r = daemon.cli("kill", "--id", str(entry["id"]))
    assert (r.returncode, r.stdout, r.stderr) == (0, f"id 1 pid {p.pid}: not alive\n", "")


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(["--tag", "t"], id="tag"),
        pytest.param(["--id", "1", "--id", "2"], id="ids"),
        pytest.param(["--id", "1,2"], id="comma"),
    ],
)
def test_kill_multi_match_without_all(daemon: Daemon, sleeper: Sleeper, flags: list[str]) -> None:
    """TestAppKillMultiMatchWithoutAll: several alive matches without --all are refused,
    naming their ids, and none is signalled.  goproc: -32007, exit 1."""
    procs = [sleeper() for _ in range(3)]
    for p in procs:
        add(daemon, p, tags=["t"])
    n, ids = (3, "1, 2, 3") if flags[0] == "--tag" else (2, "1, 2")
    line = one_line(daemon.cli("kill", *flags), 1)
    assert line == f"goproc: {n} processes match (ids {ids}); narrow the selection or use --all"
    error = daemon.error("kill", {"tags_any": ["t"]})
    assert (error["code"], error["data"]["count"]) == (AMBIGUOUS, 3)
    assert all(p.poll() is None for p in procs)


# A process that stops being root's on SIGUSR1: then a daemon without CAP_KILL cannot
# signal it (as root, every other signal goes through).
DROPS_TO_NOBODY = (
    "import os, signal, time\n"
    f"signal.signal(signal.SIGUSR1, lambda *_: os.setresuid({NOBODY}, {NOBODY}, {NOBODY}))\n"
    "while True: time.sleep(1)\n"
)


def status_field(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return line.split()[1]
    raise AssertionError(f"no {key} in /proc/{pid}/status")


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root and setpriv: a daemon without CAP_KILL, a process that drops to nobody",
)
def test_kill_kill_failure(spawn_daemon: Callable[..., Daemon], sleeper: Sleeper) -> None:
    """TestAppKillKillFailure: a kill that fails is reported for that entry, the entry
    is not removed, and the command fails ("no processes were killed").  goproc: the
    outcome `failed` with why, exit 1; with --rm the entry stays."""
    d = spawn_daemon(start=False)
    d.launcher = ("setpriv", "--bounding-set", "-kill", "--")
    d.start()
    p = sleeper(sys.executable, "-c", DROPS_TO_NOBODY)
    usr1 = 1 << (signal.SIGUSR1 - 1)
    wait_until(lambda: int(status_field(p.pid, "SigCgt"), 16) & usr1, what="the handler")
    entry = add(d, p)
    os.kill(p.pid, signal.SIGUSR1)
    wait_until(lambda: status_field(p.pid, "Uid") == str(NOBODY), what="the uid to drop")
    r = d.cli("kill", "--id", str(entry["id"]))
    assert (r.returncode, r.stderr) == (1, "")
    assert r.stdout == f"id 1 pid {p.pid}: failed: not allowed to signal pid {p.pid}\n"
    r = d.cli("kill", "--id", str(entry["id"]), "--rm", "--json")
    assert r.returncode == 1
    [outcome] = json.loads(r.stdout)
    assert (outcome["outcome"], outcome["removed"]) == ("failed", False)
    assert d.call("list") == [entry] and p.poll() is None


def test_kill_remove_failure(spawn_daemon: Callable[..., Daemon], sleeper: Sleeper) -> None:
    """TestAppKillRemoveFailure: the kill works but the removal fails: reported for that
    entry, and the command fails.  goproc: the entry is removed only with --rm; a removal
    that cannot be saved is `removed: false` beside the kill's outcome, exit 1."""
    d = spawn_daemon(config=BROKEN_CONFIG)
    p = sleeper()
    entry = add(d, p)
    break_journal(d.state_dir, entries=1)
    r = d.cli("kill", "--id", str(entry["id"]), "--rm", "--json")
    assert r.returncode == 1
    [outcome] = json.loads(r.stdout)
    assert (outcome["outcome"], outcome["removed"]) == ("exited", False)
    assert p.poll() is not None
    [kept] = d.call("list")
    assert (kept["id"], kept["alive"]) == (entry["id"], False)


def test_kill_success(daemon: Daemon, sleeper: Sleeper) -> None:
    """TestAppKillSuccess: kill --id 8 signals that process and removes its entry.
    goproc: the entry is removed with --rm only; a plain kill keeps it, marked dead, for
    `list --dead` and `wait` to see."""
    p, q = sleeper(), sleeper()
    gone, kept = add(daemon, p), add(daemon, q)
    r = daemon.cli("kill", "--id", str(gone["id"]), "--rm")
    assert (r.returncode, r.stdout, r.stderr) == (0, f"id 1 pid {p.pid}: exited (removed)\n", "")
    assert p.poll() is not None and daemon.call("list") == [kept]
    r = daemon.cli("kill", "--id", str(kept["id"]))
    assert (r.returncode, r.stdout) == (0, f"id 2 pid {q.pid}: exited\n")
    [dead] = daemon.call("list")
    assert (dead["id"], dead["alive"]) == (kept["id"], False)


# ---- tag_test.go and group_test.go ----------------------------------------------------


def each_kind(name: str) -> Any:
    """The test once for tags, once for groups: TestAppTag<name>, TestAppGroup<name>."""
    return pytest.mark.parametrize(
        "kind", [pytest.param(k, id=f"TestApp{k.title()}{name}") for k in ("tag", "group")]
    )


@each_kind("RequiresName")
def test_label_requires_name(daemon: Daemon, sleeper: Sleeper, kind: str) -> None:
    """TestAppTagRequiresName, TestAppGroupRequiresName: a blank name ("  ") is refused
    ("tag must not be empty").  goproc: as a filter (-32602 naming it, exit 2) and in a
    rename.  A blank label given to `tag add` is dropped (the spec: "empty ones ignored"),
    as in `add --tag`; with no label at all, or only blank ones, it is a usage error."""
    kept = add(daemon, sleeper(), **{f"{kind}s": ["x"]})
    line = one_line(daemon.cli("list", f"--{kind}-all", "  "), 2)
    assert line == f"goproc: invalid params: {kind}s_all[0]: must not be blank, got '  '"
    for old, new, blank in (("  ", "x", "old"), ("x", "  ", "new")):
        line = one_line(daemon.cli(kind, "rename", old, new), 2)
        assert line == f"goproc: invalid params: {blank}: must not be blank"
    assert one_line(daemon.cli(kind, "add", "--id", "1"), 2) == f"goproc: give at least one {kind}"
    line = one_line(daemon.cli(kind, "add", "  ", ",", "--id", "1"), 2)
    assert line == "goproc: invalid params: labels: must hold a label that is not blank"
    assert daemon.call("list") == [kept]
    assert daemon.cli(kind, "add", "  ", "y", "--id", "1").returncode == 0
    assert daemon.call("list")[0][f"{kind}s"] == ["x", "y"]


@each_kind("RenameError")
def test_label_rename_error(
    spawn_daemon: Callable[..., Daemon], sleeper: Sleeper, kind: str
) -> None:
    """TestAppTagRenameError, TestAppGroupRenameError: a rename the daemon fails is an
    error, and nothing is listed.  goproc: one it cannot save (-32005) is not made:
    exit 1, the labels as they were."""
    d = spawn_daemon(config=BROKEN_CONFIG)
    kept = add(d, sleeper(), **{f"{kind}s": ["old"]})
    break_journal(d.state_dir, entries=1)
    assert one_line(d.cli(kind, "rename", "old", "new"), 1).startswith(NOT_SAVED)
    assert d.call("list") == [kept]


@each_kind("NoMatches")
def test_label_no_matches(daemon: Daemon, sleeper: Sleeper, kind: str) -> None:
    """TestAppTagNoMatches, TestAppGroupNoMatches: no entry has the label: no error,
    nothing listed ("No processes found with tag "web"").  goproc: an empty list, and a
    rename of it changes 0 entries; both exit 0."""
    add(daemon, sleeper(), **{f"{kind}s": ["other"]})
    assert json_of(daemon.cli("list", f"--{kind}-all", "web", "--json")) == []
    assert json_of(daemon.cli(kind, "rename", "web", "www", "--json")) == {"changed": 0}


@each_kind("RenameAndListSuccess")
def test_label_rename_and_list_success(daemon: Daemon, sleeper: Sleeper, kind: str) -> None:
    """TestAppTagRenameAndListSuccess, TestAppGroupRenameAndListSuccess: old is renamed
    to new on every entry that has it, the count of them comes back, and the entries
    with new are listed."""
    field = f"{kind}s"
    renamed = [add(daemon, sleeper(), **{field: ["old", "keep"]})["id"] for _ in range(3)]
    add(daemon, sleeper(), **{field: ["keep"]})
    assert json_of(daemon.cli(kind, "rename", "old", "new", "--json")) == {"changed": 3}
    listed = json_of(daemon.cli("list", f"--{kind}-all", "new", "--json"))
    assert [e["id"] for e in listed] == renamed
    assert all(e[field] == ["keep", "new"] for e in listed)
    assert daemon.call("list", {f"{field}_any": ["old"]}) == []
    counts = daemon.call(f"{kind}.list")
    assert counts == [{"name": "keep", "count": 4}, {"name": "new", "count": 3}]
    assert daemon.error(f"{kind}.rename", {"old": "new", "new": ""})["code"] == INVALID_PARAMS
