"""The snapshot writer: waits for a change, lets a burst settle for `delay`, then folds
the journal into a fresh snapshot (rotate the journal, keep the newest snapshot as the
previous one, write the new one atomically in a worker thread, drop the journal
generations older than the previous snapshot: see `goproc.store.generations`).  A failed
write is logged and retried; the journal keeps the data meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from goproc.model import Proc
from goproc.store.files import atomic_write, atomic_write_kept
from goproc.store.format import (
    NO_RULES,
    SNAPSHOT,
    RuleState,
    snapshot_chunks,
    snapshot_head,
    snapshot_tail,
)
from goproc.store.generations import keep_previous
from goproc.store.journal import Journal
from goproc.store.rows import ROWS, ROWS_MIN, write_rows
from goproc.store.spans import OnDisk, snapshot_pieces

log = logging.getLogger("goproc.writer")


def write_snapshot(
    state_dir: Path,
    procs: Sequence[Proc],
    next_id: int,
    journal_gen: int,
    boot: dict[str, Any] | None = None,
    rules: RuleState = NO_RULES,
) -> None:
    """Atomically replace the snapshot (blocking: run it in a worker thread)."""
    atomic_write(state_dir / SNAPSHOT, snapshot_chunks(procs, next_id, journal_gen, boot, rules))


def write_snapshot_over(
    state_dir: Path,
    procs: Sequence[Proc],
    next_id: int,
    journal_gen: int,
    boot: dict[str, Any] | None,
    previous: OnDisk,
    rows_min: int = ROWS_MIN,
    rules: RuleState = NO_RULES,
) -> OnDisk:
    """`write_snapshot`, copying the entries unchanged since `previous` from its file,
    and its rows file (`goproc.store.rows`); the new file as an `OnDisk` (blocking: run
    it in a worker thread)."""
    starts = array("q")
    head, tail = snapshot_head(next_id, journal_gen, boot, rules), snapshot_tail(not procs)
    pieces = snapshot_pieces(procs, previous, head, tail, starts)
    on_disk = OnDisk(atomic_write_kept(state_dir / SNAPSHOT, pieces), procs, starts)
    try:
        write_rows(state_dir, on_disk, rows_min)
    except OSError as e:  # the rows are a cache: the snapshot is written, that counts
        log.warning("could not write %s (start-up reads the snapshot instead): %s", ROWS, e)
        with contextlib.suppress(OSError):
            (state_dir / ROWS).unlink()
    return on_disk


def write_generation(
    state_dir: Path,
    procs: Sequence[Proc],
    next_id: int,
    journal_gen: int,
    boot: dict[str, Any] | None,
    previous: OnDisk,
    rows_min: int,
    keep: bool,
    rules: RuleState = NO_RULES,
) -> tuple[bool, OnDisk]:
    """`write_snapshot_over`, first keeping the newest snapshot as the previous one when
    `keep`; whether one was kept, and the new file (blocking: run it in a worker thread)."""
    kept = keep and keep_previous(state_dir)
    return kept, write_snapshot_over(
        state_dir, procs, next_id, journal_gen, boot, previous, rows_min, rules
    )


class SnapshotWriter:
    """`contents` gives the registry's entries and next id as they are now (an
    immutable copy: the file work runs in a thread).  `on_disk` is the snapshot file
    as loaded, then as last written (see `goproc.store.spans`).  `newest_gen` and
    `previous_gen` are the journal generations of the snapshots at the newest and the
    previous path (None: none there, or not known); the journal is kept from the
    previous one's on.  `rules` gives the alert rules as they are now."""

    def __init__(
        self,
        state_dir: Path,
        contents: Callable[[], tuple[list[Proc], int]],
        journal: Journal,
        delay: float,
        boot: dict[str, Any] | None = None,
        on_disk: OnDisk | None = None,
        rows_min: int = ROWS_MIN,
        newest_gen: int | None = None,
        previous_gen: int | None = None,
        rules: Callable[[], RuleState] = lambda: NO_RULES,
    ) -> None:
        self.rules = rules
        self.newest_gen = newest_gen
        self.previous_gen = previous_gen
        self.rows_min = rows_min
        self.on_disk = OnDisk.nothing() if on_disk is None else on_disk
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
            rules = self.rules()
            gen = self.journal.rotate()
            # Only a snapshot this daemon loaded or wrote becomes the previous one: its
            # generation, and so the journals it needs, are known.
            kept, self.on_disk = await trio.to_thread.run_sync(
                write_generation,
                self.state_dir,
                procs,
                next_id,
                gen,
                self.boot,
                self.on_disk,
                self.rows_min,
                self.newest_gen is not None,
                rules,
            )
            if kept:
                self.previous_gen = self.newest_gen
            self.newest_gen = gen
            self.writes += 1
            await self.journal.sync()
            await trio.to_thread.run_sync(self.journal.remove_before, gen, self.previous_gen)
