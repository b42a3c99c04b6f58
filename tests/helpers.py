"""Small helpers the test files share (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def wait_until(
    predicate: Callable[[], Any], timeout: float = 5.0, what: str = "", every: float = 0.02
) -> Any:
    """Poll `predicate` every `every` seconds until it returns something truthy; fail
    after `timeout`.  Tests never sleep blindly: they wait for a condition."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or predicate}")
        time.sleep(every)


def one_line(r: subprocess.CompletedProcess[str], code: int) -> str:
    """The one stderr line of a command that exited with `code` and printed nothing on
    stdout (and no traceback)."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def array_lines(text: str) -> list[Any]:
    """The elements of an array printed one per line; fails on any other layout."""
    assert text.isascii() and text.endswith("\n"), text
    lines = text[:-1].split("\n")
    if lines == ["[]"]:
        return []
    assert lines[0] == "[" and lines[-1] == "]", text
    body = lines[1:-1]
    assert all(line.endswith(",") for line in body[:-1]) and not body[-1].endswith(","), text
    elements = [json.loads(line.removesuffix(",")) for line in body]
    assert json.loads(text) == elements
    return elements


def object_line(text: str) -> dict[str, Any]:
    assert text.isascii() and text.endswith("\n") and text.count("\n") == 1, text
    value = json.loads(text)
    assert isinstance(value, dict), text
    return value


def break_journal(state_dir: Path, entries: int) -> None:
    """Make every change a daemon tries to save from now on fail, even as root: once its
    snapshot holds `entries` entries (the journal folded into it), the paths of the coming
    journal generations are made directories, which it cannot open for appending.  Give
    the daemon `last_seen_interval: 1h` (and a short `snapshot_delay`) so nothing else
    makes it rotate; a few spare generations are broken too."""
    snapshot = state_dir / "goproc.snapshot.json"

    def folded() -> int | None:
        data = json.loads(snapshot.read_text()) if snapshot.exists() else {}
        return data.get("journal") if len(data.get("procs", [])) == entries else None

    generation = wait_until(folded, 10.0, what=f"the snapshot to hold {entries} entries")
    for g in range(generation, generation + 20):
        (state_dir / f"goproc.journal.{g}").mkdir()


def forged_entries(n: int, cmd_len: int) -> list[dict[str, Any]]:
    """Dead entries (pids beyond any pid_max) with long command lines: replies of MBs."""
    stamp = "2025-01-01T00:00:00.000000Z"
    return [
        {
            "id": i,
            "pid": 2_000_000_000 + i,
            "pgid": None,
            "cmd": f"worker-{i} " + "a" * cmd_len,
            "name": None,
            "alive": False,
            "tags": ["bulk"],
            "groups": [],
            "started_at": stamp,
            "added_at": stamp,
            "last_seen": stamp,
            "exited_at": stamp,
        }
        for i in range(1, n + 1)
    ]


def entry(**fields: Any) -> dict[str, Any]:
    """One entry as the daemon encodes it, for formatter tests; `fields` override."""
    base: dict[str, Any] = {
        "id": 1,
        "pid": 7091,
        "pgid": 7082,
        "cmd": "sleep 300",
        "name": None,
        "alive": True,
        "tags": [],
        "groups": [],
        "started_at": "2026-11-26T14:20:17.350000Z",
        "added_at": "2026-11-26T14:20:18.116194Z",
        "last_seen": "2026-11-26T14:20:18.116194Z",
        "exited_at": None,
        "log": None,
    }
    return {**base, **fields}


def log_pumps(daemon_pid: int) -> list[int]:
    """The pids of the log pumps a daemon started (its children running
    `goproc.logpump`)."""
    out = []
    for task in Path(f"/proc/{daemon_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"goproc.logpump" in cmd:
                out.append(int(pid))
    return out


def open_files(pid: int) -> set[str]:
    """What the process's descriptors point at (`/proc/PID/fd` links)."""
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out.add(str(fd.readlink()))
        except OSError:
            continue
    return out


def stream_files(logs: Path, base: str) -> list[Path]:
    """A log stream's files, oldest first: `base.N` ... `base.1`, then `base`."""
    n = 1
    while (logs / f"{base}.{n}").exists():
        n += 1
    return [logs / (f"{base}.{k}" if k else base) for k in range(n - 1, -1, -1)]


class Strace:
    """strace attached to a running process (all its threads, and any child it would
    make), writing the traced calls to a file."""

    def __init__(self, pid: int, calls: str, out: Path) -> None:
        if not shutil.which("strace"):
            pytest.skip("strace is not installed")
        self.out = out
        self.proc = subprocess.Popen(
            ["strace", "-f", "-qq", "-e", f"trace={calls}", "-o", str(out), "-p", str(pid)],
            stderr=subprocess.DEVNULL,
        )
        tasks = len(os.listdir(f"/proc/{pid}/task"))
        deadline = time.monotonic() + 10
        while self._attached(pid) < tasks:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.skip("strace cannot attach to the process here")
            time.sleep(0.01)

    @staticmethod
    def _attached(pid: int) -> int:
        """Threads of `pid` that a tracer holds (TracerPid set)."""
        n = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
                if re.search(r"^TracerPid:\s*[1-9]", status, re.M):
                    n += 1
        return n

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # detach
            self.proc.wait(10)
        return self.out.read_text() if self.out.exists() else ""
