"""The exit watcher's held pidfds against real processes: a PID taken over within the
same clock tick (start times have 10 ms resolution, so the start-time check cannot
tell the two apart) is never signalled through the entry, and `kill` waits on the
watcher instead of probing.

The takeover is made real: the tracked process is killed and reaped, and the kernel's
`ns_last_pid` is set so that the next process gets its pid; tries repeat until the
newcomer also started in the same tick (root only: writing ns_last_pid needs it).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
import trio

from goproc.daemon.exits import AVAILABLE, ExitWatcher
from goproc.daemon.probe import OsProbe
from goproc.errors import NoSuchProcess
from goproc.model import Proc

NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"
TRIES = 200

pytestmark = [
    pytest.mark.skipif(not AVAILABLE, reason="needs pidfds (Linux 5.3+)"),
    pytest.mark.skipif(
        os.geteuid() != 0 or not os.access(NS_LAST_PID, os.W_OK),
        reason="forcing a pid's reuse means writing ns_last_pid, which needs root",
    ),
]


def start_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rindex(b")") + 2 :].split()[19])


def spawn_sleep() -> int:
    return os.posix_spawn("/bin/sleep", ["sleep", "300"], os.environ)


def entry(probe: OsProbe, pid: int, proc_id: int = 1) -> Proc:
    facts = probe.inspect(pid)
    return Proc(
        id=proc_id,
        pid=pid,
        pgid=facts.pgid,
        cmd=facts.cmd,
        name=None,
        alive=True,
        tags=(),
        groups=(),
        started_at=facts.started_at,
        added_at=time.time(),
        last_seen=time.time(),
    )


def end(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def running(pid: int) -> bool:
    """Whether our child `pid` has not exited (it is not reaped here)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def take_over(pid: int) -> int | None:
    """Kill and reap `pid`, then start a `sleep` on the same pid; its pid, or None
    when another pid was given (something else forked in between)."""
    end(pid)
    with open(NS_LAST_PID, "w") as f:
        f.write(str(pid - 1))
    new = spawn_sleep()
    if new != pid:
        end(new)
        return None
    return new


@pytest.fixture
def spawned() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        end(pid)


def test_a_pid_taken_over_in_the_same_tick_is_never_signalled_through_the_entry(
    spawned: list[int],
) -> None:
    probe = OsProbe()
    seen_same_tick = 0

    async def main() -> None:
        nonlocal seen_same_tick
        exited: list[Proc] = []
        watcher = ExitWatcher(probe, exited.append)
        async with trio.open_nursery() as nursery:
            await nursery.start(watcher.run)
            for n in range(1, TRIES + 1):
                old = spawn_sleep()
                spawned.append(old)
                ticks = start_ticks(old)
                proc = entry(probe, old, n)
                watcher.watch(proc)
                assert watcher.pidfd(proc) is not None
                # From here to the signal there is no checkpoint: the watcher cannot
                # have seen the exit, as a busy daemon would not have yet.
                new = take_over(old)
                if new is None:
                    continue
                spawned.append(new)
                if start_ticks(new) != ticks:
                    continue
                seen_same_tick += 1
                assert probe.is_alive(new, proc.started_at), "the start time cannot tell"
                with pytest.raises(NoSuchProcess):
                    probe.send_signal(
                        new, proc.started_at, signal.SIGTERM, group=False, pidfd=watcher.pidfd(proc)
                    )
                with pytest.raises(NoSuchProcess):  # nor through its process group
                    probe.send_signal(
                        new, proc.started_at, signal.SIGTERM, group=True, pidfd=watcher.pidfd(proc)
                    )
                assert running(new), "the newcomer runs on"
                if seen_same_tick >= 3:
                    break
            nursery.cancel_scope.cancel()

    trio.run(main)
    if seen_same_tick == 0:
        pytest.skip(f"no takeover within one clock tick in {TRIES} tries (a busy machine)")


def test_kill_waits_on_the_held_pidfd_and_the_watcher_forgets_a_removed_entry(
    spawned: list[int],
) -> None:
    probe = OsProbe()

    async def main() -> None:
        exited: list[Proc] = []
        watcher = ExitWatcher(probe, exited.append)
        async with trio.open_nursery() as nursery:
            await nursery.start(watcher.run)
            pid = spawn_sleep()
            spawned.append(pid)
            proc = entry(probe, pid)
            watcher.watch(proc)
            other = entry(probe, pid)  # the same id and pid, added at another time
            assert watcher.pidfd(other) is None, "another entry with the id: not ours"
            with trio.fail_after(5):
                async with trio.open_nursery() as waiting:
                    waiting.start_soon(watcher.wait_exit, proc)
                    await trio.sleep(0.05)
                    os.kill(pid, signal.SIGKILL)
            end(pid)
            assert [p.pid for p in exited] == [pid]
            assert watcher.pidfd(proc) is None and watcher.watched == 0
            assert not await watcher.wait_exit(proc), "unwatched now: the caller probes"
            nursery.cancel_scope.cancel()

    trio.run(main)
