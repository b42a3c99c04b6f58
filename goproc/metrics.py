"""How tracked processes live: one OS reading turned into metrics, and a short history
of them per entry.  Pure: no trio, no I/O (the readings come from the probe, see
`goproc.daemon.metrics`).

Metrics are memory only: they are never journaled or snapshotted.  A `Track` belongs to
one process (entry id, pid, start time): a reading is recorded only for that process,
and the store's answers for an entry that is dead, or whose process is another, are
None.  Its history is a `goproc.history.History`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from goproc.history import History
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


_NEW = tuple.__new__  # a named tuple made without its Python-level __new__ (hot path)


def _rounded(value: float | None) -> float | None:
    """To 0.1 (as `round(value, 1)`, up to halfway cases, at a third of its cost)."""
    return None if value is None else round(value * 10.0) / 10.0


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
