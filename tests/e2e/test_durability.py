"""What survives: answered adds across `kill -9`, ids across restarts, a torn journal
line, a corrupt snapshot (moved aside, never deleted), the snapshot's format and mode,
and the debounce that folds a burst of changes into few snapshot writes.
"""

from __future__ import annotations

import functools
import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon
from helpers import wait_until as shared_wait_until

SNAPSHOT = "goproc.snapshot.json"
PROC_KEYS = {
    "id",
    "pid",
    "pgid",
    "cmd",
    "name",
    "alive",
    "tags",
    "groups",
    "started_at",
    "added_at",
    "last_seen",
}
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
# What an entry is, apart from what the ticker updates.
IDENTITY = ("id", "pid", "pgid", "cmd", "name", "tags", "groups", "started_at", "added_at")


wait_until = functools.partial(shared_wait_until, timeout=10.0)


def identity(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(json.dumps(e[k]) for k in IDENTITY) for e in entries]


def add_many(d: Daemon, pids: list[int], **labels: Any) -> list[dict[str, Any]]:
    """Sequential adds on one connection; each reply is read before the next request."""
    answered = []
    with d.connect() as s, s.makefile("rb") as f:
        for n, pid in enumerate(pids):
            request: dict[str, Any] = {
                "jsonrpc": "2.0",
                "id": n,
                "method": "add",
                "params": {"pid": pid},
            }
            request["params"].update(labels)
            s.sendall(json.dumps(request).encode() + b"\n")
            reply = json.loads(f.readline())
            assert "result" in reply, reply
            answered.append(reply["result"])
    return answered


def newest_journal(state_dir: Path) -> Path:
    journals = [p for p in state_dir.iterdir() if re.fullmatch(r"goproc\.journal\.\d+", p.name)]
    assert journals, "no journal file"
    return max(journals, key=lambda p: int(p.name.rsplit(".", 1)[1]))


def read_snapshot(d: Daemon) -> dict[str, Any]:
    """The snapshot on disk; before the first write there is none, which holds nothing."""
    try:
        return json.loads((d.state_dir / SNAPSHOT).read_text())
    except FileNotFoundError:
        return {"procs": []}


# ---- kill -9 ---------------------------------------------------------------------------


@pytest.mark.parametrize("snapshot_delay", ["1h", "10ms"], ids=["journal-only", "folding"])
def test_kill9_after_answered_adds_keeps_all_with_same_ids(
    spawn_daemon, sleeper, snapshot_delay: str
) -> None:
    """With a debounce of an hour only the journal holds the adds; with 10 ms the writer
    folds the journal into snapshots while the adds go on.  Either way none is lost."""
    d = spawn_daemon(config={"snapshot_delay": snapshot_delay})
    pids = [sleeper().pid for _ in range(25)]
    answered = add_many(d, pids, tags=["t"], groups=["g"])
    d.kill9()
    d.start()
    after = d.call("list")
    assert identity(after) == identity(answered)
    assert [e["id"] for e in after] == list(range(1, 26))
    assert all(e["alive"] for e in after), "the same processes still run"


def test_ids_never_reused_across_restarts(spawn_daemon, sleeper) -> None:
    d = spawn_daemon()
    ids = [e["id"] for e in add_many(d, [sleeper().pid for _ in range(3)])]
    assert d.stop() == 0
    d.start()
    ids.append(d.call("add", {"pid": sleeper().pid})["id"])
    d.kill9()
    d.start()
    ids.append(d.call("add", {"pid": sleeper().pid})["id"])
    d.kill9()
    d.start()
    assert d.call("status")["next_id"] == 6
    ids.append(d.call("add", {"pid": sleeper().pid})["id"])
    assert ids == [1, 2, 3, 4, 5, 6]
    assert [e["id"] for e in d.call("list")] == ids


def test_torn_journal_line_is_ignored_and_nothing_answered_lost(spawn_daemon, sleeper) -> None:
    d = spawn_daemon(config={"snapshot_delay": "1h"})
    answered = add_many(d, [sleeper().pid for _ in range(5)], tags=["before"])
    d.kill9()
    journal = newest_journal(d.state_dir)
    records = journal.read_bytes().splitlines()
    assert len(records) >= 5, "the answered adds are in the journal"
    torn = records[-1][: len(records[-1]) // 2]  # half of a real record, no newline
    with journal.open("ab") as f:
        f.write(torn)
    d.start()
    assert identity(d.call("list")) == identity(answered)
    # Life goes on: new adds get the next ids and survive another crash.
    more = add_many(d, [sleeper().pid for _ in range(2)], tags=["after"])
    assert [e["id"] for e in more] == [6, 7]
    d.kill9()
    d.start()
    assert identity(d.call("list")) == identity(answered + more)


@pytest.mark.parametrize(
    "garbage",
    [b"{not json", b'{"version": 99, "next_id": 1, "procs": []}', b"\xff\xfe"],
    ids=["not-json", "unknown-version", "not-utf8"],
)
def test_corrupt_snapshot_moved_aside_with_warning(spawn_daemon, garbage: bytes) -> None:
    d = spawn_daemon(start=False)
    d.state_dir.mkdir(mode=0o700)
    snapshot = d.state_dir / SNAPSHOT
    snapshot.write_bytes(garbage)
    d.start("--fresh")  # no previous generation: refused without it (test_snapshot_generations)
    assert d.call("ping") == "pong"
    assert d.call("list") == [], "a daemon with an unreadable snapshot starts empty"
    [aside] = [p for p in d.state_dir.iterdir() if p.name.startswith(f"{SNAPSHOT}.corrupt-")]
    assert re.fullmatch(re.escape(SNAPSHOT) + r"\.corrupt-\S+", aside.name)
    assert aside.read_bytes() == garbage, "nothing is deleted"
    warning = [line for line in d.log().splitlines() if str(aside) in line]
    assert warning, d.log()
    assert str(snapshot) in warning[0]
    assert "warn" in warning[0].lower()


def test_snapshot_mode_and_format(spawn_daemon, sleeper) -> None:
    d = spawn_daemon(config={"snapshot_delay": "10ms"})
    entry = d.call("add", {"pid": sleeper().pid, "tags": ["db"], "name": "snap"})
    path = d.state_dir / SNAPSHOT
    wait_until(lambda: read_snapshot(d)["procs"], what="the debounced snapshot write")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = read_snapshot(d)
    assert data["version"] == 1
    assert data["next_id"] == 2
    [saved] = data["procs"]
    assert set(saved) >= PROC_KEYS, "every field of a proc object is kept"
    assert identity([saved]) == identity([entry])
    for key in ("started_at", "added_at", "last_seen"):
        assert RFC3339_UTC.fullmatch(saved[key]), saved[key]
    assert not [p.name for p in d.state_dir.iterdir() if ".tmp" in p.name], "temp files left"


def test_burst_of_adds_causes_few_snapshot_writes(daemon: Daemon, sleeper) -> None:
    """200 adds in a row with the default debounce are folded into a few writes."""
    n = 200
    pids = [sleeper().pid for _ in range(n)]
    before = daemon.call("status")["snapshot_writes"]
    add_many(daemon, pids)
    wait_until(
        lambda: len(read_snapshot(daemon)["procs"]) == n, what="the snapshot to hold the burst"
    )
    # The write is counted just after its file is in place: wait for the count too.
    wait_until(lambda: daemon.call("status")["snapshot_writes"] > before, what="the count")
    writes = daemon.call("status")["snapshot_writes"] - before
    assert 1 <= writes <= 10, f"{writes} snapshot writes for {n} adds"


def _entry(i: int, name: str | None = None) -> dict[str, Any]:
    stamp = "2026-01-01T00:00:00.000000Z"
    return {
        "id": i,
        "pid": 4_000_000 + i,
        "pgid": None,
        "cmd": f"gone {i}",
        "name": name,
        "alive": False,
        "tags": [],
        "groups": [],
        "started_at": stamp,
        "added_at": stamp,
        "last_seen": stamp,
        "exited_at": stamp,
    }


def _snapshot(next_id: Any, procs: list[dict[str, Any]], boot: Any = None) -> bytes:
    head: dict[str, Any] = {"version": 1, "next_id": next_id, "journal": 0}
    if boot is not None:
        head["boot"] = boot
    lines = ",\n".join(json.dumps(p, separators=(",", ":")) for p in procs)
    return json.dumps(head, separators=(",", ":"))[:-1].encode() + (
        b',"procs":[\n' + lines.encode() + b"\n]}\n"
    )


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (_snapshot(5, [_entry(1, "first"), _entry(1, "second")]), "entry id 1 appears twice"),
        (_snapshot(5, [_entry(1, "same"), _entry(2, "same")]), "name 'same' is given to two"),
        (_snapshot(2**63, [_entry(1)]), "next_id"),
        (_snapshot(2, [_entry(1), _entry(3)]), "entry id 3 is not in 1..next_id-1"),
        (_snapshot(0, []), "next_id"),
        (_snapshot(5, [_entry(1)], {"id": "b", "time": float("nan")}), "boot"),
        (_snapshot(5, [_entry(1)], {"id": "b", "time": 1e300}), "boot"),
        (_snapshot(5, [_entry(1)], {"id": "b", "time": "x"}), "boot"),
    ],
    ids=[
        "duplicate-id",
        "duplicate-name",
        "next-id-past-2^63",
        "id-not-below-next-id",
        "next-id-zero",
        "nan-boot",
        "huge-boot",
        "text-boot",
    ],
)
def test_a_snapshot_breaking_the_registry_rules_is_set_aside(
    spawn_daemon: Any, sleeper: Any, data: bytes, why: str
) -> None:
    """A snapshot whose entries or header break the rules the registry rests on is set
    aside like a corrupt one (never loaded half right), with a warning saying why; the
    daemon then works: adds, names and restarts are sound."""
    d = spawn_daemon(start=False)
    d.state_dir.mkdir(mode=0o700)
    (d.state_dir / SNAPSHOT).write_bytes(data)
    d.start("--fresh")  # no previous generation: refused without it (test_snapshot_generations)
    assert d.call("list") == []
    [aside] = [p for p in d.state_dir.iterdir() if p.name.startswith(f"{SNAPSHOT}.corrupt-")]
    assert aside.read_bytes() == data, "nothing is deleted"
    warning = [line for line in d.log().splitlines() if str(aside) in line]
    assert warning and why in warning[0], d.log()
    added = d.call("add", {"pid": sleeper().pid, "name": "first"})
    assert d.call("list", {"names": ["first"]}) == [added]
    d.stop()
    d.start()
    assert d.call("list") == [added]
