"""Small trusted fakes for in-process tests, and the one way to build a handler context
from them.  `tests/daemon/test_probe_contract.py` holds `TableProbe` to the real
`OsProbe`: the same answers for the same situations."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any

import attrs
import trio
import trio.testing

from goproc.api import Status
from goproc.daemon.events import EventBus
from goproc.daemon.handlers import Ctx, make_dispatch
from goproc.daemon.service import Outlets, Pulse, Service, Vitals
from goproc.errors import NoSuchProcess, PermissionDenied
from goproc.metrics import Reading
from goproc.model import Change, Proc, ProcessFacts, same_start
from goproc.registry import Registry
from goproc.rpc.jsonrpc import respond_line

FOREIGN_PID = 1  # the table probe's process of another user
# What the table probe reads of a process it has no reading for: a small idle one.
DEFAULT_READING = Reading(
    cpu_seconds=0.0,
    rss_bytes=1 << 20,
    vms_bytes=8 << 20,
    threads=1,
    read_bytes=0,
    write_bytes=0,
    fds=3,
)


@attrs.define
class TableProbe:
    """A probe over a table of live processes: pid 1 is someone else's.  Removing a
    pid from `procs` is the process ending."""

    procs: dict[int, ProcessFacts]
    signals: list[tuple[int, int]] = attrs.field(factory=list)
    on_signal: Callable[[int, int], None] | None = None
    # What `sample` reads of a live process (by pid); a default one for the others.
    readings: dict[int, Reading] = attrs.field(factory=dict)

    def inspect(self, pid: int) -> ProcessFacts:
        if pid == FOREIGN_PID:
            raise PermissionDenied(f"pid {pid} belongs to another user")
        facts = self.procs.get(pid)
        if facts is None:
            raise NoSuchProcess(f"no process with pid {pid}")
        return facts

    def is_alive(self, pid: int, started_at: float) -> bool:
        facts = self.procs.get(pid)
        return facts is not None and same_start(facts.started_at, started_at)

    def sample(self, pid: int, started_at: float, *, full: bool = True) -> Reading | None:
        if not self.is_alive(pid, started_at):
            return None
        reading = self.readings.get(pid, DEFAULT_READING)
        if not full or pid == FOREIGN_PID:  # another user's io and fds are not ours to see
            return reading._replace(read_bytes=None, write_bytes=None, fds=None)
        return reading

    def keep_sampling(self, pids: Collection[int]) -> None:
        """Nothing is held to sample a process: nothing to let go."""

    def send_signal(
        self, pid: int, started_at: float, signum: int, *, group: bool, pidfd: int | None = None
    ) -> None:
        if not self.is_alive(pid, started_at):
            raise NoSuchProcess(f"pid {pid} is no longer the tracked process")
        if pid == FOREIGN_PID:
            raise PermissionDenied(f"not allowed to signal pid {pid}")
        self.signals.append((pid, signum))
        if self.on_signal is not None:
            self.on_signal(pid, signum)


@attrs.define
class MemoryJournal:
    """A journal in a list; `fail` makes the next appends raise (a full disk)."""

    changes: list[Change] = attrs.field(factory=list)
    fail: OSError | None = None
    waits_for_sync: bool = False

    def append(self, change: Change) -> int:
        if self.fail is not None:
            raise self.fail
        self.changes.append(change)
        return len(self.changes)

    async def wait_synced(self, ticket: int) -> None:
        pass


@attrs.define
class Watched:
    """An exit watcher that only remembers what it was told."""

    ids: set[int] = attrs.field(factory=set)

    def watch(self, proc: Proc) -> None:
        self.ids.add(proc.id)

    def forget(self, proc_id: int) -> None:
        self.ids.discard(proc_id)


@attrs.define
class Parts:
    """Everything a handler context is made of, for tests to look at."""

    ctx: Ctx
    registry: Registry
    probe: TableProbe
    journal: MemoryJournal
    outlets: Outlets
    watcher: Watched
    dirty: list[int]


def make_parts(
    registry: Registry | None = None,
    probe: TableProbe | None = None,
    journal: MemoryJournal | None = None,
    *,
    clock: Callable[[], float] = lambda: 1_700_000_500.0,
    queue: int = 1024,
) -> Parts:
    registry = Registry() if registry is None else registry
    probe = TableProbe({}) if probe is None else probe
    journal = MemoryJournal() if journal is None else journal
    dirty: list[int] = []
    outlets = Outlets(EventBus(queue), Pulse(), lambda: dirty.append(1), clock)
    watcher = Watched()
    vitals = Vitals(registry, outlets)
    service = Service(registry, journal, watcher, outlets)

    def status() -> Status:
        return Status(
            version="test",
            pid=0,
            entries=len(registry),
            alive=sum(1 for p in registry if p.alive),
            next_id=registry.next_id,
            socket="",
            state_dir="",
            snapshot_writes=0,
            sweeps=0,
            last_sweep_seconds=0.0,
            connections=0,
            exit_watch="poll",
            watched=len(watcher.ids),
            subscriptions=len(outlets.bus.subscriptions),
            fd_limit=0,
            metrics_interval=0.0,
            metrics_sweeps=0,
            metrics_last_sweep_seconds=0.0,
            metrics_sampled=0,
            cpu_seconds=0.0,
            alert_rules=len(registry.rules),
            alerts_fired=0,
            adopt_rules=len(registry.adopts),
            discovery="off",
            discovery_interval=0.1,
            discovery_scans=0,
            discovery_last_scan_seconds=0.0,
            adopted=0,
        )

    ctx = Ctx(
        registry=registry,
        service=service,
        vitals=vitals,
        probe=probe,
        bus=outlets.bus,
        pulse=outlets.pulse,
        clock=clock,
        status=status,
    )
    return Parts(ctx, registry, probe, journal, outlets, watcher, dirty)


class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    """A listener whose connections are made in memory: `connect` makes a stream pair,
    queues the server end for `accept` and returns the client end.  A plain pair has an
    unbounded buffer each way; a `lockstep` one has none (a send waits until the other
    end reads), which is how a client that never reads looks to the server."""

    def __init__(self) -> None:
        self._queued, self._incoming = trio.open_memory_channel[trio.abc.Stream](100)
        self.accepted: list[trio.abc.Stream] = []
        self.closed = False

    async def connect(self, *, lockstep: bool = False) -> trio.abc.Stream:
        if self.closed:
            raise trio.ClosedResourceError("the listener is closed")
        pair = trio.testing.lockstep_stream_pair if lockstep else trio.testing.memory_stream_pair
        client, server = pair()
        await self._queued.send(server)
        return client

    async def accept(self) -> trio.abc.Stream:
        if self.closed:
            raise trio.ClosedResourceError("the listener is closed")
        stream = await self._incoming.receive()
        self.accepted.append(stream)
        return stream

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


class ErrorReply(Exception):
    """A JSON-RPC error reply, as `call` raises it."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error)
        self.code: int = error["code"]
        self.message: str = error["message"]


async def call(ctx: Ctx, method: str, params: dict[str, Any] | None = None) -> Any:
    """One request through the real method table (as the server passes it on); its
    result as JSON, or ErrorReply."""
    request: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        request["params"] = params
    reply = await respond_line(json.dumps(request).encode(), make_dispatch(ctx))
    assert reply is not None
    answer = json.loads(reply)
    if "error" in answer:
        raise ErrorReply(answer["error"])
    return answer["result"]
