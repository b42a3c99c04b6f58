"""A `goproc.tui.source.Source` of fixed data, for screenshots that do not change from
run to run (fixed pids, ages, times), and the helpers the `goproc top` tests share."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from textual.pilot import Pilot

from goproc import api

NOW = 1_796_000_000.0  # 2026-11-29T...: the clock of every screenshot


def stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".000000Z"


def entry(i: int, cmd: str, **fields: Any) -> dict[str, Any]:
    """An entry as the daemon encodes it, started `age` seconds before NOW."""
    age = fields.pop("age", 60.0 * i)
    alive = fields.pop("alive", True)
    metrics = fields.pop("metrics", None)
    proc = {
        "id": i,
        "pid": 4240 + i,
        "pgid": 4240 + i,
        "cmd": cmd,
        "name": None,
        "alive": alive,
        "tags": [],
        "groups": [],
        "started_at": stamp(NOW - age),
        "added_at": stamp(NOW - age + 1),
        "last_seen": stamp(NOW - 1),
        "exited_at": None if alive else stamp(NOW - 5),
        "log": None,
        "adopted_by": None,
        "metrics": metrics if alive else None,
    }
    proc.update(fields)
    return proc


def sample(cpu: float, rss: int) -> dict[str, Any]:
    return {
        "sampled_at": stamp(NOW - 1),
        "cpu_percent": cpu,
        "cpu_seconds": 12.5,
        "rss_bytes": rss,
        "vms_bytes": rss * 3,
        "read_bytes": 0,
        "write_bytes": 4096,
        "read_rate": 0.0,
        "write_rate": 0.0,
        "threads": 4,
        "fds": 9,
    }


ENTRIES = [
    entry(
        1,
        "nginx: master process /usr/sbin/nginx",
        name="web-1",
        tags=["web"],
        groups=["prod"],
        metrics=sample(1.5, 12_000_000),
        age=7300,
    ),
    entry(
        2,
        "python3 -m http.server 8000",
        name="api",
        tags=["api", "web"],
        groups=["prod"],
        metrics=sample(23.4, 48_500_000),
        age=3600,
    ),
    entry(3, "sleep 3000", tags=["batch"], alive=False),
    entry(
        4,
        "redis-server *:6379 \x1b[31mred[/]",
        name="cache",
        groups=["prod"],
        metrics=sample(0.3, 3_200_000),
        age=86400 * 2 + 7200,
    ),
    entry(
        5, "[bold]worker[/bold] --queue default", tags=["batch"], metrics=sample(99.0, 250_000_000)
    ),
]
STATUS: dict[str, Any] = {
    "pid": 4200,
    "socket": "/run/user/1000/goproc/goproc.sock",
    "entries": 5,
    "alive": 4,
    "metrics_interval": 0.0,  # no polling: the screen stays as loaded
    "uptime_seconds": 3725.0,
}
HISTORY = [
    {
        "t": stamp(NOW - 2 * (30 - n)),
        "cpu_percent": float((n * 7) % 40),
        "rss_bytes": 40_000_000 + n * 300_000,
        "read_rate": 0.0,
        "write_rate": 0.0,
    }
    for n in range(30)
]
RULES = [
    {
        "id": 1,
        "name": "hot",
        "select": {"tags_any": ["api"]},
        "all": False,
        "condition": "cpu > 90% for 30s",
        "action": "signal:HUP",
        "created_at": stamp(NOW - 100),
        "firing": [2],
    },
    {
        "id": 2,
        "name": "other",
        "select": {"tags_any": ["db"]},
        "all": False,
        "condition": "mem > 1GB",
        "action": "event",
        "created_at": stamp(NOW - 100),
        "firing": [],
    },
]


class FixedSource:
    """Answers from the lists above; `follow` loads ENTRIES and waits until `stop`."""

    where = "/run/user/1000/goproc/goproc.sock"

    def __init__(self, entries: list[dict[str, Any]] | None = None) -> None:
        self.procs = [dict(p) for p in (ENTRIES if entries is None else entries)]
        self.calls: list[tuple[str, Any]] = []
        self._stopped = threading.Event()

    def status(self) -> dict[str, Any]:
        return dict(STATUS)

    def entries(self) -> list[dict[str, Any]]:
        return [dict(p) for p in self.procs]

    def follow(
        self,
        on_load: Callable[[list[dict[str, Any]]], None],
        on_event: Callable[[dict[str, Any]], None],
    ) -> None:
        on_load(self.entries())
        self._stopped.wait()

    def stop(self) -> None:
        self._stopped.set()

    def call(self, method: api.Method[Any, Any], params: Any) -> Any:
        self.calls.append((method.name, params))
        if method is api.METRICS_HISTORY:
            return [{"id": 2, "interval": 2.0, "samples": HISTORY}]
        if method is api.ALERT_LIST:
            return RULES
        raise AssertionError(f"FixedSource answers no {method.name}")

    def log_tail(self, entry: Mapping[str, Any], lines: int) -> list[str]:
        return []

    def start_daemon(self) -> None:
        raise AssertionError("FixedSource starts no daemon")


async def until(pilot: Pilot[Any], condition: Callable[[], object], within: float = 10.0) -> None:
    """Let the app run until `condition()` holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {condition}")
        await pilot.pause(0.02)


def run(scenario: Callable[[], Any]) -> Any:
    """An async test body run to its end (the suite has no asyncio plugin)."""
    return asyncio.run(scenario())
