"""One reading of a process's CPU, memory, io and descriptors (`goproc.metrics.Reading`),
for `goproc.daemon.probe.OsProbe.sample`.

On Linux straight from `/proc/<pid>/stat`, `io` and a count of `fd/`, with
`os.open`/`os.read` (a buffered file object costs more than the read); elsewhere from
psutil.  `stat` holds the virtual size and the resident pages too (the very figures
`statm` and `status`'s VmRSS give), so `statm` is not read: one file less a process.
The process's start time comes from the very `stat` read its numbers come from, so a
reading is never of a process that took the pid over.  Blocking: called in worker
threads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import psutil

from goproc.metrics import Reading
from goproc.model import same_start

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_GONE = (FileNotFoundError, ProcessLookupError)


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def procfs_reading(
    pid: int, started_at: float, ticks: int, boot_time: float, full: bool
) -> Reading | None:
    """The reading of process (pid, started_at) from /proc; None when it is gone, a
    zombie, or another process.  `full`: read io counters and count descriptors too.
    Raises PermissionError when /proc will not tell (the caller asks psutil)."""
    base = f"/proc/{pid}/"
    try:
        stat = _read(base + "stat")
    except _GONE:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split(None, 22)  # up to rss, no further
    if fields[0] in (b"Z", b"X"):
        return None
    if not same_start(int(fields[19]) / ticks + boot_time, started_at):
        return None
    read_bytes = write_bytes = fds = None
    if full:
        try:
            io = _read(base + "io").split()
            read_bytes = int(io[io.index(b"read_bytes:") + 1])
            write_bytes = int(io[io.index(b"write_bytes:") + 1])
        except (PermissionError, ValueError, IndexError):
            pass  # not ours to read, or a kernel without io accounting
        except _GONE:
            return None
        try:
            fds = len(os.listdir(base + "fd"))
        except PermissionError:
            pass
        except _GONE:
            return None
    return Reading(
        (int(fields[11]) + int(fields[12])) / ticks,  # utime + stime
        int(fields[21]) * PAGE_SIZE,  # rss, in pages
        int(fields[20]),  # vsize, in bytes
        int(fields[17]),  # num_threads
        read_bytes,
        write_bytes,
        fds,
    )


def psutil_reading(
    pid: int, started_at: float, start_of: Callable[[psutil.Process], float], full: bool
) -> Reading | None:
    """The same reading through psutil (`start_of`: the probe's start time of a
    process); None when gone, a zombie or another process."""
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            if p.status() == psutil.STATUS_ZOMBIE or not same_start(start_of(p), started_at):
                return None
            cpu = p.cpu_times()
            mem = p.memory_info()
            threads = p.num_threads()
            read_bytes = write_bytes = fds = None
            if full:
                try:
                    io = p.io_counters()  # not on every OS (AttributeError there)
                    read_bytes, write_bytes = io.read_bytes, io.write_bytes
                except (AttributeError, psutil.AccessDenied, NotImplementedError):
                    pass
                with contextlib.suppress(AttributeError, psutil.AccessDenied):
                    fds = p.num_fds()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return None
    return Reading(
        cpu_seconds=cpu.user + cpu.system,
        rss_bytes=mem.rss,
        vms_bytes=mem.vms,
        threads=threads,
        read_bytes=read_bytes,
        write_bytes=write_bytes,
        fds=fds,
    )
