"""The liveness ticker: probe every alive entry each `liveness_interval`.

The probes run in a worker thread on an immutable list of (id, pid, start time); the
verdicts are applied back on the trio side, skipping entries that changed meanwhile.
A dead verdict is final: a process is (pid, start time), and one that has gone cannot
come back, so dead entries are not probed again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio

from goproc.model import same_start
from goproc.probe import Probe
from goproc.registry import Registry

log = logging.getLogger("goproc.liveness")


class Liveness:
    def __init__(
        self,
        registry: Registry,
        probe: Probe,
        *,
        interval: float,
        last_seen_interval: float,
        on_change: Callable[[], None],
        clock: Callable[[], float],
    ) -> None:
        self.registry = registry
        self.probe = probe
        self.interval = interval
        self.last_seen_interval = last_seen_interval
        self.on_change = on_change
        self.clock = clock
        self.sweeps = 0
        self.last_sweep_seconds = 0.0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.interval)
            await self.sweep()

    async def sweep(self) -> int:
        """Probe every alive entry once; returns how many changed."""
        started = time.perf_counter()
        targets = [(p.id, p.pid, p.started_at) for p in self.registry if p.alive]
        probe = self.probe
        verdicts = await trio.to_thread.run_sync(
            lambda: [probe.is_alive(pid, start) for _, pid, start in targets]
        )
        now = self.clock()
        changed = 0
        for (proc_id, pid, start), alive in zip(targets, verdicts, strict=True):
            current = self.registry.get(proc_id)
            if current is None or current.pid != pid or not same_start(current.started_at, start):
                continue  # removed or replaced while we probed
            if current.alive != alive:
                self.registry.set_alive(proc_id, alive, now)
                changed += 1
            elif alive and now - current.last_seen >= self.last_seen_interval:
                self.registry.touch(proc_id, now)
                changed += 1
        if changed:
            self.on_change()
        self.sweeps += 1
        self.last_sweep_seconds = time.perf_counter() - started
        return changed
