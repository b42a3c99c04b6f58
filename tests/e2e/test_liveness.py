"""Liveness with real processes: death (reaped or zombie), PID reuse judged by start
time, already-tracked refusals, `last_seen` cadence, and sweeps over thousands of
entries that never stall the server.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from conftest import Daemon
from helpers import wait_until

SNAPSHOT = "goproc.snapshot.json"
FAST = {"liveness_interval": "100ms"}


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def entry(d: Daemon, proc_id: int) -> dict[str, Any]:
    [e] = d.call("list", {"ids": [proc_id]})
    return e


def is_zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def forged(proc_id: int, pid: int, started_at: float, cmd: str) -> dict[str, Any]:
    """A snapshot entry as a daemon would have written it, alive when last probed."""
    now = rfc3339(time.time())
    return {
        "id": proc_id,
        "pid": pid,
        "pgid": None,
        "cmd": cmd,
        "name": None,
        "alive": True,
        "tags": ["forged"],
        "groups": [],
        "started_at": rfc3339(started_at),
        "added_at": now,
        "last_seen": now,
    }


def write_snapshot(state_dir: Path, procs: list[dict[str, Any]]) -> None:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    next_id = max((p["id"] for p in procs), default=0) + 1
    data = {"version": 1, "next_id": next_id, "procs": procs}
    (state_dir / SNAPSHOT).write_text(json.dumps(data))


# ---- death -----------------------------------------------------------------------------


def test_killed_and_reaped_process_turns_dead(spawn_daemon, sleeper) -> None:
    d = spawn_daemon(config=FAST)
    p = sleeper()
    e = d.call("add", {"pid": p.pid})
    assert e["alive"] is True
    p.kill()
    p.wait()
    wait_until(lambda: entry(d, e["id"])["alive"] is False, what="the entry to turn dead")
    assert [x["id"] for x in d.call("list", {"alive": False})] == [e["id"]]


def test_zombie_turns_dead(spawn_daemon, sleeper) -> None:
    d = spawn_daemon(config=FAST)
    p = sleeper()  # our child: not reaped until we wait for it
    e = d.call("add", {"pid": p.pid})
    p.kill()
    wait_until(lambda: is_zombie(p.pid), what="the child to become a zombie")
    wait_until(lambda: entry(d, e["id"])["alive"] is False, what="the zombie to turn dead")
    assert is_zombie(p.pid), "the verdict must come while the zombie still exists"


def test_add_of_a_zombie_is_refused(daemon: Daemon, sleeper) -> None:
    p = sleeper()
    p.kill()
    wait_until(lambda: is_zombie(p.pid), what="the child to become a zombie")
    reply = daemon.request("add", {"pid": p.pid})
    assert reply["error"]["code"] == -32001, reply
    assert daemon.call("list") == []


# ---- identity: (pid, start time) -------------------------------------------------------


def test_reused_pid_entry_is_dead_and_add_creates_new_entry(spawn_daemon, sleeper) -> None:
    """A snapshot entry recorded for an older process with the same pid (started an hour
    earlier) is dead at start; adding the pid makes a new entry and leaves the old one."""
    p = sleeper()
    started = psutil.Process(p.pid).create_time()
    d = spawn_daemon(config=FAST, start=False)
    write_snapshot(d.state_dir, [forged(1, p.pid, started - 3600, "sleep 300")])
    d.start()
    [old] = d.call("list")
    assert (old["id"], old["pid"], old["alive"]) == (1, p.pid, False)
    new = d.call("add", {"pid": p.pid, "tags": ["new"]})
    assert new["id"] == 2 and new["alive"] is True
    assert abs(seconds(new["started_at"]) - started) < 1.0
    both = d.call("list", {"pids": [p.pid]})
    assert [(x["id"], x["alive"], x["tags"]) for x in both] == [
        (1, False, ["forged"]),
        (2, True, ["new"]),
    ]
    # The dead entry stays dead through later sweeps and restarts.
    sweeps = d.call("status")["sweeps"]
    wait_until(lambda: d.call("status")["sweeps"] >= sweeps + 2, what="two more sweeps")
    assert entry(d, 1)["alive"] is False
    assert d.stop() == 0
    d.start()
    assert [(x["id"], x["alive"]) for x in d.call("list")] == [(1, False), (2, True)]


def test_add_of_tracked_live_process_is_already_tracked(daemon: Daemon, sleeper) -> None:
    p = sleeper()
    e = daemon.call("add", {"pid": p.pid})
    reply = daemon.request("add", {"pid": p.pid, "tags": ["again"]})
    assert reply["error"]["code"] == -32003
    assert reply["error"]["data"] == {"id": e["id"]}
    assert daemon.call("list") == [e]


# ---- last_seen -------------------------------------------------------------------------


def test_last_seen_moves_while_alive_and_stops_after_death(spawn_daemon, sleeper) -> None:
    interval = 0.2
    d = spawn_daemon(config={"liveness_interval": "100ms", "last_seen_interval": "200ms"})
    p = sleeper()
    e = d.call("add", {"pid": p.pid})
    seen = [e["last_seen"]]

    def moved_three_times() -> bool:
        current = entry(d, e["id"])["last_seen"]
        if current != seen[-1]:
            seen.append(current)
        return len(seen) >= 4

    wait_until(moved_three_times, timeout=5, what="last_seen to move forward three times")
    steps = [seconds(b) - seconds(a) for a, b in itertools.pairwise(seen)]
    assert all(step >= interval - 0.001 for step in steps), f"moved too often: {steps}"

    p.kill()
    p.wait()
    wait_until(lambda: entry(d, e["id"])["alive"] is False, what="the entry to turn dead")
    frozen_at = entry(d, e["id"])["last_seen"]
    sweeps = d.call("status")["sweeps"]
    wait_until(lambda: d.call("status")["sweeps"] >= sweeps + 6, what="six more sweeps")
    after = entry(d, e["id"])
    assert after["alive"] is False and after["last_seen"] == frozen_at


# ---- sweeps never stall the server -------------------------------------------------------


def test_ping_answers_promptly_during_sweeps_of_thousands(spawn_daemon, sleeper) -> None:
    """3,000 alive entries (pointing at five real processes) are probed every 100 ms;
    pings on fresh connections all the while each answer within 0.5 s."""
    targets = [sleeper() for _ in range(5)]
    facts = [(p.pid, psutil.Process(p.pid).create_time()) for p in targets]
    procs = [forged(i, *facts[i % 5], f"sleep 300 #{i}") for i in range(1, 3001)]
    d = spawn_daemon(config=FAST, start=False)
    write_snapshot(d.state_dir, procs)
    d.start()
    status = d.call("status")
    assert status["entries"] == 3000 and status["alive"] == 3000
    start_sweeps = status["sweeps"]
    worst = 0.0
    pings = 0
    deadline = time.monotonic() + 20
    while d.call("status")["sweeps"] < start_sweeps + 4 or pings < 20:
        assert time.monotonic() < deadline, "the sweeps do not go on"
        t0 = time.perf_counter()
        assert d.call("ping") == "pong"
        worst = max(worst, time.perf_counter() - t0)
        pings += 1
        time.sleep(0.01)
    final = d.call("status")
    assert worst < 0.5, f"slowest ping took {worst:.3f}s"
    # A ping that waited for a sweep would take as long as one.
    assert worst < final["last_sweep_seconds"], (worst, final["last_sweep_seconds"])
    assert final["alive"] == 3000, "the sweeps keep every matching entry alive"
