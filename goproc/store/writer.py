"""The snapshot writer: waits for a change, lets a burst settle for `delay`, then folds
the journal into a fresh snapshot (rotate the journal, write the snapshot atomically in
a worker thread, drop the folded generations).  A failed write is logged and retried;
the journal keeps the data meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from goproc.model import Proc
from goproc.store.files import atomic_write
from goproc.store.format import SNAPSHOT, snapshot_chunks
from goproc.store.journal import Journal

log = logging.getLogger("goproc.writer")


def write_snapshot(
    state_dir: Path,
    procs: Sequence[Proc],
    next_id: int,
    journal_gen: int,
    boot: dict[str, Any] | None = None,
) -> None:
    """Atomically replace the snapshot (blocking: run it in a worker thread)."""
    atomic_write(state_dir / SNAPSHOT, snapshot_chunks(procs, next_id, journal_gen, boot))


class SnapshotWriter:
    """`contents` gives the registry's entries and next id as they are now (an
    immutable copy: the file work runs in a thread)."""

    def __init__(
        self,
        state_dir: Path,
        contents: Callable[[], tuple[list[Proc], int]],
        journal: Journal,
        delay: float,
        boot: dict[str, Any] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.contents = contents
        self.journal = journal
        self.delay = delay
        self.boot = boot
        self.writes = 0
        self._dirty = trio.Event()
        self._lock = trio.Lock()

    def mark_dirty(self) -> None:
        self._dirty.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self._dirty.wait()
            await trio.sleep(self.delay)
            try:
                await self.flush()
            except OSError as e:
                log.error("snapshot write failed (the journal keeps every change): %s", e)
                self.mark_dirty()
                await trio.sleep(max(self.delay, 1.0))

    async def flush(self) -> None:
        """Write a snapshot of the registry as it is now, then drop the folded journal."""
        async with self._lock:
            self._dirty = trio.Event()
            procs, next_id = self.contents()
            gen = self.journal.rotate()
            await trio.to_thread.run_sync(
                write_snapshot, self.state_dir, procs, next_id, gen, self.boot
            )
            self.writes += 1
            await self.journal.sync()
            await trio.to_thread.run_sync(self.journal.remove_before, gen)
