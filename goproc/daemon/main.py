"""`goproc daemon`: take the lock, bind the socket, run the daemon, clean up.

One daemon per state dir: an fcntl lock on `goproc.lock` decides, not the PID file, so
files left by a crashed daemon never block a start.  `goproc.daemon.wiring` builds and
runs the parts; if any of them fails the daemon stops with a message and exit 1.
SIGINT/SIGTERM stop it cleanly (see wiring); then the socket and PID file are removed,
exit 0.  A state dir with earlier state but no snapshot that loads is refused (exit 1,
one line naming the files) unless `fresh` (`--fresh`) allows an empty start.
Everything here runs before or after the event loop, synchronously.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import signal
import socket as stdsocket
import stat
import sys
import time
from pathlib import Path

import trio

from goproc import paths
from goproc.config import Config
from goproc.daemon import wiring
from goproc.daemon.sockets import LineListener
from goproc.store.files import write_private
from goproc.store.generations import UnusableState

log = logging.getLogger("goproc.daemon")

FORCE_GRACE = 5.0  # seconds a running daemon gets to stop on --force before SIGKILL
LOCK = "goproc.lock"
SUN_PATH_MAX = 107  # bytes of a UNIX socket path (sockaddr_un.sun_path, less its NUL)


class StartError(Exception):
    """The daemon cannot start; the message says why."""


def run_daemon(config: Config, *, force: bool = False, fresh: bool = False) -> int:
    """Run in the foreground until stopped; returns the exit code."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="goproc daemon: %(levelname)s: %(message)s"
    )
    socket_path = paths.socket_path()
    state_dir = paths.state_dir()
    try:
        _make_private_dir(socket_path.parent)
        _make_private_dir(state_dir)
        lock_fd = _take_lock(state_dir, socket_path, force)
    except StartError as e:
        print(f"goproc: {e}", file=sys.stderr)
        return 1
    pid_file = paths.pid_file(socket_path)
    try:
        sock = _bind(socket_path)
    except StartError as e:
        os.close(lock_fd)
        print(f"goproc: {e}", file=sys.stderr)
        return 1
    try:
        write_private(pid_file, f"{os.getpid()}\n".encode())
        trio.run(_serve, config, sock, socket_path, state_dir, fresh)
        return 0
    except UnusableState as e:  # raised before serving: nothing was changed
        print(f"goproc: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl+C before the signal handler was in place
        log.info("interrupted while starting")
        return 130
    except BaseExceptionGroup as eg:  # a supervised task failed: never half alive
        for exc in _leaves(eg):
            log.critical(
                "stopping: a daemon task failed: %s: %s", type(exc).__name__, exc, exc_info=exc
            )
        return 1
    except Exception as e:
        log.critical("stopping: %s: %s", type(e).__name__, e, exc_info=e)
        return 1
    finally:
        for path in (socket_path, pid_file):
            with contextlib.suppress(OSError):
                path.unlink()
        os.close(lock_fd)


def _leaves(eg: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for e in eg.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out


# ---- start-up helpers (synchronous, before the event loop) ------------------------------


async def _serve(
    config: Config, sock: stdsocket.socket, socket_path: Path, state_dir: Path, fresh: bool
) -> None:
    listener = LineListener(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
    await wiring.serve(config, listener, socket_path, state_dir, fresh)


def _make_private_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise StartError(f"cannot create {path}: {e.strerror}") from None


def _take_lock(state_dir: Path, socket_path: Path, force: bool) -> int:
    """Hold `goproc.lock` in the state dir for the daemon's life; returns its fd.
    The lock file names the holder (pid and socket) for the "already running" message."""
    path = state_dir / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = None
    killed = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder_pid, holder_socket = _read_holder(path)
            if not force:
                os.close(fd)
                raise StartError(
                    f"already running (pid {holder_pid}, socket {holder_socket}); "
                    "use 'goproc daemon --force' to replace it"
                ) from None
            if deadline is None:
                log.warning("stopping the running daemon (pid %s)", holder_pid)
                _signal(holder_pid, signal.SIGTERM)
                deadline = time.monotonic() + FORCE_GRACE
            elif time.monotonic() > deadline and not killed:
                log.warning("daemon pid %s did not stop in %ss: SIGKILL", holder_pid, FORCE_GRACE)
                _signal(holder_pid, signal.SIGKILL)
                killed = True
                deadline = time.monotonic() + FORCE_GRACE
            elif time.monotonic() > deadline:
                os.close(fd)
                raise StartError(f"the running daemon (pid {holder_pid}) does not let go") from None
            time.sleep(0.05)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n{socket_path}\n".encode(), 0)
    return fd


def _read_holder(path: Path) -> tuple[int | None, str]:
    try:
        pid_text, _, sock = path.read_text().partition("\n")
        return int(pid_text), sock.strip() or "?"
    except (OSError, ValueError):
        return None, "?"


def _signal(pid: int | None, sig: int) -> None:
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _bind(path: Path) -> stdsocket.socket:
    """A listening socket at `path`, mode 0600.  A leftover socket is replaced, unless
    a daemon still answers on it (one with another state dir); anything else at the
    path (a file, a symlink) is left alone and refused."""
    if path.exists() or path.is_symlink():
        kind = path.lstat().st_mode
        if not stat.S_ISSOCK(kind):  # never delete what is not a socket: say so instead
            what = "a symlink" if stat.S_ISLNK(kind) else "a file that is not a socket"
            raise StartError(f"{path} is {what}; remove it or set GOPROC_SOCKET to another path")
        probe = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink(missing_ok=True)  # stale: nobody listens
        else:
            raise StartError(f"another goproc daemon listens on {path}")
        finally:
            probe.close()
    sock = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as e:
        sock.close()
        size = len(os.fsencode(path))
        if e.errno in (None, errno.EINVAL, errno.ENAMETOOLONG) and size > SUN_PATH_MAX:
            raise StartError(
                f"cannot bind {path}: the path is {size} bytes, and a UNIX socket path is "
                f"at most {SUN_PATH_MAX}; set GOPROC_SOCKET (or GOPROC_RUNTIME_DIR) to a "
                "shorter one"
            ) from None
        raise StartError(f"cannot bind {path}: {e.strerror or e}") from None
    finally:
        os.umask(old_umask)
    sock.listen(256)
    return sock
