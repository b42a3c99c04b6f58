"""Reaping the daemon's children: which of them entries track (`Children`), and
`reap_all`, which reaps every exited child (no zombie is ever left) and says how each
ended.  Blocking only for the few system calls it makes; no trio beyond the Event a
child's end sets."""

from __future__ import annotations

import os
from collections.abc import Callable

import attrs
import trio

from goproc import supervision
from goproc.daemon.spawning import Started
from goproc.model import Proc

_SIGNALLED = (os.CLD_KILLED, os.CLD_DUMPED)


@attrs.define
class Child:
    entry_id: int
    popen: Started
    ended: trio.Event = attrs.Factory(trio.Event)


class Children:
    """The daemon's children that entries track, by pid."""

    def __init__(self) -> None:
        self.by_pid: dict[int, Child] = {}

    def owns(self, proc: Proc) -> bool:
        """Whether this entry's process is a child of ours (its exit is reaped here)."""
        child = self.by_pid.get(proc.pid)
        return child is not None and child.entry_id == proc.id

    def reaped_here(self, proc: Proc) -> bool:
        """Whether this entry's exit is the reaper's to record: a child of ours, or an
        orphan re-parented to us that has exited and waits to be reaped."""
        return self.owns(proc) or zombie_child(proc.pid)

    def of(self, proc: Proc) -> Child | None:
        return self.by_pid.get(proc.pid) if self.owns(proc) else None


def zombie_child(pid: int) -> bool:
    """Whether `pid` is a child of this process that has exited, not yet reaped."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        state, ppid = data[data.rindex(b")") + 2 :].split()[:2]
    except (OSError, ValueError):
        return False
    return state == b"Z" and int(ppid) == os.getpid()


@attrs.frozen
class Reaped:
    pid: int
    started_at: float | None
    exit_code: int | None
    exit_signal: int | None


def reap_all(start_time: Callable[[int], float | None]) -> list[Reaped]:
    """Reap every exited child, each one's start time read while it is a zombie."""
    out: list[Reaped] = []
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            break
        if info is None:
            break
        started = start_time(info.si_pid)
        try:
            os.waitid(os.P_PID, info.si_pid, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            continue
        code, sig = supervision.exit_status(
            info.si_code, info.si_status, os.CLD_EXITED, signalled=_SIGNALLED
        )
        out.append(Reaped(info.si_pid, started, code, sig))
    return out
