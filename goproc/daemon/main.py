"""`goproc daemon`: check the dirs, take the lock, bind the socket, run the daemon, clean up.

A listening socket passed by socket activation (`goproc.daemon.activation`) is used
instead of binding one; its path names the runtime dir, and it is left in place at exit
(the service manager owns it).  systemd's `NOTIFY_SOCKET` is read here, before anything
else, and told of readiness by wiring (`goproc.daemon.notify`).

The runtime and state dirs are used only when they are ours and private, and the files
in them ours (`goproc.daemon.places`).  One daemon per state dir: an flock on
`goproc.lock` decides, not the PID file, so files left by a crashed daemon never block
a start (`goproc.daemon.lock`, which also says what `--force` may signal).
`goproc.daemon.wiring` builds and runs the parts; if any of them fails the daemon stops
with a message and exit 1.
The HTTP listener's socket (`http_listen`) is bound here too, before the event loop:
an address in use stops the start with one line (exit 1).
SIGINT/SIGTERM stop it cleanly (see wiring); then the socket, the PID file and a
`unix:` HTTP socket are removed, exit 0.  A state dir with earlier state but no snapshot
that loads is refused (exit 1, one line naming the files) unless `fresh` (`--fresh`)
allows an empty start.
Everything here runs before or after the event loop, synchronously.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket as stdsocket
import stat
import sys
from pathlib import Path

import trio

from goproc import paths
from goproc.config import Config
from goproc.daemon import activation, places, wiring
from goproc.daemon.http.binding import bind_http
from goproc.daemon.lock import take_lock
from goproc.daemon.notify import Notifier
from goproc.daemon.places import StartError
from goproc.daemon.sockets import LineListener
from goproc.store.files import replace_private
from goproc.store.generations import UnusableState

log = logging.getLogger("goproc.daemon")

SUN_PATH_MAX = 107  # bytes of a UNIX socket path (sockaddr_un.sun_path, less its NUL)


def run_daemon(config: Config, *, force: bool = False, fresh: bool = False) -> int:
    """Run in the foreground until stopped; returns the exit code."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="goproc daemon: %(levelname)s: %(message)s"
    )
    notifier = Notifier.from_environment()
    try:
        passed = activation.passed_socket()
        socket_path = _passed_path(passed) if passed else paths.socket_path()
        # Absolute: `status` tells clients where it is (`goproc run` makes logs there).
        state_dir = paths.state_dir().absolute()
        runtime_variable = places.LISTEN_STREAM if passed else paths.runtime_variable()
        places.prepare(socket_path.parent, runtime_variable, socket_path.name)
        places.prepare(state_dir, "GOPROC_STATE_DIR")
        lock_fd = take_lock(state_dir, socket_path, force)
    except (StartError, paths.PlaceError) as e:
        print(f"goproc: {e}", file=sys.stderr)
        return 1
    pid_file = paths.pid_file(socket_path)
    http_path = _unix_path(config.http_listen)
    http_sock = None
    try:
        http_sock = bind_http(config.http_listen) if config.http_listen is not None else None
        sock = passed or _bind(socket_path)
    except StartError as e:
        os.close(lock_fd)
        if http_sock is not None and http_path is not None:
            http_path.unlink(missing_ok=True)  # ours: bound just now
        print(f"goproc: {e}", file=sys.stderr)
        return 1
    try:
        replace_private(pid_file, f"{os.getpid()}\n".encode())
        trio.run(_serve, config, sock, socket_path, state_dir, fresh, notifier, http_sock)
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
        # Stopping now: a SIGINT or SIGTERM repeated by an impatient supervisor must not
        # kill the clean-up (Python resets its own handlers, not SIG_IGN, at exit).
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        # A passed socket's file is the service manager's: it listens there again.
        for path in (pid_file,) if passed else (socket_path, pid_file):
            with contextlib.suppress(OSError):
                path.unlink()
        if http_path is not None:
            with contextlib.suppress(OSError):
                http_path.unlink()
        os.close(lock_fd)


def _leaves(eg: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for e in eg.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out


# ---- start-up helpers (synchronous, before the event loop) ------------------------------


async def _serve(
    config: Config,
    sock: stdsocket.socket,
    socket_path: Path,
    state_dir: Path,
    fresh: bool,
    notifier: Notifier,
    http_sock: stdsocket.socket | None,
) -> None:
    listener = LineListener(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
    await wiring.serve(config, listener, socket_path, state_dir, fresh, notifier, http_sock)


def _unix_path(listen: str | None) -> Path | None:
    """The file of a `unix:` HTTP address, removed at exit."""
    return Path(listen[5:]) if listen is not None and listen.startswith("unix:") else None


def _passed_path(sock: stdsocket.socket) -> Path:
    """Where the passed socket is, warning when clients would not look there."""
    path = activation.socket_address(sock)
    log.info("using the socket passed by the service manager at %s", path)
    with contextlib.suppress(paths.PlaceError):
        default = paths.socket_path().absolute()
        if default != path:
            log.warning(
                "clients look for %s unless GOPROC_SOCKET (or GOPROC_RUNTIME_DIR) names %s",
                default,
                path,
            )
    return path


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
