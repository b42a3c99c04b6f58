"""The daemon's side of the log pump (`goproc.logpump`): starting it when none answers,
and handing it a started command's pipe with its log file.  Blocking, but each call is
one message to a local process and its answer (microseconds; at most `TIMEOUT`).

The pump's socket is `logpump.<socket name>` in the runtime dir (private, checked at
start), made here and passed to the pump as a descriptor, so a connection made at once
waits in its backlog: no polling for the pump to come up.  A daemon restarted finds
the pump still running (it outlives the daemon, as the commands do) and talks to it
again.  When no pump can be had, the caller writes the files directly (no rotation).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
from pathlib import Path

from attrs import frozen

from goproc.daemon.spawning import Outputs, Started, start_log_pump
from goproc.model import LogFiles

log = logging.getLogger("goproc.pumping")

TIMEOUT = 2.0  # seconds a pump has to answer


class PumpError(Exception):
    """No pump took the stream; the message says why."""


@frozen
class Limits:
    """When a stream's file is rotated (`max_bytes`, 0: never) and how many rotated
    files are kept."""

    max_bytes: int
    keep: int


class PumpClient:
    """The connection to this daemon's log pump, made (and the pump started) on first
    use, and made again when the pump went away."""

    def __init__(self, socket_path: Path) -> None:
        self.path = str(socket_path.parent / f"logpump.{socket_path.name}")
        self._conn: socket.socket | None = None
        self._started: Started | None = None

    def hand_over(
        self, pipe: int, file: int, dir_fd: int, name: str, limits: Limits, *, fresh: bool
    ) -> None:
        """Have the pump feed the file `name` of `dir_fd` (whose descriptor `file` is
        open for writing) from the pipe's reading end.  The descriptors stay the
        caller's (the pump has its own copies); PumpError when no pump took them."""
        msg = json.dumps(
            {
                "op": "add",
                "name": name,
                "max_bytes": limits.max_bytes,
                "keep": limits.keep,
                "fresh": fresh,
            }
        ).encode()
        why = "no answer"
        for _ in range(2):  # a pump that exited just now: start one and try again
            try:
                conn = self._connected()
                socket.send_fds(conn, [msg], [pipe, file, dir_fd])
                answer = conn.recv(4096)
            except OSError as e:
                why = e.strerror or str(e)
                self.close()
                continue
            if not answer:
                why = "the pump hung up"
                self.close()
                continue
            reply = json.loads(answer)
            if reply.get("ok"):
                return
            raise PumpError(str(reply.get("error")))
        raise PumpError(why)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connected(self) -> socket.socket:
        if self._conn is not None:
            return self._conn
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        conn.settimeout(TIMEOUT)
        try:
            conn.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError):
            self._start_pump()
            conn.connect(self.path)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _start_pump(self) -> None:
        """A new pump, on a new socket at our path (one no pump answers at)."""
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):  # anything else is left alone
                os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old_umask = os.umask(0o177)
        try:
            listener.bind(self.path)
            listener.listen(64)
            fd = listener.fileno()
            self._started = start_log_pump(fd)
            log.info("log pump started (pid %d)", self._started.pid)
        finally:
            os.umask(old_umask)
            listener.close()


def piped(
    outputs: Outputs, files: LogFiles, pump: PumpClient | None, limits: Limits, *, fresh: bool
) -> Outputs:
    """The descriptors the command is to write to: pipes the pump reads into the files
    of `outputs` (taken over: closed once the pump has them), or, when no pump takes
    them, `outputs` itself (the files then grow unrotated; told in the log)."""
    if pump is None:
        return outputs
    ends: dict[int, int] = {}  # file descriptor -> the pipe's writing end
    try:
        for fd, path in dict.fromkeys(((outputs.out, files.out), (outputs.err, files.err))):
            read, write = os.pipe2(os.O_CLOEXEC)
            ends[fd] = write
            try:
                dir_fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    pump.hand_over(read, fd, dir_fd, os.path.basename(path), limits, fresh=fresh)
                finally:
                    os.close(dir_fd)
            finally:
                os.close(read)
    except (OSError, ValueError, PumpError) as e:
        for write in ends.values():
            os.close(write)
        log.warning("log pump: %s; writing %s unrotated", e, files.out)
        return outputs
    outputs.close()
    return Outputs(ends[outputs.out], ends[outputs.err])
