"""The liveness ticker in virtual time over a table probe: it sweeps every `interval`,
a process that ended is found dead at the next sweep (an `exited` event), and
`last_seen` moves at most every `last_seen_interval` (the real-daemon counterpart, with
wall-clock bounds: tests/e2e/test_liveness.py).

A sweep probes in a worker thread, and an autojump clock jumps to the next deadline
while a thread runs.  So the tests hold no deadline of their own while a sweep may be
running: they wait for the end of a sweep (`NotedVitals`), and sleep only between
sweeps.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterable

import attrs
import pytest
import trio
import trio.testing
from fakes import Parts, TableProbe, make_parts

from goproc.daemon.events import Event
from goproc.daemon.liveness import Liveness
from goproc.daemon.service import Vitals
from goproc.model import Proc, ProcessFacts, Selector
from goproc.registry import Registry

BASE = 1_700_000_000.0  # the wall clock at virtual time 0
A, B = 4242, 4343  # ids 1 and 2


def facts(pid: int, started_at: float | None = None) -> ProcessFacts:
    start = BASE - pid if started_at is None else started_at
    return ProcessFacts(pid=pid, started_at=start, cmd=f"sleep {pid}", pgid=pid)


def clock() -> float:
    return BASE + trio.current_time()


def clock_at(t: float) -> float:
    return BASE + t


class NotedVitals(Vitals):
    """`Vitals` noting the end of every sweep (a sweep calls `seen` once, last): its
    virtual time and each entry's `last_seen` then."""

    def __init__(self, parts: Parts) -> None:
        super().__init__(parts.registry, parts.outlets)
        self.swept: list[tuple[float, dict[int, float]]] = []
        self._sweep_done = trio.Event()

    def seen(self, procs: Iterable[Proc], t: float) -> None:
        super().seen(procs, t)
        self.swept.append((trio.current_time(), {p.id: p.last_seen for p in self.registry}))
        self._sweep_done.set()
        self._sweep_done = trio.Event()

    async def wait_sweeps(self, n: int) -> None:
        while len(self.swept) < n:
            await self._sweep_done.wait()


@attrs.define
class Ticker:
    parts: Parts
    vitals: NotedVitals
    liveness: Liveness


def run_ticker(
    body: Callable[[Ticker], Awaitable[None]], *, interval: float, last_seen_interval: float
) -> None:
    """A and B tracked and running since virtual time 0; the ticker runs from 0."""
    reg = Registry()
    reg.apply(reg.plan_add([facts(A), facts(B)], now=clock_at(0.0))[1])
    parts = make_parts(reg, TableProbe({A: facts(A), B: facts(B)}), clock=clock)
    vitals = NotedVitals(parts)
    liveness = Liveness(
        lambda: reg,
        parts.probe,
        vitals,
        interval=interval,
        last_seen_interval=last_seen_interval,
        clock=clock,
    )

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(liveness.run)
            await body(Ticker(parts, vitals, liveness))
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def approx(t: float) -> object:
    return pytest.approx(t, abs=1e-6)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("interval", [10.0, 0.5])
def test_a_sweep_runs_every_interval(interval: float) -> None:
    async def body(t: Ticker) -> None:
        await t.vitals.wait_sweeps(5)
        assert [at for at, _ in t.vitals.swept] == [approx(k * interval) for k in range(1, 6)]
        assert t.liveness.sweeps == 5

    run_ticker(body, interval=interval, last_seen_interval=30.0)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("how", ["ended", "pid reused"])
def test_a_process_that_ended_is_found_dead_at_the_next_sweep(how: str) -> None:
    """It ends at 15 s, between the sweeps at 10 and 20: alive until 20, then dead with
    an `exited` event timed 20 s; the other one is untouched.  A dead verdict is final:
    back in the table as the very process, it stays dead."""

    async def body(t: Ticker) -> None:
        sub = t.parts.outlets.bus.subscribe(Selector())
        await t.vitals.wait_sweeps(1)
        await trio.sleep_until(15.0)  # between sweeps: no probe thread runs
        if how == "ended":
            del t.parts.probe.procs[A]
        else:
            t.parts.probe.procs[A] = facts(A, started_at=BASE + 14.0)
        proc = t.parts.registry.get(1)
        assert proc is not None and proc.alive, "not known before the next sweep"
        batch = await sub.next_batch()
        assert trio.current_time() == approx(20.0)
        dead = t.parts.registry.get(1)
        assert dead is not None and not dead.alive
        assert dead.exited_at == approx(clock_at(20.0))
        assert [(e.kind, e.time, e.proc) for e in batch if isinstance(e, Event)] == [
            ("exited", approx(clock_at(20.0)), dead)
        ]
        assert len(batch) == 1
        other = t.parts.registry.get(2)
        assert other is not None and other.alive
        # Final: back in the table as the very process, it stays dead.
        t.parts.probe.procs[A] = facts(A)
        await t.vitals.wait_sweeps(4)
        again = t.parts.registry.get(1)
        assert again is not None and not again.alive
        assert not sub.queue, "no more events"

    run_ticker(body, interval=10.0, last_seen_interval=30.0)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("last_seen_interval", "last_seen", "marked_dirty"),
    [
        (30.0, [0, 0, 30, 30, 30, 60, 60], [0, 0, 1, 0, 0, 1, 0]),
        (5.0, [10, 20, 30, 40, 50, 60, 70], [1, 1, 1, 1, 1, 1, 1]),
    ],
    ids=["30s", "5s: at every sweep"],
)
def test_last_seen_moves_at_most_every_last_seen_interval(
    last_seen_interval: float, last_seen: list[float], marked_dirty: list[int]
) -> None:
    """Sweeps every 10 s; `last_seen` (0 when added) after each of the first seven, and
    whether that sweep marked the snapshot dirty: only one that moves it does."""

    async def body(t: Ticker) -> None:
        dirty_marks = []
        for n in range(1, 8):
            await t.vitals.wait_sweeps(n)
            dirty_marks.append(len(t.parts.dirty))
        assert [seen for _, seen in t.vitals.swept] == [
            {1: approx(clock_at(s)), 2: approx(clock_at(s))} for s in last_seen
        ]
        assert [b - a for a, b in itertools.pairwise([0, *dirty_marks])] == marked_dirty

    run_ticker(body, interval=10.0, last_seen_interval=last_seen_interval)
