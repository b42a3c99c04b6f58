"""What one of the user's own clients can make the daemon spend, against a real daemon.

- Descriptors: under `prlimit --nofile=64` every `add` still succeeds (entries past the
  reserve are polled instead of holding a pidfd), a connection past the reserve gets
  -32008 at once instead of hanging, and liveness sweeps go on.
- Batches: at most `max_batch` requests (-32600 past it); replies go out one request at
  a time, so a batch of big `list` replies costs one reply's memory, and a batch of
  `status` requests does not stall other clients.
- Subscriptions: at most `max_subscriptions` per connection and
  `max_subscriptions_total` in all (-32008 past either).
- A `wait` whose client sends a few more bytes and then hangs up is cancelled.
- The idle timer counts from the last whole request (a byte at a time does not reset
  it), and at `max_connections` the longest idle connection makes room for a new one.
- SIGTERM answers the `wait`s in flight with -32009 (shutting down) before closing.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from conftest import Conn, Daemon, message
from fakes import TableProbe, make_parts
from helpers import forged_entries, wait_until as shared_wait_until
from hypothesis import given, strategies as st

from goproc.daemon.liveness import Liveness
from goproc.errors import GoprocError
from goproc.model import ProcessFacts
from goproc.registry import Registry
from goproc.rpc.jsonrpc import decode_line

TOO_MANY, INVALID_REQUEST, SHUTTING_DOWN = -32008, -32600, -32009

wait_until = functools.partial(shared_wait_until, timeout=10.0, every=0.01)


def batch(method: str, n: int, params: Any = None) -> bytes:
    items = [json.loads(message(method, params, i)) for i in range(1, n + 1)]
    return json.dumps(items, separators=(",", ":")).encode() + b"\n"


def connections(d: Daemon) -> int:
    """Connections the daemon has open, not counting the one that asks."""
    return int(d.call("status")["connections"]) - 1


def peak_rss(d: Daemon) -> int:
    """The daemon's peak resident set so far (VmHWM), in bytes."""
    assert d.proc is not None
    for line in Path(f"/proc/{d.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def forged_daemon(root: Path, n: int, cmd_len: int, config: dict[str, Any] | None = None) -> Daemon:
    """A daemon whose snapshot holds `n` dead entries with long command lines."""
    procs = forged_entries(n, cmd_len)
    d = Daemon(root, config=config)
    d.state_dir.mkdir(mode=0o700)
    snapshot = {"version": 1, "next_id": n + 1, "journal": 0, "procs": procs}
    (d.state_dir / "goproc.snapshot.json").write_text(json.dumps(snapshot))
    return d


class PingProbe:
    """Pings from a second client, timed, while `running` is set (in the test's thread)."""

    def __init__(self, d: Daemon) -> None:
        self.conn = Conn(d)
        self.times: list[float] = []

    def close(self) -> None:
        self.conn.sock.close()

    def ping(self) -> None:
        t0 = time.perf_counter()
        assert self.conn.call("ping") == "pong"
        self.times.append(time.perf_counter() - t0)


# ---- descriptors -----------------------------------------------------------------------


class LimitedDaemon(Daemon):
    """A daemon started under `prlimit --nofile=N` (soft and hard)."""

    def __init__(self, root: Path, nofile: int, config: dict[str, Any] | None = None) -> None:
        super().__init__(root, config)
        self.launcher = ("prlimit", f"--nofile={nofile}", "--")


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[LimitedDaemon]:
    d = LimitedDaemon(tmp_path, 64, config={"liveness_interval": "200ms", "fd_reserve": 24})
    d.start()
    try:
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)


def test_descriptor_exhaustion_polls_entries_refuses_connections_and_keeps_running(
    limited: LimitedDaemon, sleeper: Callable[..., subprocess.Popen[bytes]]
) -> None:
    procs = [sleeper() for _ in range(80)]
    for p in procs:  # more processes than descriptors: each add still succeeds
        reply = limited.request("add", {"pid": p.pid})
        assert "result" in reply, reply
    status = limited.call("status")
    assert status["alive"] == 80
    assert 0 < status["watched"] < 64 - 24, status  # the rest are polled
    # Connections until the descriptors run out: each is answered at once, never hangs.
    held: list[Conn] = []
    refused = None
    try:
        for _ in range(80):
            conn = Conn(limited, timeout=5.0)
            held.append(conn)
            conn.sock.sendall(message("ping"))
            reply = conn.line()
            assert reply is not None, "a connection was closed without a word"
            if "error" in reply:
                refused = reply
                break
            assert reply["result"] == "pong"
        assert refused is not None, "80 connections on 64 descriptors were all served"
        assert refused["id"] is None and refused["error"]["code"] == TOO_MANY, refused
        assert "descriptors" in refused["error"]["message"], refused
        sweeps = held[0].call("status")["sweeps"]
        wait_until(lambda: held[0].call("status")["sweeps"] >= sweeps + 2, what="two sweeps")
        # One watched entry and one polled one die: both are found.
        procs[0].kill()
        procs[-1].kill()
        for p in (procs[0], procs[-1]):
            p.wait()

        def both_dead() -> bool:
            dead = {e["pid"] for e in held[0].call("list", {"alive": False})}
            return {procs[0].pid, procs[-1].pid} <= dead

        wait_until(both_dead, what="both deaths to be noticed")
    finally:
        for conn in held:
            conn.sock.close()
    wait_until(lambda: limited.request("ping").get("result") == "pong", what="a free slot")
    assert limited.proc is not None and limited.proc.poll() is None
    assert "Too many open files" not in limited.log()


# ---- batches ---------------------------------------------------------------------------


def test_batch_over_max_batch_is_refused_whole_with_32600(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any]
) -> None:
    d = spawn_daemon(config={"max_batch": 10})
    with Conn(d) as conn:
        conn.sock.sendall(batch("add", 11, {"pid": sleeper().pid}))
        assert conn.line() == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {
                "code": INVALID_REQUEST,
                "message": "invalid request: batch too large (limit 10)",
            },
        }
        assert conn.call("list") == [], "nothing of a refused batch was done"
        conn.sock.sendall(batch("ping", 10))
        replies = conn.line()
        assert [r["id"] for r in replies] == list(range(1, 11))
        assert all(r["result"] == "pong" for r in replies)


def _decoded(line: bytes, max_batch: int | None) -> tuple[str, Any]:
    try:
        return "value", decode_line(line, max_batch)
    except GoprocError as e:
        return type(e).__name__, e.message


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
SPACE = st.sampled_from(["", " ", "\n", "\t ", "\r\n"])


@given(
    st.one_of(
        st.builds(lambda v, a, b: (a + json.dumps(v) + b).encode(), JSON_VALUES, SPACE, SPACE),
        st.builds(lambda v, cut: json.dumps(v).encode()[:cut], JSON_VALUES, st.integers(0, 50)),
        st.binary(max_size=40).map(lambda b: b"[" + b),
    )
)
def test_a_batch_is_decoded_item_by_item_as_the_whole_line_would_be(line: bytes) -> None:
    """The element-by-element reading that stops at `max_batch` gives the same value,
    or the same parse error, as decoding the whole line."""
    assert _decoded(line, 10**6) == _decoded(line, None)
    whole = _decoded(line, None)
    if whole[0] == "value" and isinstance(whole[1], list) and len(whole[1]) > 2:
        assert _decoded(line, 2) == ("InvalidRequest", "invalid request: batch too large (limit 2)")


def test_one_mib_batch_of_list_requests_is_refused_at_once(tmp_path: Path) -> None:
    """About 23,000 `list` requests against 1,000 entries: GBs of replies, refused whole
    before any is made."""
    d = forged_daemon(tmp_path, 1000, 50)
    d.start()
    try:
        request = message("list").rstrip(b"\n")
        n = (1 << 20) // (len(request) + 1) - 1
        before = peak_rss(d)
        with Conn(d, timeout=5.0) as conn:
            t0 = time.monotonic()
            conn.sock.sendall(batch("list", n))
            reply = conn.line()
            assert reply["error"] == {
                "code": INVALID_REQUEST,
                "message": "invalid request: batch too large (limit 1000)",
            }
            assert time.monotonic() - t0 < 2
            assert conn.call("ping") == "pong", "the connection stays open"
        grew = peak_rss(d) - before
        assert grew < 64 << 20, f"the refused batch cost {grew >> 20} MiB"
    finally:
        d.stop()


def test_batch_of_list_requests_costs_one_reply_of_memory(tmp_path: Path) -> None:
    """1,000 `list` requests (the limit) of about 250 KB each: 250 MB of replies, sent
    one request at a time, so the daemon holds about one of them."""
    d = forged_daemon(tmp_path, 300, 800)
    d.start()
    try:
        one = len(d.raw(message("list"))[0])
        assert one > 200_000
        before = peak_rss(d)
        with Conn(d, timeout=60.0) as conn:
            conn.sock.sendall(batch("list", 1000))
            got = conn.raw_line()
            assert got is not None and got.startswith(b"[") and got.endswith(b"]")
            assert len(got) > 1000 * one
            ids = [int(m) for m in re.findall(rb'\{"jsonrpc":"2\.0","id":(\d+),"result"', got)]
            assert ids == list(range(1, 1001))
            del got
        grew = peak_rss(d) - before
        assert grew < 32 << 20, f"the batch cost {grew >> 20} MiB"
    finally:
        d.stop()


def test_batch_of_status_requests_does_not_stall_other_clients(tmp_path: Path) -> None:
    """1,000 `status` requests over 20,000 entries take about 0.4 s in all: a ping waits
    for one of them at most, not for the batch."""
    d = forged_daemon(tmp_path, 20_000, 10)
    d.start()
    try:
        probe = PingProbe(d)
        with Conn(d) as hog:
            hog.sock.sendall(batch("status", 1000))
            # The batch takes a while; pings go on meanwhile.
            hog.sock.settimeout(0.0)
            done = False
            while not done:
                probe.ping()
                with contextlib.suppress(BlockingIOError):
                    done = hog.sock.recv(1 << 20).endswith(b"]\n")
        probe.close()
        assert len(probe.times) >= 3, probe.times
        assert max(probe.times) < 0.15, f"a ping waited {max(probe.times):.3f}s"
    finally:
        d.stop()


# ---- subscriptions ---------------------------------------------------------------------


def test_subscriptions_are_bounded_per_connection_and_in_total(
    spawn_daemon: Callable[..., Daemon],
) -> None:
    d = spawn_daemon(config={"max_subscriptions": 4, "max_subscriptions_total": 6})
    with Conn(d) as a, Conn(d) as b:
        subs = [a.call("subscribe")["subscription"] for _ in range(4)]
        over = a.request("subscribe")
        assert over["error"] == {
            "code": TOO_MANY,
            "message": "too many subscriptions on this connection (limit 4)",
        }
        b.call("subscribe")
        b.call("subscribe")
        over = b.request("subscribe")
        assert over["error"] == {
            "code": TOO_MANY,
            "message": "too many subscriptions (limit 6 in all); try again later",
        }
        # A batch cannot get past the limit either.
        b.sock.sendall(batch("subscribe", 50))
        replies = b.line()
        assert all(r["error"]["code"] == TOO_MANY for r in replies)
        assert a.call("unsubscribe", {"subscription": subs[0]}) == {"unsubscribed": True}
        b.call("subscribe")  # room again
        assert d.call("status")["subscriptions"] == 6


# ---- a wait whose client hangs up ------------------------------------------------------


@pytest.mark.parametrize("more", [b"x", b'{"jsonrpc":"2.0","id":9,"method":"ping"}\n'])
def test_wait_ends_when_its_client_hangs_up_after_sending_more(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any], more: bytes
) -> None:
    d = spawn_daemon()
    entry = d.call("add", {"pid": sleeper().pid})
    wait_until(lambda: connections(d) == 0, what="earlier connections to end")
    for _ in range(3):
        s = d.connect()
        s.sendall(message("wait", {"ids": [entry["id"]], "timeout": 3600}))
        wait_until(lambda: connections(d) == 1, what="the wait to be in flight")
        s.sendall(more)
        time.sleep(0.05)
        s.close()
        wait_until(lambda: connections(d) == 0, what="the wait to be cancelled")


def test_wait_of_a_half_closed_client_is_still_answered(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any]
) -> None:
    """A client that sends more, then closes only its writing side, still reads."""
    d = spawn_daemon()
    p = sleeper()
    entry = d.call("add", {"pid": p.pid})
    with Conn(d) as w:
        w.sock.sendall(message("wait", {"ids": [entry["id"]], "timeout": 30}, 1))
        w.sock.sendall(message("ping", None, 2))
        w.sock.shutdown(socket.SHUT_WR)
        time.sleep(0.3)
        p.kill()
        reply = w.line()
        assert reply["id"] == 1 and reply["result"]["timed_out"] is False, reply
        assert w.line() == {"jsonrpc": "2.0", "id": 2, "result": "pong"}


# ---- idle connections ------------------------------------------------------------------


def test_idle_timer_counts_from_the_last_whole_request(
    spawn_daemon: Callable[..., Daemon],
) -> None:
    d = spawn_daemon(config={"idle_timeout": "1s"})
    with Conn(d) as trickle:
        trickle.call("ping")
        since = time.monotonic()
        trickle.sock.settimeout(0.2)
        closed = False
        while not closed and time.monotonic() - since < 5:
            try:
                trickle.sock.sendall(b" ")  # bytes, never a whole line
                closed = trickle.sock.recv(1) == b""
            except TimeoutError:
                pass
            except OSError:
                closed = True
        took = time.monotonic() - since
        assert closed, "a byte at a time kept an idle connection open"
        assert 0.9 <= took < 2.5, took


def test_at_max_connections_the_longest_idle_one_makes_room(
    spawn_daemon: Callable[..., Daemon],
) -> None:
    d = spawn_daemon(config={"max_connections": 3})
    wait_until(lambda: connections(d) == 0, what="the readiness probes to go")
    with Conn(d) as subscriber, Conn(d) as older, Conn(d) as newer:
        subscriber.call("subscribe")  # not idle: never closed to make room
        older.call("ping")
        time.sleep(0.05)
        newer.call("ping")
        with Conn(d) as late:
            assert late.call("ping") == "pong", "the new connection is served"
            assert older.line() is None, "the longest idle connection was closed"
            assert newer.call("ping") == "pong"
            assert subscriber.call("ping") == "pong"


# ---- shutdown --------------------------------------------------------------------------


def test_sigterm_answers_waits_in_flight_with_shutting_down(
    spawn_daemon: Callable[..., Daemon], sleeper: Callable[..., Any]
) -> None:
    d = spawn_daemon()
    entry = d.call("add", {"pid": sleeper().pid})
    waiting = [Conn(d) for _ in range(10)]
    try:
        for n, conn in enumerate(waiting):
            conn.sock.sendall(message("wait", {"ids": [entry["id"]], "timeout": 3600}, n))
        wait_until(lambda: connections(d) == 10, what="the waits to be in flight")
        assert d.proc is not None
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        for n, conn in enumerate(waiting):
            reply = conn.line()
            assert reply == {
                "jsonrpc": "2.0",
                "id": n,
                "error": {"code": SHUTTING_DOWN, "message": "shutting down"},
            }
            assert conn.line() is None
        assert time.monotonic() - t0 < 4, "answered before the grace ran out"
        assert d.proc.wait(10) == 0
        d.stop()
    finally:
        for conn in waiting:
            conn.sock.close()
    assert os.path.exists(d.state_dir / "goproc.snapshot.json")


# ---- a probe out of descriptors --------------------------------------------------------


def test_a_probe_out_of_descriptors_leaves_the_entry_to_the_next_sweep() -> None:
    """EMFILE while probing (in a sweep's worker thread) is no verdict: the sweep goes
    on, and the entry is probed again next time (in-process, a table probe)."""

    @attrs.define
    class EmfileProbe(TableProbe):
        failing: bool = True

        def is_alive(self, pid: int, started_at: float) -> bool:
            if self.failing:
                raise OSError(errno.EMFILE, "Too many open files")
            return super().is_alive(pid, started_at)

    reg = Registry()
    _, change = reg.plan_add([ProcessFacts(pid=4242, started_at=1.0, cmd="x", pgid=None)], now=2.0)
    reg.apply(change)
    probe = EmfileProbe({})  # the process has ended: no longer in the table
    parts = make_parts(reg, probe)
    liveness = Liveness(
        lambda: reg,
        probe,
        parts.ctx.vitals,
        interval=1.0,
        last_seen_interval=1.0,
        clock=lambda: 3.0,
    )

    async def main() -> None:
        assert await liveness.sweep() == 0, "out of descriptors: no verdict"
        entry = reg.get(1)
        assert entry is not None and entry.alive
        probe.failing = False
        assert await liveness.sweep() == 1, "the next sweep finds it dead"

    trio.run(main)
    assert liveness.sweeps == 2
