"""The contract between the fake `TableProbe` (tests/fakes.py) and the real `OsProbe`:
the same situation gives the same answers, the same exception types and the same
booleans.  Every test runs against the real probe, the real probe as off Linux (psutil
for everything: `procfs=False`) and the fake; the situation is made real (a `sleep` of
ours, killed, reaped or not, ...) and the fake is given the facts the real probe found,
the way in-process tests use it.  That the two real ways read the same numbers:
tests/daemon/test_sampling_paths.py.

A process of another user: when the tests run as root, every process is root's to
signal, so the probes are asked while the test runs as uid 65534 (its real and
effective uid; the saved uid stays 0, to come back), about a `sleep` of root's.
Otherwise pid 1 is asked about, if it belongs to another user.

These use real processes, so they take a few milliseconds of wall time each; nothing
sleeps: a death is waited for with `waitid`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from fakes import FOREIGN_PID, TableProbe

from goproc.daemon.probe import OsProbe, Probe
from goproc.errors import NoSuchProcess, PermissionDenied
from goproc.model import START_TOLERANCE, ProcessFacts

KINDS = ["os", "psutil", "table"]
NOBODY = 65534


@pytest.fixture(scope="module")
def real() -> OsProbe:
    """The real probe, also the source of truth for the facts given to the fake (one
    instance: one boot-time anchor)."""
    return OsProbe()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


def probe_for(kind: str, real: OsProbe, table: dict[int, ProcessFacts]) -> Probe:
    """The probe under test: the real one (through /proc, or psutil), or a fake holding
    `table`."""
    if kind == "os":
        return real
    if kind == "psutil":
        return OsProbe(real.boot_time, procfs=False)
    return TableProbe(dict(table))


@pytest.fixture
def start() -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start `sleep 60` processes (each its own process group); killed and reaped at
    teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def spawn() -> subprocess.Popen[bytes]:
        p = subprocess.Popen(["sleep", "60"], start_new_session=True)
        started.append(p)
        # Popen returns once exec(2) has begun; the new command line shows in /proc a
        # moment later (the daemon's `add` asks again for it; this probe is raw).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(f"/proc/{p.pid}/cmdline", "rb") as f:
                if f.read():
                    break
            time.sleep(0.001)
        return p

    yield spawn
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def wait_exited_unreaped(p: subprocess.Popen[bytes]) -> None:
    """Block until `p` has exited, leaving it a zombie (not reaped)."""
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)


@contextlib.contextmanager
def as_another_user() -> Iterator[None]:
    """As root: run the body as uid NOBODY, to whom root's processes are another
    user's.  Otherwise: nothing to change."""
    if os.geteuid() != 0:
        yield
        return
    os.setresuid(NOBODY, NOBODY, 0)
    try:
        yield
    finally:
        os.setresuid(0, 0, 0)


def test_a_live_process_of_ours(
    kind: str, real: OsProbe, start: Callable[[], subprocess.Popen[bytes]]
) -> None:
    pid = start().pid
    facts = real.inspect(pid)
    assert (facts.pid, facts.cmd, facts.pgid) == (pid, "sleep 60", pid)
    probe = probe_for(kind, real, {pid: facts})

    assert probe.inspect(pid) == facts
    assert probe.is_alive(pid, facts.started_at) is True
    # A start time as saved may differ from the kernel's by the rounding of its clock
    # ticks: within START_TOLERANCE it is the same process.
    assert probe.is_alive(pid, facts.started_at + START_TOLERANCE / 2) is True
    assert probe.is_alive(pid, facts.started_at - START_TOLERANCE / 2) is True
    probe.send_signal(pid, facts.started_at, signal.SIGCONT, group=False)  # no error
    probe.send_signal(pid, facts.started_at, signal.SIGCONT, group=True)

    reading = probe.sample(pid, facts.started_at)
    assert reading is not None
    assert reading.cpu_seconds >= 0 and reading.threads == 1
    assert 0 < reading.rss_bytes <= reading.vms_bytes
    assert reading.read_bytes is not None and reading.write_bytes is not None
    assert reading.fds is not None and reading.fds >= 0
    fast = probe.sample(pid, facts.started_at + START_TOLERANCE / 2, full=False)
    assert fast is not None and fast.rss_bytes > 0
    assert (fast.read_bytes, fast.write_bytes, fast.fds) == (None, None, None)


def test_a_pid_reused_by_another_process(
    kind: str, real: OsProbe, start: Callable[[], subprocess.Popen[bytes]]
) -> None:
    """The tracked process started earlier; the pid now belongs to a newer one."""
    p = start()
    facts = real.inspect(p.pid)
    tracked_start = facts.started_at - 5.0
    probe = probe_for(kind, real, {p.pid: facts})

    assert probe.inspect(p.pid) == facts, "the new process is there to be inspected"
    assert probe.is_alive(p.pid, tracked_start) is False
    assert probe.is_alive(p.pid, facts.started_at - 2 * START_TOLERANCE) is False
    with pytest.raises(NoSuchProcess):
        probe.send_signal(p.pid, tracked_start, signal.SIGKILL, group=False)
    with pytest.raises(NoSuchProcess):
        probe.send_signal(p.pid, tracked_start, signal.SIGKILL, group=True)
    if isinstance(probe, TableProbe):
        assert probe.signals == []
    assert probe.sample(p.pid, tracked_start) is None, "never a reading of another process"
    assert probe.sample(p.pid, facts.started_at - 2 * START_TOLERANCE, full=False) is None


def test_a_pid_that_does_not_exist(kind: str, real: OsProbe) -> None:
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read())  # pids are below pid_max: this one never exists
    probe = probe_for(kind, real, {})

    with pytest.raises(NoSuchProcess):
        probe.inspect(pid)
    assert probe.is_alive(pid, 1_700_000_000.0) is False
    with pytest.raises(NoSuchProcess):
        probe.send_signal(pid, 1_700_000_000.0, signal.SIGTERM, group=False)
    assert probe.sample(pid, 1_700_000_000.0) is None


@pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "zombie"])
def test_a_process_that_exited(
    kind: str, real: OsProbe, start: Callable[[], subprocess.Popen[bytes]], reaped: bool
) -> None:
    """Gone, or a zombie its parent has not reaped yet: ended either way (the fake's
    table no longer holds it)."""
    p = start()
    facts = real.inspect(p.pid)
    p.kill()
    if reaped:
        p.wait(10)
    else:
        wait_exited_unreaped(p)
    probe = probe_for(kind, real, {})

    with pytest.raises(NoSuchProcess):
        probe.inspect(p.pid)
    assert probe.is_alive(p.pid, facts.started_at) is False
    for group in (False, True):
        with pytest.raises(NoSuchProcess):
            probe.send_signal(p.pid, facts.started_at, signal.SIGTERM, group=group)
    assert probe.sample(p.pid, facts.started_at) is None


def test_a_process_of_another_user(
    kind: str, real: OsProbe, start: Callable[[], subprocess.Popen[bytes]]
) -> None:
    """Its facts cannot be had, its liveness can (/proc/<pid>/stat is world-readable),
    and it may not be signalled."""
    if os.geteuid() == 0:
        pid = start().pid
        facts = real.inspect(pid)
    else:
        pid = 1
        if os.stat("/proc/1").st_uid == os.getuid():
            pytest.skip("pid 1 is this user's own: no process of another user to ask about")
        stat = real._stat(1)  # inspect is refused; the start time is in /proc/1/stat
        assert stat is not None
        facts = ProcessFacts(pid=1, started_at=stat[2], cmd="init", pgid=stat[1])
    # The fake's process of another user is FOREIGN_PID, live with these facts.
    if kind == "table":
        pid = FOREIGN_PID
        facts = ProcessFacts(pid=pid, started_at=facts.started_at, cmd=facts.cmd, pgid=pid)
    probe = probe_for(kind, real, {pid: facts})

    with as_another_user():
        with pytest.raises(PermissionDenied):
            probe.inspect(pid)
        assert probe.is_alive(pid, facts.started_at) is True
        with pytest.raises(PermissionDenied):
            probe.send_signal(pid, facts.started_at, signal.SIGTERM, group=False)
        # Its CPU and memory can be read (stat, statm); its io and descriptors cannot.
        reading = probe.sample(pid, facts.started_at)
        assert reading is not None and reading.rss_bytes >= 0 and reading.threads >= 1
        assert (reading.read_bytes, reading.write_bytes, reading.fds) == (None, None, None)
