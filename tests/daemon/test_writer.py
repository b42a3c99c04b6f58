"""The snapshot writer's debounce and retry in virtual time, with a real `Journal` and
real files in a temp dir (the real-daemon counterpart, with its `snapshot_writes`
counter: tests/e2e/test_durability.py).

The writer does its file work in worker threads, and an autojump clock jumps to the
next deadline while a thread runs (every task is then blocked).  So these tests never
hold a deadline of their own while a write may be running: they note the virtual time
at which each write starts (when the writer asks for the registry's contents, in the
trio thread) and wait for events, not for times.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from goproc.model import Proc, ProcessFacts
from goproc.registry import Registry
from goproc.rpc.entries import entry_dict
from goproc.store.files import journal_generations
from goproc.store.journal import Journal
from goproc.store.load import load_state
from goproc.store.writer import SnapshotWriter

NOW = 1_700_000_000.0
DELAY = 0.5


class Contents:
    """The writer's `contents`: the registry as it is, noting when each write began;
    `before_call` runs first (to make a write fail, or to heal the state dir)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.times: list[float] = []
        self.before_call: Callable[[int], None] = lambda n: None
        self._called = trio.Event()

    def __call__(self) -> tuple[list[Proc], int]:
        self.times.append(trio.current_time())
        self._called.set()
        self._called = trio.Event()
        self.before_call(len(self.times))
        return list(self.registry), self.registry.next_id

    async def wait_calls(self, n: int) -> None:
        while len(self.times) < n:
            await self._called.wait()


async def settle() -> None:
    """Until no worker thread runs and every task waits (trio.testing's own recipe)."""
    while True:
        await trio.testing.wait_all_threads_completed()
        await trio.testing.wait_all_tasks_blocked()
        if trio.testing.active_thread_count() == 0:
            return


def registry_of(n: int) -> Registry:
    reg = Registry()
    procs = [ProcessFacts(pid=p, started_at=NOW - p, cmd=f"sleep {p}", pgid=p) for p in range(n)]
    reg.apply(reg.plan_add(procs, now=NOW)[1])
    return reg


def on_disk(state_dir: Path) -> list[dict[str, object]]:
    reg = Registry()
    load_state(state_dir, reg)
    return [entry_dict(p) for p in reg]


def run_writer(
    state_dir: Path,
    registry: Registry,
    body: Callable[[SnapshotWriter, Contents, Journal], Awaitable[None]],
    *,
    delay: float = DELAY,
) -> None:
    async def main() -> None:
        journal = Journal(state_dir, 0)
        contents = Contents(registry)
        writer = SnapshotWriter(state_dir, contents, journal, delay)
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await nursery.start(writer.run)
            await body(writer, contents, journal)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.timeout(10)
def test_a_burst_of_changes_within_delay_is_written_once_delay_after_the_first(
    tmp_path: Path,
) -> None:
    registry = registry_of(3)

    async def body(writer: SnapshotWriter, contents: Contents, journal: Journal) -> None:
        change = registry.plan_remove([3])
        registry.apply(change)
        journal.append(change)  # a record in generation 0
        for at in (0.0, 0.1, 0.2, DELAY - 0.01):  # no write runs yet: sleeping is safe
            await trio.sleep(at - trio.current_time())
            writer.mark_dirty()
        await contents.wait_calls(1)
        await settle()
        assert contents.times == [pytest.approx(DELAY, abs=1e-9)]
        assert writer.writes == 1
        # Nothing more without a new change.
        await trio.sleep(100 * DELAY)
        await settle()
        assert len(contents.times) == 1 and writer.writes == 1
        # Folded: the snapshot holds the registry, the journal it folded is gone.
        assert on_disk(tmp_path) == [entry_dict(p) for p in registry]
        assert journal_generations(tmp_path) == []

    run_writer(tmp_path, registry, body)


@pytest.mark.timeout(10)
def test_bursts_further_apart_than_delay_are_written_once_each(tmp_path: Path) -> None:
    registry = registry_of(2)

    async def body(writer: SnapshotWriter, contents: Contents, journal: Journal) -> None:
        writer.mark_dirty()
        await contents.wait_calls(1)
        await settle()
        assert writer.writes == 1
        second_burst = trio.current_time() + 10 * DELAY
        await trio.sleep(10 * DELAY)
        writer.mark_dirty()
        writer.mark_dirty()
        await contents.wait_calls(2)
        await settle()
        assert contents.times == [
            pytest.approx(DELAY, abs=1e-9),
            pytest.approx(second_burst + DELAY, abs=1e-9),
        ]
        assert writer.writes == 2

    run_writer(tmp_path, registry, body)


@pytest.mark.timeout(10)
def test_a_change_while_a_snapshot_is_written_gets_a_write_of_its_own(tmp_path: Path) -> None:
    """The change comes after the contents were taken: the write under way does not hold
    it, so another one follows, not earlier than `delay` after it."""
    registry = registry_of(2)

    async def body(writer: SnapshotWriter, contents: Contents, journal: Journal) -> None:
        def change_during_the_first_write(n: int) -> None:
            if n == 1:
                registry.apply(registry.plan_remove([1]))
                writer.mark_dirty()

        contents.before_call = change_during_the_first_write
        writer.mark_dirty()
        await contents.wait_calls(2)
        await settle()
        assert writer.writes == 2
        assert contents.times[1] >= contents.times[0] + DELAY
        assert on_disk(tmp_path) == [entry_dict(p) for p in registry]

    run_writer(tmp_path, registry, body)


def fail_first_contents(state_dir: Path) -> Callable[[int], None]:
    def hook(n: int) -> None:
        if n == 1:
            raise OSError(28, "No space left on device")

    return hook


def fail_first_file_write(state_dir: Path) -> Callable[[int], None]:
    """The first write fails in its worker thread (the state dir is gone); the dir is
    back for the second."""
    shutil.rmtree(state_dir)

    def hook(n: int) -> None:
        if n == 2:
            state_dir.mkdir()

    return hook


@pytest.mark.timeout(10)
@pytest.mark.parametrize("delay", [0.5, 2.0])
@pytest.mark.parametrize("failure", [fail_first_contents, fail_first_file_write])
def test_a_failed_write_is_logged_and_retried_after_the_back_off_and_the_delay(
    tmp_path: Path,
    delay: float,
    failure: Callable[[Path], Callable[[int], None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a failure the writer backs off `max(delay, 1 s)`, then debounces as for any
    change (`delay`): the retry starts `max(delay, 1 s) + delay` after the failed one."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    registry = registry_of(2)

    async def body(writer: SnapshotWriter, contents: Contents, journal: Journal) -> None:
        contents.before_call = failure(state_dir)
        writer.mark_dirty()
        await contents.wait_calls(2)
        await settle()
        first, retry = contents.times
        assert first == pytest.approx(delay, abs=1e-9)
        assert retry - first == pytest.approx(max(delay, 1.0) + delay, abs=1e-9)
        assert writer.writes == 1, "the failure is not counted, the retry is"
        assert on_disk(state_dir) == [entry_dict(p) for p in registry]
        # Written: no more retries.
        await trio.sleep(100)
        await settle()
        assert len(contents.times) == 2

    with caplog.at_level(logging.ERROR, logger="goproc.writer"):
        run_writer(state_dir, registry, body, delay=delay)
    failures = [r for r in caplog.records if "snapshot write failed" in r.message]
    assert len(failures) == 1, "one failure, logged once"
