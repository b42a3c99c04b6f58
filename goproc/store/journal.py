"""The journal: the append-only record of acknowledged changes, `goproc.journal.<G>`.

`append` writes a record with one `write(2)` before its change is answered: from then on
it survives a crash (`kill -9`) of the daemon, since the kernel holds it.  `run` makes
it survive a crash of the machine too: it fdatasyncs in a worker thread, for every
batch when `fsync` is "always" (then the committer waits for `wait_synced` before it
answers), else at most once per `sync_interval` ("interval", the default).

With "always", a failed fdatasync cuts every record written since the last good sync
back out of the file, and `wait_synced` raises `SyncFailed` naming those records, so
their changes can be undone: a change reported as not made never comes back at the next
start.  If the cut itself fails, the journal refuses every later append (each change is
then refused with -32005) until the daemon restarts.  Records keep the generation
current when they were appended, so a rotation never splits a change from its file.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import trio
from attrs import frozen

from goproc.model import Change
from goproc.store.files import (
    cut_torn_tail,
    journal_generations,
    journal_path,
    open_ours,
    write_all,
)
from goproc.store.format import change_line

log = logging.getLogger("goproc.journal")


class SyncFailed(OSError):
    """The fdatasync covering records `first`..`last` failed; they were cut out."""

    def __init__(self, error: OSError, first: int, last: int) -> None:
        super().__init__(error.errno, error.strerror)
        self.first = first
        self.last = last


@frozen
class _Written:
    ticket: int
    gen: int
    offset: int  # the file's size before the record


class Journal:
    def __init__(
        self, state_dir: Path, gen: int, *, fsync: str = "interval", sync_interval: float = 1.0
    ) -> None:
        self.state_dir = state_dir
        self.gen = gen
        self.fsync = fsync
        self.sync_interval = sync_interval
        self.appended = 0  # records written (tickets are 1, 2, ...)
        self.synced = 0  # records whose sync outcome is known
        self._fds: dict[int, int] = {}
        self._sizes: dict[int, int] = {}
        self._unsynced_gens: set[int] = set()
        self._unsynced: list[_Written] = []  # "always" only: records not yet synced
        self._failures: list[SyncFailed] = []  # "always" only: recent failed batches
        self._broken: OSError | None = None
        self._wake = trio.Event()
        self._synced_event = trio.Event()
        self._urgent = trio.Event()  # someone waits for a sync: do not batch

    @property
    def waits_for_sync(self) -> bool:
        return self.fsync == "always"

    def append(self, change: Change) -> int:
        """Write the record; returns its ticket.  Raises OSError when nothing was
        written (a torn tail is cut)."""
        if self._broken is not None:
            raise self._broken
        gen = self.gen
        line = change_line(change)
        fd = self._fd(gen)
        offset = self._sizes[gen]
        try:
            write_all(fd, line)
        except OSError:
            os.close(self._fds.pop(gen))
            del self._sizes[gen]
            cut_torn_tail(journal_path(self.state_dir, gen))
            raise
        self._sizes[gen] = offset + len(line)
        self._unsynced_gens.add(gen)
        self.appended += 1
        if self.waits_for_sync:
            self._unsynced.append(_Written(self.appended, gen, offset))
        self._wake.set()
        return self.appended

    def _fd(self, gen: int) -> int:
        fd = self._fds.get(gen)
        if fd is None:
            # Never through a symlink, never into a file not ours (`open_ours`): a
            # refusal is an OSError like any failed write, so the change is refused.
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
            fd = self._fds[gen] = open_ours(journal_path(self.state_dir, gen), flags)
            self._sizes[gen] = os.fstat(fd).st_size
        return fd

    async def wait_synced(self, ticket: int) -> None:
        """Wait until the record `ticket` is on disk; raises SyncFailed if its sync
        failed (the record was cut out)."""
        self._urgent.set()
        while self.synced < ticket:
            await self._synced_event.wait()
        for failure in self._failures:
            if failure.first <= ticket <= failure.last:
                raise failure

    def rotate(self) -> int:
        """Start a new generation; returns it.  Synchronous, so it is atomic with
        whatever the caller reads from the registry in the same step."""
        self.gen += 1
        return self.gen

    async def sync(self) -> None:
        """Wait until every record appended so far has been synced (or cut)."""
        self._wake.set()
        self._urgent.set()
        target = self.appended
        while self.synced < target:
            await self._synced_event.wait()

    def remove_before(self, gen: int, keep_from: int | None = None) -> None:
        """Close generations older than `gen` (their records are in a snapshot that is
        on disk) and delete them, but those from `keep_from` on (the previous snapshot
        needs them).  Blocking: run in a worker thread."""
        for old in [g for g in self._fds if g < gen]:
            os.close(self._fds.pop(old))
            self._sizes.pop(old, None)
            self._unsynced_gens.discard(old)
        oldest = gen if keep_from is None else min(gen, keep_from)
        for old in journal_generations(self.state_dir):
            if old < oldest:
                journal_path(self.state_dir, old).unlink(missing_ok=True)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                await self._sync_batch()
                if not self.waits_for_sync:  # batch the next syncs, unless one is awaited
                    with trio.move_on_after(self.sync_interval):
                        await self._urgent.wait()
                self._urgent = trio.Event()
        finally:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    async def _sync_batch(self) -> None:
        target = self.appended
        fds = [self._fds[g] for g in self._unsynced_gens if g in self._fds]
        self._unsynced_gens.clear()
        try:
            await trio.to_thread.run_sync(_fdatasync_all, fds)
        except OSError as e:
            log.error("journal sync failed: %s", e)
            if self.waits_for_sync:
                self._cut_unsynced(e)
        else:
            self._unsynced = [w for w in self._unsynced if w.ticket > target]
        self.synced = max(self.synced, target)
        self._synced_event.set()
        self._synced_event = trio.Event()

    def _cut_unsynced(self, error: OSError) -> None:
        """Cut every record since the last good sync out of its file (synchronously:
        no record can be appended meanwhile), and fail their waiters."""
        lost, self._unsynced = self._unsynced, []
        if not lost:
            return
        failure = SyncFailed(error, lost[0].ticket, self.appended)
        self._failures = [*self._failures[-7:], failure]
        for gen in sorted({w.gen for w in lost}):
            offset = min(w.offset for w in lost if w.gen == gen)
            try:
                os.ftruncate(self._fds[gen], offset) if gen in self._fds else None
                self._sizes[gen] = offset
            except OSError as e:
                log.critical("cannot cut unsynced records out of the journal: %s", e)
                self._broken = OSError(e.errno, f"the journal is unusable: {e.strerror}")
        # Records appended during the failed sync are cut too: they wait on it.
        self.synced = self.appended


def _fdatasync_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.fdatasync(fd)
        except OSError as e:
            if e.errno != errno.EBADF:  # closed meanwhile by remove_before: folded already
                raise
