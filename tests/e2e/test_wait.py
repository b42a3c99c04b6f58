"""Waiting for exits with real daemons and real processes: `goproc wait` (all, `--any`,
timeout, already dead) and the `wait` method over a raw socket (the reply comes when
the condition holds, `timed_out` on timeout, and a client that hangs up while waiting
costs the daemon nothing further).

Every test runs twice: with exit detection by pidfd (the default, on the default 10 s
liveness interval) and with the poll-only fallback forced (`GOPROC_EXIT_WATCH=poll`, a
100 ms liveness interval).  The tests of a mode share one daemon; each keeps to entries
it labels with a tag of its own.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import select
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import GOPROC, Daemon
from helpers import wait_until as shared_wait_until

Sleeper = Callable[..., subprocess.Popen[bytes]]


@dataclass(frozen=True)
class Mode:
    """How a daemon detects exits: its config file and environment."""

    config: dict[str, Any] | None = None
    env: dict[str, str] = field(default_factory=dict)


MODES = {
    "pidfd": Mode(),
    "poll": Mode({"liveness_interval": "100ms"}, {"GOPROC_EXIT_WATCH": "poll"}),
}
_labels = itertools.count(1)


def fresh_label() -> str:
    """A tag no other test uses, so tests on a shared daemon keep apart."""
    return f"w{next(_labels)}"


wait_until = functools.partial(shared_wait_until, every=0.01)


@pytest.fixture(scope="module", params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def shared(mode: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp(f"wait-{mode}"), MODES[mode].config, MODES[mode].env)
    d.start()
    try:
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()


@pytest.fixture
def d(shared: Daemon) -> Iterator[Daemon]:
    """The shared daemon of this mode, quiet (no other client connected) at the start;
    it must still be serving after the test."""
    wait_until(lambda: quiet(shared), what="connections of earlier tests to end")
    yield shared
    assert shared.proc is not None and shared.proc.poll() is None, shared.log()
    assert shared.call("ping") == "pong"


def quiet(d: Daemon) -> bool:
    """Whether only the asking connection is open and nobody is subscribed."""
    status = d.call("status")
    return bool(status["connections"] == 1 and status["subscriptions"] == 0)


@pytest.fixture
def popen() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Starts CLI subprocesses, killed and reaped at teardown."""
    started: list[subprocess.Popen[str]] = []

    def start(d: Daemon, *args: str) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [*GOPROC, *args], env=d.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=10)


def add(d: Daemon, p: subprocess.Popen[bytes], tag: str) -> dict[str, Any]:
    entry: dict[str, Any] = d.call("add", {"pid": p.pid, "tags": [tag]})
    return entry


def dead(d: Daemon, proc_id: int) -> bool:
    return bool(d.call("list", {"ids": [proc_id], "alive": False}))


def kill_and_reap(p: subprocess.Popen[bytes]) -> None:
    p.kill()
    p.wait()


def start_cli_wait(
    d: Daemon, popen: Callable[..., subprocess.Popen[str]], *args: str
) -> subprocess.Popen[str]:
    """`goproc wait ARGS`, once it has subscribed to the exits it will print (its `wait`
    request follows at once on the same connection); it must still be waiting."""
    p = popen(d, "wait", *args)
    wait_until(
        lambda: p.poll() is not None or d.call("status")["subscriptions"] == 1,
        timeout=10,
        what="goproc wait to subscribe",
    )
    assert p.poll() is None, p.communicate()
    return p


# ---- goproc wait ---------------------------------------------------------------------------


def test_cli_wait_returns_when_the_process_exits_and_prints_it(
    d: Daemon, popen: Callable[..., subprocess.Popen[str]], sleeper: Sleeper
) -> None:
    p = sleeper()
    e = add(d, p, fresh_label())
    cli = start_cli_wait(d, popen, str(e["id"]), "--timeout", "30s")
    killed_at = time.monotonic()
    kill_and_reap(p)
    out, err = cli.communicate(timeout=10)
    took = time.monotonic() - killed_at
    assert (cli.returncode, err) == (0, ""), (out, err)
    assert out.splitlines() == [f"id {e['id']} pid {p.pid} exited (sleep 300)"]
    assert took < 2.0, f"goproc wait returned {took:.2f} s after the exit"


def test_cli_wait_all_waits_for_every_match(
    d: Daemon, popen: Callable[..., subprocess.Popen[str]], sleeper: Sleeper
) -> None:
    tag = fresh_label()
    first, second = sleeper(), sleeper()
    e1, e2 = add(d, first, tag), add(d, second, tag)
    cli = start_cli_wait(d, popen, "--tag", tag, "--timeout", "30s")
    kill_and_reap(first)
    wait_until(lambda: dead(d, e1["id"]), what="the first entry to turn dead")
    assert cli.poll() is None, "returned before every match had exited"
    kill_and_reap(second)
    out, err = cli.communicate(timeout=10)
    assert (cli.returncode, err) == (0, ""), (out, err)
    assert sorted(out.splitlines()) == sorted(
        [
            f"id {e1['id']} pid {first.pid} exited (sleep 300)",
            f"id {e2['id']} pid {second.pid} exited (sleep 300)",
        ]
    )


def test_cli_wait_any_returns_at_the_first_exit(
    d: Daemon, popen: Callable[..., subprocess.Popen[str]], sleeper: Sleeper
) -> None:
    tag = fresh_label()
    procs = [sleeper() for _ in range(3)]
    entries = [add(d, p, tag) for p in procs]
    cli = start_cli_wait(d, popen, "--tag", tag, "--any", "--timeout", "30s")
    kill_and_reap(procs[1])
    out, err = cli.communicate(timeout=10)
    assert (cli.returncode, err) == (0, ""), (out, err)
    assert out.splitlines() == [f"id {entries[1]['id']} pid {procs[1].pid} exited (sleep 300)"]
    alive = d.call("list", {"tags_any": [tag], "alive": True})
    assert [x["id"] for x in alive] == [entries[0]["id"], entries[2]["id"]]


def test_cli_wait_timeout_exits_1_naming_those_still_alive(d: Daemon, sleeper: Sleeper) -> None:
    tag = fresh_label()
    gone, alive_1, alive_2 = sleeper(), sleeper(), sleeper()
    e_gone = add(d, gone, tag)
    e1, e2 = add(d, alive_1, tag), add(d, alive_2, tag)
    kill_and_reap(gone)
    wait_until(lambda: dead(d, e_gone["id"]), what="the entry to turn dead")

    started = time.monotonic()
    out = d.cli("wait", "--tag", tag, "--timeout", "300ms")
    took = time.monotonic() - started
    assert out.returncode == 1, out
    assert out.stdout.splitlines() == [f"id {e_gone['id']} pid {gone.pid} exited (sleep 300)"]
    [message] = out.stderr.splitlines()
    assert "timed out" in message, message
    for e in (e1, e2):
        assert f"id {e['id']} (pid {e['pid']})" in message, message
    assert not re.search(rf"\bid {e_gone['id']}\b|\bpid {gone.pid}\b", message), message
    assert took >= 0.3, f"returned after {took:.2f} s, before the timeout"


def test_cli_wait_for_already_dead_exits_0_at_once(d: Daemon, sleeper: Sleeper) -> None:
    tag = fresh_label()
    p = sleeper()
    e = add(d, p, tag)
    kill_and_reap(p)
    wait_until(lambda: dead(d, e["id"]), what="the entry to turn dead")
    started = time.monotonic()
    out = d.cli("wait", "--tag", tag, "--timeout", "60s")
    took = time.monotonic() - started
    assert (out.returncode, out.stderr) == (0, ""), out
    assert out.stdout.splitlines() == [f"id {e['id']} pid {p.pid} exited (sleep 300)"]
    assert took < 5.0, f"took {took:.2f} s"


def test_cli_wait_json_prints_each_exited_entry(d: Daemon, sleeper: Sleeper) -> None:
    p = sleeper()
    e = add(d, p, fresh_label())
    kill_and_reap(p)
    wait_until(lambda: dead(d, e["id"]), what="the entry to turn dead")
    out = d.cli("wait", str(e["id"]), "--json")
    assert out.returncode == 0, out
    [entry] = [json.loads(line) for line in out.stdout.splitlines()]
    assert (entry["id"], entry["pid"], entry["alive"]) == (e["id"], p.pid, False)
    assert entry["exited_at"] is not None


# ---- the wait method -----------------------------------------------------------------------


class Waiter:
    """A raw connection with one `wait` request in flight."""

    def __init__(self, d: Daemon, params: dict[str, Any]) -> None:
        self.sock = d.connect()
        msg = {"jsonrpc": "2.0", "id": 7, "method": "wait", "params": params}
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        self.sent_at = time.monotonic()

    def answered(self) -> bool:
        """Whether anything has come back yet (without waiting)."""
        ready, _, _ = select.select([self.sock], [], [], 0)
        return bool(ready)

    def reply(self, timeout: float = 10.0) -> dict[str, Any]:
        self.sock.settimeout(timeout)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = self.sock.recv(65536)
            assert chunk, f"the connection closed before the reply: {buf!r}"
            buf += chunk
        reply: dict[str, Any] = json.loads(buf)
        assert reply["id"] == 7 and "error" not in reply, reply
        return reply

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def waiter() -> Iterator[Callable[[Daemon, dict[str, Any]], Waiter]]:
    opened: list[Waiter] = []

    def start(d: Daemon, params: dict[str, Any]) -> Waiter:
        w = Waiter(d, params)
        opened.append(w)
        return w

    yield start
    for w in opened:
        w.close()


def ids_of(entries: list[dict[str, Any]]) -> list[int]:
    return [e["id"] for e in entries]


def test_wait_method_replies_once_every_match_has_exited(
    d: Daemon, waiter: Callable[[Daemon, dict[str, Any]], Waiter], sleeper: Sleeper
) -> None:
    tag = fresh_label()
    first, second = sleeper(), sleeper()
    e1, e2 = add(d, first, tag), add(d, second, tag)
    w = waiter(d, {"tags_any": [tag], "timeout": 30})
    wait_until(lambda: d.call("status")["connections"] == 2, what="the wait to be in")
    kill_and_reap(first)
    wait_until(lambda: dead(d, e1["id"]), what="the first entry to turn dead")
    assert not w.answered(), "replied before every match had exited"
    killed_at = time.monotonic()
    kill_and_reap(second)
    result = w.reply()["result"]
    took = time.monotonic() - killed_at
    assert result["timed_out"] is False
    assert result["alive"] == []
    assert ids_of(result["exited"]) == [e1["id"], e2["id"]]
    assert all(x["alive"] is False and x["exited_at"] is not None for x in result["exited"])
    assert took <= 1.0, f"replied {took:.3f} s after the last exit"


def test_wait_method_any_replies_at_the_first_exit(
    d: Daemon, waiter: Callable[[Daemon, dict[str, Any]], Waiter], sleeper: Sleeper
) -> None:
    tag = fresh_label()
    procs = [sleeper() for _ in range(3)]
    entries = [add(d, p, tag) for p in procs]
    w = waiter(d, {"tags_any": [tag], "any": True, "timeout": 30})
    wait_until(lambda: d.call("status")["connections"] == 2, what="the wait to be in")
    assert not w.answered()
    kill_and_reap(procs[2])
    result = w.reply()["result"]
    assert result["timed_out"] is False
    assert ids_of(result["exited"]) == [entries[2]["id"]]
    assert ids_of(result["alive"]) == [entries[0]["id"], entries[1]["id"]]


def test_wait_method_replies_timed_out_on_timeout(
    d: Daemon, waiter: Callable[[Daemon, dict[str, Any]], Waiter], sleeper: Sleeper
) -> None:
    tag = fresh_label()
    gone, staying = sleeper(), sleeper()
    e_gone, e_staying = add(d, gone, tag), add(d, staying, tag)
    kill_and_reap(gone)
    wait_until(lambda: dead(d, e_gone["id"]), what="the entry to turn dead")
    w = waiter(d, {"tags_any": [tag], "timeout": 0.3})
    result = w.reply()["result"]
    took = time.monotonic() - w.sent_at
    assert result["timed_out"] is True
    assert ids_of(result["alive"]) == [e_staying["id"]]
    assert result["alive"][0]["exited_at"] is None
    assert ids_of(result["exited"]) == [e_gone["id"]]
    assert 0.3 <= took < 3.0, f"replied after {took:.2f} s"


def test_wait_method_for_already_dead_replies_at_once(
    d: Daemon, waiter: Callable[[Daemon, dict[str, Any]], Waiter], sleeper: Sleeper
) -> None:
    p = sleeper()
    e = add(d, p, fresh_label())
    kill_and_reap(p)
    wait_until(lambda: dead(d, e["id"]), what="the entry to turn dead")
    w = waiter(d, {"ids": [e["id"]], "timeout": 60})
    result = w.reply(timeout=2)["result"]
    assert (result["timed_out"], ids_of(result["exited"]), result["alive"]) == (
        False,
        [e["id"]],
        [],
    )


def test_wait_method_for_no_match_is_no_match_error(d: Daemon) -> None:
    reply = d.request("wait", {"tags_any": [fresh_label()], "timeout": 5})
    assert reply["error"]["code"] == -32006, reply


def test_client_that_disconnects_while_waiting_costs_nothing_further(
    d: Daemon, waiter: Callable[[Daemon, dict[str, Any]], Waiter], sleeper: Sleeper
) -> None:
    p = sleeper()
    e = add(d, p, fresh_label())
    w = waiter(d, {"ids": [e["id"]], "timeout": 600})
    wait_until(lambda: d.call("status")["connections"] == 2, what="the wait to be in")
    w.close()
    wait_until(
        lambda: d.call("status")["connections"] == 1,
        timeout=2,
        what="the waiting connection to be let go",
    )
    # Its exit no longer has anyone to tell; the daemon carries on.
    kill_and_reap(p)
    wait_until(lambda: dead(d, e["id"]), what="the entry to turn dead")
    assert d.call("status")["connections"] == 1


def test_wait_method_client_that_only_stops_sending_still_gets_the_reply(
    d: Daemon, waiter: Callable[[Daemon, dict[str, Any]], Waiter], sleeper: Sleeper
) -> None:
    """Closing only the sending side (as `socat` does at the end of its input) is not
    hanging up: the wait goes on and its reply comes."""
    p = sleeper()
    e = add(d, p, fresh_label())
    w = waiter(d, {"ids": [e["id"]], "timeout": 30})
    w.sock.shutdown(socket.SHUT_WR)
    wait_until(lambda: d.call("status")["connections"] == 2, what="the wait to be in")
    kill_and_reap(p)
    result = w.reply()["result"]
    assert (result["timed_out"], ids_of(result["exited"])) == (False, [e["id"]])
