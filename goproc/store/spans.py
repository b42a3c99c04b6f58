"""The entries of the snapshot on disk, and where each one's encoding lies in its file.

Entries are immutable: an entry that is the very object loaded from (or written to) the
snapshot file still encodes to the bytes that file holds for it.  So a long reply (a
full `list`) and the next snapshot write take runs of such entries as spans of that
file, read in a worker thread, instead of encoding each entry again; only entries
changed since are encoded.  This keeps the first full `list` after a start as fast as
the next ones without an encoding cache in memory (a start-up costs the entries'
objects and three machine words an entry).

The file is held open (and closed with the last reference to it, so never while a span
of it is being read), so a newer snapshot renamed over it changes nothing here; a file
changed in place (its size, mtime or inode differ from when it was opened) is never
read: its entries are encoded instead.  Entries in a file laid out otherwise than
goproc writes them (keys in another order) are never taken as spans.

On the wire an entry also has its `metrics` (memory only, see `goproc.rpc.entries`):
`Span.read` splices them into the file's bytes, `,"metrics":null` before each entry's
closing brace by one `bytes.replace` of the separators (an unsampled or dead entry,
most of a long list, costs nothing more), and the texts of the sampled ones, taken
when the span was made, at the offsets the layout gives.

Blocking reads (`Span.read`): the daemon's connection and the snapshot writer call
them in worker threads.  No trio here.
"""

from __future__ import annotations

import os
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from goproc.model import Proc
from goproc.rpc.entries import (
    METRICS_KEY,
    NO_METRICS,
    NULL_METRICS,
    MetricsSource,
    RawJSON,
    entry_text,
    wire_run,
)

SPAN_MAX = 4096  # entries a span reads at most (about 1.5 MB): a reply's slice
SPAN_MIN = 64  # entries a span reads at least: fewer are encoded
_RUN_MAX = 1000  # entries encoded per piece
_SEP = 2  # the ",\n" between entries in the file
_NULL = NULL_METRICS.encode()
_WIRE_SEP = _NULL + b"},{"  # what each "},\n{" of the file becomes on the wire


class Span:
    """Entries `first .. first + count - 1` of an `OnDisk`, as its file's bytes;
    `metrics`: the wire text of the sampled ones' metrics, by index in the span."""

    __slots__ = ("count", "first", "metrics", "source")

    def __init__(
        self, source: OnDisk, first: int, count: int, metrics: dict[int, str] | None = None
    ) -> None:
        self.source = source
        self.first = first
        self.count = count
        self.metrics = metrics or {}

    def read(self) -> bytes:
        """The entries in their wire form joined by ",": the file's bytes with their
        metrics spliced in, or encoded when the file cannot be read as it was."""
        raw = self.read_raw()
        metrics = self.metrics
        if raw is None:
            return wire_run(self.entries(), _Given(self.entries(), metrics))
        # JSON strings hold no raw newline: "},\n{" is only ever between two entries.
        # (split and join: the fastest way found, about 0.5 us an entry.)
        wire = _WIRE_SEP.join(raw.split(b"},\n{"))[:-1] + _NULL + b"}"
        if not metrics:
            return wire
        starts, base, grow = self.source.starts, self.source.starts[self.first], len(_WIRE_SEP) - 4
        pieces, at = [], 0
        for k in sorted(metrics):
            # Entry k's closing brace: where the file has it, moved by the k separators
            # before it, each `grow` bytes longer.
            brace = starts[self.first + k + 1] - _SEP - 1 - base + k * grow
            pieces += [wire[at:brace], (METRICS_KEY + metrics[k]).encode()]
            at = brace + len(_NULL)
        pieces.append(wire[at:])
        return b"".join(pieces)

    def read_raw(self) -> bytes | None:
        """The entries joined by ",\\n" (the snapshot form) as the file holds them; None
        when the file changed since it was opened (or cannot be read)."""
        return self.source.read_raw(self.first, self.count)

    def entries(self) -> Sequence[Proc]:
        return self.source.procs[self.first : self.first + self.count]


class OnDisk:
    """`procs` (sorted by id) as the open `file` holds them: entry `i` is the bytes from
    `starts[i]` to `starts[i + 1] - 2` (`starts` has one item more); the entries at the
    indexes in `skip` are not to be taken from the file."""

    def __init__(
        self,
        file: BinaryIO | None,
        procs: Sequence[Proc],
        starts: array[int],
        skip: frozenset[int] = frozenset(),
    ) -> None:
        self._file = file
        self.procs = procs
        self.starts = starts
        self._skip = skip
        self.identity = file_identity(file) if file is not None else None

    @classmethod
    def nothing(cls) -> OnDisk:
        return cls(None, (), array("q"))

    def runs(self, procs: Sequence[Proc]) -> Iterator[Span | Sequence[Proc]]:
        """`procs` (sorted by id) in order, as spans of the file where they are the
        entries it holds, and as runs of entries to encode elsewhere."""
        mine, n = self.procs, len(procs)
        if self._file is None or not mine or n < SPAN_MIN:
            for start in range(0, n, _RUN_MAX):
                yield procs[start : start + _RUN_MAX]
            return
        skip, last = self._skip, len(mine)
        i = 0
        new = 0  # where the current run of entries to encode began
        while i < n:
            p = procs[i]
            j = bisect_left(mine, p.id, key=_id)
            if j == last or mine[j] is not p or (skip and j in skip):
                i += 1
                if i - new >= _RUN_MAX:
                    yield procs[new:i]
                    new = i
                continue
            k = 1
            end = min(n - i, last - j, SPAN_MAX)
            while k < end and procs[i + k] is mine[j + k] and not (skip and j + k in skip):
                k += 1
            if k < SPAN_MIN:  # a few entries: encoding them beats a read in a thread
                i += k
                if i - new >= _RUN_MAX:
                    yield procs[new:i]
                    new = i
                continue
            if new < i:
                yield procs[new:i]
            yield Span(self, j, k)
            i += k
            new = i
        if new < n:
            yield procs[new:n]

    def entries_json(self, procs: Sequence[Proc], metrics: MetricsSource = NO_METRICS) -> RawJSON:
        """An array of entries: the wire form of `list`; spans are read as it is sent,
        with the metrics their entries had when the span was made."""
        return RawJSON(self._array_parts(procs, metrics))

    def _array_parts(self, procs: Sequence[Proc], metrics: MetricsSource) -> Iterator[bytes | Span]:
        yield b"["
        first = True
        for run in self.runs(procs):
            if not first:
                yield b","
            first = False
            if isinstance(run, Span):
                run.metrics = _sampled(run.entries(), metrics)
                yield run
            else:
                yield wire_run(run, metrics)
        yield b"]"

    def read_raw(self, first: int, count: int) -> bytes | None:
        start, end = self.starts[first], self.starts[first + count] - _SEP
        if self._file is None:
            return None
        try:
            if file_identity(self._file) != self.identity:
                return None
            data = os.pread(self._file.fileno(), end - start, start)
        except (OSError, ValueError):  # ValueError: closed
            return None
        if len(data) == end - start and data[:1] == b"{" and data[-1:] == b"}":
            return data
        return None


def _id(p: Proc) -> int:
    return p.id


def _sampled(procs: Sequence[Proc], metrics: MetricsSource) -> dict[int, str]:
    """The metrics texts of the entries that have them, by index (dead entries, most
    of a long list, are not looked up)."""
    text = metrics.text
    return {k: m for k, p in enumerate(procs) if p.alive and (m := text(p)) is not None}


class _Given:
    """The metrics texts a span was made with, as a `MetricsSource` (for encoding)."""

    def __init__(self, procs: Sequence[Proc], texts: dict[int, str]) -> None:
        self._texts = {procs[k].id: m for k, m in texts.items()}

    def latest(self, p: Proc) -> None:
        return None

    def text(self, p: Proc) -> str | None:
        return self._texts.get(p.id)


def file_identity(file: BinaryIO) -> tuple[int, int, int, int]:
    st = os.fstat(file.fileno())
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def snapshot_pieces(
    procs: Sequence[Proc], previous: OnDisk, head: bytes, tail: bytes, starts: array[int]
) -> Iterator[bytes]:
    """The snapshot file of `procs` in pieces (between `head` and `tail`, as
    `goproc.store.format.snapshot_chunks` lays it out), entries unchanged since
    `previous` copied from its file; `starts` is filled with the new file's layout."""
    pos = len(head)
    yield head
    for n, run in enumerate(previous.runs(procs)):
        if n:
            pos += _SEP
            yield b",\n"
        data = run.read_raw() if isinstance(run, Span) else None
        if isinstance(run, Span) and data is not None:
            old = previous.starts
            shift = pos - old[run.first]
            starts.extend(old[j] + shift for j in range(run.first, run.first + run.count))
        else:
            texts = list(map(entry_text, run.entries() if isinstance(run, Span) else run))
            at = pos
            for text in texts:
                starts.append(at)
                at += len(text) + _SEP  # ASCII: one byte a character
            data = ",\n".join(texts).encode()
        pos += len(data)
        yield data
    if procs:
        starts.append(pos + _SEP)
    yield tail
