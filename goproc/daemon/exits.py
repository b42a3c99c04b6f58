"""Event-driven exit detection: one pidfd per alive entry, waited on by trio.

Linux only (`os.pidfd_open`); elsewhere, when disabled (`exit_watch: "poll"`), or when a
pidfd cannot be opened (old kernel, EMFILE, EPERM), or would take one of the last
`fd_reserve` descriptors, the entry is left to the liveness ticker's poll, with one
warning per kind of failure.  The pidfd is opened before the identity check, so it
refers to the very process that was checked, and it is held for as long as the entry
is watched: `kill` signals through it (`pidfd`), so a signal can never reach a process
that took the pid over, and waits on it (`wait_exit`) instead of probing.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import sys
from collections.abc import Callable, Iterable

import attrs
import trio

from goproc.daemon.probe import Probe
from goproc.model import Proc, same_entry

log = logging.getLogger("goproc.exits")

AVAILABLE = hasattr(os, "pidfd_open")


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
        except (ValueError, OSError):
            pass
    return soft


def descriptor_limit() -> int:
    """The soft RLIMIT_NOFILE now (it may be lowered from outside, by `prlimit`)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return sys.maxsize if soft == resource.RLIM_INFINITY else soft


@attrs.define
class _Held:
    """A watched entry: the process it was checked to be, its pidfd, and its waiter."""

    proc: Proc
    pidfd: int
    scope: trio.CancelScope
    ended: trio.Event  # set once the exit was seen or the entry forgotten


class ExitWatcher:
    """Watches alive entries given to `watch`; an exit calls `on_exit(entry)`."""

    def __init__(
        self,
        probe: Probe,
        on_exit: Callable[[Proc], object],
        initial: Callable[[], Iterable[Proc]] = tuple,
        *,
        enabled: bool = True,
        fd_reserve: int = 0,
    ) -> None:
        self.probe = probe
        self.on_exit = on_exit
        self.initial = initial
        self.enabled = enabled and AVAILABLE
        self.fd_reserve = fd_reserve
        self._held: dict[int, _Held] = {}
        self._nursery: trio.Nursery | None = None
        self._warned: set[int] = set()

    @property
    def watched(self) -> int:
        return len(self._held)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            for p in list(self.initial()):
                self.watch(p)
            await trio.sleep_forever()

    def watch(self, proc: Proc) -> None:
        """Start watching an alive entry (no-op when watched already or disabled)."""
        if not self.enabled or self._nursery is None or not proc.alive or proc.id in self._held:
            return
        try:
            pidfd = os.pidfd_open(proc.pid)
        except ProcessLookupError:
            self.on_exit(proc)
            return
        except OSError as e:
            self._warn(e.errno or 0, proc, e.strerror or errno.errorcode.get(e.errno or 0, "?"))
            return
        if pidfd >= descriptor_limit() - self.fd_reserve:
            # Descriptors are allocated lowest first: this many are in use already, and
            # the rest are kept for the listener, connections, the journal and snapshots.
            os.close(pidfd)
            self._warn(-1, proc, f"the last {self.fd_reserve} descriptors are reserved")
            return
        if not self.probe.is_alive(proc.pid, proc.started_at):
            os.close(pidfd)
            self.on_exit(proc)
            return
        held = _Held(proc, pidfd, trio.CancelScope(), trio.Event())
        self._held[proc.id] = held
        self._nursery.start_soon(self._wait, held)

    def _warn(self, kind: int, proc: Proc, why: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("cannot watch pid %d (%s): polling it instead", proc.pid, why)

    def forget(self, proc_id: int) -> None:
        held = self._held.pop(proc_id, None)
        if held is not None:
            held.scope.cancel()
            held.ended.set()

    def _holding(self, proc: Proc) -> _Held | None:
        held = self._held.get(proc.id)
        return held if held is not None and same_entry(held.proc, proc) else None

    def pidfd(self, proc: Proc) -> int | None:
        """The pidfd held for this entry, as that very process; None when it is not
        watched (gone, polled, or another entry has its id now).  Valid until the next
        checkpoint: use it at once, on the trio thread."""
        held = self._holding(proc)
        return None if held is None else held.pidfd

    async def wait_exit(self, proc: Proc) -> bool:
        """Wait until this entry's process has exited (or the entry was forgotten);
        False at once when it is not watched, for the caller to probe instead."""
        held = self._holding(proc)
        if held is None:
            return False
        await held.ended.wait()
        return True

    async def _wait(self, held: _Held) -> None:
        proc = held.proc
        try:
            with held.scope:
                await trio.lowlevel.wait_readable(held.pidfd)
                if self._held.get(proc.id) is held:  # not forgotten meanwhile
                    del self._held[proc.id]
                    self.on_exit(proc)
        finally:
            if self._held.get(proc.id) is held:
                del self._held[proc.id]
            held.ended.set()
            os.close(held.pidfd)
