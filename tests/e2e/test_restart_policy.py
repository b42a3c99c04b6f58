"""Restart policies against a real daemon: what restarts and what does not, the entry
kept across restarts, `max_restarts` within the window, the backoff between restarts,
and `stop` / `restart` cancelling or forcing one."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Conn, Daemon
from helpers import wait_until

from goproc.rpc.entries import parse_time


@pytest.fixture
def groups(daemon: Daemon) -> Iterator[list[int]]:
    """Kill what the daemon started (restarted ones too) at the end: its children
    outlive it by design."""
    started: list[int] = []
    yield started
    with contextlib.suppress(OSError, AssertionError):
        daemon.call("stop", {"alive": True, "all": True, "timeout": 0})
    for p in daemon.call("list"):
        started.append(p["pid"])
    for pgid in started:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)


def spawn(d: Daemon, groups: list[int], *argv: str, **params: Any) -> dict[str, Any]:
    entry = d.call("spawn", {"argv": list(argv), "cwd": "/", **params})
    groups.append(entry["pid"])
    return entry


Events = list[dict[str, Any]]


def wait_events(conn: Conn, done: Callable[[Events], bool], seen: Events | None = None) -> Events:
    """Event notifications read from `conn` (into `seen`) until `done` holds for them."""
    events: Events = [] if seen is None else seen
    while not done(events):
        line = conn.line()
        assert line is not None, f"closed before the events came: {events}"
        if line.get("method") == "event":
            events.append(line)
    return events


def kinds_of(events: Events) -> list[str]:
    return [e["params"]["kind"] for e in events]


def show(d: Daemon, proc_id: int) -> dict[str, Any]:
    return d.call("show", {"ids": [proc_id]})


def test_always_restarts_a_killed_process_in_the_same_entry(
    daemon: Daemon, groups: list[int]
) -> None:
    entry = spawn(
        daemon, groups, "sleep", "300", restart="always", backoff_min=0.05, name="w", tags=["t"]
    )
    with Conn(daemon) as conn:
        conn.call("subscribe", {"ids": [entry["id"]]})
        os.kill(entry["pid"], signal.SIGKILL)
        events = wait_events(conn, lambda evs: "restarted" in kinds_of(evs))
    kinds = [e["params"]["kind"] for e in events]
    assert kinds == ["exited", "restarted"], kinds
    exited, restarted = (e["params"]["proc"] for e in events)
    assert (exited["exit_signal"], exited["alive"]) == (9, False)
    assert restarted["alive"] and restarted["pid"] != entry["pid"]
    for key in ("id", "name", "tags", "groups", "log", "spawned", "added_at"):
        assert restarted[key] == entry[key], key
    assert (restarted["restarts"], restarted["exit_signal"], restarted["exited_at"]) == (
        1,
        None,
        None,
    )
    assert restarted["started_at"] != entry["started_at"]
    assert show(daemon, entry["id"])["pid"] == restarted["pid"]
    groups.append(restarted["pid"])


def test_on_failure_restarts_a_failure_and_not_a_success(daemon: Daemon, groups: list[int]) -> None:
    ok = spawn(daemon, groups, "sh", "-c", "sleep 0.2", restart="on-failure", backoff_min=0)
    bad = spawn(
        daemon, groups, "sh", "-c", "sleep 0.2; exit 2", restart="on-failure", backoff_min=0
    )
    never = spawn(daemon, groups, "sh", "-c", "sleep 0.2; exit 2", backoff_min=0)
    wait_until(lambda: show(daemon, bad["id"])["restarts"] >= 2, 10, "two restarts of a failure")
    done = wait_until(lambda: (p := show(daemon, ok["id"])) and not p["alive"] and p, 10, "exit")
    assert (done["exit_code"], done["restarts"]) == (0, 0)
    nothing = wait_until(lambda: (p := show(daemon, never["id"])) and not p["alive"] and p, 10, "")
    assert (nothing["exit_code"], nothing["restarts"]) == (2, 0)
    assert show(daemon, ok["id"])["restarts"] == 0  # still, after the failing one's restarts


def test_max_restarts_within_the_window_then_it_stays_dead(
    daemon: Daemon, groups: list[int]
) -> None:
    with Conn(daemon) as conn:
        conn.call("subscribe", {"tags_any": ["loop"]})  # before: it exits at once
        entry = spawn(
            daemon, groups, "sh", "-c", "exit 1", restart="always", max_restarts=3,
            backoff_min=0, tags=["loop"],
        )  # fmt: skip
        events = wait_events(conn, lambda evs: kinds_of(evs).count("exited") >= 4)
        final = wait_until(
            lambda: (p := show(daemon, entry["id"])) and not p["alive"] and p, 10, "the end"
        )
        ping = conn.call("ping")
    assert kinds_of(events) == ["added", *["exited", "restarted"] * 3, "exited"]
    assert ping == "pong"
    assert (final["restarts"], final["exit_code"]) == (3, 1)
    [started] = daemon.call("start", {"ids": [entry["id"]]})  # `start` is not the policy's
    assert started["restarts"] == 4


def test_the_backoff_doubles_between_restarts(daemon: Daemon, groups: list[int]) -> None:
    with Conn(daemon) as conn:
        conn.call("subscribe", {"tags_any": ["loop"]})  # before: it exits at once
        spawn(
            daemon, groups, "sh", "-c", "exit 1", restart="always", max_restarts=4,
            backoff_min=0.1, backoff_max=0.4, tags=["loop"],
        )  # fmt: skip
        events = wait_events(conn, lambda evs: kinds_of(evs).count("restarted") >= 4)
    times = {
        kind: [parse_time(e["params"]["time"]) for e in events if e["params"]["kind"] == kind]
        for kind in ("exited", "restarted")
    }
    delays = [r - x for x, r in zip(times["exited"], times["restarted"], strict=False)]
    for got, wanted in zip(delays, (0.1, 0.2, 0.4, 0.4), strict=True):
        assert wanted - 0.01 <= got <= wanted + 0.25, delays


def test_stop_cancels_a_pending_restart(daemon: Daemon, groups: list[int]) -> None:
    entry = spawn(daemon, groups, "sleep", "300", restart="always", backoff_min=1)
    os.kill(entry["pid"], signal.SIGKILL)
    wait_until(lambda: not show(daemon, entry["id"])["alive"], 10, "its exit")
    [stopped] = daemon.call("stop", {"ids": [entry["id"]]})
    assert stopped["stopped"] and not stopped["alive"]
    with Conn(daemon) as conn:  # the restart would have come within 1 s
        conn.call("subscribe", {"ids": [entry["id"]]})
        conn.sock.settimeout(1.5)
        seen: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            wait_events(conn, lambda evs: bool(evs), seen)
        assert seen == []
    assert show(daemon, entry["id"])["restarts"] == 0


def test_restart_replaces_a_running_process_and_stop_prevents_the_policy(
    daemon: Daemon, groups: list[int]
) -> None:
    entry = spawn(daemon, groups, "sleep", "300", restart="always", backoff_min=0)
    [again] = daemon.call("restart", {"ids": [entry["id"]], "timeout": 2})
    assert again["alive"] and again["pid"] != entry["pid"] and again["restarts"] == 1
    groups.append(again["pid"])
    [stopped] = daemon.call("stop", {"ids": [entry["id"]]})
    assert not stopped["alive"] and stopped["exit_signal"] == 15
    assert show(daemon, entry["id"])["restarts"] == 1  # a stop is no crash


def test_a_start_whose_process_ends_at_once_records_each_exit(
    daemon: Daemon, groups: list[int]
) -> None:
    """Its process may end (and be reaped) before its start returns: the status is
    kept for it and recorded, never lost, and the entry never stays alive."""
    entry = spawn(daemon, groups, "sh", "-c", "exit 4")

    def ended(times: int) -> bool:
        p = show(daemon, entry["id"])
        return p["restarts"] == times and not p["alive"] and p["exit_code"] == 4

    for n in range(1, 21):
        wait_until(lambda: ended(n - 1), 10, f"exit {n} recorded")  # noqa: B023
        [started] = daemon.call("start", {"ids": [entry["id"]]})
        assert started["restarts"] == n
    wait_until(lambda: not show(daemon, entry["id"])["alive"], 10, "the last exit")
    assert show(daemon, entry["id"])["exit_code"] == 4
