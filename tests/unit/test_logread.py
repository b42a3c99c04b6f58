"""`goproc logs` over rotated, indexed files (`goproc.cli.logread`, `goproc.cli.logindex`,
`goproc.cli.tail.Tracker`), on real files written in the format of `goproc.logformat`
as the log pump writes it (`Pump` below): rotated at a line's end once a file holds its
limit, each burst dated by a record unless it came within `STEP` of the last one.

- `-n N` is the last N lines of the files' concatenation, `--since` the lines received
  since then, `--all` a stable merge by time, `--timestamps` each line's record's time;
- a file without an index dates its lines by its mtime; a missing rotated file or index
  is no error, a symlink in a rotated file's place is refused, one in an index's ignored;
- following: lines dated as their records come, a line whose record is late waits a
  round, a rotation is followed to the new file and its own index, a truncation read
  again, a line still coming printed once it stops growing.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from goproc.cli import logread, tail
from goproc.cli.logindex import Index, Timeline, open_index, stamp
from goproc.logformat import RECORD, STEP, index_of, rotated

T0 = 1_796_206_500.0  # 2026-12-02T10:15:00Z
Expected = list[tuple[float, bytes]]


class Pump:
    """Writes a stream's files as the log pump does, and keeps what `goproc logs` should
    find: each line with the time of the record at or before its first byte."""

    def __init__(self, base: Path, max_bytes: int, keep: int = 1000, indexed: bool = True):
        self.base, self.max_bytes, self.keep, self.indexed = base, max_bytes, keep, indexed
        self.last: float | None = None  # the time of the current file's last record
        self.lines: Expected = []
        self.at_line_start = True
        self.rotations = 0
        base.write_bytes(b"")
        if indexed:
            Path(index_of(str(base))).write_bytes(b"")

    def write(self, data: bytes, when: float) -> None:
        for piece in re.findall(b"[^\n]*\n|[^\n]+", data):
            self._append(piece, when)
            if piece.endswith(b"\n") and self.base.stat().st_size >= self.max_bytes:
                self.rotate()

    def _append(self, piece: bytes, when: float) -> None:
        size = self.base.stat().st_size
        if self.last is None or when - self.last >= STEP:
            self.last = when
            if self.indexed:
                with open(index_of(str(self.base)), "ab") as f:
                    f.write(RECORD.pack(size, when))
        if self.at_line_start:
            self.lines.append((self.last, piece))
        else:
            self.lines[-1] = (self.lines[-1][0], self.lines[-1][1] + piece)
        self.at_line_start = piece.endswith(b"\n")
        with self.base.open("ab") as f:
            f.write(piece)

    def rotate(self) -> None:
        base = str(self.base)
        self.rotations = min(self.rotations + 1, self.keep)
        for n in range(self.rotations - 1, -1, -1):
            for name in (rotated(base, n), index_of(rotated(base, n))):
                if os.path.exists(name):
                    os.rename(name, name.replace(rotated(base, n), rotated(base, n + 1), 1))
        self.base.write_bytes(b"")
        if self.indexed:
            Path(index_of(base)).write_bytes(b"")
        self.last = None

    def data(self) -> bytes:
        return b"".join(line for _, line in self.lines)


def last(data: bytes, n: int) -> bytes:
    return b"".join(data.splitlines(keepends=True)[-n:]) if n > 0 else b""


def read_all(stream: logread.Stream, start: int) -> bytes:
    return b"".join(logread.blocks(stream, start))


@pytest.fixture
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


# ---- properties over random streams ----------------------------------------------------------

line_text = st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"-").replace(b"\r", b"-"))
gaps = st.sampled_from([0.0, 0.0004, 0.001, 0.25, 3.0])


@st.composite
def writes(draw: st.DrawFn) -> list[tuple[bytes, float]]:
    """Bursts (lines cut anywhere) with times that do not go back."""
    lines = draw(st.lists(line_text, max_size=40))
    data = b"".join(line + b"\n" for line in lines) + draw(st.sampled_from([b"", b"tail"]))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=30)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    when, out = T0, []
    for piece in pieces:
        when += draw(gaps)
        if piece:
            out.append((piece, when))
    return out


def pumped(folder: Path, name: str, bursts: list[tuple[bytes, float]], max_bytes: int) -> Pump:
    pump = Pump(folder / name, max_bytes)
    for data, when in bursts:
        pump.write(data, when)
    return pump


@given(bursts=writes(), max_bytes=st.integers(1, 80), n=st.integers(0, 45))
def test_n_lines_are_the_last_n_of_the_files_put_together(
    bursts: list[tuple[bytes, float]], max_bytes: int, n: int
) -> None:
    with tempfile.TemporaryDirectory() as d:
        pump = pumped(Path(d), "7.out", bursts, max_bytes)
        stream = logread.open_stream(str(pump.base))
        try:
            assert read_all(stream, 0) == pump.data()
            assert read_all(stream, logread.tail_start(stream, n)) == last(pump.data(), n)
        finally:
            stream.close()


@given(bursts=writes(), max_bytes=st.integers(1, 80), back=st.floats(0, 20), n=st.integers(0, 9))
def test_since_is_the_lines_received_since_then_and_their_times_are_right(
    bursts: list[tuple[bytes, float]], max_bytes: int, back: float, n: int
) -> None:
    with tempfile.TemporaryDirectory() as d:
        pump = pumped(Path(d), "7.out", bursts, max_bytes)
        cutoff = (bursts[-1][1] if bursts else T0) - back
        stream = logread.open_stream(str(pump.base))
        try:
            assert list(logread.lines(stream, 0)) == pump.lines
            since = [line for line in pump.lines if line[0] >= cutoff]
            assert list(logread.lines(stream, logread.start_of(stream, None, cutoff))) == since
            limited = since[-n:] if n else []
            assert list(logread.lines(stream, logread.start_of(stream, n, cutoff))) == limited
            written: list[bytes] = []
            logread.emit(logread.lines(stream, 0), written.append, timestamps=True)
            assert b"".join(written) == b"".join(stamp(t) + line for t, line in pump.lines)
        finally:
            stream.close()


@given(out=writes(), err=writes(), max_bytes=st.integers(1, 80))
def test_all_is_a_stable_merge_by_time_stdout_first(
    out: list[tuple[bytes, float]], err: list[tuple[bytes, float]], max_bytes: int
) -> None:
    with tempfile.TemporaryDirectory() as d:
        a = pumped(Path(d), "7.out", out, max_bytes)
        b = pumped(Path(d), "7.err", err, max_bytes)
        sa, sb = logread.open_stream(str(a.base)), logread.open_stream(str(b.base))
        try:
            merged = list(logread.merge(logread.lines(sa, 0), logread.lines(sb, 0)))
        finally:
            sa.close()
            sb.close()
    assert merged == sorted(a.lines + b.lines, key=lambda line: line[0])


@given(data=st.binary(max_size=300), n=st.integers(0, 50), block=st.sampled_from([1, 2, 7, 4096]))
def test_tail_start_in_one_file_reads_back_by_blocks(data: bytes, n: int, block: int) -> None:
    data = data.replace(b"\r", b"-")  # splitlines also splits at \r: compare over \n only
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f"
        path.write_bytes(data)
        stream = logread.open_stream(str(path))
        saved, logread._BLOCK = logread._BLOCK, block
        try:
            assert read_all(stream, logread.tail_start(stream, n)) == last(data, n)
        finally:
            logread._BLOCK = saved
            stream.close()


# ---- files as they may be found ---------------------------------------------------------------


def test_a_stream_without_index_dates_its_lines_by_the_files_mtimes(folder: Path) -> None:
    for name, data, when in (
        ("1.out.2", b"old1\nold2\n", T0 - 1200),
        ("1.out.1", b"mid\n", T0 - 600),
        ("1.out", b"new\n", T0),
    ):
        (folder / name).write_bytes(data)
        os.utime(folder / name, (when, when))
    stream = logread.open_stream(str(folder / "1.out"))
    try:
        assert [p.path for p in stream.parts] == [
            str(folder / n) for n in ("1.out.2", "1.out.1", "1.out")
        ]
        assert [t for t, _ in logread.lines(stream, 0)] == [T0 - 1200, T0 - 1200, T0 - 600, T0]
        assert read_all(stream, logread.start_of(stream, None, T0 - 900)) == b"mid\nnew\n"
        assert read_all(stream, logread.start_of(stream, 1, T0 - 900)) == b"new\n"
        assert read_all(stream, logread.start_of(stream, None, T0 + 1)) == b""
    finally:
        stream.close()


def test_missing_rotated_files_and_indexes_are_no_error(folder: Path) -> None:
    pump = Pump(folder / "2.out", max_bytes=1)
    pump.write(b"a\nb\nc\nd\n", T0)
    os.unlink(folder / "2.out.2")  # a gap: rotation moving them on, or removed by hand
    os.unlink(index_of(str(folder / "2.out.3")))
    (folder / "2.out.x").write_bytes(b"not a rotation\n")
    (folder / "2.out.01").write_bytes(b"not one either\n")
    os.utime(folder / "2.out.3", (T0 - 5, T0 - 5))
    stream = logread.open_stream(str(folder / "2.out"))
    try:
        assert read_all(stream, 0) == b"a\nb\nd\n"
        assert list(logread.lines(stream, 0)) == [(T0, b"a\n"), (T0 - 5, b"b\n"), (T0, b"d\n")]
    finally:
        stream.close()


def test_a_symlink_for_a_rotated_file_is_refused_for_an_index_ignored(folder: Path) -> None:
    pump = Pump(folder / "3.out", max_bytes=1)
    pump.write(b"a\nb\n", T0)
    secret = folder / "secret"
    secret.write_bytes(RECORD.pack(0, 1.0))
    idx = Path(index_of(str(folder / "3.out.1")))
    idx.unlink()
    idx.symlink_to(secret)
    assert open_index(str(folder / "3.out.1")) is None
    os.utime(folder / "3.out.1", (T0 - 9, T0 - 9))
    stream = logread.open_stream(str(folder / "3.out"))
    try:
        assert [t for t, _ in logread.lines(stream, 0)] == [T0, T0 - 9]
    finally:
        stream.close()
    (folder / "3.out.2").unlink()
    (folder / "3.out.2").symlink_to(secret)
    with pytest.raises(tail.TailError, match="symlink"):
        logread.open_stream(str(folder / "3.out"))
    (folder / "3.out").unlink()
    with pytest.raises(tail.TailError, match="No such file"):
        logread.open_stream(str(folder / "3.out"))


def test_a_torn_last_record_is_left_out_and_searches_use_records(folder: Path) -> None:
    path = folder / "4.out"
    path.write_bytes(b"x\n" * 10)
    records = b"".join(RECORD.pack(2 * i, T0 + i) for i in range(10))
    Path(index_of(str(path))).write_bytes(records + b"\x01\x02\x03")
    fd = open_index(str(path))
    assert fd is not None
    try:
        index = Index(fd)
        assert index.count == 10
        assert [index.last_at_or_before(o) for o in (0, 1, 2, 19, 100)] == [0, 0, 1, 9, 9]
        assert [index.first_since(t) for t in (0, T0, T0 + 0.5, T0 + 9, T0 + 10)] == [
            0,
            0,
            1,
            9,
            10,
        ]
    finally:
        os.close(fd)


def test_stamp_is_rfc3339_utc_to_the_millisecond() -> None:
    assert stamp(T0 + 0.123) == b"2026-12-02T10:15:00.123Z "
    assert stamp(0) == b"1970-01-01T00:00:00.000Z "
    assert stamp(T0 + 59.9996) == b"2026-12-02T10:16:00.000Z "


# ---- following --------------------------------------------------------------------------------


def tracker_of(path: Path) -> tail.Tracker:
    fd = tail.open_log(str(path))
    return tail.Tracker(fd, str(path), path.stat().st_size, open_index(str(path)), False)


def append(path: Path, data: bytes, record: tuple[int, float] | None = None) -> None:
    with path.open("ab") as f:
        f.write(data)
    if record is not None:
        with open(index_of(str(path)), "ab") as f:
            f.write(RECORD.pack(*record))


def test_tracker_dates_lines_by_their_records_and_waits_a_round_for_a_late_one(
    folder: Path,
) -> None:
    path = folder / "5.out"
    pump = Pump(path, max_bytes=1 << 20)
    pump.write(b"before\n", T0)
    t = tracker_of(path)
    try:
        assert t.poll() == []
        append(path, b"one\ntwo\n", (7, T0 + 1))
        assert t.poll() == [(T0 + 1, b"one\n", True)], "two: a record of its own may come"
        assert t.poll() == [(T0 + 1, b"two\n", True)], "none came: the burst's"
        append(path, b"late\n")
        assert t.poll() == [], "its record may be on its way"
        append(path, b"", (15, T0 + 2))
        assert t.poll() == [(T0 + 2, b"late\n", True)]
        append(path, b"shared\n")  # within STEP of the last: no record of its own
        assert t.poll() == []
        assert t.poll() == [(T0 + 2, b"shared\n", True)]
    finally:
        t.close()


def test_tracker_prints_a_line_still_coming_once_it_stops_growing(folder: Path) -> None:
    path = folder / "6.out"
    path.write_bytes(b"")
    t = tracker_of(path)  # no index: the file's mtime
    try:
        append(path, b"Password: ")
        assert t.poll() == []
        [(_, data, head)] = t.poll()
        assert (data, head) == (b"Password: ", True)
        append(path, b"ok\nnext\n")
        assert [(d, h) for _, d, h in t.poll()] == [(b"ok\n", False), (b"next\n", True)]
        os.truncate(path, 0)
        append(path, b"again\n")
        assert [(d, h) for _, d, h in t.poll()] == [(b"again\n", True)]
    finally:
        t.close()


def test_tracker_follows_a_rotation_to_the_new_file_and_its_own_index(folder: Path) -> None:
    path = folder / "7.out"
    pump = Pump(path, max_bytes=1 << 20)
    pump.write(b"first\n", T0)
    t = tracker_of(path)
    try:
        append(path, b"last of old\n", (6, T0 + 1))
        os.rename(path, rotated(str(path), 1))
        path.write_bytes(b"new\n")  # the new file before its index: the old index is not its
        assert [(w, d) for w, d, _ in t.poll()] == [(T0 + 1, b"last of old\n")], "new waits"
        os.rename(index_of(str(path)), index_of(rotated(str(path), 1)))
        Path(index_of(str(path))).write_bytes(RECORD.pack(0, T0 + 5))
        assert t.poll() == [(T0 + 5, b"new\n", True)]
        os.rename(path, rotated(str(path), 1))
        path.write_bytes(b"newer\n")  # and no index comes: a round, then the file's mtime
        assert t.poll() == []
        assert t.poll() == [(path.stat().st_mtime, b"newer\n", True)]
    finally:
        t.close()


def test_timeline_reads_a_growing_index_and_forgets_what_is_behind(folder: Path) -> None:
    path = folder / "8.out"
    idx = Path(index_of(str(path)))
    idx.write_bytes(b"".join(RECORD.pack(i * 10, T0 + i) for i in range(5)))
    fd = os.open(idx, os.O_RDONLY)
    line = Timeline(fd, 25)
    try:
        line.refresh()
        assert line.records[0] == (20, T0 + 2), "it starts at the record of its offset"
        assert (line.date(25), line.settled(25), line.settled(41)) == (T0 + 2, True, False)
        with idx.open("ab") as f:
            f.write(RECORD.pack(50, T0 + 5)[:7])
        line.refresh()
        assert line.settled(41) is False, "a torn record is not read"
        with idx.open("ab") as f:
            f.write(RECORD.pack(50, T0 + 5)[7:])
        line.refresh()
        assert (line.date(55), line.settled(41)) == (T0 + 5, True)
        line.prune(45)
        assert line.records[0] == (40, T0 + 4)
    finally:
        line.close()
