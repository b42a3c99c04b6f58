"""`goproc daemon`: take the lock, bind the socket, run the nursery, clean up.

One daemon per state dir: an fcntl lock on `goproc.lock` decides, not the PID file, so
files left by a crashed daemon never block a start.  The nursery supervises the server,
the liveness ticker, the journal committer and the snapshot writer; if any of them fails
the whole daemon stops with a message and exit 1.  SIGINT/SIGTERM stop it cleanly:
no more accepts, requests in flight finish, the snapshot is flushed, the socket and PID
file are removed, exit 0.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import logging
import os
import signal
import socket as stdsocket
import sys
import time
from pathlib import Path

import trio

from goproc import paths
from goproc.config import Config
from goproc.context import Context
from goproc.daemon.events import EventBus
from goproc.daemon.exits import ExitWatcher, raise_fd_limit
from goproc.daemon.liveness import Liveness
from goproc.daemon.server import Server
from goproc.daemon.store import Journal, SnapshotWriter, load_state
from goproc.probe import OsProbe, boot_id
from goproc.registry import Registry

log = logging.getLogger("goproc.daemon")

FORCE_GRACE = 5.0  # seconds a running daemon gets to stop on --force before SIGKILL
LOCK = "goproc.lock"


class StartError(Exception):
    """The daemon cannot start; the message says why."""


def run_daemon(config: Config, *, force: bool = False) -> int:
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
        _write_private(pid_file, f"{os.getpid()}\n".encode())
        trio.run(_main, config, sock, socket_path, state_dir)
        return 0
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


async def _main(config: Config, sock: stdsocket.socket, socket_path: Path, state_dir: Path) -> None:
    registry = Registry()
    started = time.perf_counter()
    gc.disable()  # loading makes many objects and frees none: no point in collecting
    try:
        loaded = await trio.to_thread.run_sync(load_state, state_dir, registry)
    finally:
        gc.enable()
    gc.freeze()  # the loaded entries are long-lived: keep them out of every collection
    log.info(
        "loaded %d entries (%d journal records) in %.2fs",
        len(registry),
        loaded.replayed,
        time.perf_counter() - started,
    )
    for warning in loaded.warnings:
        log.warning("%s", warning)
    journal = Journal(
        state_dir,
        loaded.next_gen,
        fsync=config.journal_fsync,
        sync_interval=config.journal_sync_interval,
    )
    # Start times are anchored on one boot time per boot: the one the snapshot kept, if
    # it was taken in this boot (see goproc.model.START_TOLERANCE).
    this_boot = boot_id()
    kept = loaded.boot
    probe = OsProbe(kept["time"] if kept and this_boot and kept["id"] == this_boot else None)
    boot = {"id": this_boot, "time": probe.boot_time} if this_boot else None
    writer = SnapshotWriter(state_dir, registry, journal, config.snapshot_delay, boot)
    ctx = Context(
        registry=registry,
        probe=probe,
        journal=journal,
        on_change=writer.mark_dirty,
        bus=EventBus(config.event_queue),
    )
    liveness = Liveness(
        ctx, interval=config.liveness_interval, last_seen_interval=config.last_seen_interval
    )
    fd_limit = raise_fd_limit()
    watcher = ExitWatcher(ctx, enabled=config.exit_watch == "auto")
    ctx.watcher = watcher
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    server = Server(listener, ctx, config)
    ctx.stats = lambda: {
        "socket": str(socket_path),
        "state_dir": str(state_dir),
        "snapshot_writes": writer.writes,
        "sweeps": liveness.sweeps,
        "last_sweep_seconds": round(liveness.last_sweep_seconds, 6),
        "connections": server.connections,
        "exit_watch": "pidfd" if watcher.enabled else "poll",
        "watched": watcher.watched,
        "subscriptions": len(ctx.bus.subscriptions),
        "fd_limit": fd_limit,
    }
    # Signals are ours before the first request can be served.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await liveness.sweep()  # answers are right from the first request
            if loaded.fresh:
                await writer.flush()  # a first run: the snapshot exists from the start
            elif loaded.replayed or loaded.warnings:
                writer.mark_dirty()  # fold the replayed journal soon, in the background
            await nursery.start(watcher.run)
            await nursery.start(writer.run)
            await nursery.start(liveness.run)
            await nursery.start(server.run)
            log.info(
                "listening on %s (pid %d, %d entries, state in %s)",
                socket_path,
                os.getpid(),
                len(registry),
                state_dir,
            )
            async for signum in signals:
                log.info("%s: stopping", signal.Signals(signum).name)
                break
            server.stop()
            with trio.move_on_after(server.grace + 1):
                while server.connections:
                    await trio.sleep(0.01)
            try:
                await writer.flush()
            except OSError as e:  # e.g. a full disk: the journal still holds every change
                log.warning("could not write the final snapshot (%s); the journal keeps it", e)
            nursery.cancel_scope.cancel()
    log.info("stopped")


# ---- start-up helpers (synchronous, before the event loop) ------------------------------


def _write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        os.write(fd, data)
    finally:
        os.close(fd)


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
    """A listening socket at `path`, mode 0600.  A leftover socket file is replaced,
    unless a daemon still answers on it (one with another state dir)."""
    if path.exists() or path.is_symlink():
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
        hint = " (path too long for a UNIX socket)" if e.errno == errno.EINVAL else ""
        raise StartError(f"cannot bind {path}: {e.strerror}{hint}") from None
    finally:
        os.umask(old_umask)
    sock.listen(256)
    return sock
