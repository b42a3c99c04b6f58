"""The HTTP app's event stream in-process, in virtual time: heartbeats, the end at
`stop`, and a client that reads nothing dropped as the bus drops a slow subscriber
(the real-daemon counterpart: tests/e2e/test_http.py)."""

from __future__ import annotations

from typing import Any, cast

import trio
import trio.testing

from goproc.daemon.events import EventBus
from goproc.daemon.http.app import HEARTBEAT, HttpApp
from goproc.model import ProcessFacts
from goproc.registry import Registry
from goproc.rpc.entries import NO_METRICS, entries_json

NOW = 1_700_000_500.0
EVENTS = {"type": "http", "method": "GET", "path": "/api/events", "query_string": b""}


def setup(queue_limit: int = 4) -> tuple[Registry, EventBus, HttpApp]:
    reg = Registry()
    facts = ProcessFacts(pid=4242, started_at=NOW - 10, cmd="sleep 1", pgid=4242)
    reg.apply(reg.plan_add([facts], now=NOW)[1])
    bus = EventBus(queue_limit)
    no_status = cast(Any, None)  # the event stream never asks for it
    return reg, bus, HttpApp(reg, NO_METRICS, no_status, bus, entries_json)


async def never() -> dict[str, Any]:
    await trio.sleep_forever()
    raise AssertionError


def bodies(sent: list[dict[str, Any]]) -> list[bytes]:
    return [m["body"] for m in sent if m["type"] == "http.response.body"]


def test_heartbeats_then_the_end_at_stop() -> None:
    async def main() -> None:
        reg, bus, app = setup()
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(app, {**EVENTS, "headers": []}, never, send)
            await trio.sleep(2 * HEARTBEAT + 1)
            assert bodies(sent) == [b": subscription 1\n\n", *[b": heartbeat\n\n"] * 2]
            proc = reg.get(1)
            assert proc is not None
            bus.publish("updated", proc, NOW)
            await trio.testing.wait_all_tasks_blocked()
            assert bodies(sent)[-1].startswith(b'data: {"subscription":1,"kind":"updated"')
            app.stop()
        assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
        assert not bus.subscriptions
        assert sent[0]["status"] == 200
        assert (b"content-type", b"text/event-stream") in sent[0]["headers"]

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_client_that_reads_nothing_is_dropped() -> None:
    async def main() -> None:
        reg, bus, app = setup(queue_limit=4)
        proc = reg.get(1)
        assert proc is not None
        sent: list[dict[str, Any]] = []
        stuck = trio.Event()

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message.get("body", b"").startswith(b"data:"):  # its socket is full
                stuck.set()
                await trio.sleep_forever()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(app, {**EVENTS, "headers": []}, never, send)
            await trio.testing.wait_all_tasks_blocked()
            bus.publish("updated", proc, NOW)
            await stuck.wait()
            for _ in range(5):  # one more than the queue holds
                bus.publish("updated", proc, NOW)
            assert not bus.subscriptions  # the bus dropped it at once
            overflowed = trio.current_time()
        assert trio.current_time() - overflowed <= 1.0  # and the stream ended soon after
        assert sent[-1]["more_body"] is False

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_head_of_events_sends_no_stream() -> None:
    async def main() -> None:
        _, bus, app = setup()
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({**EVENTS, "method": "HEAD", "headers": []}, never, send)
        assert sent[0]["status"] == 200 and bodies(sent) == [b""]
        assert not bus.subscriptions

    trio.run(main)
