"""Once a change's record is journaled its answer is success, whatever fails while the
change is told to others: an exit watcher that cannot open a pidfd (EMFILE), a
MemoryError.  The failure is logged and the entry is left to the liveness ticker's
poll; an error answer would say "not made" of a change that comes back at the next
start."""

from __future__ import annotations

import errno
import logging

import attrs
import pytest
import trio
from fakes import TableProbe, call, make_parts

from goproc.daemon.service import Service
from goproc.model import Proc, ProcessFacts

NOW = 1_700_000_500.0
PID = 4242


@attrs.define
class BrokenWatcher:
    """An exit watcher that fails as the OS can make it fail."""

    error: BaseException

    def watch(self, proc: Proc) -> None:
        raise self.error

    def forget(self, proc_id: int) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [OSError(errno.EMFILE, "Too many open files"), MemoryError()],
    ids=["EMFILE", "MemoryError"],
)
def test_a_journaled_change_is_answered_success_when_announcing_it_fails(
    error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    probe = TableProbe({PID: ProcessFacts(pid=PID, started_at=NOW - 5, cmd="sleep", pgid=PID)})
    parts = make_parts(probe=probe)
    service = Service(parts.registry, parts.journal, BrokenWatcher(error), parts.outlets)
    ctx = attrs.evolve(parts.ctx, service=service)

    async def body() -> None:
        added = await call(ctx, "add", {"pid": PID})
        assert added["id"] == 1
        removed = await call(ctx, "remove", {"ids": [1]})
        assert [p["id"] for p in removed] == [1]

    with caplog.at_level(logging.ERROR, logger="goproc.service"):
        trio.run(body)
    assert len(parts.journal.changes) == 2, "both journaled"
    assert len(parts.registry) == 0
    assert "telling others about it failed" in caplog.text
