"""The crash matrix, end to end with real daemons and real processes.

- `kill -9` at random points of a stream of mutations (with snapshots written all the
  time): after the restart the registry is exactly the answered mutations, plus perhaps
  the one in flight; the snapshot on disk always parses; ids never repeat.
- Torn files a crash leaves: half a journal record, half a snapshot in its temp file.
- A full disk and a read-only state dir (mounts, as root): mutations are refused with
  -32005 instead of being acknowledged, reads go on, and the daemon recovers by itself.
- A snapshot of the first released format (tests/data/snapshot-v1.json) still loads.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import Daemon
from helpers import wait_until as shared_wait_until

from goproc.store.format import SnapshotError, parse_snapshot

SNAPSHOT = "goproc.snapshot.json"
DATA = Path(__file__).resolve().parents[1] / "data"
STORAGE_ERROR = -32005
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


wait_until = functools.partial(shared_wait_until, timeout=10.0)


# ---- the model: what the answered mutations say the registry holds ---------------------

Entry = tuple[int, tuple[str, ...], tuple[str, ...]]  # pid, tags, groups


@attrs.define
class Model:
    entries: dict[int, Entry] = attrs.field(factory=dict)
    next_id: int = 1

    def copy(self) -> Model:
        return Model(dict(self.entries), self.next_id)

    def apply(self, method: str, params: dict[str, Any], new_id: int | None = None) -> None:
        """What the request does, when it succeeds (an add gets `new_id`, by default
        the next id)."""
        if method == "add":
            new_id = self.next_id if new_id is None else new_id
            tags, groups = tuple(sorted(params["tags"])), tuple(sorted(params["groups"]))
            self.entries[new_id] = (params["pid"], tags, groups)
            self.next_id = new_id + 1
            return
        [proc_id] = params["ids"]
        if method == "remove":
            del self.entries[proc_id]
            return
        pid, tags, groups = self.entries[proc_id]
        kind, op = method.split(".")
        labels = set(tags if kind == "tag" else groups)
        labels = labels | set(params["labels"]) if op == "add" else labels - set(params["labels"])
        new = tuple(sorted(labels))
        self.entries[proc_id] = (pid, new, groups) if kind == "tag" else (pid, tags, new)


def observed(d: Daemon) -> Model:
    """The registry as the daemon lists it."""
    entries = {e["id"]: (e["pid"], tuple(e["tags"]), tuple(e["groups"])) for e in d.call("list")}
    return Model(entries, d.call("status")["next_id"])


LABELS = ["a", "b", "c", "d"]


def next_mutation(rng: random.Random, model: Model, pool: list[int]) -> tuple[str, dict[str, Any]]:
    """A mutation that the model says must succeed: add an untracked process, change
    the labels of an entry, or remove one."""
    tracked = {pid for pid, _, _ in model.entries.values()}
    free = [pid for pid in pool if pid not in tracked]
    choices = (["add"] * 4 if free else []) + (
        ["tag.add"] * 2 + ["tag.remove", "group.add", "group.remove"] + ["remove"] * 2
        if model.entries
        else []
    )
    method = rng.choice(choices)
    if method == "add":
        return method, {
            "pid": rng.choice(free),
            "tags": rng.sample(LABELS, rng.randint(0, 2)),
            "groups": rng.sample(LABELS, rng.randint(0, 1)),
        }
    ids = [rng.choice(sorted(model.entries))]
    if method == "remove":
        return method, {"ids": ids}
    return method, {"ids": ids, "labels": [rng.choice(LABELS)]}


def request_line(method: str, params: dict[str, Any], request_id: int) -> bytes:
    msg = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    return json.dumps(msg).encode() + b"\n"


# ---- kill -9 at random points ----------------------------------------------------------


@attrs.define
class CrashStats:
    runs: int = 0
    answered: int = 0  # mutations answered
    ids: int = 0  # ids given by answered adds
    in_flight_applied: int = 0
    temp_files_left: int = 0  # kills that landed while a snapshot was being written


def crash_once(
    d: Daemon,
    rng: random.Random,
    model: Model,
    pool: list[int],
    issued: set[int],
    seed: int,
    stats: CrashStats,
) -> tuple[Model, tuple[str, dict[str, Any]] | None]:
    """Stream mutations on one connection until a kill -9 at a random moment stops the
    daemon.  Returns the model of the answered ones and the one in flight, if any."""
    assert d.proc is not None
    pid = d.proc.pid
    killer = threading.Timer(rng.uniform(0.0, 0.25), os.kill, (pid, signal.SIGKILL))
    in_flight: tuple[str, dict[str, Any]] | None = None
    buf = b""
    try:
        sock = d.connect()
    except OSError:
        sock = None
    killer.start()
    try:
        n = 0
        while sock is not None and n < 5000:
            n += 1
            method, params = next_mutation(rng, model, pool)
            in_flight = (method, params)
            try:
                sock.sendall(request_line(method, params, n))
                while b"\n" not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionResetError
                    buf += chunk
            except OSError:
                break  # killed: this one may or may not have been made
            line, buf = buf.split(b"\n", 1)
            reply = json.loads(line)
            assert reply.get("id") == n and "result" in reply, (seed, method, params, reply)
            if method == "add":
                new_id = reply["result"]["id"]
                assert new_id == model.next_id, (seed, "ids are given in order", reply)
                assert new_id not in issued, (seed, f"id {new_id} given twice")
                issued.add(new_id)
            model.apply(method, params)
            stats.answered += 1
            in_flight = None
    finally:
        killer.join()
        if sock is not None:
            sock.close()
    d.kill9()  # reaps it (it is dead already) and closes its log
    return model, in_flight


def crash_runs(d: Daemon, pool: list[int], runs: int, seed: int) -> CrashStats:
    """`runs` times: start the daemon on the same state dir, check that it holds what
    the answered mutations say, stream mutations, kill it at a random moment."""
    rng = random.Random(seed)
    stats = CrashStats()
    model = Model()
    issued: set[int] = set()
    for run in range(runs):
        model, in_flight = crash_once(d, rng, model, pool, issued, seed, stats)
        stats.runs += 1
        stats.ids = len(issued)
        state = d.state_dir
        stats.temp_files_left += any(p.name.startswith(f"{SNAPSHOT}.tmp-") for p in state.iterdir())
        data = (state / SNAPSHOT).read_bytes()
        try:
            parse_snapshot(data)
            json.loads(data)
        except (SnapshotError, ValueError) as e:
            pytest.fail(f"seed {seed} run {run}: the snapshot does not parse: {e}")
        d.start()
        found = observed(d)
        if found != model and in_flight is not None:
            with_it = model.copy()
            with_it.apply(*in_flight)
            if found == with_it:
                stats.in_flight_applied += 1
                if in_flight[0] == "add":
                    issued.add(model.next_id)
                model = with_it
        assert found == model, (
            f"seed {seed} run {run}: after kill -9 the registry is not the answered "
            f"mutations (in flight: {in_flight})"
        )
    d.stop()
    return stats


@pytest.fixture
def pool(sleeper: Callable[..., subprocess.Popen[bytes]]) -> list[int]:
    """Ten real processes to add, label and remove again and again."""
    return [sleeper().pid for _ in range(10)]


# Snapshots all the time, so that kills land in snapshot writes as well as in appends.
CRASH_CONFIG = {"snapshot_delay": "2ms"}


def test_kill9_at_random_points_keeps_exactly_the_answered_mutations(
    spawn_daemon: Callable[..., Daemon], pool: list[int]
) -> None:
    seed = random.randrange(2**32)
    d = spawn_daemon(config=CRASH_CONFIG)
    stats = crash_runs(d, pool, runs=10, seed=seed)
    assert stats.runs == 10 and stats.answered > 0, stats


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill9_at_random_points_keeps_exactly_the_answered_mutations_100_runs(
    spawn_daemon: Callable[..., Daemon], pool: list[int]
) -> None:
    seed = random.randrange(2**32)
    d = spawn_daemon(config=CRASH_CONFIG)
    started = time.monotonic()
    stats = crash_runs(d, pool, runs=100, seed=seed)
    print(f"\ncrash matrix: seed {seed}, {stats} in {time.monotonic() - started:.0f}s")
    assert stats.runs == 100, stats


# ---- torn files ------------------------------------------------------------------------


def add_some(d: Daemon, pids: list[int], tag: str) -> list[tuple[Any, ...]]:
    return [identity(d.call("add", {"pid": pid, "tags": [tag]})) for pid in pids]


def identity(e: dict[str, Any]) -> tuple[Any, ...]:
    return (e["id"], e["pid"], tuple(e["tags"]), tuple(e["groups"]), e["name"])


def listed(d: Daemon) -> list[tuple[Any, ...]]:
    return [identity(e) for e in d.call("list")]


def newest_journal(state_dir: Path) -> Path:
    journals = [p for p in state_dir.iterdir() if re.fullmatch(r"goproc\.journal\.\d+", p.name)]
    assert journals, "no journal"
    return max(journals, key=lambda p: int(p.name.rsplit(".", 1)[1]))


@pytest.mark.parametrize("torn", ["journal-tail", "snapshot-temp", "both"])
def test_torn_journal_tail_and_torn_snapshot_temp_file_lose_nothing(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any], torn: str
) -> None:
    d = spawn_daemon(config={"snapshot_delay": "1h"})  # the journal holds the adds
    answered = add_some(d, [sleeper().pid for _ in range(5)], "before")
    assert d.proc is not None
    dead_pid = d.proc.pid
    d.kill9()
    if torn in ("journal-tail", "both"):
        journal = newest_journal(d.state_dir)
        last = journal.read_bytes().splitlines()[-1]
        with journal.open("ab") as f:
            f.write(last[: len(last) // 2])  # half a record, no newline
    temp = d.state_dir / f"{SNAPSHOT}.tmp-{dead_pid}"
    if torn in ("snapshot-temp", "both"):
        whole = json.dumps({"version": 1, "next_id": 6, "journal": 1, "procs": [answered]})
        temp.write_text(whole[: len(whole) // 2])
    d.start()
    assert listed(d) == answered
    assert not temp.exists(), "the torn temp file is cleaned up"
    more = add_some(d, [sleeper().pid for _ in range(2)], "after")
    assert [e[0] for e in more] == [6, 7]
    d.kill9()
    d.start()
    assert listed(d) == answered + more


# ---- a full disk, a read-only state dir -------------------------------------------------


class Mounts:
    """Mounts made by a test, undone at teardown (after the daemons using them die)."""

    def __init__(self) -> None:
        self.points: list[Path] = []
        self.daemons: list[Daemon] = []

    def mount(self, *args: str, point: Path) -> None:
        done = subprocess.run(["mount", *args, str(point)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount here: {done.stderr.strip()}")
        self.points.append(point)

    def remount(self, mode: str, point: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["mount", "-o", f"remount,{mode}", str(point)], capture_output=True, text=True
        )

    def cleanup(self) -> None:
        for d in self.daemons:
            if d.proc is not None and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait(10)
        for point in reversed(self.points):
            if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    m = Mounts()
    try:
        yield m
    finally:
        m.cleanup()


def daemon_on_tmpfs(
    spawn_daemon: Callable[..., Daemon],
    mounts: Mounts,
    config: dict[str, Any],
    lock_elsewhere: bool,
) -> Daemon:
    """A daemon whose state dir is a fresh 256 KiB tmpfs.  With `lock_elsewhere`, its
    lock file is a bind mount of a file outside: Linux refuses to make a filesystem
    read-only while a file on it is open for writing, and the daemon holds its lock
    open for its whole life."""
    d = spawn_daemon(config=config, start=False)
    d.state_dir.mkdir(mode=0o700)
    mounts.mount("-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", point=d.state_dir)
    if lock_elsewhere:
        outside = d.root / "lock-outside"
        outside.touch(mode=0o600)
        (d.state_dir / "goproc.lock").touch(mode=0o600)
        mounts.mount("--bind", str(outside), point=d.state_dir / "goproc.lock")
    mounts.daemons.append(d)
    return d.start()


def fill(path: Path) -> None:
    """Write to `path` until the filesystem is full."""
    with open(path, "wb", buffering=0) as f:
        for size in (65536, 4096, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break


@attrs.define
class Mutator:
    """Mutations that would succeed on a healthy daemon, tracked against the model:
    an answered one is applied to it, a refused one (-32005) is not."""

    d: Daemon
    new_pid: Callable[[], int]
    model: Model = attrs.field(factory=Model)
    spare: list[int] = attrs.field(factory=list)
    n: int = 0

    def attempt(self) -> dict[str, Any]:
        """One mutation: an add (every other time) or a tag.add; returns the reply."""
        self.n += 1
        params: dict[str, Any]
        if self.n % 2 or not self.model.entries:
            pid = self.spare.pop() if self.spare else self.new_pid()
            method, params = "add", {"pid": pid, "tags": [f"t{self.n}"], "groups": []}
        else:
            target = sorted(self.model.entries)[self.n % len(self.model.entries)]
            method, params = "tag.add", {"ids": [target], "labels": [f"t{self.n}"]}
        reply = self.d.request(method, params)
        if "result" in reply:
            new_id = reply["result"]["id"] if method == "add" else None
            if new_id is not None:
                # A refused add may have used up an id (ids are never given back), so
                # the next one is at least the model's next id; never an earlier one.
                assert new_id >= self.model.next_id, reply
            self.model.apply(method, params, new_id)
        elif method == "add":
            self.spare.append(params["pid"])
        return dict(reply)

    def track(self, pid: int) -> None:
        reply = self.d.request("add", {"pid": pid, "tags": [], "groups": []})
        self.model.apply("add", {"pid": pid, "tags": [], "groups": []}, reply["result"]["id"])

    def refused(self, reason: str) -> None:
        """Mutations are refused with -32005 naming `reason`, and change nothing."""
        for _ in range(3):
            reply = self.attempt()
            assert "error" in reply, f"acknowledged while it cannot be saved: {reply}"
            error = reply["error"]
            assert error["code"] == STORAGE_ERROR and reason in error["message"], reply

    def sees_exit_and_retries_the_snapshot(
        self, victim: subprocess.Popen[bytes], reason: str
    ) -> None:
        """A tracked process exits meanwhile: reads show it dead at once, and the
        snapshot of that change fails (logged, to be retried) without harm."""
        victim.kill()
        victim.wait()

        def dead() -> bool:
            [e] = self.d.call("list", {"pids": [victim.pid]})
            return e["alive"] is False

        wait_until(dead, what="the exit to be noticed")
        wait_until(
            lambda: any("snapshot" in ln and reason in ln for ln in self.d.log().splitlines()),
            what="the snapshot writer to fail",
        )
        self.reads_work()

    def holds_the_model(self) -> None:
        """Exactly the answered mutations; ids go on from the last one given (or later,
        see `attempt`)."""
        found = observed(self.d)
        assert found.entries == self.model.entries
        assert found.next_id >= self.model.next_id

    def reads_work(self) -> None:
        assert self.d.proc is not None and self.d.proc.poll() is None, self.d.log()
        assert self.d.call("ping") == "pong"
        self.holds_the_model()
        some = min(self.model.entries)
        assert self.d.call("show", {"ids": [some]})["id"] == some

    def recovers(self) -> None:
        """The next mutations succeed by themselves, and the snapshot catches up."""

        def saved() -> bool:
            reply = self.attempt()
            if "error" in reply:
                assert reply["error"]["code"] == STORAGE_ERROR, reply
            return "result" in reply

        wait_until(saved, timeout=5, what="a mutation to be saved again")
        for _ in range(3):
            assert "result" in self.attempt()
        snapshot = self.d.state_dir / SNAPSHOT

        def snapshot_holds_the_model() -> bool:
            procs, header = parse_snapshot(snapshot.read_bytes())
            next_id = header.next_id
            entries = {p.id: (p.pid, p.tags, p.groups) for p in procs}
            return entries == self.model.entries and next_id >= self.model.next_id

        wait_until(snapshot_holds_the_model, timeout=15, what="the snapshot to catch up")
        temps = [p.name for p in self.d.state_dir.iterdir() if ".tmp-" in p.name]
        assert temps == [], "failed snapshot writes leave no temp files"

    def survives_kill9(self) -> None:
        self.d.kill9()
        self.d.start()
        self.holds_the_model()


def test_disk_full_refuses_mutations_keeps_reads_and_recovers(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any], mounts: Mounts
) -> None:
    d = daemon_on_tmpfs(spawn_daemon, mounts, {"snapshot_delay": "50ms"}, lock_elsewhere=False)
    m = Mutator(d, lambda: sleeper().pid)
    for _ in range(4):
        assert "result" in m.attempt()
    victim = sleeper()
    m.track(victim.pid)
    filler = d.state_dir / "filler"
    fill(filler)
    # What was already allocated to the journal may still take a few records; each one
    # answered must then be kept.  Past that, every mutation is refused.
    streak = 0
    for _ in range(200):
        reply = m.attempt()
        if "result" in reply:
            streak = 0
            continue
        assert reply["error"]["code"] == STORAGE_ERROR, reply
        assert "No space left on device" in reply["error"]["message"], reply
        streak += 1
        if streak == 5:
            break
    assert streak == 5, "mutations kept being acknowledged on a full disk"
    m.refused("No space left on device")
    m.reads_work()
    m.sees_exit_and_retries_the_snapshot(victim, "No space left on device")
    # A stop and a start on the full disk: the journal is all there is, and it is read.
    d.stop()
    d.start()
    m.reads_work()
    m.refused("No space left on device")
    filler.unlink()
    m.recovers()
    m.reads_work()
    m.survives_kill9()


def test_read_only_state_dir_refuses_mutations_keeps_reads_and_recovers(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any], mounts: Mounts
) -> None:
    d = daemon_on_tmpfs(spawn_daemon, mounts, {"snapshot_delay": "20ms"}, lock_elsewhere=True)
    m = Mutator(d, lambda: sleeper().pid)
    for _ in range(4):
        assert "result" in m.attempt()
    victim = sleeper()
    m.track(victim.pid)
    # Busy while the daemon has its journal or a snapshot open for writing: once the
    # debounced snapshot has folded the journal, nothing is.
    wait_until(
        lambda: mounts.remount("ro", d.state_dir).returncode == 0,
        what="the state dir to be remounted read-only",
    )
    m.refused("Read-only file system")
    m.reads_work()
    m.sees_exit_and_retries_the_snapshot(victim, "Read-only file system")
    assert mounts.remount("rw", d.state_dir).returncode == 0
    m.recovers()
    m.reads_work()
    m.survives_kill9()


# ---- the first released snapshot format ------------------------------------------------


def test_snapshot_of_the_first_released_format_loads(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any]
) -> None:
    """tests/data/snapshot-v1.json: version 1, entries with and without `exited_at`
    (the first release had no such key), none with `log` (read as null), names, tags,
    groups, a gap in the ids."""
    old = json.loads((DATA / "snapshot-v1.json").read_text())
    d = spawn_daemon(start=False)
    d.state_dir.mkdir(mode=0o700)
    shutil.copy(DATA / "snapshot-v1.json", d.state_dir / SNAPSHOT)
    started = datetime.now().astimezone()
    d.start()
    entries = d.call("list")
    assert [e["id"] for e in entries] == [p["id"] for p in old["procs"]] == [1, 2, 4, 5]
    for saved, e in zip(old["procs"], entries, strict=True):
        # Keys the first release had not: `exited_at` (when known), `log`,
        # `adopted_by` and the supervision fields (none: only watched).
        want = {
            **saved,
            "exited_at": saved.get("exited_at"),
            "log": None,
            "adopted_by": None,
            "spawned": None,
            "exit_code": None,
            "exit_signal": None,
            "restarts": 0,
            "stopped": False,
            "metrics": None,
        }
        if saved["alive"]:
            # Its process is gone: the start-up probe finds it dead, and says when.
            assert e["alive"] is False and TIME.fullmatch(e["exited_at"]), e
            assert datetime.fromisoformat(e["exited_at"]) >= started.replace(microsecond=0)
            want = {**want, "alive": False, "exited_at": e["exited_at"]}
        assert e == want
    assert d.call("status")["next_id"] == old["next_id"] == 7
    assert d.request("add", {"pid": sleeper().pid, "name": "pg"})["error"]["code"] == -32004
    assert d.call("add", {"pid": sleeper().pid})["id"] == 7, "ids are never reused"
    # What it writes back in today's format loads again to the same entries.
    assert d.stop() == 0
    d.start()
    assert d.call("list")[:4] == entries


def test_first_released_snapshot_is_small_and_hand_checkable() -> None:
    """The checked-in file is what the first release wrote: the keys of a version 1
    snapshot, and entries both with and without `exited_at`."""
    old = json.loads((DATA / "snapshot-v1.json").read_text())
    assert set(old) == {"version", "next_id", "journal", "procs"} and old["version"] == 1
    with_key = [p for p in old["procs"] if "exited_at" in p]
    assert with_key and len(with_key) < len(old["procs"])
    assert any(p["name"] for p in old["procs"])
    assert any(p["tags"] for p in old["procs"]) and any(p["groups"] for p in old["procs"])
    assert len(old["procs"]) <= 10
