"""A stream's log files read as `goproc logs` reads them: the files rotation renamed
away (`7.out.K` ... `7.out.1`, `goproc.logformat`) and the current one, as one stream,
oldest first, as each file was when it was opened.  Standard library only; blocking.

Every file is opened as `goproc.cli.tail.open_log` opens one (no symlink, no FIFO); a
rotated file that is not there (rotation moved it, or it was removed) is left out.
What is printed is chosen by offsets, found without reading more than needed: the last
N lines by reading back from the end, the lines since a time by binary search in the
indexes (`goproc.cli.logindex`).  A line cut at a file's end (a line too long to wait
for) goes on in the next file: it is one line of the stream.
"""

from __future__ import annotations

import bisect
import heapq
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from goproc.cli.logindex import Dater, Index, open_index, stamp
from goproc.cli.tail import TailError, open_log
from goproc.logformat import KEEP_MAX, rotated

Line = tuple[float, bytes]  # its receive time, its bytes (its newline too, if it has one)
Write = Callable[[bytes], None]
_BLOCK = 1 << 16


@dataclass
class Part:
    """One file of a stream: its descriptor, its size and mtime when opened, its index."""

    path: str
    fd: int
    size: int
    mtime: float
    index: Index | None

    def close(self) -> None:
        os.close(self.fd)
        if self.index is not None:
            os.close(self.index.fd)


class Stream:
    """A stream's files, oldest first, as one run of bytes (offsets count across them)."""

    def __init__(self, parts: list[Part]) -> None:
        self.parts = parts
        self.starts: list[int] = []
        size = 0
        for part in parts:
            self.starts.append(size)
            size += part.size
        self.size = size

    @property
    def current(self) -> Part:
        return self.parts[-1]

    def part_at(self, at: int) -> int:
        """The number of the file holding the byte at `at` (0 <= at < size)."""
        return bisect.bisect_right(self.starts, at) - 1

    def read(self, at: int, n: int) -> bytes:
        """Up to `n` bytes from `at`, from one file (fewer at that file's end)."""
        p = self.part_at(at)
        part, local = self.parts[p], at - self.starts[p]
        return os.pread(part.fd, min(n, part.size - local), local)

    def close(self) -> None:
        for part in self.parts:
            part.close()


def open_stream(base: str) -> Stream:
    """The files of the stream whose current file is `base`; TailError when one cannot
    be read (the current file missing among them)."""
    parts = [_open_part(base)]
    seen = {_identity(parts[0].fd)}
    try:
        for n in _rotations(base):
            try:
                part = _open_part(rotated(base, n))
            except TailError:
                if os.path.lexists(rotated(base, n)):
                    raise
                continue  # gone (rotated on, or removed): not an error
            if _identity(part.fd) in seen:  # the same file twice: a rotation in between
                part.close()
                continue
            seen.add(_identity(part.fd))
            parts.insert(0, part)
    except BaseException:
        Stream(parts).close()
        raise
    return Stream(parts)


def _open_part(path: str) -> Part:
    fd = open_log(path)
    st = os.fstat(fd)
    index_fd = open_index(path)
    return Part(path, fd, st.st_size, st.st_mtime, None if index_fd is None else Index(index_fd))


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _rotations(base: str) -> list[int]:
    """The numbers of the rotated files beside `base`, newest (1) first."""
    folder, name = os.path.split(base)
    prefix = name + "."
    try:
        names = os.listdir(folder or ".")
    except OSError:  # a folder that cannot be listed: look for them in turn
        found: list[int] = []
        while len(found) < KEEP_MAX and os.path.lexists(rotated(base, len(found) + 1)):
            found.append(len(found) + 1)
        return found
    numbers = [
        int(n[len(prefix) :])
        for n in names
        if n.startswith(prefix) and _is_number(n[len(prefix) :])
    ]
    return sorted(n for n in numbers if 0 < n <= KEEP_MAX)


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit() and not text.startswith("0")


# ---- where to start -------------------------------------------------------------------------


def tail_start(stream: Stream, n: int) -> int:
    """Where the last `n` lines start (a last line without its newline counts)."""
    end = stream.size
    if n <= 0 or end == 0:
        return end
    # A newline that ends the stream ends the last line: it does not start one more.
    wanted = n + 1 if stream.read(end - 1, 1) == b"\n" else n
    at = end
    while at > 0:
        start = max(stream.starts[stream.part_at(at - 1)], at - _BLOCK)
        chunk = stream.read(start, at - start)
        found = chunk.count(b"\n")
        if found >= wanted:
            cut = len(chunk)
            for _ in range(wanted):
                cut = chunk.rindex(b"\n", 0, cut)
            return start + cut + 1
        wanted -= found
        at = start
    return 0


def since_start(stream: Stream, cutoff: float) -> int:
    """Where the first line received at or after `cutoff` starts (times are taken to
    grow along the stream); the stream's end when there is none."""
    for p, part in enumerate(stream.parts):
        local = _first_since(part, cutoff)
        if local is not None:
            return _line_start_from(stream, stream.starts[p] + local)
    return stream.size


def _first_since(part: Part, cutoff: float) -> int | None:
    """The first offset in `part` whose bytes came at or after `cutoff`; None if none."""
    index = part.index
    if index is None or index.count == 0:
        return 0 if part.mtime >= cutoff else None
    i = index.first_since(cutoff)
    record = index.at(i) if 0 < i < index.count else None
    if i == 0:
        return 0
    return None if record is None else min(record[0], part.size)


def _line_start_from(stream: Stream, at: int) -> int:
    """`at` when a line starts there, else where the next one starts (or the end)."""
    if at == 0 or at >= stream.size or stream.read(at - 1, 1) == b"\n":
        return at
    while at < stream.size:
        chunk = stream.read(at, _BLOCK)
        if not chunk:
            break
        nl = chunk.find(b"\n")
        if nl >= 0:
            return at + nl + 1
        at += len(chunk)
    return stream.size


def start_of(stream: Stream, count: int | None, cutoff: float | None) -> int:
    """Where what `-n count` (None: no limit) and `--since` (None: any time) print starts."""
    start = 0 if count is None else tail_start(stream, count)
    return start if cutoff is None else max(start, since_start(stream, cutoff))


# ---- what to print --------------------------------------------------------------------------


def blocks(stream: Stream, start: int) -> Iterator[bytes]:
    """The bytes from `start` to the end, in blocks."""
    at = start
    while at < stream.size:
        chunk = stream.read(at, _BLOCK)
        if not chunk:  # cut shorter since it was opened
            at = stream.starts[stream.part_at(at)] + stream.parts[stream.part_at(at)].size
            continue
        yield chunk
        at += len(chunk)


def lines(stream: Stream, start: int) -> Iterator[Line]:
    """The lines from `start` (a line's start) to the end, each with its time."""
    pending: list[bytes] = []
    when = 0.0
    daters: dict[int, Dater] = {}
    at = start
    for chunk in blocks(stream, start):
        p = stream.part_at(at)
        pos = 0
        while pos < len(chunk):
            if not pending:
                part = stream.parts[p]
                dater = daters.setdefault(p, Dater(part.index, part.mtime))
                when = dater.time(at + pos - stream.starts[p])
            nl = chunk.find(b"\n", pos)
            if nl < 0:
                pending.append(chunk[pos:])
                break
            pending.append(chunk[pos : nl + 1])
            yield when, b"".join(pending)
            pending = []
            pos = nl + 1
        at += len(chunk)
    if pending:
        yield when, b"".join(pending)


def merge(*streams: Iterable[Line]) -> Iterator[Line]:
    """Lines of several streams in the order they came: by time, and at equal times those
    of one stream in its order, those of an earlier stream first."""
    return heapq.merge(*streams, key=lambda line: line[0])


def emit(found: Iterable[Line], write: Write, timestamps: bool) -> None:
    """`write` the lines, each after its time with `timestamps`, a block at a time."""
    batch: list[bytes] = []
    size = 0
    for when, data in found:
        if timestamps:
            batch.append(stamp(when))
        batch.append(data)
        size += len(data)
        if size >= _BLOCK:
            write(b"".join(batch))
            batch, size = [], 0
    if batch:
        write(b"".join(batch))
