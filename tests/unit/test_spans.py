"""Entries taken from the snapshot file (`goproc.store.spans`) are exactly the entries'
own encoding: for any registry, any changes since the file was loaded or written, and
any selection, the array a reply sends and the next snapshot written are byte for byte
what encoding every entry afresh gives; a file changed in place is never read.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import attrs
from fuzzing import registries
from hypothesis import given, settings, strategies as st

from goproc.metrics import Metrics
from goproc.model import Proc
from goproc.registry import Registry
from goproc.rpc.entries import (
    NO_METRICS,
    MetricsSource,
    entries_json,
    metrics_dict,
    metrics_text,
    read_parts,
    wire_dict,
)
from goproc.store import load, spans, writer
from goproc.store.format import SNAPSHOT, snapshot_chunks


def changed(data: st.DataObject, procs: list[Proc]) -> list[Proc]:
    """`procs` after some changes: entries kept as they are (the very objects), changed
    (new objects, some equal to the old), dropped, and added."""
    draw = data.draw
    out = []
    for p in procs:
        what = draw(st.sampled_from(["keep"] * 6 + ["change", "same", "drop"]))
        if what == "keep":
            out.append(p)
        elif what == "change":
            out.append(attrs.evolve(p, cmd=p.cmd + "!", alive=not p.alive))
        elif what == "same":
            out.append(attrs.evolve(p))  # equal, but not the object the file was made of
    top = max((p.id for p in procs), default=0)
    extra = draw(st.integers(0, 3))
    out += [attrs.evolve(procs[0], id=top + k + 1, name=None) for k in range(extra) if procs]
    return out


def load_dir(state_dir: Path) -> tuple[list[Proc], spans.OnDisk]:
    registry = Registry()
    loaded = load.load_state(state_dir, registry)
    return list(registry), loaded.on_disk


def wire(
    on_disk: spans.OnDisk, procs: Sequence[Proc], metrics: MetricsSource = NO_METRICS
) -> bytes:
    return read_parts(on_disk.entries_json(procs, metrics).parts)


def fresh(procs: Sequence[Proc], metrics: MetricsSource = NO_METRICS) -> bytes:
    return read_parts(entries_json(procs, metrics).parts)


class SomeMetrics:
    """Metrics for the alive entries whose ids are in `ids` (a dead one has none)."""

    def __init__(self, ids: set[int]) -> None:
        self.ids = ids

    def latest(self, p: Proc) -> Metrics | None:
        if not p.alive or p.id not in self.ids:
            return None
        return Metrics(
            p.started_at, p.id / 7, 1.5, p.id << 12, p.id << 13, None, 5, None, 2.5, 1, 3
        )

    def text(self, p: Proc) -> str | None:
        m = self.latest(p)
        return None if m is None else metrics_text(m)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), procs=registries())
def test_spans_are_the_entries_own_encoding(data: st.DataObject, procs: list[Proc]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        writer.write_snapshot(d, procs, 1000, 0)
        loaded, on_disk = load_dir(d)
        assert loaded == procs
        assert wire(on_disk, loaded) == fresh(loaded)
        assert json.loads(wire(on_disk, loaded)) == json.loads(fresh(procs))

        now = changed(data, loaded)
        subset = [p for p in now if data.draw(st.booleans())]
        for selection in (now, subset):
            assert wire(on_disk, selection) == fresh(selection)
        # Metrics spliced into spans are where encoding afresh puts them.
        metrics = SomeMetrics({p.id for p in now if data.draw(st.booleans())})
        for selection in (loaded, now, subset):
            assert wire(on_disk, selection, metrics) == fresh(selection, metrics)
        assert json.loads(fresh(now, metrics)) == [wire_dict(p, metrics) for p in now]

        # The next snapshot copies what it can from the file and lays out its own right.
        written = writer.write_snapshot_over(d, now, 1000, 1, None, on_disk)
        assert (d / SNAPSHOT).read_bytes() == b"".join(snapshot_chunks(now, 1000, 1, None))
        again, reloaded = load_dir(d)
        assert again == now
        assert reloaded.starts == written.starts
        for selection in (now, subset):
            assert wire(written, selection) == fresh(selection)


def big(n: int) -> list[Proc]:
    base = 1_700_000_000.0
    return [
        Proc(i, 1000 + i, None, f"cmd {i}", None, False, ("t",), (), base, base, base, base + i)
        for i in range(1, n + 1)
    ]


def test_spans_get_metrics_spliced_in(tmp_path: Path) -> None:
    """A span read from the file, some of its entries alive with metrics: the bytes
    are the entries' wire form, metrics where they belong, null elsewhere."""
    procs = [attrs.evolve(p, alive=p.id % 3 == 0) for p in big(3 * spans.SPAN_MIN)]
    writer.write_snapshot(tmp_path, procs, 1000, 0)
    loaded, on_disk = load_dir(tmp_path)
    metrics = SomeMetrics({p.id for p in loaded if p.id % 2 == 0})
    parts = list(on_disk.entries_json(loaded, metrics).parts)
    assert any(isinstance(part, spans.Span) for part in parts), "read from the file"
    got = json.loads(read_parts(parts))
    assert got == [wire_dict(p, metrics) for p in loaded]
    assert [e["metrics"] is not None for e in got] == [p.id % 6 == 0 for p in loaded]
    assert got[5]["metrics"] == metrics_dict(metrics.latest(loaded[5]))


def test_a_snapshot_changed_in_place_is_never_read(tmp_path: Path) -> None:
    procs = big(3 * spans.SPAN_MIN)
    writer.write_snapshot(tmp_path, procs, len(procs) + 1, 0)
    loaded, on_disk = load_dir(tmp_path)
    runs = list(on_disk.runs(loaded))
    assert runs and all(isinstance(r, spans.Span) for r in runs), "unchanged: read as spans"
    path = tmp_path / SNAPSHOT
    data = bytearray(path.read_bytes())
    at = data.index(b'"cmd 1"')
    data[at : at + 7] = b'"CMD 1"'  # same size
    with path.open("r+b") as f:  # in place: the daemon's open file sees it
        f.write(bytes(data))
    os.utime(path, ns=(0, 0))  # and an mtime that differs for sure
    assert wire(on_disk, loaded) == fresh(loaded)
    assert b"CMD" not in wire(on_disk, loaded)


def test_a_newer_snapshot_renamed_over_the_file_changes_nothing(tmp_path: Path) -> None:
    procs = big(2 * spans.SPAN_MIN)
    writer.write_snapshot(tmp_path, procs, len(procs) + 1, 0)
    loaded, on_disk = load_dir(tmp_path)
    writer.write_snapshot(tmp_path, big(5), 6, 1)  # atomically replaced: a new file
    assert wire(on_disk, loaded) == fresh(loaded)


def test_entries_laid_out_otherwise_are_encoded(tmp_path: Path) -> None:
    procs = big(2 * spans.SPAN_MIN)
    writer.write_snapshot(tmp_path, procs, len(procs) + 1, 0)
    path = tmp_path / SNAPSHOT
    lines = path.read_bytes().split(b"\n")
    entry = json.loads(lines[5].rstrip(b","))
    reordered = {"pid": entry.pop("pid"), **entry}  # another key order, same values
    lines[5] = json.dumps(reordered, separators=(",", ":")).encode() + b","
    path.write_bytes(b"\n".join(lines))
    loaded, on_disk = load_dir(tmp_path)
    assert loaded == procs
    assert wire(on_disk, loaded) == fresh(loaded)


def test_few_entries_are_encoded_not_read(tmp_path: Path) -> None:
    procs = big(4 * spans.SPAN_MIN)
    writer.write_snapshot(tmp_path, procs, len(procs) + 1, 0)
    loaded, on_disk = load_dir(tmp_path)
    rare = loaded[:: spans.SPAN_MIN]  # scattered: no run long enough to read
    assert not any(isinstance(r, spans.Span) for r in on_disk.runs(rare))
    assert wire(on_disk, rare) == fresh(rare)
