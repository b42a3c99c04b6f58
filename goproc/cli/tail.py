"""Reading a log file as `goproc logs` does: its last lines (of one file; the stream
of rotated files is `goproc.cli.logread`'s), then (`--follow`) what is appended, like
`tail -F`.  Standard library only; blocking.

The file is opened with `O_NOFOLLOW` (a symlink at its name is refused, never read
through) and `O_NONBLOCK` (a FIFO planted there cannot hang the open), and read only
when it is a regular file.  Following polls: a file cut shorter (truncated) is read
again from its start; a new file at the name (the old one renamed away, as a rotation
does) is opened once the old one is read to its end.  The bytes are written as the
process wrote them, as `tail` does.

With `--timestamps` or `--all` the bytes go out a line at a time (`Tracker`): each line
with its receive time from the file's index, read again as it grows.  A line whose
record is not written yet waits a poll round for it (then takes the time it is printed
at); a line still coming waits for its end while bytes keep coming, and is printed as
it is once none came for a round.  After a rotation the new file's index is taken only
once it is not the old file's (which rotation renames after the file).
"""

from __future__ import annotations

import errno
import heapq
import os
import select
import stat
import time
from collections.abc import Callable

from goproc.cli.logindex import Timeline, open_index
from goproc.logformat import KEEP_MAX, rotated

_BLOCK = 1 << 16
POLL_SECONDS = 0.2


class TailError(Exception):
    """The log file cannot be read; the message names it and says why."""


def open_log(path: str) -> int:
    """`path` opened for reading, when it is a regular file (see the module doc)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise TailError(f"{path} is a symlink; goproc does not follow it") from None
        raise TailError(f"cannot open {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise TailError(f"{path} is not a regular file")
    return fd


def last_lines(fd: int, n: int) -> tuple[bytes, int]:
    """The last `n` lines of the file (a last line without its newline counts), and the
    offset they end at."""
    size = os.fstat(fd).st_size
    if n <= 0 or size == 0:
        return b"", size
    end = size
    chunks: list[bytes] = []
    newlines = 0
    # A newline that ends the file ends the last line: it does not start one more.
    wanted = n + 1 if os.pread(fd, 1, size - 1) == b"\n" else n
    while end > 0 and newlines < wanted:
        start = max(0, end - _BLOCK)
        chunk = os.pread(fd, end - start, start)
        chunks.append(chunk)
        newlines += chunk.count(b"\n")
        end = start
    data = b"".join(reversed(chunks))
    if newlines >= wanted:
        cut = len(data)
        for _ in range(wanted):
            cut = data.rindex(b"\n", 0, cut)
        data = data[cut + 1 :]
    return data, size


Write = Callable[[bytes], None]


def follow(fd: int, path: str, offset: int, write: Write, out_fd: int) -> None:
    """`write` what is appended to the file from `offset` on, until interrupted or until
    the reader of `out_fd` (standard output) goes away (then return quietly).  Closes
    `fd` and every file it opens."""
    watch = select.poll()
    watch.register(out_fd, 0)  # only errors: POLLERR once a pipe's reader is gone
    try:
        while True:
            offset = _drain(fd, offset, write)
            newer = _renamed_away(fd, path)
            if newer is not None:
                _drain(fd, offset, write)  # what came in just before the rename
                os.close(fd)
                fd, offset = newer[0], 0
                continue
            if watch.poll(POLL_SECONDS * 1000):
                return  # the reader went away (or the terminal hung up)
    finally:
        os.close(fd)


def _drain(fd: int, offset: int, write: Write) -> int:
    size = os.fstat(fd).st_size
    if size < offset:  # truncated: what is there now is new
        offset = 0
    while offset < size:
        data = os.pread(fd, min(size - offset, _BLOCK), offset)
        if not data:
            break
        write(data)
        offset += len(data)
    return offset


def _renamed_away(fd: int, path: str) -> tuple[int, str] | None:
    """When the file `fd` holds is no longer at `path` (rotated), the one after it in
    the stream, opened, and its name: the next newer rotated file (`path.N-1` when it
    is `path.N` now: several rotations between two looks lose no file) or, when it is
    not among them (gone already), the file at `path`.  None while `fd` is still the
    file at `path`, or when the next one cannot be opened yet."""
    held = _identity(fd)
    for _ in range(3):  # renamed again while looked for: look again
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return None  # gone for now: keep the old one and look again
        if (st.st_dev, st.st_ino) == held:
            return None
        name = _after(held, path)
        try:
            newer = open_log(name)
        except TailError:
            return None
        if name == path or _after(held, path) == name:
            return newer, name
        os.close(newer)
    return None


def _after(held: tuple[int, int], path: str) -> str:
    """The name of the file after the held one: see `_renamed_away`."""
    missed = 0
    for n in range(1, KEEP_MAX + 2):
        try:
            st = os.stat(rotated(path, n), follow_symlinks=False)
        except OSError:
            # A rotation renames the files one by one, oldest first: one name may be
            # missing for a moment.  Two in a row end the files.
            missed += 1
            if missed == 2:
                break
            continue
        missed = 0
        if (st.st_dev, st.st_ino) == held:
            return rotated(path, n - 1)
    return path


# ---- line by line: --timestamps, --all ----------------------------------------------------

Piece = tuple[float, bytes, bool]  # its time, its bytes, whether they start a line
WritePieces = Callable[[list[Piece]], None]


class Tracker:
    """One stream followed a line at a time, each line dated (see the module doc)."""

    def __init__(self, fd: int, path: str, offset: int, index_fd: int | None, in_line: bool):
        self.fd, self.path, self.offset = fd, path, offset
        self.name = path  # the name of the file read now (a rotated one, on the way)
        self.timeline = Timeline(index_fd, offset)
        self.pending, self.pending_at = b"", offset  # read, not printed yet
        self.in_line = in_line  # the bytes before `pending` left a line unfinished
        self.waiting: int | None = None  # the bytes from here on were held a round
        self.old_index: tuple[int, int] | None = None  # the index rotated away with its file
        self.expect_index = False  # the file rotated away had one: so will the new one

    def poll(self) -> list[Piece]:
        """The lines (and pieces of lines) to print now."""
        pieces: list[Piece] = []
        if os.fstat(self.fd).st_size < self.offset:  # truncated: what is there now is new
            pieces += self._cut(final=True)
            self.offset = self.pending_at = 0
            self.in_line = False
        grew = self._read()
        newer = _renamed_away(self.fd, self.path)
        while newer is not None:  # through every file rotated since the last look
            self._read()  # what came in just before the rename
            pieces += self._cut(final=True)
            self._switch(*newer)
            grew = self._read()
            newer = _renamed_away(self.fd, self.path)
        return pieces + self._cut(final=False, grew=grew)

    def close(self) -> None:
        os.close(self.fd)
        self.timeline.close()

    def _read(self) -> bool:
        size = os.fstat(self.fd).st_size
        chunks: list[bytes] = []
        while self.offset < size:
            data = os.pread(self.fd, min(size - self.offset, _BLOCK), self.offset)
            if not data:
                break
            chunks.append(data)
            self.offset += len(data)
        self.pending += b"".join(chunks)
        return bool(chunks)

    def _cut(self, final: bool, grew: bool = True) -> list[Piece]:
        """The pending lines that can go out now (with `final`, all of them)."""
        if self.timeline.fd is None:
            self.timeline = Timeline(self._index(), self.pending_at)
        self.timeline.refresh()
        data, pos, pieces = self.pending, 0, []
        while pos < len(data):
            nl = data.find(b"\n", pos)
            end = len(data) if nl < 0 else nl + 1
            if nl < 0 and grew and not final and end - pos < _BLOCK:
                break  # its end may be on its way
            when = self._date(self.pending_at + pos, final)
            if when is None:
                break
            pieces.append((when, data[pos:end], not self.in_line))
            self.in_line = nl < 0
            pos = end
        self.pending, self.pending_at = data[pos:], self.pending_at + pos
        if not self.pending:
            self.waiting = None  # what comes next waits for its record anew
        self.timeline.prune(self.pending_at)
        return pieces

    def _date(self, offset: int, final: bool) -> float | None:
        """The time of the bytes at `offset`; None to wait a round for their record."""
        # One round waited for the bytes from `waiting` on is enough for all of them.
        waited = self.waiting is not None and offset >= self.waiting
        if self.timeline.fd is None:
            if self.expect_index and not final and not waited:
                self.waiting = offset
                return None
            return os.fstat(self.fd).st_mtime  # no index: the file's mtime
        if self.timeline.settled(offset):
            self.waiting = None
        elif not (final or waited):
            self.waiting = offset
            return None
        found = self.timeline.date(offset)
        return time.time() if found is None else found

    def _switch(self, newer: int, name: str) -> None:
        os.close(self.fd)
        self.expect_index = self.timeline.fd is not None
        if self.timeline.fd is not None:
            self.old_index = _identity(self.timeline.fd)
        self.timeline.close()
        self.fd, self.offset, self.pending, self.pending_at = newer, 0, b"", 0
        self.name, self.waiting = name, None
        self.timeline = Timeline(self._index(), 0)

    def _index(self) -> int | None:
        fd = open_index(self.name)
        if fd is not None and _identity(fd) == self.old_index:
            os.close(fd)  # not renamed away yet: the new one comes after it
            return None
        return fd


def follow_lines(trackers: list[Tracker], write: WritePieces, out_fd: int) -> None:
    """`write` what is appended to the trackers' streams, merged by time (at equal times
    the first tracker's first), until interrupted or until the reader of `out_fd` goes
    away (as `follow`).  Closes every tracker."""
    watch = select.poll()
    watch.register(out_fd, 0)
    try:
        while True:
            found = [tracker.poll() for tracker in trackers]
            pieces = list(heapq.merge(*found, key=lambda piece: piece[0]))
            if pieces:
                write(pieces)
            if watch.poll(POLL_SECONDS * 1000):
                return
    finally:
        for tracker in trackers:
            tracker.close()


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino
