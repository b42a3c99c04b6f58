"""Event-driven exit detection: one pidfd per alive entry, waited on by trio.

Linux only (`os.pidfd_open`); elsewhere, when disabled (`exit_watch: "poll"`), or when a
pidfd cannot be opened (old kernel, EMFILE, EPERM), or would take one of the last
`fd_reserve` descriptors, the entry is left to the liveness ticker's poll, with one
warning per kind of failure.  The pidfd is opened before the
identity check, so it refers to the very process that was checked.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import sys
from collections.abc import Callable, Iterable

import trio

from goproc.daemon.probe import Probe
from goproc.model import Proc

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
        self._scopes: dict[int, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        self._warned: set[int] = set()

    @property
    def watched(self) -> int:
        return len(self._scopes)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            for p in list(self.initial()):
                self.watch(p)
            await trio.sleep_forever()

    def watch(self, proc: Proc) -> None:
        """Start watching an alive entry (no-op when watched already or disabled)."""
        if not self.enabled or self._nursery is None or not proc.alive or proc.id in self._scopes:
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
        scope = trio.CancelScope()
        self._scopes[proc.id] = scope
        self._nursery.start_soon(self._wait, proc, pidfd, scope)

    def _warn(self, kind: int, proc: Proc, why: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("cannot watch pid %d (%s): polling it instead", proc.pid, why)

    def forget(self, proc_id: int) -> None:
        scope = self._scopes.pop(proc_id, None)
        if scope is not None:
            scope.cancel()

    async def _wait(self, proc: Proc, pidfd: int, scope: trio.CancelScope) -> None:
        try:
            with scope:
                await trio.lowlevel.wait_readable(pidfd)
                if self._scopes.get(proc.id) is scope:  # not forgotten meanwhile
                    del self._scopes[proc.id]
                    self.on_exit(proc)
        finally:
            if self._scopes.get(proc.id) is scope:
                del self._scopes[proc.id]
            os.close(pidfd)
