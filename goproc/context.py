"""What every request handler shares: the `Context` (registry, OS probe, journal,
event bus, exit watcher, the requesting connection) and the two ways to change the
registry, `commit` (journaled) and `set_alive` (a liveness verdict), which also tell
everyone who must know: the snapshot writer, subscribers, exit watchers, waiters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import attrs
import trio
from attrs import define

from goproc.daemon.events import EventBus, Subscription
from goproc.errors import StorageError
from goproc.model import Change, Proc
from goproc.probe import Probe
from goproc.registry import Registry


class Journal(Protocol):
    async def append(self, change: Change) -> None: ...


class Watcher(Protocol):
    """Exit detection per entry (pidfd or kqueue); the poll ticker covers the rest."""

    def watch(self, proc: Proc) -> None: ...

    def forget(self, proc_id: int) -> None: ...


class _NoWatcher:
    def watch(self, proc: Proc) -> None:
        pass

    def forget(self, proc_id: int) -> None:
        pass


class Session(Protocol):
    """The connection a request came on, for methods that talk back (subscribe)."""

    def start_subscription(self, sub: Subscription) -> None: ...

    def owns(self, sub_id: int) -> bool: ...

    def cancel_on_hangup(self) -> AbstractAsyncContextManager[None]: ...


class Pulse:
    """Fires whenever an entry's liveness changes; waiters re-check their condition."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait(self) -> None:
        await self._event.wait()


def now() -> float:
    """Wall-clock seconds, to the microsecond the wire format keeps."""
    return round(time.time(), 6)


@define
class Context:
    """What handlers share: the registry, the OS seam, the way to make a change last, and
    the ways to tell others about it (events, exit watchers, the snapshot writer).
    Every change to the registry goes through `commit` or `set_alive`.  A connection gets
    a copy with its `session`; everything else is shared."""

    registry: Registry
    probe: Probe
    journal: Journal
    on_change: Callable[[], None] = lambda: None
    stats: Callable[[], dict[str, Any]] = dict
    clock: Callable[[], float] = now
    bus: EventBus = attrs.Factory(EventBus)
    watcher: Watcher = attrs.Factory(_NoWatcher)
    pulse: Pulse = attrs.Factory(Pulse)
    session: Session | None = None

    async def commit(self, change: Change) -> None:
        """Apply `change` and journal it; on a journal failure undo it and raise
        StorageError, so nothing is acknowledged that would not survive a crash.
        Events go out once the change is durable."""
        undo = self.registry.apply(change)
        try:
            await self.journal.append(change)
        except OSError as e:
            self.registry.apply(undo)
            raise StorageError(
                f"could not save the change, so it was not made: {e.strerror or e}"
            ) from None
        except BaseException:
            self.registry.apply(undo)  # never keep what was not journaled
            raise
        self.on_change()
        self._announce(undo, change)

    def set_alive(self, proc_id: int, alive: bool) -> Proc | None:
        """Record a liveness verdict (from a probe or an exit watcher)."""
        t = self.clock()
        new = self.registry.set_alive(proc_id, alive, t)
        if new is not None:
            self.on_change()
            self.bus.publish("revived" if alive else "exited", new, t)
            if alive:
                self.watcher.watch(new)
            self.pulse.fire()
        return new

    def _announce(self, undo: Change, change: Change) -> None:
        t = self.clock()
        before = {p.id: p for p in undo.put}
        if change.reset:
            for p in undo.put:
                self.watcher.forget(p.id)
                self.bus.publish("removed", p, t)
        for proc_id in change.deleted:
            self.watcher.forget(proc_id)
            if proc_id in before:
                self.bus.publish("removed", before[proc_id], t)
        lived = False
        for p in change.put:
            old = None if change.reset else before.get(p.id)
            if old is None:
                self.watcher.watch(p)
                self.bus.publish("added", p, t)
            elif old.alive != p.alive:
                lived = True
                self.bus.publish("revived" if p.alive else "exited", p, t)
            else:
                self.bus.publish("updated", p, t, before=old)
        if lived or change.deleted or change.reset:
            self.pulse.fire()
