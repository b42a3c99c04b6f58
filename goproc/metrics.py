"""How tracked processes live: one OS reading turned into metrics, and a short history
of them per entry.  Pure: no trio, no I/O (the readings come from the probe, see
`goproc.daemon.metrics`).

Metrics are memory only: they are never journaled or snapshotted.  A `Track` belongs to
one process (entry id, pid, start time): a reading is recorded only for that process,
and the store's answers for an entry that is dead, or whose process is another, are
None.  History is kept in a ring of `array`s (20 bytes a sample), allocated whole at an
entry's first sample: 300 samples for 1,000 entries are about 6 MB.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterator
from typing import NamedTuple

from goproc.model import START_TOLERANCE, Proc

DEFAULT_HISTORY = 300


class Reading(NamedTuple):
    """What the OS tells about a process at one moment.  `read_bytes`, `write_bytes`
    and `fds` are None where the OS does not tell, or where they were not read this
    time (they are read at a slower cadence, see `goproc.daemon.metrics`)."""

    cpu_seconds: float  # user + system, since the process started
    rss_bytes: int
    vms_bytes: int
    threads: int
    read_bytes: int | None = None
    write_bytes: int | None = None
    fds: int | None = None


class Metrics(NamedTuple):
    """An entry's latest sample, as the wire shows it (`Proc.metrics`).  A named tuple:
    one is made per process per sweep, and a tuple is the cheapest value to make."""

    sampled_at: float
    cpu_percent: float  # of one core, over the last interval (like top)
    cpu_seconds: float
    rss_bytes: int
    vms_bytes: int
    read_bytes: int | None
    write_bytes: int | None
    read_rate: float | None  # bytes/s over the last interval the counters were read
    write_rate: float | None
    threads: int
    fds: int | None


class Sample(NamedTuple):
    """One point of an entry's history."""

    t: float
    cpu_percent: float
    rss_bytes: int
    read_rate: float | None
    write_rate: float | None


def rate(now: int | None, before: int | None, seconds: float) -> float | None:
    """Bytes per second between two counter readings; None when either is unknown.  A
    counter that went back (it cannot, for one process) counts as no progress."""
    if now is None or before is None or seconds <= 0:
        return None
    return max(0, now - before) / seconds


def cpu_percent(now: float, before: float, seconds: float) -> float:
    """Percent of one core between two readings of the CPU seconds (100: one core busy)."""
    if seconds <= 0:
        return 0.0
    return max(0.0, now - before) / seconds * 100.0


NAN = math.nan
_OFFSET_MAX = 2**32 - 1
_NEW = tuple.__new__  # a named tuple made without its Python-level __new__ (hot path)


def _rounded(value: float | None) -> float | None:
    """To 0.1 (as `round(value, 1)`, up to halfway cases, at a third of its cost)."""
    return None if value is None else round(value * 10.0) / 10.0


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


class Track:
    """One process's latest reading, its metrics (and their wire text) and history."""

    __slots__ = (
        "added_at",
        "cpu",
        "history",
        "io_at",
        "last_at",
        "latest",
        "pid",
        "read",
        "started_at",
        "text",
        "write",
    )

    def __init__(self, proc: Proc, size: int) -> None:
        self.pid = proc.pid
        self.started_at = proc.started_at
        self.added_at = proc.added_at
        self.history = History(size)
        self.cpu = 0.0  # CPU seconds at the last reading
        self.last_at = 0.0  # monotonic seconds of the last reading
        self.read: int | None = None  # io counters at the last reading that had them
        self.write: int | None = None
        self.io_at = 0.0
        self.latest: Metrics | None = None
        self.text: str | None = None

    def holds(self, p: Proc) -> bool:
        return (
            p.pid == self.pid
            and p.added_at == self.added_at
            and abs(p.started_at - self.started_at) <= START_TOLERANCE  # `same_start`
        )


class MetricsStore:
    """Every sampled entry's `Track`, by entry id.  `encode` makes a `Metrics`' wire
    text (`goproc.rpc.entries.metrics_text`), at most once per sample."""

    def __init__(self, history: int, encode: Callable[[Metrics], str]) -> None:
        self.history_size = history
        self.encode = encode
        self.tracks: dict[int, Track] = {}
        self.revision = 0  # grows with every change of a track (a scrape is the same meanwhile)

    def __len__(self) -> int:
        return len(self.tracks)

    def record(
        self, p: Proc, reading: Reading, wall: float, mono: float, full: bool = True
    ) -> None:
        """Turn a reading of `p`'s process (taken at `wall`, `mono` seconds) into its
        latest metrics and a history sample.  `full`: the reading has the io counters
        and descriptors (else the last ones stand, with the rates they gave).  The first
        reading of a process averages over its life so far (as `top`'s first frame).
        Runs for every process every sweep: no call or object it can do without."""
        track = self.tracks.get(p.id)
        if (
            track is None
            or track.pid != p.pid
            or track.added_at != p.added_at
            or abs(p.started_at - track.started_at) > START_TOLERANCE  # `Track.holds`
        ):
            track = self.tracks[p.id] = Track(p, self.history_size)
        previous = track.latest
        read_before: int | None
        write_before: int | None
        if previous is None:  # since the process started
            seconds = io_seconds = max(wall - p.started_at, 1e-6)
            cpu_before, read_before, write_before = 0.0, 0, 0
        else:
            seconds, io_seconds = mono - track.last_at, mono - track.io_at
            cpu_before, read_before, write_before = track.cpu, track.read, track.write
        if full or previous is None:
            read_bytes, write_bytes, fds = reading.read_bytes, reading.write_bytes, reading.fds
            read_rate = _rounded(rate(read_bytes, read_before, io_seconds))
            write_rate = _rounded(rate(write_bytes, write_before, io_seconds))
            track.read, track.write, track.io_at = read_bytes, write_bytes, mono
        else:
            read_bytes, write_bytes, fds = previous.read_bytes, previous.write_bytes, previous.fds
            read_rate, write_rate = previous.read_rate, previous.write_rate
        cpu_seconds, rss = reading.cpu_seconds, reading.rss_bytes
        cpu = round(cpu_percent(cpu_seconds, cpu_before, seconds) * 100.0) / 100.0  # to 0.01
        head = (wall, cpu, cpu_seconds, rss, reading.vms_bytes, read_bytes, write_bytes)
        track.latest = _NEW(Metrics, (*head, read_rate, write_rate, reading.threads, fds))
        track.cpu, track.last_at, track.text = cpu_seconds, mono, None
        track.history.add(wall, cpu, rss, read_rate, write_rate)
        self.revision += 1

    def track(self, p: Proc) -> Track | None:
        """`p`'s track, if `p` is alive and the track is of its process."""
        if not p.alive:
            return None
        track = self.tracks.get(p.id)
        return track if track is not None and track.holds(p) else None

    def latest(self, p: Proc) -> Metrics | None:
        track = self.track(p)
        return None if track is None else track.latest

    def text(self, p: Proc) -> str | None:
        """`latest(p)` as its wire text, made when first asked for (most samples are
        never shown)."""
        if not p.alive:  # the common case of a long list: not looked up
            return None
        track = self.tracks.get(p.id)
        if track is None or track.latest is None or not track.holds(p):
            return None
        if track.text is None:
            track.text = self.encode(track.latest)
        return track.text

    def retain(self, ids: set[int]) -> None:
        """Forget the tracks of every entry not in `ids` (dead, removed, gone)."""
        for proc_id in [i for i in self.tracks if i not in ids]:
            del self.tracks[proc_id]
            self.revision += 1
