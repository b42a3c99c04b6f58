"""OS facts about a PID: does it exist, is it ours, when did it start, what is it.

The seam between goproc and the operating system: the registry never calls it, the
daemon's handlers, exit watcher and liveness ticker do.  `OsProbe` asks the kernel
(`/proc` on Linux, psutil elsewhere); fakes for in-process tests implement the same
`Probe` protocol, and one contract test holds them to the real one.
"""

from __future__ import annotations

import os
import select
import signal
import sys
from collections.abc import Collection
from typing import Protocol

import psutil

from goproc.daemon.procstat import ProcfsReader, psutil_reading, read_proc
from goproc.errors import InvalidValue, NoSuchProcess, PermissionDenied
from goproc.metrics import Reading
from goproc.model import ProcessFacts, same_start


class Probe(Protocol):
    def inspect(self, pid: int) -> ProcessFacts:
        """Facts about a live process; raises NoSuchProcess or PermissionDenied."""
        ...

    def is_alive(self, pid: int, started_at: float) -> bool:
        """Whether the process (pid, started_at) still runs: not gone, not a zombie,
        and its pid not taken over by another process."""
        ...

    def send_signal(
        self, pid: int, started_at: float, signum: int, *, group: bool, pidfd: int | None = None
    ) -> None:
        """Signal the process (pid, started_at), or its process group, only if it is
        still that very process; raises NoSuchProcess or PermissionDenied.  `pidfd`:
        one held since that process was checked (see `goproc.daemon.exits`), which pins it."""
        ...

    def sample(self, pid: int, started_at: float, *, full: bool = True) -> Reading | None:
        """The CPU, memory (and with `full` io and descriptors) of the process (pid,
        started_at); None when it is gone, a zombie or another process."""
        ...

    def keep_sampling(self, pids: Collection[int]) -> None:
        """Only these pids will be sampled from now on: let go of what is held to
        sample the others (called once per sweep, from the sweep's worker thread)."""
        ...


class OsProbe:
    """The real probe: `kill(pid, 0)` for existence and ownership, then the process's
    facts: from psutil in general; on Linux straight from `/proc/<pid>/stat` and
    `/proc/<pid>/cmdline`, with the boot time read once (psutil reads /proc/stat again
    for every process and builds an object per call).  Liveness sweeps probe every alive
    entry and `add` probes every process, so this is goproc's hottest path; psutil's
    start-time formula is kept, so both ways give the same start time.  Sampling holds
    a `stat` descriptor per sampled process (`goproc.daemon.procstat.ProcfsReader`)."""

    def __init__(self, boot_time: float | None = None, *, procfs: bool | None = None) -> None:
        """`procfs`: False asks psutil for everything, as off Linux (None: /proc where
        there is one)."""
        # The anchor of every start time: the boot time when this boot was first seen,
        # kept across restarts (the kernel's figure moves when the wall clock is set).
        self.boot_time = psutil.boot_time() if boot_time is None else boot_time
        self._clock_ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        has_procfs = sys.platform.startswith("linux") and os.path.exists("/proc/self/stat")
        self._procfs = has_procfs if procfs is None else procfs and has_procfs
        self._reader = ProcfsReader(self._clock_ticks, self.boot_time) if self._procfs else None

    def _stat(self, pid: int) -> tuple[bytes, int, float] | None:
        """(state letter, process group, start time) from /proc; None when gone."""
        try:
            data = read_proc(f"/proc/{pid}/stat")  # liveness: for every alive entry
        except (FileNotFoundError, ProcessLookupError):
            return None
        fields = data[data.rindex(b")") + 2 :].split()
        return fields[0], int(fields[2]), float(fields[19]) / self._clock_ticks + self.boot_time

    def start_time(self, pid: int) -> float | None:
        """Process `pid`'s start time, zombies' too (a child not yet reaped); None when
        it is gone or /proc cannot say."""
        if not self._procfs:
            return None
        try:
            stat = self._stat(pid)
        except (OSError, ValueError, IndexError):
            return None
        return None if stat is None else stat[2]

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
            raise InvalidValue(f"pid: {pid} is out of range") from None
        self._refuse_non_process(pid)
        if self._procfs:
            try:
                return self._inspect_procfs(pid)
            except (PermissionError, ValueError, IndexError):
                pass  # unreadable: psutil knows the other ways
        return self._inspect_psutil(pid)

    def _refuse_non_process(self, pid: int) -> None:
        """A pid that is the daemon itself, or a thread id (a task that is not its
        thread group's leader: /proc answers for it too), is no process to track."""
        own = os.getpid()
        tgid = _thread_group(pid) if self._procfs else None
        if pid == own or tgid == own:
            raise InvalidValue(f"pid: {pid} is this goproc daemon itself")
        if tgid is not None and tgid != pid:
            raise InvalidValue(f"pid: {pid} is a thread of process {tgid}, not a process")

    def _inspect_procfs(self, pid: int) -> ProcessFacts:
        stat = self._stat(pid)
        if stat is None:
            raise NoSuchProcess(f"no process with pid {pid}")
        state, pgid, started_at = stat
        if state in (b"Z", b"X"):
            raise NoSuchProcess(f"pid {pid} has exited (a zombie not yet reaped)")
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                raw = f.read()
        except (FileNotFoundError, ProcessLookupError):
            raise NoSuchProcess(f"no process with pid {pid}") from None
        # NUL-separated argv, or one string when the process rewrote its title.
        text = raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="surrogateescape")
        return ProcessFacts(pid=pid, started_at=started_at, cmd=text or f"pid:{pid}", pgid=pgid)

    def _inspect_psutil(self, pid: int) -> ProcessFacts:
        try:
            p = psutil.Process(pid)
            with p.oneshot():
                if p.status() == psutil.STATUS_ZOMBIE:
                    raise NoSuchProcess(f"pid {pid} has exited (a zombie not yet reaped)")
                started_at = self._psutil_start(p)
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
        if self._procfs:
            try:
                stat = self._stat(pid)
            except (OSError, ValueError, IndexError):
                stat = None  # unreadable: ask psutil below
            else:
                if stat is None:
                    return False
                state, _, start = stat
                return state not in (b"Z", b"X") and same_start(start, started_at)
        try:
            p = psutil.Process(pid)
            with p.oneshot():
                if p.status() == psutil.STATUS_ZOMBIE:
                    return False
                return same_start(self._psutil_start(p), started_at)
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

    def sample(self, pid: int, started_at: float, *, full: bool = True) -> Reading | None:
        if self._reader is not None:
            try:
                return self._reader.reading(pid, started_at, full)
            except (PermissionError, ValueError, IndexError):
                pass  # unreadable: psutil knows the other ways
        return psutil_reading(pid, started_at, self._psutil_start, full)

    def keep_sampling(self, pids: Collection[int]) -> None:
        if self._reader is not None:
            self._reader.retain(pids)

    @property
    def held(self) -> int:
        """How many `stat` descriptors the sampling holds (see `ProcfsReader`)."""
        return 0 if self._reader is None else self._reader.held

    def _psutil_start(self, p: psutil.Process) -> float:
        """psutil's start time on this probe's boot-time anchor (on Linux psutil adds
        the kernel's current boot time; elsewhere its figure is absolute)."""
        started: float = p.create_time()
        if sys.platform.startswith("linux"):
            started += self.boot_time - psutil.boot_time()
        return started

    def send_signal(
        self, pid: int, started_at: float, signum: int, *, group: bool, pidfd: int | None = None
    ) -> None:
        # A held pidfd (opened before the entry's identity was checked, kept since) pins
        # that very process: a signal through it cannot reach another, even one that got
        # the pid within the same clock tick (start times have 10 ms resolution).  Without
        # one, a pidfd opened now and checked by start time is the best there is; without
        # pidfds at all, the check-then-kill window is as small as we can make it.
        if pidfd is not None:
            _signal_held(pid, pidfd, signum, group=group)
            return
        pidfd = _pidfd_open(pid)
        try:
            if not self.is_alive(pid, started_at):
                raise NoSuchProcess(f"pid {pid} is no longer the tracked process")
            _deliver(pid, pidfd, signum, group=group)
        finally:
            if pidfd is not None:
                os.close(pidfd)


def _signal_held(pid: int, pidfd: int, signum: int, *, group: bool) -> None:
    """Signal through a held pidfd.  For the group, the pid is read while the pidfd
    says the process has not exited: until then the pid cannot be anyone else's."""
    if group and _has_exited(pidfd):
        raise NoSuchProcess(f"pid {pid} has exited")
    _deliver(pid, pidfd, signum, group=group)


def _has_exited(pidfd: int) -> bool:
    """A pidfd polls readable once its process has exited (poll: any fd number)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def _deliver(pid: int, pidfd: int | None, signum: int, *, group: bool) -> None:
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


def _thread_group(pid: int) -> int | None:
    """The thread group (process) of task `pid`, from /proc; None when unreadable."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def boot_id() -> str | None:
    """This boot's unique id (Linux), to tell whether a saved boot-time anchor still holds."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _pidfd_open(pid: int) -> int | None:
    """A pidfd for `pid` where the OS has them; None otherwise (or when it is gone)."""
    if not hasattr(os, "pidfd_open") or not hasattr(signal, "pidfd_send_signal"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None
