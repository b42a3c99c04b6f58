"""The two ways the daemon's registry changes, and who is told.

- `Service.commit`: a planned `Change` (from a request) is applied, journaled, and only
  then announced; a change the journal refused is undone and reported as not made.
- `Vitals`: liveness verdicts (but not of the daemon's own children: the supervisor
  commits their exits, with their statuses) (an exit seen by a pidfd, a probe of the ticker or of
  `kill`) and `last_seen`: not journaled, since liveness is probed again at every start.
Both tell the same `Outlets`: subscribers (the event bus), waiters (the pulse) and the
snapshot writer.  Nothing else writes to the registry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

import trio
from attrs import frozen

from goproc.daemon.events import EventBus
from goproc.errors import StorageError
from goproc.model import Change, Proc
from goproc.registry import Registry
from goproc.store.journal import SyncFailed

log = logging.getLogger("goproc.service")


def now() -> float:
    """Wall-clock seconds, to the microsecond the wire format keeps."""
    return round(time.time(), 6)


class Pulse:
    """Fires whenever an entry's liveness changes; waiters re-check their condition."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait(self) -> None:
        await self._event.wait()


class Journal(Protocol):
    """Where changes are recorded before they are answered (`goproc.store.journal`)."""

    @property
    def waits_for_sync(self) -> bool: ...

    def append(self, change: Change) -> int: ...

    async def wait_synced(self, ticket: int) -> None: ...


class Watcher(Protocol):
    """Exit detection per entry (pidfd); the liveness ticker covers the rest."""

    def watch(self, proc: Proc) -> None: ...

    def forget(self, proc_id: int) -> None: ...


@frozen
class Outlets:
    """Whom a change is told to."""

    bus: EventBus
    pulse: Pulse
    mark_dirty: Callable[[], None]  # the snapshot writer's
    clock: Callable[[], float] = now


class Vitals:
    """Liveness verdicts.  A dead verdict is final: a process is (pid, start time), and
    one that has gone cannot come back."""

    def __init__(
        self,
        registry: Registry,
        outlets: Outlets,
        reaped_by_us: Callable[[Proc], bool] = lambda p: False,
    ) -> None:
        self.registry = registry
        self.outlets = outlets
        # An entry whose process is the daemon's own child: its exit is recorded, with
        # its status, when the supervisor reaps it (`goproc.daemon.supervisor`).
        self.reaped_by_us = reaped_by_us
        self.exits = 0  # entries marked dead since the daemon started (an exit each)

    def _is_current(self, proc: Proc) -> bool:
        """Whether the registry still holds this entry as that very process."""
        current = self.registry.get(proc.id)
        return (
            current is not None
            and current.pid == proc.pid
            and current.started_at == proc.started_at
        )

    def mark_dead(self, proc: Proc) -> Proc | None:
        """Record that this entry's process has ended; the new entry, or None when the
        entry is no longer there as that very process, or not alive."""
        if not self._is_current(proc) or self.reaped_by_us(proc):
            return None
        out = self.outlets
        t = out.clock()
        new = self.registry.set_alive(proc.id, False, t)
        if new is not None:
            self.exits += 1
            out.mark_dirty()
            out.bus.publish("exited", new, t)
            out.pulse.fire()
        return new

    def seen(self, procs: Iterable[Proc], t: float) -> None:
        """Move `last_seen` of these alive entries to `t` (those still there)."""
        touched = False
        for p in procs:
            touched = (self._is_current(p) and self.registry.touch(p.id, t)) or touched
        if touched:
            self.outlets.mark_dirty()


class Service:
    """Journaled changes: `commit` is the one way a request changes the registry."""

    def __init__(
        self, registry: Registry, journal: Journal, watcher: Watcher, outlets: Outlets
    ) -> None:
        self.registry = registry
        self.journal = journal
        self.watcher = watcher
        self.outlets = outlets
        self._unsynced: dict[int, Change] = {}  # "always" fsync: undo of each record

    async def commit(self, change: Change) -> None:
        """Apply `change` and journal it; raise StorageError (and undo it) when it could
        not be journaled, so nothing is acknowledged that would not survive a crash.
        A change that changes nothing (a tag added twice, `x` renamed to `x`) is
        neither journaled nor announced.
        Once the record is written the change stands: events go out, and a failure
        while telling others is logged, never answered as "not made"."""
        if self._changes_nothing(change):  # nothing to journal, nobody to tell
            return
        undo = self.registry.apply(change)
        try:
            ticket = self.journal.append(change)
        except OSError as e:
            self.registry.apply(undo)
            raise StorageError(
                f"could not save the change, so it was not made: {e.strerror or e}"
            ) from None
        except BaseException:
            self.registry.apply(undo)  # never keep what was not journaled
            raise
        if self.journal.waits_for_sync:
            await self._wait_synced(ticket, undo)
        try:
            self._announce(undo, change)
        except Exception:
            log.exception("a change was saved but telling others about it failed")

    def _changes_nothing(self, change: Change) -> bool:
        return (
            not (
                change.put
                or change.deleted
                or change.reset
                or change.rules_put
                or change.rules_deleted
                or change.adopts_put
                or change.adopts_deleted
            )
            and change.next_id == self.registry.next_id
            and change.next_rule in (0, self.registry.rules.next_id)
            and change.next_adopt in (0, self.registry.adopts.next_id)
        )

    async def _wait_synced(self, ticket: int, undo: Change) -> None:
        """Wait (shielded: the record is written, its fate must be known) for the sync
        of record `ticket`.  If it failed, the journal cut every record since the last
        good sync: undo all of their changes, newest first, and refuse this one."""
        self._unsynced[ticket] = undo
        try:
            with trio.CancelScope(shield=True):
                await self.journal.wait_synced(ticket)
        except SyncFailed as failure:
            for t in range(failure.last, failure.first - 1, -1):
                lost = self._unsynced.pop(t, None)
                if lost is not None:
                    self.registry.apply(lost)
            raise StorageError(
                "could not save the change, so it was not made: "
                f"{failure.strerror or 'fdatasync failed'}"
            ) from None
        finally:
            self._unsynced.pop(ticket, None)

    def _announce(self, undo: Change, change: Change) -> None:
        out = self.outlets
        out.mark_dirty()
        t = out.clock()
        before = {p.id: p for p in undo.put}
        if change.reset:
            for p in undo.put:
                self.watcher.forget(p.id)
                out.bus.publish("removed", p, t)
            out.bus.reset()
        for proc_id in change.deleted:
            self.watcher.forget(proc_id)
            if proc_id in before:
                out.bus.publish("removed", before[proc_id], t)
        lived = False
        for p in change.put:
            old = None if change.reset else before.get(p.id)
            if old is None:
                self.watcher.watch(p)
                out.bus.publish("added", p, t)
            elif p.alive and (old.pid, old.started_at) != (p.pid, p.started_at):
                lived = True  # the entry's process was started again
                self.watcher.forget(p.id)
                self.watcher.watch(p)
                out.bus.publish("restarted", p, t, before=old)
            elif old.alive != p.alive:
                lived = True
                out.bus.publish("revived" if p.alive else "exited", p, t)
            else:
                out.bus.publish("updated", p, t, before=old)
        if lived or change.deleted or change.reset:
            out.pulse.fire()
