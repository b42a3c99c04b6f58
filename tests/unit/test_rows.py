"""The rows file (`goproc.store.rows`) is a cache of the snapshot: a load through it gives
exactly what the snapshot's JSON gives, and a rows file that is stale, torn, foreign or
wrong in any way is ignored (the JSON is read), never trusted.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from fuzzing import registries
from hypothesis import given, settings

from goproc.model import Proc
from goproc.registry import Registry
from goproc.rpc.entries import entries_json, read_parts
from goproc.store import load, rows, spans, writer
from goproc.store.format import SNAPSHOT

ROWS_MIN = 1  # every snapshot gets its rows here


def write(d: Path, procs: list[Proc]) -> spans.OnDisk:
    next_id = max((p.id for p in procs), default=0) + 1
    return writer.write_snapshot_over(d, procs, next_id, 2, None, spans.OnDisk.nothing(), ROWS_MIN)


def load_both(d: Path) -> tuple[Registry, load.Loaded, Registry, load.Loaded]:
    """The state dir loaded as it is, and loaded again without its rows file."""
    fast = Registry()
    loaded = load.load_state(d, fast)
    data = (d / rows.ROWS).read_bytes() if (d / rows.ROWS).exists() else None
    (d / rows.ROWS).unlink(missing_ok=True)
    slow = Registry()
    loaded_slow = load.load_state(d, slow)
    if data is not None:
        (d / rows.ROWS).write_bytes(data)
    return fast, loaded, slow, loaded_slow


@settings(max_examples=40, deadline=None)
@given(procs=registries())
def test_rows_load_exactly_what_the_snapshot_holds(procs: list[Proc]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        written = write(d, procs)
        assert (d / rows.ROWS).exists() == bool(procs)
        assert used_rows(d) == bool(procs)
        fast, loaded, slow, loaded_slow = load_both(d)
        assert list(fast) == list(slow) == procs
        assert fast.next_id == slow.next_id
        assert loaded.from_rows == bool(procs) and not loaded_slow.from_rows
        nothing = spans.OnDisk.nothing()
        a = attrs.evolve(loaded, on_disk=nothing, from_rows=False)
        assert a == attrs.evolve(loaded_slow, on_disk=nothing)
        assert loaded.on_disk.starts == written.starts
        got = read_parts(loaded.on_disk.entries_json(list(fast)).parts)
        assert got == read_parts(entries_json(procs).parts)


def big(n: int) -> list[Proc]:
    base = 1_700_000_000.0
    return [
        Proc(i, 1000 + i, i, f"cmd {i}", None, i % 2 == 0, ("t",), ("g",), base, base, base, None)
        for i in range(1, n + 1)
    ]


def used_rows(d: Path) -> bool:
    with (d / SNAPSHOT).open("rb") as f:
        return rows.read_rows(d, f) is not None


def test_a_snapshot_written_after_the_rows_makes_them_stale(tmp_path: Path) -> None:
    write(tmp_path, big(20))
    assert used_rows(tmp_path)
    writer.write_snapshot(tmp_path, big(3), 4, 3)  # a snapshot without rows: e.g. older code
    assert not used_rows(tmp_path)
    reg = Registry()
    load.load_state(tmp_path, reg)
    assert list(reg) == big(3)


def test_a_snapshot_changed_in_place_makes_them_stale(tmp_path: Path) -> None:
    write(tmp_path, big(20))
    path = tmp_path / SNAPSHOT
    with path.open("ab") as f:
        f.write(b" ")  # still valid JSON, another size
    assert not used_rows(tmp_path)


def records(data: bytes) -> list[Any]:
    """A rows file's records: the header, the chunks of rows, the end."""
    return list(rows._records(data))


def dumped(recs: list[Any]) -> bytes:
    return b"".join(rows._record(r) for r in recs)


def _head(data: bytes, index: int, value: object) -> bytes:
    recs = records(data)
    head = list(recs[0])
    head[index] = value
    recs[0] = tuple(head)
    return dumped(recs)


def _row(data: bytes, change: Callable[[tuple[Any, ...]], tuple[Any, ...]]) -> bytes:
    recs = records(data)
    recs[1][3] = change(recs[1][3])
    return dumped(recs)


def _swapped(data: bytes) -> bytes:
    recs = records(data)
    recs[1][2], recs[1][3] = recs[1][3], recs[1][2]
    return dumped(recs)


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "torn": lambda data: data[: len(data) // 2],
    "a record cut short": lambda data: data[:-1],
    "a record's bytes not marshal": lambda data: data[:8] + b"\xff" * (len(data) - 8),
    "data after the end": lambda data: data + rows._record(None),
    "no end record": lambda data: dumped(records(data)[:-1]),
    "a chunk missing": lambda data: dumped(records(data)[:1] + records(data)[2:]),
    "a chunk twice": lambda data: dumped(records(data)[:2] + records(data)[1:]),
    "empty": lambda data: b"",
    "garbage": lambda data: b"\x00\xff" * 100,
    "other magic": lambda data: _head(data, 0, "goproc rows 0"),
    "other python": lambda data: _head(data, 1, "cpython 2.7"),
    "another count": lambda data: _head(data, 3, 19),
    "layout too short": lambda data: _head(data, 4, b""),
    "a row of the wrong type": lambda data: _row(data, lambda r: (*r[:3], 7, *r[4:])),
    "a row too short": lambda data: _row(data, lambda r: r[:11]),
    "a NaN time": lambda data: _row(data, lambda r: (*r[:8], float("nan"), *r[9:])),
    "a non-string tag": lambda data: _row(data, lambda r: (*r[:6], (1,), *r[7:])),
    "an unhashable tag": lambda data: _row(data, lambda r: (*r[:6], ([],), *r[7:])),
    "ids out of order": _swapped,
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_a_bad_rows_file_is_ignored_and_the_snapshot_read(kind: str, tmp_path: Path) -> None:
    d = tmp_path
    write(d, big(2500))  # three chunks of rows
    assert used_rows(d)
    path = d / rows.ROWS
    path.write_bytes(CORRUPTIONS[kind](path.read_bytes()))  # naming the snapshot still
    assert not used_rows(d)
    reg = Registry()
    loaded = load.load_state(d, reg)
    assert list(reg) == big(2500) and loaded.warnings == ()


def test_few_entries_get_no_rows_file(tmp_path: Path) -> None:
    writer.write_snapshot_over(tmp_path, big(20), 21, 0, None, spans.OnDisk.nothing(), 10_000)
    assert not (tmp_path / rows.ROWS).exists()
    old_umask = os.umask(0)
    try:
        write(tmp_path, big(20))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / rows.ROWS).stat().st_mode) == 0o600, "private, any umask"
    writer.write_snapshot_over(tmp_path, big(20), 21, 0, None, spans.OnDisk.nothing(), 10_000)
    assert not (tmp_path / rows.ROWS).exists(), "a stale one is removed"


def test_an_evolved_entry_round_trips_through_rows(tmp_path: Path) -> None:
    procs = big(5)
    procs[2] = attrs.evolve(procs[2], cmd="bad \udcff bytes", name="n", exited_at=1.5e9)
    write(tmp_path, procs)
    assert used_rows(tmp_path)
    fast, _, slow, _ = load_both(tmp_path)
    assert list(fast) == list(slow) == procs
