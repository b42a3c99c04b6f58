"""The pure side of metrics (`goproc.metrics`): rates and CPU percent, the history ring
against a plain list, and the store's rules: a reading belongs to one process, a
dead entry has none, the first reading averages over the process's life."""

from __future__ import annotations

import math
import sys

import attrs
from hypothesis import given, strategies as st

from goproc.history import History, Sample
from goproc.metrics import MetricsStore, Reading, cpu_percent, rate
from goproc.model import Proc
from goproc.rpc.entries import metrics_dict, metrics_text

T0 = 1_700_000_000.0
PROC = Proc(1, 4242, 4242, "busy", None, True, (), (), T0, T0, T0)

rates = st.none() | st.floats(0, 1e9, width=32)
samples = st.builds(
    Sample,
    t=st.floats(T0, T0 + 1e6),
    cpu_percent=st.floats(0, 6400, width=32),
    rss_bytes=st.integers(0, 2**41),
    read_rate=rates,
    write_rate=rates,
)


@given(size=st.integers(1, 20), given_samples=st.lists(samples, max_size=60))
def test_history_holds_the_last_size_samples_in_order(
    size: int, given_samples: list[Sample]
) -> None:
    h = History(size)
    for s in given_samples:
        h.append(s)
    kept = given_samples[-size:]
    assert len(h) == len(kept)
    got = list(h)
    for g, k in zip(got, kept, strict=True):  # to the millisecond, RSS to the KiB
        assert abs(g.t - k.t) <= 0.0006 and g.rss_bytes == k.rss_bytes >> 10 << 10
    for g, k in zip(got, kept, strict=True):
        assert math.isclose(g.cpu_percent, k.cpu_percent, rel_tol=1e-6, abs_tol=0.01)
        assert (g.read_rate is None) == (k.read_rate is None)
        assert (g.write_rate is None) == (k.write_rate is None)


@given(steps=st.lists(st.floats(0, 90 * 86400), min_size=1, max_size=12))
def test_history_outlives_its_offsets(steps: list[float]) -> None:
    """Times are kept as millisecond offsets (4 bytes): a history over months (or a
    clock set back) moves its base; what is kept is the newest samples, in order, none
    further than the offsets reach (about 49 days) from the newest."""
    h = History(5)
    t, times = T0, []
    for step in steps:
        t += step
        times.append(t)
        h.add(t, 1.0, 4096, None, 0.5)
    got = [s.t for s in h]
    assert got and abs(got[-1] - times[-1]) <= 0.0006
    assert got == sorted(got) and len(got) <= 5
    expected = [x for x in times[-5:] if times[-1] - x <= (2**32 - 1) / 1000]
    assert len(got) == len(expected)


@given(given_samples=st.lists(samples, min_size=1, max_size=30), cut=st.floats(T0, T0 + 1e6))
def test_history_since(given_samples: list[Sample], cut: float) -> None:
    h = History(100)
    for s in given_samples:
        h.append(s)
    assert [round(s.t, 3) for s in h.since(cut)] == [
        round(s.t, 3) for s in given_samples if round(s.t, 3) >= cut
    ]
    assert len(h.since(None)) == len(given_samples)


def test_history_is_compact() -> None:
    """20 bytes a sample: 300 samples for 1,000 entries are 6 MB."""
    h = History(300)
    arrays = [getattr(h, name) for name in ("_t", "_cpu", "_rss", "_read", "_write")]
    per_sample = sum(a.itemsize for a in arrays)
    assert per_sample == 20
    assert sum(sys.getsizeof(a) for a in arrays) * 1000 < 10 << 20


@given(
    before=st.integers(0, 2**40),
    delta=st.integers(-(2**20), 2**40),
    seconds=st.floats(0.001, 1e5),
)
def test_rates_are_per_second_and_never_negative(before: int, delta: int, seconds: float) -> None:
    r = rate(before + delta, before, seconds)
    assert r is not None and r >= 0
    assert math.isclose(r, max(0, delta) / seconds)
    assert rate(None, before, seconds) is None and rate(before, None, seconds) is None
    assert math.isclose(cpu_percent(10.0 + seconds, 10.0, seconds), 100.0, rel_tol=1e-6)
    assert cpu_percent(9.0, 10.0, seconds) == 0.0


def reading(cpu: float, rss: int = 1 << 20, read: int | None = 0, write: int | None = 0) -> Reading:
    return Reading(cpu, rss, 2 * rss, 1, read, write, 4)


def test_the_first_reading_averages_since_start_then_per_interval() -> None:
    store = MetricsStore(10, metrics_text)
    store.record(PROC, reading(5.0, write=1000), T0 + 10, 100.0)
    m = store.latest(PROC)
    assert m is not None and m.cpu_percent == 50.0 and m.write_rate == 100.0
    store.record(PROC, reading(7.0, write=3000), T0 + 12, 102.0)
    m = store.latest(PROC)
    assert m is not None and (m.cpu_percent, m.write_rate, m.write_bytes) == (100.0, 1000.0, 3000)
    assert store.text(PROC) == metrics_text(m)
    assert metrics_dict(m) is not None and metrics_dict(None) is None


def test_a_reading_without_io_keeps_the_last_counters_and_rates() -> None:
    store = MetricsStore(10, metrics_text)
    store.record(PROC, reading(1.0, write=1000), T0 + 10, 100.0)
    store.record(
        PROC, reading(2.0, read=None, write=None)._replace(fds=None), T0 + 11, 101.0, False
    )
    m = store.latest(PROC)
    assert m is not None and (m.write_bytes, m.write_rate, m.fds) == (1000, 100.0, 4)
    store.record(PROC, reading(3.0, write=2000), T0 + 12, 102.0)
    m = store.latest(PROC)
    assert m is not None and m.write_rate == 500.0  # over the 2 s since the counters were read


def test_metrics_belong_to_one_process() -> None:
    store = MetricsStore(10, metrics_text)
    store.record(PROC, reading(1.0), T0 + 10, 100.0)
    assert store.latest(attrs.evolve(PROC, alive=False)) is None
    assert store.text(attrs.evolve(PROC, alive=False)) is None
    other = attrs.evolve(PROC, started_at=T0 + 5)  # the same id and pid, another process
    assert store.latest(other) is None and store.track(other) is None
    store.record(other, reading(0.5), T0 + 10, 100.0)  # a new track, a new history
    track = store.track(other)
    assert track is not None and len(track.history) == 1
    assert store.latest(PROC) is None
    store.retain(set())
    assert len(store) == 0 and store.latest(other) is None


def test_history_length_is_bounded_by_the_store() -> None:
    store = MetricsStore(3, metrics_text)
    for k in range(10):
        store.record(PROC, reading(float(k)), T0 + 10 + k, 100.0 + k)
    track = store.track(PROC)
    assert track is not None
    assert [s.t for s in track.history] == [T0 + 17, T0 + 18, T0 + 19]
