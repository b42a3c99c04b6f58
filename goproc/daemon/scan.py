"""What `/proc` says of every process, read the way `pgrep` reads it: for finding
processes by name, command line, user, parent or cgroup (`goproc.matching`).

`scan` lists `/proc` and reads each process's `stat` (name, state, parent, flags, start
time) and `status` (effective uid), and its `cmdline` only when asked.  A process that
ends while it is read is left out.  Blocking: run it in a worker thread.  Linux only
(elsewhere `scan` finds nothing: discovery needs `/proc`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from attrs import frozen

PF_KTHREAD = 0x00200000  # a kernel thread (include/linux/sched.h)
_GONE = (FileNotFoundError, ProcessLookupError)


@frozen
class Seen:
    """One process as `/proc` shows it."""

    pid: int
    ppid: int
    euid: int
    start_ticks: int  # clock ticks after boot: `pgrep -n`/`-o` compare these
    comm: bytes  # the name: at most 15 bytes, as the kernel keeps it
    cmdline: bytes | None  # argv joined by spaces (None: not read); b"" for none
    kthread: bool
    zombie: bool


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def pids_now(proc: str = "/proc") -> list[int]:
    """Every process id `/proc` lists now (threads are not listed there)."""
    try:
        names = os.listdir(proc)
    except OSError:
        return []
    return [int(n) for n in names if n.isdigit()]


def seen(pid: int, *, cmdline: bool, proc: str = "/proc") -> Seen | None:
    """The process `pid` as `/proc` shows it; None when it is gone or unreadable."""
    base = f"{proc}/{pid}/"
    try:
        stat = _read(base + "stat")
        status = _read(base + "status")
        argv = _read(base + "cmdline") if cmdline else None
    except _GONE:
        return None
    except PermissionError:
        return None
    open_at, close_at = stat.find(b"("), stat.rfind(b")")
    fields = stat[close_at + 2 :].split()
    try:
        euid = int(status.split(b"\nUid:", 1)[1].split()[1])
        return Seen(
            pid=pid,
            ppid=int(fields[1]),
            euid=euid,
            start_ticks=int(fields[19]),
            comm=stat[open_at + 1 : close_at],
            cmdline=None if argv is None else argv.rstrip(b"\0").replace(b"\0", b" "),
            kthread=bool(int(fields[6]) & PF_KTHREAD),
            zombie=fields[0] in (b"Z", b"X"),
        )
    except (IndexError, ValueError):
        return None


def scan(*, cmdline: bool, pids: Iterable[int] | None = None, proc: str = "/proc") -> list[Seen]:
    """Every process (or those of `pids`) still there when read, by pid."""
    out = []
    for pid in sorted(pids_now(proc) if pids is None else pids):
        found = seen(pid, cmdline=cmdline, proc=proc)
        if found is not None:
            out.append(found)
    return out


def cgroup_pids(path: str) -> list[int]:
    """The processes of a cgroup v2 directory (its `cgroup.procs`), not of its children;
    OSError when it is not one."""
    data = _read(os.path.join(path, "cgroup.procs"))
    return sorted({int(line) for line in data.split() if line.isdigit()})
