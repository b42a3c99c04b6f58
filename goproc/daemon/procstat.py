"""One reading of a process's CPU, memory, io and descriptors (`goproc.metrics.Reading`),
for `goproc.daemon.probe.OsProbe.sample`.

On Linux straight from `/proc/<pid>/stat`, `io` and the descriptor count of `fd/`
(`ProcfsReader`); elsewhere from psutil (`psutil_reading`).  `stat` holds the virtual
size and the resident pages too (the very figures `statm` and `status`'s VmRSS give), so
`statm` is not read: one file less a process.

A process is the pair (pid, start time).  The start time comes from `stat`, read after
`io` and `fd/`: a process that still has the tracked start time then had the pid all
along, so those reads were of it too, and a reading is never of a process that took the
pid over.  A `stat` descriptor checked so is kept open and read again with `pread`
(one system call a reading instead of three): it refers to that very process for as
long as it is open, a read of it failing with ESRCH once the process is gone, so it
cannot be fooled by a pid that was reused.  Blocking: called in worker threads, one
sweep at a time.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
from collections.abc import Callable, Collection

import psutil

from goproc.metrics import Reading
from goproc.model import START_TOLERANCE, same_start

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_GONE = (FileNotFoundError, ProcessLookupError)
_FLAGS = os.O_RDONLY | os.O_CLOEXEC
_MAX_STAT = 4096  # 52 numbers and a 64-byte name at most; a short read would misparse
_NEW = tuple.__new__  # a `Reading` made without its Python-level __new__ (the hot path)
HOLD_ROOM = 1024  # descriptors kept free above the held ones (connections, files)


def read_proc(path: str) -> bytes:
    """A small /proc file whole, unbuffered (a file object costs more than the read)."""
    fd = os.open(path, _FLAGS)
    try:
        return os.read(fd, _MAX_STAT)
    finally:
        os.close(fd)


def _counts_fds_by_size() -> bool:
    """Whether stat(2) of /proc/PID/fd gives the number of open descriptors as its size
    (Linux 6.2 and later; 0 before), told from our own, which has some open."""
    try:
        return os.stat("/proc/self/fd").st_size > 0
    except OSError:
        return False


class _Held:
    """A `stat` descriptor held for one process, and what it read last."""

    __slots__ = ("fd", "reading", "started_at", "text")

    def __init__(self, started_at: float, fd: int, text: bytes, reading: Reading) -> None:
        self.started_at = started_at
        self.fd = fd
        self.text = text
        self.reading = reading  # of `text`, without io and descriptors


class ProcfsReader:
    """Readings from /proc, with the `stat` descriptors of the processes read held open.
    They come after the exit watcher's pidfds and the connections': one is held only
    while above it a descriptor per sampled process (its pidfd) and HOLD_ROOM more stay
    free.  `retain`, once per sweep, closes those of processes no longer sampled and
    those above that line; `close` all.  A process that did not run since its last
    reading (most of them, most of the time) reads the very same `stat`: its last
    reading stands, not parsed again."""

    def __init__(self, ticks: int, boot_time: float) -> None:
        self.ticks = ticks
        self.boot_time = boot_time
        self.hold_below = 0  # descriptors are held when numbered below this (see `retain`)
        self.fds_by_size = _counts_fds_by_size()
        self.has_io = os.path.exists("/proc/self/io")  # a kernel with io accounting
        self._held: dict[int, _Held] = {}  # by pid

    @property
    def held(self) -> int:
        return len(self._held)

    def reading(self, pid: int, started_at: float, full: bool) -> Reading | None:
        """The reading of process (pid, started_at); None when it is gone, a zombie, or
        another process.  `full`: read io counters and count descriptors too.  Raises
        PermissionError when /proc will not tell (the caller asks psutil)."""
        io_and_fds = None
        if full:
            try:
                io_and_fds = self._io_and_fds(pid)
            except _GONE:
                self._drop(pid)
                return None
        held = self._held.get(pid)
        if held is not None and held.started_at == started_at:
            try:
                text = os.pread(held.fd, _MAX_STAT, 0)
            except ProcessLookupError:  # that process is gone
                self._drop(pid)
                return None
            if text != held.text:
                reading = self._parse(text, started_at)
                if reading is None:
                    self._drop(pid)
                    return None
                held.text, held.reading = text, reading
            reading = held.reading
        else:
            reading = self._open(pid, started_at)
            if reading is None:
                return None
        return reading if io_and_fds is None else _NEW(Reading, (*reading[:4], *io_and_fds))

    def _parse(self, text: bytes, started_at: float) -> Reading | None:
        """`stat`'s numbers (no io, no descriptors); None for a zombie or a process
        that started at another time."""
        fields = text[text.rindex(b")") + 2 :].split(None, 22)  # up to rss, no further
        if fields[0] in (b"Z", b"X"):
            return None
        if abs(int(fields[19]) / self.ticks + self.boot_time - started_at) > START_TOLERANCE:
            return None  # `same_start`, inlined: this runs for every changed process
        return _NEW(
            Reading,
            (
                (int(fields[11]) + int(fields[12])) / self.ticks,  # utime + stime
                int(fields[21]) * PAGE_SIZE,  # rss, in pages
                int(fields[20]),  # vsize, in bytes
                int(fields[17]),  # num_threads
                None,
                None,
                None,
            ),
        )

    def _open(self, pid: int, started_at: float) -> Reading | None:
        """The reading through a new `stat` descriptor, kept when it is that process
        and there is room."""
        self._drop(pid)  # one held for another entry's process
        try:
            fd = os.open(f"/proc/{pid}/stat", _FLAGS)
        except _GONE:
            return None
        try:
            text = os.read(fd, _MAX_STAT)
            reading = self._parse(text, started_at)
        except _GONE:
            reading = None
        except BaseException:
            os.close(fd)
            raise
        if reading is not None and fd < self.hold_below:
            self._held[pid] = _Held(started_at, fd, text, reading)
        else:
            os.close(fd)
        return reading

    def _io_and_fds(self, pid: int) -> tuple[int | None, int | None, int | None]:
        base = f"/proc/{pid}/"
        read_bytes = write_bytes = fds = None
        if self.has_io:
            try:
                io = read_proc(base + "io").split()
                read_bytes = int(io[io.index(b"read_bytes:") + 1])
                write_bytes = int(io[io.index(b"write_bytes:") + 1])
            except (PermissionError, ValueError, IndexError):
                pass  # not ours to read
        if self.fds_by_size:
            # The size is told to anyone: counted only where listing is allowed (ours,
            # dumpable, or we are root), as where it is listed.
            st = os.stat(base + "fd")
            euid = os.geteuid()
            fds = st.st_size if st.st_uid == euid or euid == 0 else None
        else:
            with contextlib.suppress(PermissionError):
                fds = len(os.listdir(base + "fd"))
        return read_bytes, write_bytes, fds

    def _drop(self, pid: int) -> None:
        held = self._held.pop(pid, None)
        if held is not None:
            os.close(held.fd)

    def retain(self, pids: Collection[int]) -> None:
        """Only `pids` are sampled from now on: close the descriptors held for others,
        and those above the line (it moves with the limit and the number of `pids`)."""
        self.hold_below = below = _descriptor_limit() - len(pids) - HOLD_ROOM
        held = self._held
        for pid in [p for p, h in held.items() if h.fd >= below or p not in pids]:
            self._drop(pid)

    def close(self) -> None:
        self.hold_below = 0
        for pid in list(self._held):
            self._drop(pid)


def _descriptor_limit() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return sys.maxsize if soft == resource.RLIM_INFINITY else soft


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
