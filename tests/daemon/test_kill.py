"""The `kill` handler over the real method table, a table probe and virtual time: which
signals are sent, when, and what is answered (the real-daemon counterpart, with real
processes and wall-clock bounds: tests/test_commands.py and tests/e2e/test_hostile.py).

Each fake process dies at the signals listed for it (`Doomed`); every signal the
probe sends is noted with its virtual time.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from fakes import ErrorReply, Parts, TableProbe, call, make_parts

from goproc.errors import AMBIGUOUS, PermissionDenied
from goproc.model import Proc, ProcessFacts
from goproc.registry import Registry

NOW = 1_700_000_500.0
TERM, KILL, HUP = signal.SIGTERM, signal.SIGKILL, signal.SIGHUP
A, B, C = 4242, 4343, 4444  # ids 1, 2, 3


def facts(pid: int) -> ProcessFacts:
    return ProcessFacts(pid=pid, started_at=NOW - pid, cmd=f"sleep {pid}", pgid=pid)


@attrs.define
class Doomed:
    """The fake processes' reactions: `dies_at[pid]` are the signals that end it;
    `sent` is every signal the probe delivered, with its virtual time."""

    dies_at: dict[int, set[int]]
    probe: TableProbe = attrs.field(init=False)
    sent: list[tuple[float, int, int]] = attrs.field(factory=list)
    refuse: bool = False

    def on_signal(self, pid: int, signum: int) -> None:
        if self.refuse:
            raise PermissionDenied(f"not allowed to signal pid {pid}")
        self.sent.append((trio.current_time(), pid, signum))
        if signum in self.dies_at.get(pid, set()):
            del self.probe.procs[pid]


def setup(dies_at: dict[int, set[int]]) -> tuple[Parts, Doomed]:
    """A, B and C tracked and running; each dies at the signals `dies_at` gives it."""
    reg = Registry()
    reg.apply(reg.plan_add([facts(A), facts(B), facts(C)], now=NOW)[1])
    doomed = Doomed(dies_at)
    probe = TableProbe({p: facts(p) for p in (A, B, C)}, on_signal=doomed.on_signal)
    doomed.probe = probe
    return make_parts(reg, probe), doomed


def run(body: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        with trio.fail_after(3600):  # stuck for good: fail now, in wall time
            await body()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def approx(t: float) -> Any:
    return pytest.approx(t, abs=1e-6)


def alive(parts: Parts, proc_id: int) -> bool:
    p = parts.registry.get(proc_id)
    assert p is not None
    return p.alive


def test_term_to_a_process_that_dies_at_term_is_exited_at_once() -> None:
    parts, doomed = setup({A: {TERM}})

    async def body() -> None:
        result = await call(parts.ctx, "kill", {"ids": [1]})
        assert result == [{"id": 1, "pid": A, "signal": "SIGTERM", "outcome": "exited"}]
        assert trio.current_time() == approx(0.0)

    run(body)
    assert doomed.sent == [(approx(0.0), A, TERM)]
    assert not alive(parts, 1), "its death is recorded"


@pytest.mark.parametrize("timeout", [None, 0.5, 12.0])
def test_term_to_a_process_that_ignores_it_is_killed_after_exactly_timeout(
    timeout: float | None,
) -> None:
    """`timeout` omitted: the default, 5 s."""
    parts, doomed = setup({A: {KILL}})
    waited = 5.0 if timeout is None else timeout
    params: dict[str, Any] = {"ids": [1], "signal": "TERM"}
    if timeout is not None:
        params["timeout"] = timeout

    async def body() -> None:
        result = await call(parts.ctx, "kill", params)
        assert result == [{"id": 1, "pid": A, "signal": "SIGTERM", "outcome": "killed"}]
        assert trio.current_time() == approx(waited)

    run(body)
    assert doomed.sent == [(approx(0.0), A, TERM), (approx(waited), A, KILL)]
    assert not alive(parts, 1)


def test_a_process_that_survives_sigkill_too_is_answered_killed_a_second_later() -> None:
    """(Uninterruptible sleep.)  The answer does not wait for ever; the entry stays
    alive until a probe finds it gone."""
    parts, doomed = setup({})

    async def body() -> None:
        result = await call(parts.ctx, "kill", {"ids": [1], "timeout": 2})
        assert [r["outcome"] for r in result] == ["killed"]
        assert trio.current_time() == approx(2.0 + 1.0)

    run(body)
    assert doomed.sent == [(approx(0.0), A, TERM), (approx(2.0), A, KILL)]
    assert alive(parts, 1)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"signal": "HUP"}, "SIGHUP"),
        ({"signal": 10}, "SIGUSR1"),
        ({"signal": "TERM", "timeout": 0}, "SIGTERM"),
    ],
    ids=["HUP", "10", "TERM, timeout 0"],
)
def test_a_signal_other_than_term_is_signalled_without_waiting(
    params: dict[str, Any], name: str
) -> None:
    parts, doomed = setup({})

    async def body() -> None:
        result = await call(parts.ctx, "kill", {"ids": [1], **params})
        assert result == [{"id": 1, "pid": A, "signal": name, "outcome": "signalled"}]
        assert trio.current_time() == approx(0.0)

    run(body)
    assert doomed.sent == [(approx(0.0), A, signal.Signals[name])]
    assert alive(parts, 1), "it ignored the signal: still alive"


def test_a_process_that_dies_at_a_signalled_signal_is_recorded_dead() -> None:
    parts, doomed = setup({A: {HUP}})
    run(lambda: call(parts.ctx, "kill", {"ids": [1], "signal": "HUP"}))
    assert doomed.sent == [(approx(0.0), A, HUP)]
    assert not alive(parts, 1)


def test_a_dead_entry_is_not_alive_and_gets_no_signal() -> None:
    parts, doomed = setup({})
    proc = parts.registry.get(1)
    assert proc is not None
    parts.ctx.vitals.mark_dead(proc)

    async def body() -> None:
        result = await call(parts.ctx, "kill", {"ids": [1]})
        assert result == [{"id": 1, "pid": A, "signal": "SIGTERM", "outcome": "not alive"}]
        assert trio.current_time() == approx(0.0)

    run(body)
    assert doomed.sent == []


def test_all_matching_entries_are_signalled_at_once() -> None:
    """One dies at TERM, two only at KILL: all answered after one timeout, not one
    timeout after the other."""
    parts, doomed = setup({A: {TERM}, B: {KILL}, C: {KILL}})

    async def body() -> None:
        result = await call(parts.ctx, "kill", {"all": True, "timeout": 3})
        assert [(r["id"], r["outcome"]) for r in result] == [
            (1, "exited"),
            (2, "killed"),
            (3, "killed"),
        ]
        assert trio.current_time() == approx(3.0)

    run(body)
    in_time_order = sorted(doomed.sent)  # signals sent at one moment go out in any order
    assert in_time_order == [
        (approx(0.0), A, TERM),
        (approx(0.0), B, TERM),
        (approx(0.0), C, TERM),
        (approx(3.0), B, KILL),
        (approx(3.0), C, KILL),
    ]


def test_several_matches_without_all_are_refused_and_nothing_is_sent() -> None:
    parts, doomed = setup({})

    async def body() -> None:
        with pytest.raises(ErrorReply) as refused:
            await call(parts.ctx, "kill", {})
        assert refused.value.code == AMBIGUOUS

    run(body)
    assert doomed.sent == []


@pytest.mark.parametrize("dies_at", [{TERM}, {KILL}], ids=["exited", "killed"])
def test_rm_removes_the_entries_once_signalled(dies_at: set[int]) -> None:
    parts, doomed = setup({A: dies_at, B: dies_at})

    async def body() -> None:
        result = await call(parts.ctx, "kill", {"pids": [A, B], "all": True, "rm": True})
        assert {r["outcome"] for r in result} == {"exited" if TERM in dies_at else "killed"}

    run(body)
    assert parts.registry.get(1) is None and parts.registry.get(2) is None
    assert parts.registry.get(3) is not None, "only the matching ones"
    assert parts.journal.changes[-1].deleted == (1, 2), "journaled"
    signals = [TERM] if TERM in dies_at else [TERM, KILL]
    expected = sorted((0.0 if s == TERM else 5.0, pid, s) for pid in (A, B) for s in signals)
    assert sorted(doomed.sent) == [(approx(t), pid, s) for t, pid, s in expected]


def test_a_signal_the_probe_may_not_send_is_failed_with_the_reason() -> None:
    parts, doomed = setup({})
    doomed.refuse = True

    async def body() -> None:
        result = await call(parts.ctx, "kill", {"ids": [1]})
        assert result == [
            {
                "id": 1,
                "pid": A,
                "signal": "SIGTERM",
                "outcome": "failed",
                "error": f"not allowed to signal pid {A}",
            }
        ]
        assert trio.current_time() == approx(0.0)

    run(body)
    assert alive(parts, 1)


@pytest.mark.parametrize("signum", [TERM, HUP])
def test_a_process_that_ended_by_itself_before_the_signal_is_exited_not_failed(
    signum: int,
) -> None:
    """The registry still says alive (no probe has seen the exit yet); the signal finds
    the process gone: it exited, nothing failed."""
    parts, doomed = setup({})
    del parts.probe.procs[A]

    async def body() -> None:
        result = await call(parts.ctx, "kill", {"ids": [1], "signal": signum})
        assert [(r["outcome"], r.get("error")) for r in result] == [("exited", None)]

    run(body)
    assert doomed.sent == []
    assert not alive(parts, 1), "its death is recorded"


@attrs.define
class HeldExits:
    """An exit watcher holding a (pretend) pidfd for every entry: `wait_exit` returns
    when the test ends the process through `end`."""

    probe: TableProbe
    ended: dict[int, trio.Event] = attrs.field(factory=dict)

    def pidfd(self, proc: Proc) -> int | None:
        return 1000 + proc.id

    async def wait_exit(self, proc: Proc) -> bool:
        await self.ended.setdefault(proc.pid, trio.Event()).wait()
        return True

    def end(self, pid: int) -> None:
        del self.probe.procs[pid]
        self.ended.setdefault(pid, trio.Event()).set()


@attrs.define
class CountingProbe(TableProbe):
    probes: int = 0
    pidfds: list[int | None] = attrs.field(factory=list)

    def is_alive(self, pid: int, started_at: float) -> bool:
        self.probes += 1
        return super().is_alive(pid, started_at)

    def send_signal(
        self, pid: int, started_at: float, signum: int, *, group: bool, pidfd: int | None = None
    ) -> None:
        self.pidfds.append(pidfd)
        super().send_signal(pid, started_at, signum, group=group, pidfd=pidfd)


def test_kill_signals_through_the_held_pidfd_and_waits_on_it_without_probing() -> None:
    """With pidfds, a process that takes its time to exit after TERM costs no probe
    while it is awaited (before: one every 20 ms on the event loop, for each)."""
    reg = Registry()
    reg.apply(reg.plan_add([facts(A), facts(B)], now=NOW)[1])
    probe = CountingProbe({p: facts(p) for p in (A, B)})
    exits = HeldExits(probe)
    parts = make_parts(reg, probe)
    ctx = attrs.evolve(parts.ctx, exits=exits)

    async def body() -> None:
        async with trio.open_nursery() as nursery:

            async def later() -> None:
                await trio.sleep(3)
                exits.end(A)
                exits.end(B)

            nursery.start_soon(later)
            result = await call(ctx, "kill", {"ids": [1, 2], "all": True, "timeout": 10})
        assert [r["outcome"] for r in result] == ["exited", "exited"]
        assert trio.current_time() == approx(3.0)

    run(body)
    assert set(probe.pidfds) == {1001, 1002}, "signalled through the held pidfds"
    # Per entry: the identity check of the signal, one look once told of the exit, one
    # to record it (the fake watcher records nothing); not one every 20 ms for 3 s.
    assert probe.probes <= 3 * 2, f"{probe.probes} probes while waiting 3 s"
