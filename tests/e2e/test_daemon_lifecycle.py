"""`goproc daemon` from start to stop: signals, file modes, the one-daemon lock,
`--force`, leftovers of a crashed daemon, a failing task, requests in flight at SIGTERM.
"""

from __future__ import annotations

import functools
import json
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon
from helpers import wait_until as shared_wait_until

SNAPSHOT = "goproc.snapshot.json"


wait_until = functools.partial(shared_wait_until, timeout=10.0)


def snapshot_procs(d: Daemon) -> list[dict[str, Any]]:
    """The entries in the snapshot on disk (none before the first write)."""
    try:
        return json.loads((d.state_dir / SNAPSHOT).read_text())["procs"]
    except FileNotFoundError:
        return []


def is_running(pid: int) -> bool:
    """Whether `pid` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def answering_pid(d: Daemon) -> int | None:
    """The pid of the daemon answering on `d`'s socket, or None when none answers."""
    try:
        return d.call("status")["pid"]
    except OSError:
        return None


def leave_stale_socket(path: Path) -> None:
    """A socket file nobody listens on, as a crashed daemon leaves it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()


# ---- clean stop ------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_signal_stops_cleanly_and_flushes_snapshot(spawn_daemon, sleeper, sig) -> None:
    # A debounce of an hour: only the shutdown flush can put the entry in the snapshot.
    d = spawn_daemon(config={"snapshot_delay": "1h"})
    pid_file = d.socket.parent / "goproc.pid"
    assert d.socket.exists() and pid_file.exists()
    entry = d.call("add", {"pid": sleeper().pid, "tags": ["db"]})
    assert snapshot_procs(d) == []
    assert d.stop(sig) == 0, d.log()
    assert not d.socket.exists(), "socket left behind"
    assert not pid_file.exists(), "PID file left behind"
    assert [(p["id"], p["pid"], p["tags"]) for p in snapshot_procs(d)] == [
        (entry["id"], entry["pid"], ["db"])
    ]
    assert "Traceback" not in d.log()


def test_socket_dir_0700_socket_0600_pid_file_holds_pid(daemon: Daemon) -> None:
    assert stat.S_IMODE(daemon.runtime_dir.stat().st_mode) == 0o700
    st = daemon.socket.stat()
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    pid_file = daemon.runtime_dir / "goproc.pid"
    assert daemon.proc is not None
    assert pid_file.read_text().strip() == str(daemon.proc.pid)


# ---- one daemon per state dir ------------------------------------------------------------


def test_second_daemon_on_same_state_dir_refused(spawn_daemon, sleeper) -> None:
    first = spawn_daemon()
    entry = first.call("add", {"pid": sleeper().pid})
    refusal = f"already running (pid {first.proc.pid}, socket {first.socket})"
    # The same socket and state dir, then another socket with the same state dir.
    same = spawn_daemon(root=first.root, start=False)
    other_socket = spawn_daemon(env={"GOPROC_STATE_DIR": str(first.state_dir)}, start=False)
    for second in (same, other_socket):
        second.start(wait=False)
        assert second.proc.wait(15) != 0
        log = second.log()
        assert refusal in log, log
        assert "Traceback" not in log
    assert not other_socket.socket.exists()
    assert first.socket.exists(), "a refused daemon removed the running one's socket"
    assert (first.runtime_dir / "goproc.pid").read_text().strip() == str(first.proc.pid)
    assert answering_pid(first) == first.proc.pid
    assert [p["id"] for p in first.call("list")] == [entry["id"]]


@pytest.mark.parametrize("flag", ["--force", "-f"])
def test_force_takes_over_and_keeps_data(spawn_daemon, sleeper, flag: str) -> None:
    old = spawn_daemon()
    entry = old.call("add", {"pid": sleeper().pid, "tags": ["kept"]})
    new = spawn_daemon(root=old.root, start=False)
    new.start(flag, wait=False)  # a ping could still be answered by the old one
    assert old.proc.wait(15) == 0, "the replaced daemon did not stop cleanly"
    wait_until(lambda: answering_pid(new) == new.proc.pid, what="the new daemon to answer")
    assert new.proc.poll() is None
    [kept] = new.call("list")
    assert (kept["id"], kept["pid"], kept["tags"]) == (entry["id"], entry["pid"], ["kept"])
    assert (new.runtime_dir / "goproc.pid").read_text().strip() == str(new.proc.pid)
    assert new.socket.exists()
    assert new.stop() == 0


# ---- leftovers of a crashed daemon -------------------------------------------------------


def test_stale_socket_file_does_not_block_start(spawn_daemon) -> None:
    d = spawn_daemon(start=False)
    leave_stale_socket(d.socket)
    d.start()
    assert d.call("ping") == "pong"
    assert stat.S_IMODE(d.socket.stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_what_is_not_a_socket_at_the_socket_path_is_never_deleted(
    spawn_daemon: Any, tmp_path: Path, kind: str
) -> None:
    """Only a leftover socket is replaced: a file or a symlink at the socket path is left
    as it is, and the start is refused with one line naming the path (exit 1)."""
    d = spawn_daemon(start=False)
    d.socket.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    precious = tmp_path / "precious"
    precious.write_text("keep me")
    if kind == "file":
        d.socket.write_text("keep me")
    else:
        d.socket.symlink_to(precious)
    d.start(wait=False)
    assert d.proc is not None
    assert d.proc.wait(15) == 1
    lines = [line for line in d.log().splitlines() if line.strip()]
    assert lines[-1].startswith(f"goproc: {d.socket} is a "), d.log()
    assert "GOPROC_SOCKET" in lines[-1] and "Traceback" not in d.log()
    assert precious.read_text() == "keep me"
    if kind == "file":
        assert d.socket.read_text() == "keep me"
    else:
        assert d.socket.is_symlink() and d.socket.resolve() == precious


def test_leftovers_of_kill9_do_not_block_restart(spawn_daemon, sleeper) -> None:
    d = spawn_daemon()
    entry = d.call("add", {"pid": sleeper().pid})
    d.kill9()
    assert d.socket.exists() and (d.runtime_dir / "goproc.pid").exists()
    d.start()
    assert [p["id"] for p in d.call("list")] == [entry["id"]]
    assert (d.runtime_dir / "goproc.pid").read_text().strip() == str(d.proc.pid)


@pytest.mark.parametrize("extra", [[], ["--force"]], ids=["plain", "force"])
def test_stale_pid_file_naming_a_live_process_does_not_block_start(
    spawn_daemon, sleeper, extra: list[str]
) -> None:
    """The PID file and lock file of a crashed daemon name a pid that now belongs to an
    unrelated live process: the start succeeds and that process is left alone."""
    bystander = sleeper()
    d = spawn_daemon(start=False)
    leave_stale_socket(d.socket)
    (d.runtime_dir / "goproc.pid").write_text(f"{bystander.pid}\n")
    d.state_dir.mkdir(mode=0o700)
    (d.state_dir / "goproc.lock").write_text(f"{bystander.pid}\n{d.socket}\n")
    d.start(*extra)
    assert d.call("ping") == "pong"
    assert (d.runtime_dir / "goproc.pid").read_text().strip() == str(d.proc.pid)
    assert bystander.poll() is None and is_running(bystander.pid), "an unrelated process was hit"


# ---- a failing task stops the whole daemon -----------------------------------------------

# There is no honest way to make a supervised task fail from outside (the server, the
# ticker, the journal and the writer all absorb OS errors by design), so this script
# runs the real daemon with one explicit fault: the liveness ticker raises once a
# trigger file appears.  The test checks the supervision, not the fault.
FAULTY_DAEMON = """
import sys
from pathlib import Path
from goproc.daemon import liveness
from goproc.daemon.__main__ import main

trigger = Path(sys.argv[1])
real_sweep = liveness.Liveness.sweep

async def sweep(self):
    if trigger.exists():
        raise RuntimeError("injected fault in the liveness ticker")
    return await real_sweep(self)

liveness.Liveness.sweep = sweep
sys.exit(main(sys.argv[2:]))
"""


def test_failing_task_stops_daemon_with_nonzero_exit(spawn_daemon, tmp_path: Path) -> None:
    d = spawn_daemon(config={"liveness_interval": "100ms"}, start=False)
    trigger = tmp_path / "fail-now"
    d._log = open(d.log_path, "ab")  # noqa: SIM115  # closed by d.stop()
    d.proc = subprocess.Popen(
        [sys.executable, "-c", FAULTY_DAEMON, str(trigger), "--config", str(d.config_path)],
        env=d.env,
        stdout=d._log,
        stderr=d._log,
    )
    d.wait_ready()
    trigger.touch()
    code = d.proc.wait(15)
    d._log.close()
    assert code != 0, d.log()
    log = d.log()
    assert "injected fault in the liveness ticker" in log
    assert not d.socket.exists(), "a stopped daemon left its socket"
    assert not (d.runtime_dir / "goproc.pid").exists()


# ---- requests in flight at SIGTERM ---------------------------------------------------------


def forged_dead_procs(n: int) -> list[dict[str, Any]]:
    """`n` dead entries (nothing to probe), so that each `list` takes some work."""
    t = "2020-01-01T00:00:00.000000Z"
    return [
        {
            "id": i,
            "pid": 100 + i,
            "pgid": None,
            "cmd": f"forged entry {i}",
            "name": None,
            "alive": False,
            "tags": ["forged"],
            "groups": [],
            "started_at": t,
            "added_at": t,
            "last_seen": t,
        }
        for i in range(1, n + 1)
    ]


def test_requests_in_flight_finish_on_sigterm(spawn_daemon) -> None:
    d = spawn_daemon(start=False)
    d.state_dir.mkdir(mode=0o700)
    procs = forged_dead_procs(2000)
    (d.state_dir / SNAPSHOT).write_text(json.dumps({"version": 1, "next_id": 2001, "procs": procs}))
    d.start()
    n = 20
    batch = b"".join(
        json.dumps({"jsonrpc": "2.0", "id": i, "method": "list"}).encode() + b"\n" for i in range(n)
    )
    with d.connect(timeout=20) as s, s.makefile("rb") as f:
        s.sendall(batch)  # one write: the daemon receives every line at once
        lines = [f.readline()]
        d.proc.send_signal(signal.SIGTERM)
        lines += [f.readline() for _ in range(n - 1)]
        assert f.readline() == b"", "the connection stays open after its requests"
    replies = [json.loads(line) for line in lines]
    assert [r.get("id") for r in replies] == list(range(n))
    assert all(len(r["result"]) == 2000 for r in replies)
    assert d.stop() == 0
    assert not d.socket.exists()


def test_a_socket_path_too_long_is_one_line_naming_the_limit_and_the_variable(
    spawn_daemon: Any, tmp_path: Path
) -> None:
    d = spawn_daemon(start=False)
    long_dir = tmp_path / ("x" * 120)
    long_dir.mkdir(mode=0o700)
    sock = long_dir / "goproc.sock"
    d.env["GOPROC_SOCKET"] = str(sock)
    d.start(wait=False)
    assert d.proc is not None
    assert d.proc.wait(15) == 1
    lines = [line for line in d.log().splitlines() if line.strip()]
    assert "Traceback" not in d.log() and "None" not in lines[-1], d.log()
    assert lines[-1] == (
        f"goproc: cannot bind {sock}: the path is {len(str(sock))} bytes, and a UNIX socket "
        "path is at most 107; set GOPROC_SOCKET (or GOPROC_RUNTIME_DIR) to a shorter one"
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_signals_repeated_while_stopping_still_stop_it_cleanly(spawn_daemon, sig) -> None:
    """An impatient supervisor signals again and again while the daemon stops: every
    signal after the first is a no-op, and it still exits 0 having said `stopped`."""
    d = spawn_daemon()
    assert d.proc is not None
    sent = 0
    while d.proc.poll() is None and sent < 20000:
        d.proc.send_signal(sig)
        sent += 1
    code = d.proc.wait(15)
    d._log.close()
    assert code == 0, (code, sent, d.log()[-500:])
    assert "stopped" in d.log()
