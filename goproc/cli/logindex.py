"""A log file's index (`goproc.logformat`) as `goproc logs` reads it: the receive time of
a line, found by binary search over the records (each read on its own, never the whole
index), and the time prefix `--timestamps` prints.  Standard library only.

A line's time is that of the last record at or before its first byte; bytes before the
first record (there should be none) take the first record's time.  A file without an
index, or with an empty one, has no times: its lines take the file's mtime.
"""

from __future__ import annotations

import bisect
import os
import stat
import time
from collections.abc import Iterator

from goproc.logformat import RECORD, index_of, records

Record = tuple[int, float]  # offset in the file, receive time (seconds since the epoch)
_BATCH = 4096  # records read at once when reading them in order


def open_index(path: str) -> int | None:
    """The index of the file at `path`, opened for reading; None when there is none that
    can be read (missing, a symlink, not a regular file): its lines have no times."""
    try:
        fd = os.open(index_of(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


class Index:
    """An index as it is now (its count of whole records taken at the start)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.count = os.fstat(fd).st_size // RECORD.size

    def at(self, i: int) -> Record | None:
        """The i-th record; None when the index was cut shorter since (as if past its end)."""
        got = records(os.pread(self.fd, RECORD.size, i * RECORD.size))
        return got[0] if got else None

    def last_at_or_before(self, offset: int) -> int:
        """The number of the last record whose offset is at most `offset`; -1 if none."""
        lo, hi = 0, self.count  # records[:lo] are at or before, records[hi:] after
        while lo < hi:
            mid = (lo + hi) // 2
            record = self.at(mid)
            if record is not None and record[0] <= offset:
                lo = mid + 1
            else:
                hi = mid
        return lo - 1

    def first_since(self, cutoff: float) -> int:
        """The number of the first record received at or after `cutoff`; `count` if none."""
        lo, hi = 0, self.count
        while lo < hi:
            mid = (lo + hi) // 2
            record = self.at(mid)
            if record is not None and record[1] < cutoff:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def read_from(self, i: int) -> Iterator[Record]:
        """The records from the i-th on, in order."""
        while i < self.count:
            batch = records(os.pread(self.fd, RECORD.size * _BATCH, i * RECORD.size))
            if not batch:
                return
            yield from batch
            i += len(batch)


class Dater:
    """The times of the lines of one file, asked for at offsets that only grow."""

    def __init__(self, index: Index | None, mtime: float) -> None:
        self.index = index if index is not None and index.count > 0 else None
        self.mtime = mtime
        self._records: Iterator[Record] | None = None
        self._now: Record = (0, mtime)
        self._next: Record | None = None

    def time(self, offset: int) -> float:
        if self.index is None:
            return self.mtime
        if self._records is None:
            self._records = self.index.read_from(max(self.index.last_at_or_before(offset), 0))
            self._now = next(self._records, self._now)
            self._next = next(self._records, None)
        while self._next is not None and self._next[0] <= offset:
            self._now, self._next = self._next, next(self._records, None)
        return self._now[1]


class Timeline:
    """The index of a file being followed, read again as it grows (`refresh`)."""

    def __init__(self, fd: int | None, offset: int) -> None:
        self.fd = fd
        self.records: list[Record] = []
        self.read_at = 0
        if fd is not None:
            self.read_at = max(Index(fd).last_at_or_before(offset), 0) * RECORD.size

    def refresh(self) -> None:
        if self.fd is None:
            return
        size = os.fstat(self.fd).st_size
        if size < self.read_at:  # written anew: read it again
            self.records, self.read_at = [], 0
        while self.read_at + RECORD.size <= size:
            got = records(os.pread(self.fd, RECORD.size * _BATCH, self.read_at))
            if not got:
                break
            self.records.extend(got)
            self.read_at += len(got) * RECORD.size

    def settled(self, offset: int) -> bool:
        """Whether the records of the bytes at `offset` are written: one is at or past it."""
        return bool(self.records) and self.records[-1][0] >= offset

    def date(self, offset: int) -> float | None:
        """The time of the bytes at `offset`, as the records read so far say; None if none."""
        if not self.records:
            return None
        i = bisect.bisect_right(self.records, offset, key=lambda r: r[0]) - 1
        return self.records[max(i, 0)][1]

    def prune(self, offset: int) -> None:
        """Forget the records no offset from `offset` on needs."""
        i = bisect.bisect_right(self.records, offset, key=lambda r: r[0]) - 1
        if i > 0:
            del self.records[:i]

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def stamp(when: float) -> bytes:
    """The prefix `--timestamps` puts before a line: RFC 3339, UTC, to the millisecond."""
    ms = round(when * 1000)
    seconds, milli = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode() + b".%03dZ " % milli
