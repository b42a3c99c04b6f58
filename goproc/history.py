"""An entry's metrics history: a ring of `array`s (20 bytes a sample), allocated whole
at the entry's first sample (300 samples for 1,000 entries are about 6 MB).  Pure."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator
from typing import NamedTuple


class Sample(NamedTuple):
    """One point of an entry's history."""

    t: float
    cpu_percent: float
    rss_bytes: int
    read_rate: float | None
    write_rate: float | None


NAN = math.nan
_OFFSET_MAX = 2**32 - 1


class History:
    """The last `size` samples of one entry, oldest first, in parallel arrays of 4-byte
    items: the time in milliseconds after `base` (moved forward when the offsets would
    overflow, about every 49 days), CPU % and rates as float32, RSS in KiB (exact: it is
    whole pages)."""

    __slots__ = ("_cpu", "_head", "_read", "_rss", "_t", "_write", "base", "count", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0
        self.base = 0  # the milliseconds since the epoch that offset 0 stands for
        self._head = 0  # where the next sample goes
        self._t = array("I", bytes(4 * size))
        self._cpu = array("f", bytes(4 * size))
        self._rss = array("I", bytes(4 * size))
        self._read = array("f", bytes(4 * size))
        self._write = array("f", bytes(4 * size))

    def append(self, s: Sample) -> None:
        self.add(s.t, s.cpu_percent, s.rss_bytes, s.read_rate, s.write_rate)

    def add(
        self, t: float, cpu: float, rss: int, read_rate: float | None, write_rate: float | None
    ) -> None:
        ms = round(t * 1000)
        if not self.count:
            self.base = ms
        offset = ms - self.base
        if not 0 <= offset <= _OFFSET_MAX:
            offset = self._rebase(ms)
        i = self._head  # `_put`, inlined: this runs for every process every sweep
        self._t[i] = offset
        self._cpu[i] = cpu
        self._rss[i] = min(rss >> 10, _OFFSET_MAX) if rss > 0 else 0
        self._read[i] = NAN if read_rate is None else read_rate
        self._write[i] = NAN if write_rate is None else write_rate
        self._head = i + 1 if i + 1 < self.size else 0
        if self.count < self.size:
            self.count += 1

    def _rebase(self, ms: int) -> int:
        """Offsets from the oldest sample kept (or from `ms`, going back), so that `ms`
        fits; samples that cannot be told apart from it any more are dropped."""
        base, kept = self.base, list(self._raw())
        kept = [k for k in kept if abs(ms - (base + k[0])) <= _OFFSET_MAX]
        self.base = min([ms, *(base + k[0] for k in kept)])
        self.count = self._head = 0
        for offset, cpu, kib, read, write in kept:
            self._put(base + offset - self.base, cpu, kib << 10, read, write)
        return ms - self.base

    def _put(
        self, offset: int, cpu: float, rss: int, read_rate: float | None, write_rate: float | None
    ) -> None:
        i = self._head
        self._t[i] = offset
        self._cpu[i] = cpu
        self._rss[i] = min(rss >> 10, _OFFSET_MAX) if rss > 0 else 0
        self._read[i] = NAN if read_rate is None else read_rate
        self._write[i] = NAN if write_rate is None else write_rate
        self._head = i + 1 if i + 1 < self.size else 0
        if self.count < self.size:
            self.count += 1

    def _raw(self) -> Iterator[tuple[int, float, int, float | None, float | None]]:
        start = (self._head - self.count) % self.size
        for k in range(self.count):
            i = (start + k) % self.size
            read, write = self._read[i], self._write[i]
            yield (
                self._t[i],
                self._cpu[i],
                self._rss[i],
                None if math.isnan(read) else read,
                None if math.isnan(write) else write,
            )

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Sample]:
        base = self.base
        for offset, cpu, kib, read, write in self._raw():
            yield Sample(
                (base + offset) / 1000,
                round(cpu, 2),  # float32 kept: as precise as it was given
                kib << 10,
                None if read is None else round(read, 1),
                None if write is None else round(write, 1),
            )

    def since(self, t: float | None) -> list[Sample]:
        """The samples taken at `t` or later (all of them for None), oldest first."""
        return [s for s in self if t is None or s.t >= t]
