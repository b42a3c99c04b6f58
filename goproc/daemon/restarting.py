"""The restarts a spawned entry's policy asks for, waiting out their backoff: one
pending restart per entry, cancelled by `stop`, `start`, `restart` or a new exit, and
each entry's recent restart times, which the policy counts (`goproc.supervision`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from goproc import supervision
from goproc.model import Proc
from goproc.registry import Registry

log = logging.getLogger("goproc.supervisor")


class Restarts:
    """Pending restarts, run in the nursery given to `run_in`."""

    def __init__(
        self,
        registry: Registry,
        start_again: Callable[[Proc], Awaitable[Proc]],
        clock: Callable[[], float],
    ) -> None:
        self.registry = registry
        self.start_again = start_again  # a new process for the entry, by its policy
        self.clock = clock
        self._pending: dict[int, trio.CancelScope] = {}
        self._restarted_at: dict[int, list[float]] = {}
        self._nursery: trio.Nursery | None = None

    def run_in(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def after_exit(self, entry: Proc, t: float) -> None:
        """The entry's process ended at `t`: schedule the restart its policy asks for."""
        spawned = entry.spawned
        assert spawned is not None
        times = supervision.recent(self._restarted_at.get(entry.id, []), spawned.restart_window, t)
        self._restarted_at[entry.id] = times
        delay = supervision.restart_delay(spawned, entry.exit_code, entry.stopped, times, t)
        if delay is None or self._nursery is None:
            return
        self.cancel(entry.id)
        scope = self._pending[entry.id] = trio.CancelScope()
        self._nursery.start_soon(self._later, entry, delay, scope)

    def cancel(self, entry_id: int) -> None:
        scope = self._pending.pop(entry_id, None)
        if scope is not None:
            scope.cancel()

    async def _later(self, entry: Proc, delay: float, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(delay)
            if self._pending.get(entry.id) is scope:
                del self._pending[entry.id]
            current = self.registry.get(entry.id)
            if current is None or current.added_at != entry.added_at or current.alive:
                return
            if current.stopped or current.spawned is None:
                return
            self._restarted_at.setdefault(entry.id, []).append(self.clock())
            try:
                await self.start_again(current)
            except Exception as e:  # CannotRun, StorageError: the entry stays dead
                log.warning("could not restart id %d: %s", entry.id, e)
