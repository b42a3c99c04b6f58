"""The liveness ticker: probe every alive entry each `liveness_interval`.

The probes run in a worker thread on an immutable list of (id, pid, start time); the
verdicts are applied back on the trio side, skipping entries that changed meanwhile.
With exit watchers (pidfds) this is the safety net and what moves `last_seen`; without
them it is how deaths are found.
A dead verdict is final: a process is (pid, start time), and one that has gone cannot
come back, so dead entries are not probed again.
"""

from __future__ import annotations

import logging
import time

import trio

from goproc.context import Context
from goproc.model import same_start

log = logging.getLogger("goproc.liveness")


class Liveness:
    def __init__(self, ctx: Context, *, interval: float, last_seen_interval: float) -> None:
        self.ctx = ctx
        self.registry = ctx.registry
        self.probe = ctx.probe
        self.interval = interval
        self.last_seen_interval = last_seen_interval
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
        now = self.ctx.clock()
        changed = 0
        for (proc_id, pid, start), alive in zip(targets, verdicts, strict=True):
            current = self.registry.get(proc_id)
            if current is None or current.pid != pid or not same_start(current.started_at, start):
                continue  # removed or replaced while we probed
            if current.alive != alive:
                self.ctx.set_alive(proc_id, alive)
                changed += 1
            elif alive and now - current.last_seen >= self.last_seen_interval:
                self.registry.touch(proc_id, now)
                changed += 1
        if changed:
            self.ctx.on_change()
        self.sweeps += 1
        self.last_sweep_seconds = time.perf_counter() - started
        return changed
