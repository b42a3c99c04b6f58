"""The `wait` handler over the real method table in virtual time: it answers the moment
the entries it waits for have ended (or one, with `any`), or at exactly its timeout
(the real-daemon counterpart: tests/e2e/test_wait.py).

Deaths are recorded as the exit watcher and the liveness ticker record them, through
`Vitals.mark_dead`, from a task that acts at a set virtual time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing
from fakes import ErrorReply, Parts, TableProbe, call, make_parts

from goproc.errors import NO_MATCH
from goproc.model import ProcessFacts
from goproc.registry import Registry

NOW = 1_700_000_500.0
PIDS = (4242, 4343, 4444)  # ids 1, 2, 3


def facts(pid: int) -> ProcessFacts:
    return ProcessFacts(pid=pid, started_at=NOW - pid, cmd=f"sleep {pid}", pgid=pid)


def new_parts() -> Parts:
    reg = Registry()
    reg.apply(reg.plan_add([facts(p) for p in PIDS], now=NOW)[1])
    return make_parts(reg, TableProbe({p: facts(p) for p in PIDS}))


def die(parts: Parts, proc_id: int) -> None:
    proc = parts.registry.get(proc_id)
    assert proc is not None
    assert parts.ctx.vitals.mark_dead(proc) is not None


async def remove(parts: Parts, proc_id: int) -> None:
    await parts.ctx.service.commit(parts.registry.plan_remove([proc_id]))


Step = Callable[[], Awaitable[None] | None]


def waited(
    parts: Parts, params: dict[str, Any], steps: dict[float, Step] | None = None
) -> tuple[Any, float]:
    """The result of a `wait` and the virtual time it was answered at, while `steps`
    run at their times (virtual time starts at 0)."""
    answer: list[tuple[Any, float]] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for at, step in sorted((steps or {}).items()):
                nursery.start_soon(_at, at, step)
            with trio.fail_after(3600):  # stuck for good: fail now, in wall time
                result = await call(parts.ctx, "wait", params)
            answer.append((result, trio.current_time()))
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return answer[0]


async def _at(t: float, step: Step) -> None:
    await trio.sleep_until(t)
    done = step()
    if done is not None:
        await done


def ids(entries: list[dict[str, Any]]) -> list[int]:
    return [e["id"] for e in entries]


def approx(t: float) -> Any:
    return pytest.approx(t, abs=1e-6)


def test_wait_returns_the_moment_the_entry_is_marked_dead() -> None:
    parts = new_parts()
    result, at = waited(parts, {"ids": [1], "timeout": 60}, {7.0: lambda: die(parts, 1)})
    assert at == approx(7.0)
    assert result["timed_out"] is False
    assert ids(result["exited"]) == [1] and result["alive"] == []
    assert result["exited"][0]["alive"] is False


@pytest.mark.parametrize("timeout", [None, 0.25, 12.0])
def test_wait_times_out_after_exactly_timeout(timeout: float | None) -> None:
    """`timeout` omitted: the default, 30 s."""
    parts = new_parts()
    params: dict[str, Any] = {"ids": [1]}
    if timeout is not None:
        params["timeout"] = timeout
    result, at = waited(parts, params)
    assert at == approx(30.0 if timeout is None else timeout)
    assert result["timed_out"] is True
    assert result["exited"] == [] and ids(result["alive"]) == [1]


def test_wait_with_timeout_zero_answers_at_once() -> None:
    result, at = waited(new_parts(), {"ids": [1], "timeout": 0})
    assert at == approx(0.0) and result["timed_out"] is True


def test_wait_for_an_entry_dead_already_answers_at_once() -> None:
    parts = new_parts()
    die(parts, 1)
    result, at = waited(parts, {"ids": [1]})
    assert at == approx(0.0)
    assert result["timed_out"] is False and ids(result["exited"]) == [1]


def test_wait_without_any_waits_for_every_entry() -> None:
    parts = new_parts()
    result, at = waited(
        parts,
        {"ids": [1, 2], "timeout": 60},
        {3.0: lambda: die(parts, 1), 8.0: lambda: die(parts, 2)},
    )
    assert at == approx(8.0)
    assert result["timed_out"] is False
    assert ids(result["exited"]) == [1, 2] and result["alive"] == []


def test_wait_with_any_returns_at_the_first_death() -> None:
    parts = new_parts()
    result, at = waited(
        parts,
        {"ids": [1, 2], "any": True, "timeout": 60},
        {3.0: lambda: die(parts, 2), 8.0: lambda: die(parts, 1)},
    )
    assert at == approx(3.0)
    assert result["timed_out"] is False
    assert ids(result["exited"]) == [2] and ids(result["alive"]) == [1]


def test_wait_with_any_times_out_when_none_ends() -> None:
    parts = new_parts()
    result, at = waited(parts, {"ids": [1, 2], "any": True, "timeout": 5})
    assert at == approx(5.0)
    assert result["timed_out"] is True and ids(result["alive"]) == [1, 2]


def test_an_entry_removed_meanwhile_counts_as_ended() -> None:
    """With `any` its removal answers at once; without, it no longer holds the wait
    up, and it is in neither list."""
    parts = new_parts()
    result, at = waited(
        parts, {"ids": [1, 2], "any": True, "timeout": 60}, {4.0: lambda: remove(parts, 2)}
    )
    assert at == approx(4.0)
    assert result["timed_out"] is False
    assert result["exited"] == [] and ids(result["alive"]) == [1]

    parts = new_parts()
    result, at = waited(
        parts,
        {"ids": [1, 2], "timeout": 60},
        {2.0: lambda: remove(parts, 1), 5.0: lambda: die(parts, 2)},
    )
    assert at == approx(5.0)
    assert ids(result["exited"]) == [2] and result["alive"] == []


def test_the_entries_are_those_matching_when_the_request_arrives() -> None:
    """An entry added while the wait runs is not waited for (it matches the selector
    as well)."""
    parts = new_parts()

    async def add_one() -> None:
        parts.probe.procs[4545] = facts(4545)
        await call(parts.ctx, "add", {"pid": 4545, "tags": ["t"]})

    def the_first_three_die() -> None:
        for proc_id in (1, 2, 3):
            die(parts, proc_id)

    result, at = waited(
        parts, {"alive": True, "timeout": 60}, {1.0: add_one, 2.0: the_first_three_die}
    )
    assert at == approx(2.0)
    assert ids(result["exited"]) == [1, 2, 3] and result["alive"] == []


def test_wait_for_nothing_that_matches_is_refused() -> None:
    async def main() -> None:
        with pytest.raises(ErrorReply) as refused:
            await call(new_parts().ctx, "wait", {"ids": [99]})
        assert refused.value.code == NO_MATCH

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
