"""`goproc.lock`: one daemon per state dir, and what `--force` may signal.

The lock is an `flock` on `goproc.lock`, held for the daemon's life.  The file's text
(the holder's pid and socket) is for messages only: it may be a lie, or the pid of a
daemon in another PID namespace, which here names some unrelated process.  So `--force`
signals the process that /proc/locks names as holding the flock on that very file (its
device and inode; the pid as seen from our namespace), and only when it is a goproc
daemon (`python -m goproc.daemon`) of our uid; else it refuses, signalling nothing.
The signal goes through a pidfd opened before the checks, so a pid reused in between
is never hit.  Synchronous, before the event loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from goproc.daemon.places import StartError
from goproc.store.files import open_ours

log = logging.getLogger("goproc.daemon")

LOCK = "goproc.lock"
FORCE_GRACE = 5.0  # seconds a running daemon gets to stop on --force before SIGKILL
PROC_LOCKS = "/proc/locks"


def take_lock(state_dir: Path, socket_path: Path, force: bool) -> int:
    """Hold `goproc.lock` in the state dir for the daemon's life; returns its fd.
    The lock file names the holder (pid and socket) for the "already running" message."""
    path = state_dir / LOCK
    try:
        fd = open_ours(path, os.O_RDWR | os.O_CREAT)
    except OSError as e:
        raise StartError(f"cannot open {path}: {e.strerror}") from None
    try:
        if not _try_lock(fd):
            if not force:
                pid, sock = _read_holder(fd)
                raise StartError(
                    f"already running (pid {pid}, socket {sock}); "
                    "use 'goproc daemon --force' to replace it"
                )
            _stop_holder(fd, path)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{socket_path}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait_lock(fd: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not _try_lock(fd):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _stop_holder(fd: int, path: Path) -> None:
    """SIGTERM, then SIGKILL, to the verified holder of the lock on `fd`, until the
    lock is ours; StartError when the holder cannot be verified or does not let go."""
    holders = list(lock_holders(fd))
    if not holders:
        if _wait_lock(fd, 0.2):  # it let go meanwhile
            return
        raise StartError(
            f"cannot stop what holds {path}: no process holding it is visible here "
            "(a daemon in another PID namespace or on another machine?); stop it there"
        )
    pid = holders[0]
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        if _wait_lock(fd, FORCE_GRACE):
            return
        raise StartError(f"cannot stop what holds {path}: pid {pid} is gone") from None
    try:
        problem = daemon_problem(pid) or (None if pid in lock_holders(fd) else "let it go")
        if problem is not None:
            raise StartError(f"cannot stop what holds {path}: pid {pid} {problem}")
        named, _ = _read_holder(fd)
        if named != pid:
            log.warning("the lock file names pid %s, but pid %s holds the lock", named, pid)
        log.warning("stopping the running daemon (pid %s)", pid)
        _send(pidfd, signal.SIGTERM)
        if _wait_lock(fd, FORCE_GRACE):
            return
        log.warning("daemon pid %s did not stop in %ss: SIGKILL", pid, FORCE_GRACE)
        _send(pidfd, signal.SIGKILL)
        if not _wait_lock(fd, FORCE_GRACE):
            raise StartError(f"the running daemon (pid {pid}) does not let go")
    finally:
        os.close(pidfd)


def lock_holders(fd: int) -> Iterator[int]:
    """The pids /proc/locks names as holding an flock on the file `fd` has open (0, a
    holder not visible from our PID namespace, is left out)."""
    st = os.fstat(fd)
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open(PROC_LOCKS) as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5367205 0 EOF"; waiters have "->"
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == where:
            with contextlib.suppress(ValueError):
                if (pid := int(fields[4])) > 0:
                    yield pid


def daemon_problem(pid: int) -> str | None:
    """Why `pid` is not a goproc daemon of our uid, or None."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
        with open(f"/proc/{pid}/status", "rb") as f:
            uid_line = next(x for x in f.read().splitlines() if x.startswith(b"Uid:"))
    except (OSError, StopIteration):
        return "is gone"
    uid = int(uid_line.split()[1])
    if uid != os.getuid():
        return f"is of uid {uid}, not {os.getuid()}"
    if not any(a == b"-m" and b == b"goproc.daemon" for a, b in itertools.pairwise(args)):
        return "is not a goproc daemon"
    return None


def _read_holder(fd: int) -> tuple[int | None, str]:
    try:
        pid_text, _, sock = os.pread(fd, 4096, 0).decode().partition("\n")
        return int(pid_text), sock.strip() or "?"
    except (OSError, ValueError):
        return None, "?"


def _send(pidfd: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, sig)
