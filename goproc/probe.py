"""OS facts about a PID: does it exist, is it ours, when did it start, what is it.

The seam between goproc and the operating system: the registry never calls it, the
daemon's handlers and liveness ticker do.  `OsProbe` asks the kernel (through psutil);
tests of pure parts may use any object with the same two methods.
"""

from __future__ import annotations

import os
import signal
from typing import Protocol

import psutil

from goproc.errors import InvalidParams, NoSuchProcess, PermissionDenied
from goproc.model import ProcessFacts, same_start


class Probe(Protocol):
    def inspect(self, pid: int) -> ProcessFacts:
        """Facts about a live process; raises NoSuchProcess or PermissionDenied."""
        ...

    def is_alive(self, pid: int, started_at: float) -> bool:
        """Whether the process (pid, started_at) still runs: not gone, not a zombie,
        and its pid not taken over by another process."""
        ...

    def send_signal(self, pid: int, started_at: float, signum: int, *, group: bool) -> None:
        """Signal the process (pid, started_at), or its process group, only if it is
        still that very process; raises NoSuchProcess or PermissionDenied."""
        ...


class OsProbe:
    """The real probe: `kill(pid, 0)` for existence and ownership, psutil for the rest."""

    def inspect(self, pid: int) -> ProcessFacts:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise NoSuchProcess(f"no process with pid {pid}") from None
        except PermissionError:
            raise PermissionDenied(
                f"pid {pid} belongs to another user: goproc may only track its own processes"
            ) from None
        except OverflowError:
            raise InvalidParams(f"pid: {pid} is out of range") from None
        try:
            p = psutil.Process(pid)
            with p.oneshot():
                if p.status() == psutil.STATUS_ZOMBIE:
                    raise NoSuchProcess(f"pid {pid} has exited (a zombie not yet reaped)")
                started_at = p.create_time()
                try:
                    argv = p.cmdline()
                except (psutil.AccessDenied, psutil.ZombieProcess):
                    argv = []
        except psutil.NoSuchProcess:
            raise NoSuchProcess(f"no process with pid {pid}") from None
        except psutil.AccessDenied:
            raise PermissionDenied(f"pid {pid}: access denied") from None
        try:
            pgid: int | None = os.getpgid(pid)
        except OSError:
            pgid = None
        cmd = " ".join(argv) if argv else f"pid:{pid}"
        return ProcessFacts(pid=pid, started_at=started_at, cmd=cmd, pgid=pgid)

    def is_alive(self, pid: int, started_at: float) -> bool:
        try:
            p = psutil.Process(pid)
            with p.oneshot():
                if p.status() == psutil.STATUS_ZOMBIE:
                    return False
                return same_start(p.create_time(), started_at)
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            # Facts unreadable (hardened /proc): existence is all we can know.
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True

    def send_signal(self, pid: int, started_at: float, signum: int, *, group: bool) -> None:
        # A pidfd pins the process that holds the pid when it is opened; checking the
        # identity after opening it proves the pidfd is ours, so the signal cannot reach
        # a process that took the pid over.  Without pidfds the check-then-kill window
        # is as small as we can make it.
        pidfd = _pidfd_open(pid)
        try:
            if not self.is_alive(pid, started_at):
                raise NoSuchProcess(f"pid {pid} is no longer the tracked process")
            try:
                if group:
                    os.killpg(os.getpgid(pid), signum)
                elif pidfd is not None:
                    signal.pidfd_send_signal(pidfd, signum)
                else:
                    os.kill(pid, signum)
            except ProcessLookupError:
                raise NoSuchProcess(f"pid {pid} has exited") from None
            except PermissionError:
                raise PermissionDenied(f"not allowed to signal pid {pid}") from None
        finally:
            if pidfd is not None:
                os.close(pidfd)


def _pidfd_open(pid: int) -> int | None:
    """A pidfd for `pid` where the OS has them; None otherwise (or when it is gone)."""
    if not hasattr(os, "pidfd_open") or not hasattr(signal, "pidfd_send_signal"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None
