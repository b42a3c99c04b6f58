"""The metrics sampler: read every alive entry's CPU, memory, io and descriptors each
`interval`, into the `goproc.metrics.MetricsStore` (memory only).

A sweep reads all its entries in one worker-thread call, pausing every `BATCH` of them
for the event loop to take the GIL if it waits (`goproc.daemon.pacing`); the readings
are recorded back on the trio side `CHUNK` at a time, only for entries that are still
the very entries read (alive, same process).  The probe reads each process's start time
from the same `stat` its numbers come from (`goproc.daemon.procstat`), so a reading is
never given to a process that took a pid over.  The io counters and the descriptor count
cost about as much as the rest together: they are read every `FULL_EVERY` sweeps (and at
an entry's first), the rates over the time between two such reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container, Iterable

import trio

from goproc.daemon.pacing import BATCH, in_batches
from goproc.daemon.probe import Probe
from goproc.metrics import MetricsStore, Reading
from goproc.model import Proc, same_entry

log = logging.getLogger("goproc.metrics")

CHUNK = 100  # readings recorded per turn of the event loop: under a millisecond, cold
FULL_EVERY = 5  # io counters and descriptors: every this many sweeps


class Sampler:
    """Sweeps every `interval` seconds; `interval` 0: never (sampling is off)."""

    def __init__(
        self,
        entries: Callable[[], Iterable[Proc]],
        current: Callable[[int], Proc | None],
        probe: Probe,
        store: MetricsStore,
        *,
        interval: float,
        clock: Callable[[], float],
        on_sweep: Callable[[list[Proc]], None] = lambda sampled: None,
    ) -> None:
        self.entries = entries
        self.current = current
        self.probe = probe
        self.store = store
        self.interval = interval
        self.clock = clock
        self.on_sweep = on_sweep  # told each sweep's sampled entries (the alert rules)
        self.sweeps = 0
        self.last_sweep_seconds = 0.0
        self.sampled = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if not self.interval:
            return
        while True:
            started = trio.current_time()
            await self.sweep()
            await trio.sleep_until(max(started + self.interval, trio.current_time() + 0.01))

    async def sweep(self) -> int:
        """Read every alive entry once; returns how many were sampled."""
        started = time.perf_counter()
        everything = list(self.entries())  # one C-level copy; the rest in a thread
        probe, store, current = self.probe, self.store, self.current
        full_sweep = self.sweeps % FULL_EVERY == 0
        tracks = store.tracks  # only a sweep changes it: read in the thread, unchanged
        targets, fulls, readings, read_at = await trio.to_thread.run_sync(
            lambda: _read_all(probe, everything, tracks, full_sweep)
        )
        wall = self.clock()  # the trio side's clock; the rates go by when each was read
        sampled: list[Proc] = []
        for at in range(0, len(targets), CHUNK):
            if at:
                await trio.lowlevel.checkpoint()
            for i in range(at, min(at + CHUNK, len(targets))):
                reading = readings[i]
                if reading is None:
                    continue
                p = targets[i]
                now = current(p.id)
                if now is not p and (now is None or not now.alive or not same_entry(now, p)):
                    continue  # gone meanwhile, or not the entry read: no sample
                store.record(now, reading, wall, read_at[i // BATCH], fulls[i])
                sampled.append(now)
        store.retain({p.id for p in sampled})
        self.sweeps += 1
        self.sampled = len(sampled)
        self.last_sweep_seconds = time.perf_counter() - started
        self.on_sweep(sampled)
        return len(sampled)


def _read_all(
    probe: Probe, everything: list[Proc], tracks: Container[int], full_sweep: bool
) -> tuple[list[Proc], list[bool], list[Reading | None], list[float]]:
    """In a worker thread: the alive entries, whether each is read in full, their
    readings, and the monotonic time each `BATCH` of them was read at."""
    targets = [p for p in everything if p.alive]
    fulls = [full_sweep or p.id not in tracks for p in targets]
    readings: list[Reading | None] = []
    read_at: list[float] = []
    for batch in in_batches(len(targets), BATCH):
        read_at.append(time.monotonic())
        readings += [_reading(probe, targets[i], fulls[i]) for i in batch]
    probe.keep_sampling({p.pid for p in targets})
    return targets, fulls, readings, read_at


def _reading(probe: Probe, p: Proc, full: bool) -> Reading | None:
    """The reading of the entry's process; None when it is not that process any more,
    or the OS would not say (EMFILE and the like), which must not end the sampler."""
    try:
        return probe.sample(p.pid, p.started_at, full=full)
    except OSError:
        return None
