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
import subprocess
import sys
from pathlib import Path

from attrs import frozen

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
        self._started: subprocess.Popen[bytes] | None = None

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
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old_umask = os.umask(0o177)
        try:
            listener.bind(self.path)
            listener.listen(64)
            fd = listener.fileno()
            self._started = subprocess.Popen(
                [sys.executable, "-m", "goproc.logpump", "--fd", str(fd)],
                pass_fds=[fd],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # not in the daemon's group: a Ctrl+C is not for it
            )
            log.info("log pump started (pid %d)", self._started.pid)
        finally:
            os.umask(old_umask)
            listener.close()
