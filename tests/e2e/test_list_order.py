"""`goproc list --sort id|pid|name|age|cpu|mem [-r|--reverse]`, as text and as JSON,
against a real daemon; a key it does not know is a usage error."""

from __future__ import annotations

import json
from typing import Any

import pytest


@pytest.fixture
def three(daemon: Any, sleeper: Any) -> list[int]:
    """Three entries named c, a, b in id order (ids 1, 2, 3); their pids."""
    pids = []
    for name in ("c", "a", "b"):
        pid = sleeper().pid
        daemon.call("add", {"pid": pid, "name": name})
        pids.append(pid)
    return pids


def listed(d: Any, *args: str) -> list[int]:
    r = d.cli("list", *args)
    assert r.returncode == 0, r.stderr
    return [int(line.split()[0]) for line in r.stdout.splitlines()[1:]]


def test_sort_by_each_key_as_text_and_json(daemon: Any, three: list[int]) -> None:
    by_pid = [i for _, i in sorted(zip(three, (1, 2, 3), strict=True))]
    assert listed(daemon, "--sort", "pid") == by_pid
    assert listed(daemon, "--sort", "pid", "-r") == by_pid[::-1]
    assert listed(daemon, "--sort", "name") == [2, 3, 1]
    assert listed(daemon, "--sort", "name", "--reverse") == [1, 3, 2]
    assert listed(daemon, "--sort", "id", "-r") == [3, 2, 1]
    r = daemon.cli("list", "--sort", "age", "--json")
    started = [p["started_at"] for p in json.loads(r.stdout)]
    assert started == sorted(started, reverse=True), "the youngest first"
    r = daemon.cli("list", "--sort", "name", "--json")
    assert [p["name"] for p in json.loads(r.stdout)] == ["a", "b", "c"]
    assert r.stdout.startswith("[\n{") and r.stdout.endswith("}\n]\n"), "one entry a line"


def test_an_unknown_sort_key_is_a_usage_error(daemon: Any) -> None:
    r = daemon.cli("list", "--sort", "size")
    assert r.returncode == 2 and r.stderr.startswith(
        'goproc: Invalid value "size" for --sort. Choose from: "id", "pid"'
    ), r.stderr
    assert len(r.stderr.splitlines()) == 1
