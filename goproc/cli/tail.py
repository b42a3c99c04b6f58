"""Reading a log file as `goproc logs` does: its last lines, then (`--follow`) what is
appended, like `tail -F`.  Standard library only; blocking.

The file is opened with `O_NOFOLLOW` (a symlink at its name is refused, never read
through) and `O_NONBLOCK` (a FIFO planted there cannot hang the open), and read only
when it is a regular file.  Following polls: a file cut shorter (truncated) is read
again from its start; a new file at the name (the old one renamed away, as a rotation
does) is opened once the old one is read to its end.  The bytes are written as the
process wrote them, as `tail` does.
"""

from __future__ import annotations

import errno
import os
import select
import stat
from collections.abc import Callable

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
                fd, offset = newer, 0
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


def _renamed_away(fd: int, path: str) -> int | None:
    """A new file at `path` when the one `fd` holds is no longer there (rotated), once
    it can be opened; None while `fd` is still the file at `path`."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None  # gone for now: keep the old one and look again
    held = os.fstat(fd)
    if (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino):
        return None
    try:
        return open_log(path)
    except TailError:
        return None
