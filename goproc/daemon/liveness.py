"""The liveness ticker: probe every alive entry each `interval`.

The probes run in a worker thread on an immutable list of entries; the verdicts are
applied back on the trio side through `Vitals`, which skips entries that changed
meanwhile.  With exit watchers (pidfds) this is the safety net and what moves
`last_seen`; without them it is how deaths are found.  Dead entries are not probed
again: a dead verdict is final (see `goproc.daemon.service.Vitals`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import trio

from goproc.daemon.pacing import in_batches
from goproc.daemon.probe import Probe
from goproc.daemon.service import Vitals
from goproc.model import Proc

log = logging.getLogger("goproc.liveness")


class Liveness:
    def __init__(
        self,
        entries: Callable[[], Iterable[Proc]],
        probe: Probe,
        vitals: Vitals,
        *,
        interval: float,
        last_seen_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self.entries = entries
        self.probe = probe
        self.vitals = vitals
        self.interval = interval
        self.last_seen_interval = last_seen_interval
        self.clock = clock
        self.sweeps = 0
        self.last_sweep_seconds = 0.0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.interval)
            await self.sweep()

    async def sweep(self) -> int:
        """Probe every alive entry once; returns how many died."""
        started = time.perf_counter()
        targets = [p for p in self.entries() if p.alive]
        probe = self.probe
        verdicts = await trio.to_thread.run_sync(lambda: _verdicts(probe, targets))
        t = self.clock()
        died = unknown = 0
        stale = []
        for p, alive in zip(targets, verdicts, strict=True):
            if alive is None:
                unknown += 1  # not known this time (out of descriptors): asked next sweep
                continue
            if not alive:
                died += self.vitals.mark_dead(p) is not None
            elif t - p.last_seen >= self.last_seen_interval:
                stale.append(p)
        self.vitals.seen(stale, t)
        if unknown:
            log.warning("liveness: %d entries could not be probed this time", unknown)
        self.sweeps += 1
        self.last_sweep_seconds = time.perf_counter() - started
        return died


def _verdicts(probe: Probe, targets: list[Proc]) -> list[bool | None]:
    """In a worker thread, pausing for the event loop (`goproc.daemon.pacing`)."""
    verdicts: list[bool | None] = []
    for batch in in_batches(len(targets)):
        verdicts += [_verdict(probe, targets[i]) for i in batch]
    return verdicts


def _verdict(probe: Probe, proc: Proc) -> bool | None:
    """Whether the entry's process is alive; None when the OS would not say (EMFILE and
    the like), which must not end the ticker."""
    try:
        return probe.is_alive(proc.pid, proc.started_at)
    except OSError:
        return None
