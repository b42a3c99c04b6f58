"""The real probe's two ways of sampling a process: straight from /proc (Linux) and
through psutil (elsewhere; `OsProbe(procfs=False)` takes it on Linux too).  On one real
process they agree; for a process that is gone, a zombie, or not the process asked
about (another start time), both say None; the /proc way's held `stat` descriptors are
let go when their process ends or is no longer sampled, and only held while there is
room; and the sampler works end to end either way.  The probe-wide contract (the same
answers as the fake): tests/daemon/test_probe_contract.py.

Real processes (ours, killed and reaped at teardown); nothing sleeps but the end-to-end
test, which lets half a second pass between two sweeps.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import trio
from fakes import TableProbe, call, make_parts

from goproc.daemon.metrics import Sampler
from goproc.daemon.probe import OsProbe
from goproc.daemon.procstat import HOLD_ROOM
from goproc.metrics import MetricsStore
from goproc.rpc.entries import metrics_text

Spawn = Callable[..., subprocess.Popen[bytes]]
PATHS = ["proc", "psutil"]

# Memory, descriptors, threads, storage writes and some CPU, then quiet until told.
WORKER = """
import os, sys, threading, time
blob = bytearray(20 << 20)
blob[::4096] = b"x" * len(blob[::4096])
files = [open(os.devnull) for _ in range(5)]
with open(sys.argv[1], "wb") as f:
    f.write(os.urandom(1 << 20))
    f.flush()
    os.fsync(f.fileno())
for _ in range(3):
    threading.Thread(target=threading.Event().wait, daemon=True).start()
started = time.process_time()
while time.process_time() - started < 0.2:
    pass
print("ok", flush=True)
sys.stdin.readline()
"""


@pytest.fixture(scope="module")
def real() -> Iterator[OsProbe]:
    probe = OsProbe()
    yield probe
    probe.keep_sampling(())  # its held descriptors


@pytest.fixture(scope="module")
def through_psutil(real: OsProbe) -> OsProbe:
    """The real probe as off Linux (the same boot-time anchor)."""
    return OsProbe(real.boot_time, procfs=False)


def probe_of(path: str, real: OsProbe, through_psutil: OsProbe) -> OsProbe:
    return real if path == "proc" else through_psutil


def worker(sleeper: Spawn, tmp_path: Path) -> subprocess.Popen[bytes]:
    p = sleeper(
        sys.executable,
        "-c",
        WORKER,
        str(tmp_path / "written"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stdout.readline() == b"ok\n"
    return p


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def lowest_free_descriptor() -> int:
    fd = os.dup(0)
    os.close(fd)
    return fd


@contextlib.contextmanager
def descriptor_limit(soft: int) -> Iterator[None]:
    """The soft descriptor limit at `soft` for the block (skipped where the hard limit
    does not allow it)."""
    was, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft > hard:
        pytest.skip(f"the hard descriptor limit ({hard}) is below {soft}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (was, hard))


def test_both_ways_read_the_same_numbers_of_one_process(
    real: OsProbe, through_psutil: OsProbe, sleeper: Spawn, tmp_path: Path
) -> None:
    p = worker(sleeper, tmp_path)
    started_at = real.inspect(p.pid).started_at
    proc = real.sample(p.pid, started_at)
    ps = through_psutil.sample(p.pid, started_at)
    assert proc is not None and ps is not None

    assert proc.cpu_seconds >= 0.19 and abs(proc.cpu_seconds - ps.cpu_seconds) <= 0.011
    assert proc.rss_bytes >= 20 << 20 and abs(proc.rss_bytes - ps.rss_bytes) <= 0.01 * ps.rss_bytes
    assert abs(proc.vms_bytes - ps.vms_bytes) <= 0.01 * ps.vms_bytes
    assert proc.threads == ps.threads == 4
    assert proc.read_bytes == ps.read_bytes and proc.read_bytes is not None
    assert proc.write_bytes == ps.write_bytes and proc.write_bytes is not None
    assert proc.fds == ps.fds and proc.fds is not None and proc.fds >= 8
    assert psutil.Process(p.pid).num_fds() == proc.fds  # the count is listing's count

    for reading in (real, through_psutil):
        fast = reading.sample(p.pid, started_at, full=False)
        assert fast is not None and fast.threads == 4
        assert (fast.read_bytes, fast.write_bytes, fast.fds) == (None, None, None)


@pytest.mark.parametrize("path", PATHS)
def test_no_reading_of_a_process_that_ended_or_is_another(
    path: str, real: OsProbe, through_psutil: OsProbe, sleeper: Spawn
) -> None:
    probe = probe_of(path, real, through_psutil)
    reaped, zombie, other = sleeper(), sleeper(), sleeper()
    starts = {p.pid: real.inspect(p.pid).started_at for p in (reaped, zombie, other)}
    real.keep_sampling(starts)  # held descriptors, on the /proc way
    for p in (reaped, zombie, other):
        assert probe.sample(p.pid, starts[p.pid]) is not None
    reaped.kill()
    reaped.wait()
    zombie.kill()
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped

    for full in (True, False):
        assert probe.sample(reaped.pid, starts[reaped.pid], full=full) is None
        assert probe.sample(zombie.pid, starts[zombie.pid], full=full) is None
        # The pid is there, its process started later than the one asked about.
        assert probe.sample(other.pid, starts[other.pid] - 5.0, full=full) is None
    assert probe.sample(other.pid, starts[other.pid]) is not None, "still that process"


def test_held_stat_descriptors_are_let_go(real: OsProbe, sleeper: Spawn) -> None:
    """One per sampled process, closed when it ends, when it is asked about as another
    process, and when it is no longer sampled."""
    a, b = sleeper(), sleeper()
    starts = {p.pid: real.inspect(p.pid).started_at for p in (a, b)}
    real.keep_sampling(())
    before = open_descriptors()
    with descriptor_limit(lowest_free_descriptor() + 2 * HOLD_ROOM):
        real.keep_sampling(starts)
        for _ in range(3):
            for p in (a, b):
                assert real.sample(p.pid, starts[p.pid], full=False) is not None
        assert real.held == 2 and open_descriptors() == before + 2
        a.kill()
        a.wait()
        assert real.sample(a.pid, starts[a.pid]) is None
        assert real.held == 1 and open_descriptors() == before + 1
        assert real.sample(b.pid, starts[b.pid] + 5.0) is None  # not the process it holds
        assert real.held == 0
        assert real.sample(b.pid, starts[b.pid]) is not None
        assert real.held == 1
        real.keep_sampling({a.pid})
        assert real.held == 0 and open_descriptors() == before


def test_stat_descriptors_are_held_only_with_room_for_pidfds_and_connections(
    real: OsProbe, sleeper: Spawn
) -> None:
    """Only while a descriptor per sampled process and HOLD_ROOM more stay free above."""
    p = sleeper()
    started_at = real.inspect(p.pid).started_at
    real.keep_sampling(())
    fd = lowest_free_descriptor()  # the one a new stat descriptor gets
    try:
        with descriptor_limit(fd + 1 + HOLD_ROOM):
            real.keep_sampling({p.pid})  # one sampled process: no room for its descriptor
            assert real.sample(p.pid, started_at) is not None and real.held == 0
        with descriptor_limit(fd + 2 + HOLD_ROOM):
            real.keep_sampling({p.pid})
            assert real.sample(p.pid, started_at) is not None and real.held == 1
        with descriptor_limit(fd + 1 + HOLD_ROOM):  # the limit was lowered: let go
            real.keep_sampling({p.pid})
            assert real.held == 0
    finally:
        real.keep_sampling(())


@pytest.mark.parametrize("path", PATHS)
def test_the_sampler_end_to_end(
    path: str, real: OsProbe, through_psutil: OsProbe, sleeper: Spawn
) -> None:
    """Real processes, the real probe, the sampler and the store: a busy loop and a
    sleep are sampled, a process that ended is not, whichever way the probe reads."""
    probe = probe_of(path, real, through_psutil)
    busy = sleeper(sys.executable, "-c", "while True: pass")
    idle, ending = sleeper(), sleeper()
    facts = {p.pid: real.inspect(p.pid) for p in (busy, idle, ending)}

    async def main() -> None:
        parts = make_parts(probe=TableProbe(dict(facts)), clock=time.time)
        store = MetricsStore(300, metrics_text)
        sampler = Sampler(
            lambda: parts.registry,
            parts.registry.get,
            probe,
            store,
            interval=1.0,
            clock=time.time,
        )
        added = [await call(parts.ctx, "add", {"pid": p.pid}) for p in (busy, idle, ending)]
        entries = [e for a in added if (e := parts.registry.get(a["id"])) is not None]
        assert len(entries) == 3
        assert await sampler.sweep() == 3
        ending.kill()
        ending.wait()  # its entry is still alive as far as the registry knows
        await trio.sleep(0.5)
        assert await sampler.sweep() == 2
        busy_m, idle_m, ending_m = (store.latest(p) for p in entries)
        assert ending_m is None and len(store) == 2
        assert busy_m is not None and idle_m is not None
        truth = psutil.Process(busy.pid).cpu_times()
        assert 0 < busy_m.cpu_seconds <= truth.user + truth.system + 0.011
        assert busy_m.cpu_percent > 10 * max(idle_m.cpu_percent, 0.5)  # a loaded machine too
        assert busy_m.threads == 1 and idle_m.rss_bytes > 0 and idle_m.fds is not None
        track = store.track(entries[0])
        assert track is not None and len(track.history) == 2

    trio.run(main)
