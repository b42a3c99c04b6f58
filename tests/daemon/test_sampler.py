"""The metrics sampler in-process over a table probe (held to the real probe by
tests/daemon/test_probe_contract.py): alive entries are sampled, into `show`, `list`,
events and `metrics.history`; an entry whose process ended, or that changed while its
chunk was read, gets no sample; history stays bounded; interval 0 never samples.  The
real-process counterpart: tests/e2e/test_metrics_live.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from fakes import Parts, TableProbe, call, make_parts

from goproc.daemon import metrics as sampler_module
from goproc.daemon.metrics import Sampler
from goproc.metrics import MetricsStore, Reading
from goproc.model import ProcessFacts, Selector
from goproc.rpc.entries import metrics_text

BASE = 1_700_000_000.0


def facts(pid: int) -> ProcessFacts:
    return ProcessFacts(pid=pid, started_at=BASE - 100, cmd=f"work {pid}", pgid=pid)


@attrs.define
class RacingProbe(TableProbe):
    """A table probe that runs `meanwhile` (in the trio thread) after each reading."""

    meanwhile: Callable[[], object] = lambda: None

    def sample(self, pid: int, started_at: float, *, full: bool = True) -> Reading | None:
        reading = super().sample(pid, started_at, full=full)
        trio.from_thread.run_sync(self.meanwhile)
        return reading


class NotedSampler(Sampler):
    """A sampler that tells when a sweep is over."""

    ended = trio.Event()

    async def sweep(self) -> int:
        n = await super().sweep()
        self.ended.set()
        return n

    async def swept(self, count: int) -> None:
        while self.sweeps < count:
            self.ended = trio.Event()
            await self.ended.wait()


def setup(*pids: int, interval: float = 1.0, history: int = 300) -> tuple[Parts, NotedSampler]:
    probe = RacingProbe({pid: facts(pid) for pid in pids})
    parts = make_parts(probe=probe, clock=lambda: BASE + trio.current_time())
    store = MetricsStore(history, metrics_text)
    sampler = NotedSampler(
        lambda: parts.registry,
        parts.registry.get,
        probe,
        store,
        interval=interval,
        clock=parts.ctx.clock,
    )
    parts.ctx = attrs.evolve(parts.ctx, metrics=store, metrics_interval=interval)
    parts.outlets.bus.metrics = store
    return parts, sampler


async def a_sweep_samples_every_alive_entry() -> None:
    parts, sampler = setup(10, 11)
    parts.probe.readings[10] = Reading(50.0, 5 << 20, 9 << 20, 4, 100, 200, 7)
    a = await call(parts.ctx, "add", {"pid": 10})
    b = await call(parts.ctx, "add", {"pid": 11})
    assert a["metrics"] is None
    assert await sampler.sweep() == 2
    shown = await call(parts.ctx, "show", {"ids": [a["id"]]})
    m = shown["metrics"]
    assert (m["cpu_percent"], m["rss_bytes"], m["threads"], m["fds"]) == (50.0, 5 << 20, 4, 7)
    assert m["cpu_seconds"] == 50.0 and m["write_bytes"] == 200 and m["write_rate"] == 2.0
    listed = await call(parts.ctx, "list")
    assert [e["metrics"] is not None for e in listed] == [True, True]
    [history] = await call(parts.ctx, "metrics.history", {"ids": [b["id"]]})
    assert history["id"] == b["id"] and history["interval"] == 1.0
    assert len(history["samples"]) == 1 and history["samples"][0]["rss_bytes"] == 1 << 20


async def an_ended_process_gets_no_sample() -> None:
    parts, sampler = setup(10)
    a = await call(parts.ctx, "add", {"pid": 10})
    await sampler.sweep()
    del parts.probe.procs[10]  # it ended; the entry is not yet known dead
    assert await sampler.sweep() == 0
    shown = await call(parts.ctx, "show", {"ids": [a["id"]]})
    assert shown["alive"] is True and shown["metrics"] is None
    assert len(sampler.store) == 0


async def an_entry_that_died_while_read_is_not_given_the_reading() -> None:
    parts, sampler = setup(10)
    a = await call(parts.ctx, "add", {"pid": 10})
    proc = parts.registry.get(a["id"])
    assert proc is not None
    assert isinstance(parts.probe, RacingProbe)
    parts.probe.meanwhile = lambda: parts.ctx.vitals.mark_dead(proc)  # seen dead meanwhile
    assert await sampler.sweep() == 0
    assert (await call(parts.ctx, "show", {"ids": [a["id"]]}))["metrics"] is None


async def events_carry_the_metrics_of_their_moment() -> None:
    parts, sampler = setup(10)
    a = await call(parts.ctx, "add", {"pid": 10})
    await sampler.sweep()
    sub = parts.outlets.bus.subscribe(Selector())
    await call(parts.ctx, "tag.add", {"ids": [a["id"]], "labels": ["x"]})
    [event] = await sub.next_batch()
    assert b'"metrics":{"sampled_at"' in event.line(sub.id)


async def the_loop_sweeps_every_interval_and_history_is_bounded(
    clock: trio.testing.MockClock,
) -> None:
    """Virtual time moved by hand: a sweep's reading thread runs in real time."""
    parts, sampler = setup(10, interval=2.0, history=4)
    a = await call(parts.ctx, "add", {"pid": 10})
    async with trio.open_nursery() as nursery:
        await nursery.start(sampler.run)
        for k in range(1, 11):
            await sampler.swept(k)
            assert sampler.sweeps == k and trio.current_time() == 2.0 * (k - 1)
            clock.jump(1.0)
            await trio.testing.wait_all_tasks_blocked()
            assert sampler.sweeps == k  # not before the interval is over
            clock.jump(1.0)
        nursery.cancel_scope.cancel()
    [history] = await call(parts.ctx, "metrics.history", {"ids": [a["id"]]})
    assert len(history["samples"]) == 4


async def interval_zero_never_samples() -> None:
    parts, sampler = setup(10, interval=0.0)
    a = await call(parts.ctx, "add", {"pid": 10})
    with trio.move_on_after(10):
        await sampler.run()
        await trio.sleep(10)
    assert sampler.sweeps == 0
    assert (await call(parts.ctx, "show", {"ids": [a["id"]]}))["metrics"] is None


async def a_sweep_reads_in_one_thread_call_and_records_in_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One worker-thread call reads every entry; the readings are recorded at most
    CHUNK at a time, with a checkpoint (the event loop's other tasks' turn) between."""
    pids = list(range(10, 10 + 2 * sampler_module.CHUNK + 5))
    parts, sampler = setup(*pids)
    await call(parts.ctx, "add", {"pids": pids})
    calls: list[int] = []
    real_run_sync, real_checkpoint = trio.to_thread.run_sync, trio.lowlevel.checkpoint
    recorded = 0
    checkpoints: list[int] = []  # how many were recorded at each checkpoint

    async def counting(fn: Callable[[], Any]) -> Any:
        calls.append(1)
        return await real_run_sync(fn)

    async def noting() -> None:
        checkpoints.append(recorded)
        await real_checkpoint()

    def counted(*args: Any) -> None:
        nonlocal recorded
        recorded += 1
        recording(*args)

    recording = sampler.store.record
    monkeypatch.setattr(trio.to_thread, "run_sync", counting)
    monkeypatch.setattr(trio.lowlevel, "checkpoint", noting)
    monkeypatch.setattr(sampler.store, "record", counted)
    assert await sampler.sweep() == len(pids)
    assert calls == [1]
    assert checkpoints == [sampler_module.CHUNK, 2 * sampler_module.CHUNK]


def virtual(main: Callable[[], Awaitable[None]]) -> None:
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_sweep_samples_every_alive_entry() -> None:
    virtual(a_sweep_samples_every_alive_entry)


def test_an_ended_process_gets_no_sample() -> None:
    virtual(an_ended_process_gets_no_sample)


def test_an_entry_that_died_while_read_is_not_given_the_reading() -> None:
    virtual(an_entry_that_died_while_read_is_not_given_the_reading)


def test_events_carry_the_metrics_of_their_moment() -> None:
    virtual(events_carry_the_metrics_of_their_moment)


def test_the_loop_sweeps_every_interval_and_history_is_bounded() -> None:
    clock = trio.testing.MockClock()
    trio.run(the_loop_sweeps_every_interval_and_history_is_bounded, clock, clock=clock)


def test_interval_zero_never_samples() -> None:
    virtual(interval_zero_never_samples)


def test_a_sweep_reads_in_one_thread_call_and_records_in_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    virtual(lambda: a_sweep_reads_in_one_thread_call_and_records_in_chunks(monkeypatch))
