"""Metrics of real processes through a real daemon: CPU of a busy loop, memory of a
process holding 200 MB, storage writes of a `dd oflag=direct` writer, history bounds,
no samples for a dead or reused pid, nothing at all when sampling is off."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import Daemon
from helpers import wait_until

FAST = {"metrics_interval": "200ms"}
BUSY = [sys.executable, "-c", "while True: pass"]
HOLD_200MB = [
    sys.executable,
    "-c",
    "import sys, time; b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096]);"
    " print('ok', flush=True); time.sleep(300)",
]


Start = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def procs(
    sleeper: Callable[..., subprocess.Popen[bytes]],
) -> Callable[..., subprocess.Popen[bytes]]:
    """`sleeper` taking the command as one list (and Popen's keywords)."""
    return lambda cmd, **popen: sleeper(*cmd, **popen)


def metrics_of(d: Daemon, proc_id: int) -> dict[str, Any] | None:
    m: dict[str, Any] | None = d.call("show", {"ids": [proc_id]})["metrics"]
    return m


def sampled(d: Daemon, proc_id: int, after: int = 1) -> dict[str, Any]:
    """The entry's metrics once `after` sweeps have sampled it."""
    first = d.call("status")["metrics_sweeps"]
    wait_until(lambda: d.call("status")["metrics_sweeps"] >= first + after, 10)
    m = wait_until(lambda: metrics_of(d, proc_id), 10, "metrics")
    assert isinstance(m, dict)
    return m


def test_a_busy_loop_reads_about_100_percent(
    spawn_daemon: Callable[..., Daemon], procs: Callable[..., subprocess.Popen[bytes]]
) -> None:
    d = spawn_daemon({"metrics_interval": "500ms"})  # a clock tick (10 ms) is 2% of it
    p = procs(BUSY)
    entry = d.call("add", {"pid": p.pid})
    assert entry["metrics"] is None  # never sampled yet
    m = sampled(d, entry["id"], after=3)
    assert 90 <= m["cpu_percent"] <= 110, m
    assert m["threads"] == 1 and m["fds"] is not None and m["fds"] >= 3
    truth = psutil.Process(p.pid).cpu_times()
    assert m["cpu_seconds"] <= truth.user + truth.system + 0.01


def test_rss_of_200mb_is_within_2_percent_of_vmrss(
    spawn_daemon: Callable[..., Daemon], procs: Callable[..., subprocess.Popen[bytes]]
) -> None:
    d = spawn_daemon(FAST)
    p = procs(HOLD_200MB, stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline() == b"ok\n"
    entry = d.call("add", {"pid": p.pid})
    m = sampled(d, entry["id"], after=2)
    vmrss = _vmrss(p.pid)
    assert abs(m["rss_bytes"] - vmrss) <= 0.02 * vmrss, (m["rss_bytes"], vmrss)
    assert m["rss_bytes"] >= 200 << 20 and m["vms_bytes"] >= m["rss_bytes"]


def _vmrss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def direct_io_dir() -> Path | None:
    """A directory on a filesystem where O_DIRECT writes are counted as storage writes
    (not tmpfs): the first of these where `dd oflag=direct` works."""
    for base in (os.environ.get("GOPROC_TEST_DISK_DIR"), "/var/tmp", tempfile.gettempdir()):
        if not base or not os.path.isdir(base):
            continue
        probe = Path(base) / f"goproc-odirect-{os.getpid()}"
        r = subprocess.run(
            ["dd", "if=/dev/zero", f"of={probe}", "bs=4096", "count=1", "oflag=direct"],
            capture_output=True,
        )
        probe.unlink(missing_ok=True)
        if r.returncode == 0:
            return Path(base)
    return None


def test_write_bytes_of_a_direct_writer_is_within_5_percent(
    spawn_daemon: Callable[..., Daemon], procs: Callable[..., subprocess.Popen[bytes]]
) -> None:
    where = direct_io_dir()
    if where is None:
        pytest.skip("no filesystem here takes O_DIRECT writes (tmpfs counts no storage io)")
    target = where / f"goproc-dd-{os.getpid()}"
    try:
        d = spawn_daemon({"metrics_interval": "100ms"})
        # 64 MiB, then it waits on the pipe so the daemon can read its final counters.
        script = f"dd if=/dev/zero of={target} bs=1M count=64 oflag=direct status=none && read x"
        p = procs(["sh", "-c", script], stdin=subprocess.PIPE)
        entry = d.call("add", {"pid": p.pid})
        wait_until(
            lambda: target.exists() and target.stat().st_size >= 64 << 20, 30, "dd to finish"
        )
        first = d.call("status")["metrics_sweeps"]
        # A full sweep (io counters) comes at least every fifth one.
        wait_until(lambda: d.call("status")["metrics_sweeps"] >= first + 6, 10)
        m = metrics_of(d, entry["id"])
        assert m is not None
        # The shell's counters include its waited-for child (dd) once dd has exited.
        written = 64 << 20
        assert abs(m["write_bytes"] - written) <= 0.05 * written, m
    finally:
        target.unlink(missing_ok=True)


def test_a_dead_process_has_no_metrics_and_no_history(
    spawn_daemon: Callable[..., Daemon], procs: Callable[..., subprocess.Popen[bytes]]
) -> None:
    d = spawn_daemon(FAST)
    p = procs(["sleep", "300"])
    entry = d.call("add", {"pid": p.pid})
    sampled(d, entry["id"])
    assert d.call("metrics.history", {"ids": [entry["id"]]})[0]["samples"]
    p.kill()
    p.wait()
    wait_until(lambda: not d.call("show", {"ids": [entry["id"]]})["alive"], 10)
    assert metrics_of(d, entry["id"]) is None
    sampled_before = d.call("status")["metrics_sweeps"]
    wait_until(lambda: d.call("status")["metrics_sweeps"] >= sampled_before + 2, 10)
    assert metrics_of(d, entry["id"]) is None
    [h] = d.call("metrics.history", {"ids": [entry["id"]]})
    assert h == {"id": entry["id"], "interval": 0.2, "samples": []}


def test_a_gone_process_is_not_sampled_before_its_death_is_seen(
    spawn_daemon: Callable[..., Daemon], procs: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """The sampler checks each process itself (pid and start time, from the one `stat`
    read; a pid taken over by another process is held by the probe contract test): an
    entry still believed alive gets no sample once its process is gone."""
    d = spawn_daemon({**FAST, "liveness_interval": "1h", "exit_watch": "poll"})
    p = procs(["sleep", "300"])
    entry = d.call("add", {"pid": p.pid})
    sampled(d, entry["id"])
    p.kill()
    p.wait()
    first = d.call("status")["metrics_sweeps"]
    wait_until(lambda: d.call("status")["metrics_sweeps"] >= first + 2, 10)
    # The liveness ticker has not run (1h), so the entry is still "alive", yet unsampled.
    shown = d.call("show", {"ids": [entry["id"]]})
    assert shown["alive"] is True and shown["metrics"] is None
    assert d.call("metrics.history", {"ids": [entry["id"]]})[0]["samples"] == []


def test_metrics_are_null_when_sampling_is_off(
    spawn_daemon: Callable[..., Daemon], procs: Callable[..., subprocess.Popen[bytes]]
) -> None:
    d = spawn_daemon({"metrics_interval": "off"})
    p = procs(BUSY)
    entry = d.call("add", {"pid": p.pid})
    time.sleep(0.5)  # what sampling there would be in this time: none
    status = d.call("status")
    assert (status["metrics_interval"], status["metrics_sweeps"]) == (0, 0)
    assert metrics_of(d, entry["id"]) is None
    assert all(e["metrics"] is None for e in d.call("list"))


def test_history_keeps_the_last_metrics_history_samples(
    spawn_daemon: Callable[..., Daemon], procs: Callable[..., subprocess.Popen[bytes]]
) -> None:
    d = spawn_daemon({"metrics_interval": "100ms", "metrics_history": 5})
    p = procs(["sleep", "300"])
    entry = d.call("add", {"pid": p.pid})
    first = d.call("status")["metrics_sweeps"]
    wait_until(lambda: d.call("status")["metrics_sweeps"] >= first + 8, 10)
    [h] = d.call("metrics.history", {"ids": [entry["id"]]})
    assert len(h["samples"]) == 5 and h["interval"] == 0.1
    times = [s["t"] for s in h["samples"]]
    assert times == sorted(times)
    since = d.call("metrics.history", {"ids": [entry["id"]], "since": times[3]})
    assert [s["t"] for s in since[0]["samples"]][:2] == times[3:]


def test_status_reports_the_samplers_cost(
    spawn_daemon: Callable[..., Daemon], procs: Callable[..., subprocess.Popen[bytes]]
) -> None:
    d = spawn_daemon(FAST)
    entry = d.call("add", {"pid": procs(["sleep", "300"]).pid})
    sampled(d, entry["id"])
    status = d.call("status")
    assert status["metrics_sampled"] == 1 and status["metrics_interval"] == 0.2
    assert 0 < status["metrics_last_sweep_seconds"] < 1
    assert status["cpu_seconds"] > 0


def test_list_of_a_snapshot_splices_metrics_into_spans(
    spawn_daemon: Callable[..., Daemon], procs: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """Entries served from the snapshot file's bytes get their metrics too: 100 alive
    entries after a restart, listed through the span path."""
    d = spawn_daemon(FAST)
    sleeps = [procs(["sleep", "300"]) for _ in range(100)]
    d.call("add", {"pids": [s.pid for s in sleeps]})
    d.stop()
    d.start()
    first = d.call("status")["metrics_sweeps"]
    wait_until(lambda: d.call("status")["metrics_sweeps"] >= first + 1, 10)
    listed = d.call("list")
    assert len(listed) == 100
    assert all(e["metrics"] is not None and e["metrics"]["rss_bytes"] > 0 for e in listed)
    sleeps[0].kill()
    sleeps[0].wait()
    wait_until(lambda: d.call("list")[0]["metrics"] is None, 20, "the dead entry's metrics")
