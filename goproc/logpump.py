"""The log pump: a small process of its own that moves started commands' output from
their pipes into their log files, rotating them and dating what comes in
(`goproc.logformat`), whether the daemon is up or not.  Standard library only: it
starts in milliseconds and holds little.

Why a process of its own: a command writes to a pipe, and the pipe's reading end must
outlive the daemon.  Were the daemon its only reader, a `kill -9` of the daemon would
leave the command writing into a pipe nobody reads (SIGPIPE, or EPIPE): a daemon
restart must never kill what it started.  The pump holds no state worth keeping; the
daemon that comes next simply talks to it again.

The bytes go from the pipe to the file with `splice` (no copy through this process),
at most `CHUNK` a call and never past the file's limit (a file handed over `O_APPEND`,
which splice refuses, has the flag cleared: the pump is its one writer, at its own
offset); a pipe found full is grown to `PIPE_SIZE`.  A stream's file is rotated at a
line's end once it holds its `max_bytes` (so it holds at most `LINE_SLACK` more); each
burst is dated in the file's index, once per `STEP`.  A file nothing can be written
to (a full disk) has its bytes read and dropped, so the command never blocks on it;
the first loss is told on stderr.

Its protocol (SOCK_SEQPACKET, one message each way; the listening socket is the
daemon's, passed as a descriptor, in the daemon's private runtime dir, and a peer of
another uid is hung up on): a JSON object with descriptors (SCM_RIGHTS), answered with
`{"ok": true}` or `{"error": "..."}`.
- `{"op": "add", "name": N, "max_bytes": B, "keep": K, "fresh": F}` with the pipe's
  reading end, the file opened for writing, and its directory: pump the pipe into file
  N of that directory.  A file some stream already feeds is fed by both; with `fresh`,
  its index is started anew.
- `{"op": "ping"}`: `{"ok": true, "streams": n}`.
It exits once no stream is left and no daemon has been connected for `LINGER` seconds.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import resource
import select
import socket
import struct
import sys
import time
from typing import Any

from goproc.logformat import LINE_SLACK, RECORD, STEP, index_of, rotated

CHUNK = 1 << 20
PIPE_SIZE = 1 << 20
LINGER = 2.0
MAX_FDS = 3
_FILE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_INDEX = _FILE | os.O_APPEND


class LogFile:
    """One log file and its index, fed by one or more pipes; rotated in its dir."""

    def __init__(self, dir_fd: int, name: str, fd: int, max_bytes: int, keep: int) -> None:
        self.dir_fd, self.name, self.fd = dir_fd, name, fd
        self.max_bytes, self.keep = max_bytes, keep
        # splice refuses a file opened O_APPEND (EINVAL): the pump is the file's one
        # writer from now on and writes at its own offset.
        with contextlib.suppress(OSError):
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            if flags & os.O_APPEND:
                fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_APPEND)
        self.offset = os.fstat(fd).st_size
        self.index = os.open(index_of(name), _INDEX, 0o600, dir_fd=dir_fd)
        self.dated = -1.0  # the time of the last index record
        self.pipes: set[int] = set()
        self.grown: set[int] = set()  # pipes grown to PIPE_SIZE (or tried)
        self.copy = False  # the file takes no splice: bytes are copied through here
        self.lost = False

    def start_index_anew(self) -> None:
        os.ftruncate(self.index, 0)
        self.dated = -1.0

    def close(self) -> None:
        for fd in (self.fd, self.index, self.dir_fd):
            os.close(fd)

    def _date(self, offset: int) -> None:
        now = time.time()
        if now - self.dated >= STEP:
            self.dated = now
            os.write(self.index, RECORD.pack(offset, now))

    def take(self, pipe: int) -> bool:
        """Move what the pipe holds into the file; False once the pipe is at its end."""
        if self.max_bytes and self.offset >= self.max_bytes:
            return self._take_to_line_end(pipe)
        start = self.offset
        room = self.max_bytes - start if self.max_bytes else CHUNK  # never past the limit
        try:
            if self.copy:  # dated by _put
                data = os.read(pipe, min(room, CHUNK))
                self._put(data)
                return bool(data)
            n = os.splice(pipe, self.fd, min(room, CHUNK), offset_dst=start, flags=_NONBLOCK)
            self.offset += n
        except BlockingIOError:
            return True
        except OSError as e:
            if e.errno == errno.EINVAL and not self.copy:
                self.copy = True  # a file system without splice
                return True
            return self._drop(pipe, e)
        if n == 0:
            return False
        self._date(start)
        if n >= PIPE_SIZE // 16 and pipe not in self.grown:
            self.grown.add(pipe)
            _grow(pipe)
        return True

    def _take_to_line_end(self, pipe: int) -> bool:
        """At the limit: read what comes (no splice), to rotate at a line's end."""
        try:
            data = os.read(pipe, LINE_SLACK)
        except BlockingIOError:
            return True
        if not data:
            return False
        try:
            self._put(data)
        except OSError as e:
            return self._drop(pipe, e)
        return True

    def _put(self, data: bytes) -> None:
        """Write `data`, rotating the file at each line's end past the limit (or, with
        no line's end within `LINE_SLACK` past it, there)."""
        while data:
            over = self.offset - self.max_bytes
            if not self.max_bytes or over < 0:
                cut = len(data) if not self.max_bytes else min(len(data), -over)
                rotate = False
            else:
                cut = data.find(b"\n") + 1
                rotate = cut > 0 or over + len(data) >= LINE_SLACK
                if cut == 0:
                    cut = min(len(data), max(1, LINE_SLACK - over))
            self._date(self.offset)
            self._write(data[:cut])
            data = data[cut:]
            if rotate:
                self._rotate()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, self.offset)
            self.offset += n
            view = view[n:]

    def _rotate(self) -> None:
        d = self.dir_fd
        os.close(self.fd)
        os.close(self.index)
        gone = [self.name, index_of(self.name)] if self.keep == 0 else []
        for name in gone:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=d)
        for n in range(self.keep - 1, -1, -1):  # the oldest kept is replaced
            older, newer = rotated(self.name, n), rotated(self.name, n + 1)
            for a, b in ((older, newer), (index_of(older), index_of(newer))):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(a, b, src_dir_fd=d, dst_dir_fd=d)
        self.fd = os.open(self.name, _FILE | os.O_TRUNC, 0o600, dir_fd=d)
        self.index = os.open(index_of(self.name), _INDEX | os.O_TRUNC, 0o600, dir_fd=d)
        self.offset, self.dated = 0, -1.0
        self.copy = False  # a new file: splice is tried again

    def _drop(self, pipe: int, e: OSError) -> bool:
        """The file takes nothing (a full disk, an I/O error): read and drop the bytes,
        so the command never blocks on its output; told once."""
        if not self.lost:
            self.lost = True
            _say(f"cannot write {self.name}: {e.strerror or e}; its output is dropped")
        try:
            return bool(os.read(pipe, CHUNK))
        except BlockingIOError:
            return True


_NONBLOCK = getattr(os, "SPLICE_F_NONBLOCK", 2) | getattr(os, "SPLICE_F_MOVE", 1)


def _grow(pipe: int) -> None:
    try:
        if fcntl.fcntl(pipe, fcntl.F_GETPIPE_SZ) < PIPE_SIZE:
            fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # over the user's pipe budget: the pipe stays as it is


def _say(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # nowhere to say it
        print(f"goproc log pump: {text}", file=sys.stderr, flush=True)


class Pump:
    """The pump's loop over its listener, the daemons connected and the pipes."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.poll = select.epoll()
        self.poll.register(listener.fileno(), select.EPOLLIN)
        self.daemons: dict[int, socket.socket] = {}
        self.streams: dict[int, LogFile] = {}  # pipe -> the file it feeds
        self.files: dict[tuple[int, int, str], LogFile] = {}

    def run(self) -> None:
        idle_since = time.monotonic()
        while True:
            if self.streams or self.daemons:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= LINGER:
                return
            for fd, _ in self.poll.poll(LINGER):
                if fd == self.listener.fileno():
                    self._accept()
                elif fd in self.daemons:
                    self._serve(self.daemons[fd])
                elif fd in self.streams and not self.streams[fd].take(fd):
                    self._close_stream(fd)

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != os.getuid():
            conn.close()
            return
        self.daemons[conn.fileno()] = conn
        self.poll.register(conn.fileno(), select.EPOLLIN)

    def _serve(self, conn: socket.socket) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(conn, 65536, MAX_FDS)
        except OSError:
            data, fds = b"", []
        if not data:
            for fd in fds:
                os.close(fd)
            self.poll.unregister(conn.fileno())
            del self.daemons[conn.fileno()]
            conn.close()
            return
        try:
            answer = self._answer(json.loads(data), fds)
        except (ValueError, TypeError, KeyError, OSError) as e:
            for fd in fds:
                os.close(fd)
            answer = {"error": str(e)}
        with contextlib.suppress(OSError):  # it went away; it learns nothing more
            conn.send(json.dumps(answer).encode())

    def _answer(self, msg: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        if msg["op"] == "ping":
            return {"ok": True, "streams": len(self.streams)}
        if msg["op"] != "add" or len(fds) != MAX_FDS:
            raise ValueError(f"unknown op or descriptors: {msg['op']!r}, {len(fds)}")
        pipe, fd, dir_fd = fds
        name, max_bytes, keep = str(msg["name"]), int(msg["max_bytes"]), int(msg["keep"])
        if "/" in name or not 0 <= keep <= 1000 or max_bytes < 0:
            raise ValueError(f"bad add: {msg!r}")
        st = os.fstat(dir_fd)
        key = (st.st_dev, st.st_ino, name)
        file = self.files.get(key)
        if file is None:
            file = self.files[key] = LogFile(dir_fd, name, fd, max_bytes, keep)
        else:
            os.close(fd)
            os.close(dir_fd)
            file.max_bytes, file.keep = max_bytes, keep
        if msg.get("fresh"):
            file.start_index_anew()
        os.set_blocking(pipe, False)
        file.pipes.add(pipe)
        self.streams[pipe] = file
        self.poll.register(pipe, select.EPOLLIN)
        return {"ok": True}

    def _close_stream(self, pipe: int) -> None:
        file = self.streams.pop(pipe)
        self.poll.unregister(pipe)
        os.close(pipe)
        file.pipes.discard(pipe)
        file.grown.discard(pipe)
        if not file.pipes:
            file.close()
            self.files = {k: f for k, f in self.files.items() if f is not file}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "--fd" or not argv[1].isdigit():
        print("usage: python -m goproc.logpump --fd N (started by the daemon)", file=sys.stderr)
        return 2
    os.chdir("/")
    # Four descriptors a stream (its pipe, file, index, dir): as many as may be had.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    most = 1 << 16 if hard == resource.RLIM_INFINITY else hard
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (most, hard))
    listener = socket.socket(fileno=int(argv[1]))
    try:
        Pump(listener).run()
    finally:
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
