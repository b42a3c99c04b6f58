"""`spawn` and `goproc run` against real daemons and real children: the daemon is the
parent (and subreaper) of what it starts, records how each process ended, leaves no
zombie, and never takes its children down with it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import GOPROC, Daemon
from helpers import log_pumps, wait_until


@pytest.fixture
def groups() -> Iterator[list[int]]:
    """Process groups the daemons of a test started: killed at its end (a daemon's
    children outlive it, by design)."""
    started: list[int] = []
    yield started
    for pgid in started:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)


def spawn(d: Daemon, groups: list[int], *argv: str, **params: Any) -> dict[str, Any]:
    entry = d.call("spawn", {"argv": list(argv), "cwd": "/", **params})
    groups.append(entry["pid"])
    return entry


def show(d: Daemon, proc_id: int) -> dict[str, Any]:
    return d.call("show", {"ids": [proc_id]})


def dead(d: Daemon, proc_id: int, timeout: float = 10.0) -> dict[str, Any]:
    return wait_until(
        lambda: (p := show(d, proc_id)) and not p["alive"] and p, timeout, "the exit recorded"
    )


def zombies_of(pid: int) -> list[int]:
    return [c.pid for c in psutil.Process(pid).children() if c.status() == psutil.STATUS_ZOMBIE]


def test_exit_codes_and_signals_are_recorded_as_the_child_ended(
    daemon: Daemon, groups: list[int]
) -> None:
    cases = {
        "exit 0": (0, None),
        "exit 3": (3, None),
        "exit 255": (255, None),
        "kill -9 $$": (None, 9),
        "kill -TERM $$": (None, 15),
        "kill -SEGV $$": (None, 11),
    }
    entries = {script: spawn(daemon, groups, "sh", "-c", script) for script in cases}
    for script, (code, sig) in cases.items():
        p = dead(daemon, entries[script]["id"])
        assert (p["exit_code"], p["exit_signal"]) == (code, sig), script
        assert p["exited_at"] is not None and p["spawned"]["argv"] == ["sh", "-c", script]
    assert daemon.proc is not None and zombies_of(daemon.proc.pid) == []


def test_a_watched_process_has_no_exit_code(
    daemon: Daemon, sleeper: Callable[..., subprocess.Popen[bytes]]
) -> None:
    p = sleeper("sh", "-c", "sleep 0.3; exit 5")
    entry = daemon.call("add", {"pid": p.pid})
    ended = dead(daemon, entry["id"])
    assert (ended["exit_code"], ended["exit_signal"], ended["spawned"]) == (None, None, None)


def test_the_child_gets_its_own_session_devnull_stdin_the_env_and_cwd_it_was_given(
    daemon: Daemon, groups: list[int], tmp_path: Path
) -> None:
    script = 'echo "$SPEC_X|$HOME|$(pwd)"; readlink /proc/self/fd/0; sleep 300'
    entry = spawn(daemon, groups, "sh", "-c", script, env=["SPEC_X=1 2"], cwd=str(tmp_path))
    pid = entry["pid"]
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid and entry["pgid"] == pid
    assert psutil.Process(pid).ppid() == daemon.proc.pid  # type: ignore[union-attr]
    out = Path(entry["log"]["out"])
    text = wait_until(lambda: out.read_text().count("\n") == 2 and out.read_text(), 10, "output")
    assert text == f"1 2||{tmp_path}\n/dev/null\n"
    assert psutil.Process(pid).environ() == {"SPEC_X": "1 2"}
    assert (out.stat().st_mode & 0o777, Path(entry["log"]["err"]).stat().st_mode & 0o777) == (
        0o600,
        0o600,
    )
    fds = os.listdir(f"/proc/{pid}/fd")
    assert sorted(map(int, fds)) == [0, 1, 2], "no descriptor of the daemon's leaks into it"


def test_run_sends_the_shells_environment_and_flags(
    daemon: Daemon, groups: list[int], tmp_path: Path
) -> None:
    out = daemon.cli(
        "run", "--env", "SPEC_A=x=y", "--restart", "on-failure", "--max-restarts", "2",
        "--restart-window", "1m", "--backoff", "200ms..5s", "--name", "svc", "--tag", "t",
        "--", "sh", "-c", "echo $SPEC_A $SPEC_B; exec sleep 300",
        env={"SPEC_B": "b"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    entry = daemon.call("show", {"names": ["svc"]})
    groups.append(entry["pid"])
    assert out.stdout == f"Started pid={entry['pid']} id={entry['id']}\n"
    spawned = entry["spawned"]
    assert {k: spawned[k] for k in ("restart", "max_restarts", "restart_window")} == {
        "restart": "on-failure",
        "max_restarts": 2,
        "restart_window": 60.0,
    }
    assert (spawned["backoff_min"], spawned["backoff_max"], entry["tags"]) == (0.2, 5.0, ["t"])
    assert "SPEC_B=b" in spawned["env"] and "SPEC_A=x=y" in spawned["env"]
    assert spawned["cwd"] == os.getcwd()
    log = Path(entry["log"]["out"])
    wait_until(lambda: log.read_text() == "x=y b\n", 10, "its output")
    cleared = daemon.cli("run", "--clear-env", "--env", "ONLY=1", "--json", "--", "sleep", "300")
    assert cleared.returncode == 0, cleared.stderr
    groups.append(json.loads(cleared.stdout)["pid"])
    assert json.loads(cleared.stdout)["spawned"]["env"] == ["ONLY=1"]


def test_run_attach_hands_the_terminal_descriptors_over(daemon: Daemon) -> None:
    out = subprocess.run(
        [*GOPROC, "run", "--attach", "--", "sh", "-c", "echo to-out; echo to-err >&2"],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    entry_id = int(out.stdout.rsplit("id=", 1)[1])
    ended = dead(daemon, entry_id)
    assert "to-out\n" in out.stdout and out.stderr == "to-err\n"
    assert ended["log"] is None and ended["exit_code"] == 0


def test_run_of_a_missing_program_exits_127_and_tracks_nothing(daemon: Daemon) -> None:
    out = daemon.cli("run", "--", "spec-no-such-program")
    assert out.returncode == 127 and "spec-no-such-program" in out.stderr
    assert daemon.call("list") == []


def test_orphans_are_reaped_and_a_tracked_one_gets_its_exit_code(
    daemon: Daemon, groups: list[int], tmp_path: Path
) -> None:
    """A double fork: the shell exits at once, its child is re-parented to the daemon
    (the subreaper), which reaps it when it ends and records the status on its entry."""
    pidfile = tmp_path / "grandchild"
    script = f"(sleep 1; exit 6) & echo $! > {pidfile}; exit 0"
    parent = spawn(daemon, groups, "sh", "-c", script)
    assert dead(daemon, parent["id"])["exit_code"] == 0
    grandchild = int(wait_until(lambda: pidfile.read_text().strip(), 10, "the pid file"))
    assert psutil.Process(grandchild).ppid() == daemon.proc.pid  # type: ignore[union-attr]
    entry = daemon.call("add", {"pid": grandchild})
    ended = dead(daemon, entry["id"])
    assert (ended["exit_code"], ended["exit_signal"]) == (6, None)
    untracked = spawn(daemon, groups, "sh", "-c", "sleep 0.2 & exit 0")
    dead(daemon, untracked["id"])
    pumps = log_pumps(daemon.proc.pid)  # type: ignore[union-attr]
    wait_until(
        lambda: (
            [
                c.pid
                for c in psutil.Process(daemon.proc.pid).children()  # type: ignore[union-attr]
                if c.pid not in pumps
            ]
            == []
        ),
        10,
        "every orphan reaped (the log pump aside)",
    )


def test_stop_terms_then_kills_and_keeps_the_entry(daemon: Daemon, groups: list[int]) -> None:
    stubborn = spawn(daemon, groups, "sh", "-c", "trap '' TERM; while :; do sleep 0.05; done")
    wait_until(lambda: psutil.Process(stubborn["pid"]).children(), 10, "the loop to run")
    [stopped] = daemon.call("stop", {"ids": [stubborn["id"]], "timeout": 0.3})
    assert (stopped["alive"], stopped["stopped"], stopped["exit_signal"]) == (False, True, 9)
    polite = spawn(daemon, groups, "sleep", "300")
    [stopped] = daemon.call("stop", {"ids": [polite["id"]]})
    assert (stopped["exit_signal"], stopped["stopped"]) == (15, True)
    assert [p["id"] for p in daemon.call("list")] == [stubborn["id"], polite["id"]]
    [again] = daemon.call("start", {"ids": [polite["id"]]})
    groups.append(again["pid"])
    assert again["alive"] and not again["stopped"] and again["pid"] != polite["pid"]
    assert (again["id"], again["log"], again["restarts"]) == (polite["id"], polite["log"], 1)


def test_stop_start_restart_refuse_an_entry_not_spawned(
    daemon: Daemon, sleeper: Callable[..., subprocess.Popen[bytes]]
) -> None:
    entry = daemon.call("add", {"pid": sleeper().pid})
    for method in ("stop", "start", "restart"):
        error = daemon.error(method, {"ids": [entry["id"]]})
        assert error["code"] == -32011, error
    assert show(daemon, entry["id"])["alive"]


def test_a_daemon_killed_9_leaves_its_children_running_and_tracks_them_again(
    spawn_daemon: Callable[..., Daemon], groups: list[int]
) -> None:
    d = spawn_daemon()
    first = spawn(d, groups, "sleep", "300", restart="always", backoff_min=0)
    second = spawn(d, groups, "sleep", "300", name="two")
    d.kill9()
    for entry in (first, second):
        assert psutil.Process(entry["pid"]).is_running(), "a daemon crash kills no child"
    again = spawn_daemon(root=d.root)
    for entry in (first, second):
        p = show(again, entry["id"])
        assert (p["alive"], p["pid"], p["spawned"]) == (True, entry["pid"], entry["spawned"])
    os.kill(first["pid"], signal.SIGKILL)
    ended = dead(again, first["id"])
    # Not its parent: the status is unknown, and no policy restarts it.
    assert (ended["exit_code"], ended["exit_signal"], ended["restarts"]) == (None, None, 0)
    [stopped] = again.call("stop", {"names": ["two"], "timeout": 2})
    assert not stopped["alive"] and stopped["stopped"]
    assert not psutil.pid_exists(second["pid"]) or (
        psutil.Process(second["pid"]).status() == psutil.STATUS_ZOMBIE
    )
    [restarted] = again.call("start", {"ids": [first["id"]]})
    groups.append(restarted["pid"])
    assert psutil.Process(restarted["pid"]).ppid() == again.proc.pid  # type: ignore[union-attr]
    os.kill(restarted["pid"], signal.SIGKILL)
    wait_until(lambda: show(again, first["id"])["restarts"] == 2, 10, "the policy's restart")
    groups.append(show(again, first["id"])["pid"])


def test_a_stopped_daemon_leaves_its_children_running(
    spawn_daemon: Callable[..., Daemon], groups: list[int]
) -> None:
    d = spawn_daemon()
    entry = spawn(d, groups, "sleep", "300")
    assert d.stop() == 0
    assert psutil.Process(entry["pid"]).is_running()
    assert psutil.Process(entry["pid"]).status() != psutil.STATUS_ZOMBIE


def test_kill_of_a_spawned_entry_waits_for_its_status_and_rm_removes_it(
    daemon: Daemon, groups: list[int]
) -> None:
    entry = spawn(daemon, groups, "sleep", "300")
    [outcome] = daemon.call("kill", {"ids": [entry["id"]], "rm": True})
    assert (outcome["outcome"], outcome["removed"]) == ("exited", True)
    kept = spawn(daemon, groups, "sleep", "300")
    assert daemon.call("kill", {"ids": [kept["id"]]})[0]["outcome"] == "exited"
    assert show(daemon, kept["id"])["exit_signal"] == 15  # recorded before the answer
