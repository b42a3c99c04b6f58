"""The server and its connections in-process, in virtual time: a real `Server` over the
real method table (`make_parts`: a real registry, a table probe, a memory journal) on a
`MemoryListener`, so every limit is checked to the virtual second.

The real-socket counterparts (peer credentials, hang-up detection, wall-clock bounds)
are tests/e2e/test_hostile.py, test_events.py and test_daemon_lifecycle.py.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from fakes import MemoryListener, Parts, TableProbe, make_parts

from goproc.config import Config
from goproc.daemon.handlers import make_dispatch
from goproc.daemon.handlers.context import Session
from goproc.daemon.server import Server
from goproc.errors import INVALID_REQUEST, TOO_MANY_CONNECTIONS
from goproc.model import ProcessFacts
from goproc.registry import Registry
from goproc.rpc.jsonrpc import Dispatch

NOW = 1_700_000_500.0
EPS = 0.001  # virtual seconds: "just before" and "just after" a deadline
# A test stuck for good fails at this virtual time (at once in wall time: the clock
# jumps to it) instead of hanging.
WATCHDOG = 3600.0


def facts(pid: int) -> ProcessFacts:
    return ProcessFacts(pid=pid, started_at=NOW - pid, cmd=f"sleep {pid}", pgid=pid)


PIDS = (4242, 4343, 4444, 4545, 4646, 4747)


def new_parts(tracked: int = 1, queue: int = 1024) -> Parts:
    """The first `tracked` of PIDS tracked (ids 1, 2, ...); every one of PIDS is live."""
    reg = Registry()
    if tracked:
        _, change = reg.plan_add([facts(p) for p in PIDS[:tracked]], now=NOW)
        reg.apply(change)
    return make_parts(reg, TableProbe({p: facts(p) for p in PIDS}), queue=queue)


def request(method: str, params: dict[str, Any] | None = None, id: Any = 1) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        msg["params"] = params
    return json.dumps(msg).encode() + b"\n"


class LineClient:
    """The client end of an in-memory connection, reading whole lines."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buf = bytearray()

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def line(self) -> bytes | None:
        """The next line (without its newline); None at EOF."""
        while (nl := self._buf.find(b"\n")) < 0:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self._buf += data
        out = bytes(self._buf[:nl])
        del self._buf[: nl + 1]
        return out

    async def reply(self) -> Any:
        line = await self.line()
        assert line is not None, "EOF instead of a reply"
        return json.loads(line)

    async def call(self, method: str, params: dict[str, Any] | None = None, id: Any = 1) -> Any:
        """The result of one request; fails on an error reply."""
        await self.send(request(method, params, id))
        reply = await self.reply()
        assert reply["id"] == id and "result" in reply, reply
        return reply["result"]

    async def at_eof(self) -> bool:
        """Whether the server closed the connection, reading past any lines still sent."""
        while (await self.line()) is not None:
            pass
        return True


@attrs.define
class Harness:
    server: Server
    listener: MemoryListener
    parts: Parts
    finished: trio.Event = attrs.field(factory=trio.Event)
    finished_at: float | None = None

    async def connect(self, *, lockstep: bool = False) -> LineClient:
        return LineClient(await self.listener.connect(lockstep=lockstep))


def run_server(
    body: Callable[[Harness], Awaitable[None]],
    *,
    config: Config | None = None,
    parts: Parts | None = None,
    grace: float = 5.0,
) -> None:
    """Run `body` against a served `MemoryListener` under an autojump clock (virtual time
    starts at 0), then stop the server and wait for it to return."""
    config = Config() if config is None else config
    parts = new_parts() if parts is None else parts
    ctx = parts.ctx

    def dispatch_for(session: Session) -> Dispatch:
        return make_dispatch(attrs.evolve(ctx, session=session))

    listener = MemoryListener()
    server = Server(listener, config, dispatch_for, parts.outlets.bus, grace=grace)
    h = Harness(server, listener, parts)

    async def serve(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await server.run(task_status=task_status)
        h.finished_at = trio.current_time()
        h.finished.set()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve)
            with trio.fail_after(WATCHDOG):
                await body(h)
            server.stop()
        assert listener.closed, "the listener is closed once the server has stopped"

    try:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    except BaseExceptionGroup as group:  # the nursery's: report a lone failure as itself
        if len(group.exceptions) == 1 and not isinstance(group.exceptions[0], BaseExceptionGroup):
            raise group.exceptions[0] from None
        raise


def approx(t: float) -> Any:
    return pytest.approx(t, abs=1e-6)


# ---- requests and replies --------------------------------------------------------------


def test_ping_round_trip() -> None:
    async def body(h: Harness) -> None:
        client = await h.connect()
        await client.send(request("ping", id="a"))
        assert await client.reply() == {"jsonrpc": "2.0", "id": "a", "result": "pong"}
        assert h.server.connections == 1

    run_server(body)


def test_pipelined_requests_are_answered_one_at_a_time_in_request_order() -> None:
    """Four requests in one write, the first a `wait` that takes 2 s: the ping after it
    is not answered before it, the notification gets no reply, and the order holds."""

    async def body(h: Harness) -> None:
        client = await h.connect()
        await client.send(
            request("wait", {"ids": [1], "timeout": 2}, id=1)
            + request("ping", id=2)
            + b'{"jsonrpc":"2.0","method":"ping"}\n'
            + request("list", id=3)
        )
        replies = []
        for _ in range(3):
            replies.append(await client.reply())
            assert trio.current_time() == approx(2.0), "nothing is answered before the wait"
        assert [r["id"] for r in replies] == [1, 2, 3]
        assert replies[0]["result"]["timed_out"] is True
        assert replies[1]["result"] == "pong"
        assert [p["id"] for p in replies[2]["result"]] == [1]
        with trio.move_on_after(60) as quiet:
            await client.line()
        assert quiet.cancelled_caught, "the notification got no reply"

    run_server(body)


# ---- the request size limit ------------------------------------------------------------

LIMIT = 200


def padded_ping(size: int, id: int = 1) -> bytes:
    """A ping request line of exactly `size` bytes (without its newline)."""
    head = request("ping", id=id).rstrip(b"\n")
    assert len(head) <= size
    return head[:-1] + b" " * (size - len(head)) + b"}"


@pytest.mark.parametrize("subscribed", [False, True], ids=["plain", "subscribed"])
@pytest.mark.parametrize("ending", [b"\n", b""], ids=["whole line", "no newline yet"])
def test_request_over_max_request_bytes_gets_32600_and_the_connection_is_closed(
    ending: bytes, subscribed: bool
) -> None:
    """Also when the line has no end yet (the server never buffers more than the limit,
    and one read, of a line waiting for its newline), and also on a connection that
    is subscribed (which outlives the end of its requests otherwise)."""

    async def body(h: Harness) -> None:
        client = await h.connect()
        if subscribed:
            await client.call("subscribe")
        await client.send(padded_ping(LIMIT + 1) + ending)
        reply = await client.reply()
        assert reply["id"] is None
        assert reply["error"]["code"] == INVALID_REQUEST
        assert "too large" in reply["error"]["message"]
        assert await client.at_eof()
        await trio.testing.wait_all_tasks_blocked()
        assert h.server.connections == 0
        # The server itself goes on.
        assert await (await h.connect()).call("ping") == "pong"

    run_server(body, config=Config(max_request_bytes=LIMIT))


@pytest.mark.parametrize(
    "writes",
    [[b"\n"], [b"\r\n"], [b"\r", b"\n"]],
    ids=["LF", "CRLF", "CR, then LF in another write"],
)
def test_request_of_exactly_max_request_bytes_is_served(writes: list[bytes]) -> None:
    """The line end is not counted, `\r\n` included, also when its `\n` comes later."""

    async def body(h: Harness) -> None:
        client = await h.connect()
        await client.send(padded_ping(LIMIT, id=1) + writes[0])
        for more in writes[1:]:
            await trio.testing.wait_all_tasks_blocked()  # the server has read the rest
            await client.send(more)
        assert (await client.reply())["result"] == "pong"
        assert await client.call("ping", id=2) == "pong"

    run_server(body, config=Config(max_request_bytes=LIMIT))


# ---- the idle timeout ------------------------------------------------------------------

IDLE = 30.0


def test_idle_connection_is_closed_after_exactly_idle_timeout() -> None:
    async def body(h: Harness) -> None:
        client = await h.connect()
        with trio.move_on_after(IDLE - EPS):
            await client.line()
        assert h.server.connections == 1, "still open just before the timeout"
        assert await client.line() is None
        assert trio.current_time() == approx(IDLE)
        await trio.testing.wait_all_tasks_blocked()
        assert h.server.connections == 0

    run_server(body, config=Config(idle_timeout=IDLE))


def test_idle_timeout_counts_from_the_last_reply() -> None:
    async def body(h: Harness) -> None:
        client = await h.connect()
        await trio.sleep(IDLE / 2)
        assert await client.call("ping") == "pong"
        assert await client.line() is None
        assert trio.current_time() == approx(IDLE / 2 + IDLE)

    run_server(body, config=Config(idle_timeout=IDLE))


def test_request_in_flight_is_not_cut_by_the_idle_timeout() -> None:
    async def body(h: Harness) -> None:
        client = await h.connect()
        result = await client.call("wait", {"ids": [1], "timeout": 3 * IDLE})
        assert result["timed_out"] is True
        assert trio.current_time() == approx(3 * IDLE)

    run_server(body, config=Config(idle_timeout=IDLE))


def test_subscribed_connection_is_not_closed_by_the_idle_timeout() -> None:
    async def body(h: Harness) -> None:
        subscriber = await h.connect()
        assert await subscriber.call("subscribe") == {"subscription": 1}
        with trio.move_on_after(10 * IDLE) as quiet:
            await subscriber.line()
        assert quiet.cancelled_caught and h.server.connections == 1
        # Still delivered to: an add on another connection reaches it.
        await (await h.connect()).call("add", {"pid": PIDS[1]})
        event = await subscriber.reply()
        assert event["method"] == "event"
        assert event["params"]["kind"] == "added" and event["params"]["pid"] == PIDS[1]

    run_server(body, config=Config(idle_timeout=IDLE))


# ---- the send timeout ------------------------------------------------------------------

SEND_TIMEOUT = 10.0


def test_client_that_never_reads_is_dropped_after_exactly_send_timeout() -> None:
    """A lockstep stream has no buffer: the reply waits for a read that never comes.
    Another client is served meanwhile."""

    async def body(h: Harness) -> None:
        slow = await h.connect(lockstep=True)
        await slow.send(request("ping"))  # returns once the server has read it
        started = trio.current_time()
        other = await h.connect()
        await trio.sleep(SEND_TIMEOUT / 2)
        assert await other.call("ping") == "pong"
        await trio.sleep(started + SEND_TIMEOUT - EPS - trio.current_time())
        assert h.server.connections == 2, "still connected just before the send timeout"
        await trio.sleep(2 * EPS)
        assert h.server.connections == 1, "dropped at the send timeout"
        assert await slow.at_eof()
        assert await other.call("ping") == "pong"

    run_server(body, config=Config(send_timeout=SEND_TIMEOUT, idle_timeout=1000))


def test_client_that_reads_late_but_within_send_timeout_gets_its_reply() -> None:
    async def body(h: Harness) -> None:
        client = await h.connect(lockstep=True)
        await client.send(request("ping"))
        await trio.sleep(SEND_TIMEOUT - EPS)
        assert (await client.reply())["result"] == "pong"
        assert await client.call("ping", id=2) == "pong"

    run_server(body, config=Config(send_timeout=SEND_TIMEOUT, idle_timeout=1000))


# ---- max_connections -------------------------------------------------------------------


def test_one_connection_over_max_connections_gets_32008_and_is_closed() -> None:
    """With none of them idle (both subscribed), one more is refused; once one is idle,
    it is closed to make room for the next."""

    async def body(h: Harness) -> None:
        first, second = await h.connect(), await h.connect()
        assert await first.call("subscribe") == {"subscription": 1}
        assert await second.call("subscribe") == {"subscription": 2}
        extra = await h.connect()
        reply = await extra.reply()
        assert reply["id"] is None and reply["error"]["code"] == TOO_MANY_CONNECTIONS
        assert "limit 2" in reply["error"]["message"]
        assert await extra.at_eof()
        # The ones already connected keep working; once one is idle, a new one is served.
        assert await first.call("ping") == "pong"
        assert await second.call("unsubscribe", {"subscription": 2}) == {"unsubscribed": True}
        await trio.testing.wait_all_tasks_blocked()
        assert await (await h.connect()).call("ping") == "pong"
        assert await second.at_eof(), "the idle one made room"
        assert await first.call("ping") == "pong"

    run_server(body, config=Config(max_connections=2))


# ---- stop ------------------------------------------------------------------------------


def test_stop_lets_the_requests_received_finish_and_closes_the_rest_at_once() -> None:
    """A `wait` in flight is answered at once with -32009 and the ping pipelined behind
    it is answered; an idle and a subscribed connection are closed at the stop; the
    server returns then, well within the grace."""

    async def body(h: Harness) -> None:
        idle, subscriber, busy = await h.connect(), await h.connect(), await h.connect()
        assert await idle.call("ping") == "pong"
        assert await subscriber.call("subscribe") == {"subscription": 1}
        await busy.send(request("wait", {"ids": [1], "timeout": 3}, id=1) + request("ping", id=2))
        await trio.sleep(1)
        h.server.stop()
        assert await idle.line() is None and await subscriber.line() is None
        assert trio.current_time() == approx(1.0), "closed at the stop"
        wait_reply, ping_reply = await busy.reply(), await busy.reply()
        assert trio.current_time() == approx(1.0)
        assert wait_reply == {
            "jsonrpc": "2.0",
            "id": 1,
            "error": {"code": -32009, "message": "shutting down"},
        }
        assert ping_reply == {"jsonrpc": "2.0", "id": 2, "result": "pong"}
        assert await busy.line() is None
        await h.finished.wait()
        assert h.finished_at == approx(1.0)
        assert h.server.connections == 0

    run_server(body, grace=5.0)


def test_stop_answers_a_kill_waiting_for_exits_at_once_without_escalating() -> None:
    """A `kill` waiting for a process that ignores TERM: at the stop it answers what
    it did (`signalled`: TERM went out) at once, and sends no KILL; the server returns
    then, well within the grace."""

    async def body(h: Harness) -> None:
        busy = await h.connect()
        await busy.send(request("kill", {"ids": [1], "timeout": 60}))
        await trio.sleep(1)
        h.server.stop()
        reply = await busy.reply()
        assert trio.current_time() == approx(1.0)
        assert [r["outcome"] for r in reply["result"]] == ["signalled"]
        assert [sig for _, sig in h.parts.probe.signals] == [signal.SIGTERM], "no KILL"
        await h.finished.wait()
        assert h.finished_at == approx(1.0)

    run_server(body, grace=5.0)


# ---- subscription overflow -------------------------------------------------------------

QUEUE = 3


def test_subscriber_past_event_queue_gets_one_overflow_event_then_is_closed() -> None:
    """One `add` of five processes makes five events at once, more than the queue of
    three holds: the subscriber gets the three, then `overflow`, then EOF."""

    async def body(h: Harness) -> None:
        subscriber = await h.connect()
        sub = await subscriber.call("subscribe")
        adder = await h.connect()
        added = await adder.call("add", {"pids": list(PIDS[1:6])})
        assert len(added) == 5, "the change itself is made"
        overflowed = trio.current_time()
        lines = []
        while (line := await subscriber.line()) is not None:
            lines.append(json.loads(line)["params"])
        assert trio.current_time() == approx(overflowed), "closed once the overflow is sent"
        assert [e["kind"] for e in lines] == ["added"] * QUEUE + ["overflow"]
        assert [e["pid"] for e in lines[:QUEUE]] == list(PIDS[1 : 1 + QUEUE])
        assert lines[-1]["subscription"] == sub["subscription"]
        assert lines[-1]["dropped_after"] == QUEUE
        await trio.testing.wait_all_tasks_blocked()
        assert h.server.connections == 1
        assert h.parts.outlets.bus.subscriptions == {}
        assert await adder.call("ping") == "pong"

    run_server(body, parts=new_parts(queue=QUEUE))


def test_subscriber_that_never_reads_is_dropped_a_second_after_its_overflow() -> None:
    """The subscriber's stream has no buffer and it never reads: the first event blocks
    its delivery, the next ones fill the queue, the one after overflows.  It is dropped
    one second later, not after `send_timeout`."""

    async def body(h: Harness) -> None:
        subscriber = await h.connect(lockstep=True)
        await subscriber.call("subscribe")
        adder = await h.connect()
        await adder.call("add", {"pid": PIDS[1]})  # being delivered: blocked
        await adder.call("add", {"pids": list(PIDS[2 : 3 + QUEUE])})  # three queued, overflow
        assert len(h.parts.outlets.bus.subscriptions) == 0, "dropped from the bus at once"
        overflowed = trio.current_time()
        await trio.sleep(1 - EPS)
        assert h.server.connections == 2
        await trio.sleep(2 * EPS)
        assert h.server.connections == 1
        assert trio.current_time() - overflowed < SEND_TIMEOUT
        assert await subscriber.at_eof()

    run_server(
        body,
        config=Config(send_timeout=SEND_TIMEOUT, idle_timeout=1000),
        parts=new_parts(queue=QUEUE),
    )
