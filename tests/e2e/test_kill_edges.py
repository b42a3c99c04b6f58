"""`kill`'s edges, through the CLI against a real daemon and real processes: the
"needs --all" guard counts alive matches only, `--rm` forgets only entries whose
process has ended, and a removal that cannot be saved after the signals went out is
reported per entry (never "the change was not made" for processes already killed)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import Daemon
from helpers import break_journal, wait_until

Sleeper = Callable[..., subprocess.Popen[bytes]]


def add(d: Daemon, p: subprocess.Popen[bytes], *tags: str) -> int:
    proc_id: int = d.call("add", {"pid": p.pid, "tags": list(tags)})["id"]
    return proc_id


def dead(d: Daemon, proc_id: int) -> bool:
    return bool(d.call("list", {"ids": [proc_id], "alive": False}))


def test_the_needs_all_guard_counts_alive_matches_only(daemon: Daemon, sleeper: Sleeper) -> None:
    gone, running = sleeper(), sleeper()
    gone_id, running_id = add(daemon, gone, "t"), add(daemon, running, "t")
    gone.kill()
    gone.wait()
    wait_until(lambda: dead(daemon, gone_id), what="the exit to be seen")
    out = daemon.cli("kill", "--tag", "t")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"id {gone_id} pid {gone.pid}: not alive",
        f"id {running_id} pid {running.pid}: exited",
    ]
    assert running.wait(5) is not None

    a, b = sleeper(), sleeper()
    add(daemon, a, "u")
    add(daemon, b, "u")
    out = daemon.cli("kill", "--tag", "u")
    assert out.returncode == 1
    assert "2 processes match" in out.stderr and "--all" in out.stderr
    assert a.poll() is None and b.poll() is None


def test_kill_rm_keeps_an_entry_whose_process_still_runs(daemon: Daemon, sleeper: Sleeper) -> None:
    p = sleeper()
    proc_id = add(daemon, p)
    out = daemon.cli("kill", str(proc_id), "--signal", "CONT", "--rm")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"id {proc_id} pid {p.pid}: signalled SIGCONT (kept: still running)\n"
    assert [e["id"] for e in daemon.call("list")] == [proc_id]
    assert p.poll() is None


def test_kill_rm_with_sigkill_removes_the_entry_it_killed(daemon: Daemon, sleeper: Sleeper) -> None:
    p = sleeper()
    proc_id = add(daemon, p)
    out = daemon.cli("kill", str(proc_id), "--signal", "KILL", "--rm", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [
        {"id": proc_id, "pid": p.pid, "signal": "SIGKILL", "outcome": "signalled", "removed": True}
    ]
    assert daemon.call("list") == []


def test_a_removal_that_cannot_be_saved_still_reports_each_kill(
    spawn_daemon: Callable[..., Daemon], sleeper: Sleeper
) -> None:
    d = spawn_daemon(config={"snapshot_delay": "10ms", "last_seen_interval": "1h"})
    p = sleeper()
    proc_id = add(d, p)
    break_journal(d.state_dir, entries=1)
    out = d.cli("kill", str(proc_id), "--rm")
    assert out.returncode == 1
    assert out.stdout == (
        f"id {proc_id} pid {p.pid}: exited (not removed: the removal could not be saved)\n"
    )
    assert p.wait(5) is not None, "the process was killed all the same"
    [entry] = d.call("list")
    assert (entry["id"], entry["alive"]) == (proc_id, False), "and stays, marked dead"


def test_a_kill_waiting_for_exits_answers_at_once_when_the_daemon_stops(
    daemon: Daemon, sleeper: Sleeper
) -> None:
    p = sleeper(
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)",
    )
    wait_until(lambda: ignores_term(p.pid), what="the process to ignore TERM")
    proc_id = add(daemon, p)
    with daemon.connect() as s:
        s.sendall(
            b'{"jsonrpc":"2.0","id":1,"method":"kill","params":{"ids":[%d],"timeout":60}}\n'
            % proc_id
        )
        wait_until(lambda: daemon.call("status")["connections"] >= 2, what="kill in flight")
        time.sleep(0.2)  # TERM is out; the kill waits for the exit
        started = time.monotonic()
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)
        s.settimeout(10)
        reply = json.loads(s.recv(65536))
        took = time.monotonic() - started
    assert [r["outcome"] for r in reply["result"]] == ["signalled"], reply
    assert took < 3, f"answered {took:.1f} s after the stop"
    assert daemon.proc.wait(10) == 0, daemon.log()
    assert p.poll() is None, "no KILL followed"


def ignores_term(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False
