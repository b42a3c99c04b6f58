"""With `"journal_fsync": "always"`, a change refused because its fdatasync failed is
cut out of the journal: it is not in memory, and it does not come back at the next
start (the real `Journal` on real files in a temp dir; only the fdatasync fails).

Also: a request cancelled while its record is being synced keeps its change (the record
is on disk, so the change stands; no error is answered), and concurrent changes refused
by one failed sync are all undone, newest first.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from fakes import Watched

from goproc.daemon.events import EventBus
from goproc.daemon.service import Outlets, Pulse, Service
from goproc.errors import StorageError
from goproc.model import Change, ProcessFacts
from goproc.registry import Registry
from goproc.rpc.entries import entry_dict
from goproc.store import journal as journal_module
from goproc.store.journal import Journal
from goproc.store.load import load_state
from goproc.store.writer import write_snapshot

NOW = 1_700_000_000.0


def facts(pid: int) -> ProcessFacts:
    return ProcessFacts(pid=pid, started_at=NOW - pid, cmd=f"sleep {pid}", pgid=pid)


def add(reg: Registry, pid: int, name: str | None = None) -> Change:
    return reg.plan_add([facts(pid)], tags=["t"], name=name, now=NOW)[1]


def state_after_restart(state_dir: Path) -> tuple[list[dict[str, object]], int]:
    reg = Registry()
    load_state(state_dir, reg)
    return [entry_dict(p) for p in reg], reg.next_id


def view(reg: Registry) -> list[dict[str, object]]:
    return [entry_dict(p) for p in reg]


class FlakySync:
    """`_fdatasync_all` that fails while `failing` is set."""

    def __init__(self, real: Callable[[list[int]], None]) -> None:
        self.real = real
        self.failing = False
        self.calls = 0

    def __call__(self, fds: list[int]) -> None:
        self.calls += 1
        if self.failing:
            raise OSError(errno.EIO, "Input/output error")
        self.real(fds)


def run_with_service(state_dir: Path, body: Callable[[Service, Registry], Awaitable[None]]) -> None:
    async def main() -> None:
        registry = Registry()
        loaded = load_state(state_dir, registry)
        if loaded.fresh:  # as a first start does (goproc.daemon.wiring.run)
            write_snapshot(state_dir, [], registry.next_id, loaded.next_gen)
        journal = Journal(state_dir, loaded.next_gen, fsync="always")
        outlets = Outlets(EventBus(), Pulse(), lambda: None, lambda: NOW)
        service = Service(registry, journal, Watched(), outlets)
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await body(service, registry)
            nursery.cancel_scope.cancel()

    trio.run(main)


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> FlakySync:
    sync = FlakySync(journal_module._fdatasync_all)
    monkeypatch.setattr(journal_module, "_fdatasync_all", sync)
    return sync


def test_a_change_refused_by_a_failed_fdatasync_never_comes_back(
    tmp_path: Path, flaky: FlakySync
) -> None:
    seen: dict[str, object] = {}

    async def body(service: Service, reg: Registry) -> None:
        await service.commit(add(reg, 101, "kept"))
        flaky.failing = True
        before = view(reg)
        with pytest.raises(StorageError, match="not made"):
            await service.commit(add(reg, 102, "refused"))
        with pytest.raises(StorageError):
            await service.commit(reg.plan_reset())  # a refused reset must not wipe later
        assert view(reg) == before
        flaky.failing = False
        await service.commit(add(reg, 103))
        seen["memory"] = view(reg)

    run_with_service(tmp_path, body)
    assert flaky.calls >= 4
    procs, next_id = state_after_restart(tmp_path)
    assert procs == seen["memory"]
    assert [p["pid"] for p in procs] == [101, 103]
    assert all(p["name"] != "refused" for p in procs)
    assert [p["id"] for p in procs] == [1, 3]  # ids are never given back: 2 stays used
    assert next_id == 4


def test_concurrent_changes_refused_by_one_failed_sync_are_all_undone(
    tmp_path: Path, flaky: FlakySync
) -> None:
    """Two changes to the same entry wait on one sync; it fails; both are undone (the
    newer first, so the older's undo restores the true original)."""

    async def body(service: Service, reg: Registry) -> None:
        await service.commit(add(reg, 201, "base"))
        original = view(reg)
        flaky.failing = True
        errors: list[BaseException] = []

        async def commit(change_of: Callable[[], Change]) -> None:
            try:
                await service.commit(change_of())
            except StorageError as e:
                errors.append(e)

        async with trio.open_nursery() as n:
            n.start_soon(commit, lambda: reg.plan_labels([1], "tags", add=["x"])[1])
            await trio.lowlevel.checkpoint()  # the first is applied and written first
            n.start_soon(commit, lambda: reg.plan_set_name(1, "renamed")[1])
        assert len(errors) == 2
        assert view(reg) == original
        flaky.failing = False

    run_with_service(tmp_path, body)
    procs, _ = state_after_restart(tmp_path)
    assert [(p["name"], p["tags"]) for p in procs] == [("base", ["t"])]


def test_a_request_cancelled_while_its_record_syncs_keeps_its_change(tmp_path: Path) -> None:
    async def body(service: Service, reg: Registry) -> None:
        with trio.CancelScope() as scope:
            scope.cancel()  # cancelled before it starts waiting for the sync
            await service.commit(add(reg, 301, "cancelled"))
        assert [p.name for p in reg] == ["cancelled"]

    run_with_service(tmp_path, body)
    procs, _ = state_after_restart(tmp_path)
    assert [p["name"] for p in procs] == ["cancelled"]
