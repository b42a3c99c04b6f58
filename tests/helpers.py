"""Small helpers the test files share (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_until(
    predicate: Callable[[], Any], timeout: float = 5.0, what: str = "", every: float = 0.02
) -> Any:
    """Poll `predicate` every `every` seconds until it returns something truthy; fail
    after `timeout`.  Tests never sleep blindly: they wait for a condition."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or predicate}")
        time.sleep(every)


def forged_entries(n: int, cmd_len: int) -> list[dict[str, Any]]:
    """Dead entries (pids beyond any pid_max) with long command lines: replies of MBs."""
    stamp = "2025-01-01T00:00:00.000000Z"
    return [
        {
            "id": i,
            "pid": 2_000_000_000 + i,
            "pgid": None,
            "cmd": f"worker-{i} " + "a" * cmd_len,
            "name": None,
            "alive": False,
            "tags": ["bulk"],
            "groups": [],
            "started_at": stamp,
            "added_at": stamp,
            "last_seen": stamp,
            "exited_at": stamp,
        }
        for i in range(1, n + 1)
    ]


def entry(**fields: Any) -> dict[str, Any]:
    """One entry as the daemon encodes it, for formatter tests; `fields` override."""
    base: dict[str, Any] = {
        "id": 1,
        "pid": 7091,
        "pgid": 7082,
        "cmd": "sleep 300",
        "name": None,
        "alive": True,
        "tags": [],
        "groups": [],
        "started_at": "2026-11-26T14:20:17.350000Z",
        "added_at": "2026-11-26T14:20:18.116194Z",
        "last_seen": "2026-11-26T14:20:18.116194Z",
        "exited_at": None,
        "log": None,
    }
    return {**base, **fields}
