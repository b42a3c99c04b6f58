"""Operations that span time hold the entries they resolved, not their ids (real daemons,
real processes).  After a `reset` ids start again at 1, so an id may name another
process: `kill --rm` never removes it, a subscription by id never reports it, `wait`
never takes it for the one it waits on.  And a removal is not an exit: `wait` reports
removed entries apart, and `goproc wait` exits 1 for them.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import GOPROC, Daemon
from helpers import wait_until

Sleeper = Callable[..., subprocess.Popen[bytes]]
# A process that ignores TERM, so that `kill` waits out its timeout before KILL.
STUBBORN = (
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)",
)


def ignores_term(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def stubborn(sleeper: Sleeper) -> subprocess.Popen[bytes]:
    p = sleeper(*STUBBORN)
    wait_until(lambda: ignores_term(p.pid), what="the process to ignore TERM")
    return p


def reset(d: Daemon) -> None:
    d.call("reset", {"confirm": "RESET"})


def lines_until_quiet(s: socket.socket, quiet: float) -> list[dict[str, Any]]:
    """Every JSON line that arrives until none has for `quiet` seconds."""
    s.settimeout(quiet)
    buf = b""
    try:
        while chunk := s.recv(65536):
            buf += chunk
    except TimeoutError:
        pass
    return [json.loads(line) for line in buf.splitlines()]


def test_kill_rm_across_a_reset_never_removes_the_entry_that_got_the_id(
    daemon: Daemon, sleeper: Sleeper
) -> None:
    old = stubborn(sleeper)
    assert daemon.call("add", {"pid": old.pid})["id"] == 1
    kill = subprocess.Popen(
        [*GOPROC, "kill", "1", "--rm", "--timeout", "2s", "--json"],
        env=daemon.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: daemon.call("status")["connections"] >= 2, what="kill to be in flight")
    time.sleep(0.2)  # the kill has sent TERM and waits for the exit
    reset(daemon)
    newcomer = sleeper()
    assert daemon.call("add", {"pid": newcomer.pid, "name": "newcomer"})["id"] == 1
    out, err = kill.communicate(timeout=20)
    assert kill.returncode == 0, err
    assert [r["outcome"] for r in json.loads(out)] == ["killed"]
    assert old.wait(5) is not None
    listed = daemon.call("list")
    assert [(p["id"], p["pid"], p["name"]) for p in listed] == [(1, newcomer.pid, "newcomer")]
    assert newcomer.poll() is None, "the newcomer was never signalled"


def test_a_subscription_by_id_never_reports_the_process_that_gets_the_id_after_a_reset(
    daemon: Daemon, sleeper: Sleeper
) -> None:
    old, newcomer = sleeper(), sleeper()
    assert daemon.call("add", {"pid": old.pid})["id"] == 1
    with daemon.connect() as s:
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"ids":[1]}}\n')
        assert "result" in json.loads(s.recv(65536))
        reset(daemon)
        assert daemon.call("add", {"pid": newcomer.pid})["id"] == 1
        daemon.call("tag.add", {"ids": [1], "labels": ["x"]})
        newcomer.kill()
        newcomer.wait()
        wait_until(lambda: daemon.call("list", {"alive": False}), what="the exit to be seen")
        events = lines_until_quiet(s, 0.5)
    assert [(e["params"]["kind"], e["params"]["pid"]) for e in events] == [("removed", old.pid)]


def test_wait_reports_an_entry_removed_meanwhile_apart_from_the_exited(
    daemon: Daemon, sleeper: Sleeper
) -> None:
    p = sleeper()
    entry = daemon.call("add", {"pid": p.pid})
    with daemon.connect() as s:
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"wait","params":{"ids":[1],"timeout":20}}\n')
        wait_until(lambda: daemon.call("status")["connections"] >= 2, what="wait in flight")
        time.sleep(0.1)
        daemon.call("remove", {"ids": [1]})
        s.settimeout(10)
        reply = json.loads(s.recv(65536))
    result = reply["result"]
    assert result["exited"] == [] and result["alive"] == [] and not result["timed_out"]
    assert [(r["id"], r["pid"], r["added_at"]) for r in result["removed"]] == [
        (1, p.pid, entry["added_at"])
    ]
    assert p.poll() is None


def test_wait_across_a_reset_keeps_waiting_for_nothing_it_did_not_resolve(
    daemon: Daemon, sleeper: Sleeper
) -> None:
    old, newcomer = sleeper(), sleeper()
    daemon.call("add", {"pid": old.pid})
    with daemon.connect() as s:
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"wait","params":{"ids":[1],"timeout":20}}\n')
        wait_until(lambda: daemon.call("status")["connections"] >= 2, what="wait in flight")
        time.sleep(0.1)
        reset(daemon)
        assert daemon.call("add", {"pid": newcomer.pid})["id"] == 1
        s.settimeout(10)
        result = json.loads(s.recv(65536))["result"]
    assert [r["pid"] for r in result["removed"]] == [old.pid]
    assert result["alive"] == [] and result["exited"] == [], "the newcomer is not it"


def test_cli_wait_exits_1_for_an_entry_removed_while_it_runs(
    daemon: Daemon, sleeper: Sleeper
) -> None:
    p = sleeper()
    daemon.call("add", {"pid": p.pid, "name": "db2"})
    wait = subprocess.Popen(
        [*GOPROC, "wait", "db2", "--timeout", "30s"],
        env=daemon.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: daemon.call("status")["subscriptions"] == 1, what="goproc wait")
    assert daemon.cli("rm", "db2").returncode == 0
    out, err = wait.communicate(timeout=10)
    assert wait.returncode == 1
    assert out == ""
    assert err == f"goproc: removed while waited for, not seen to exit: id 1 (pid {p.pid})\n"
    assert p.poll() is None, "db2 still runs"
