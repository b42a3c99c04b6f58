"""The HTTP app's event stream in-process, in virtual time: heartbeats, the end at
`stop`, and a client that reads nothing dropped as the bus drops a slow subscriber
(the real-daemon counterpart: tests/e2e/test_http.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import trio
import trio.testing
from prometheus_client.exposition import choose_encoder

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


class CountingExposition:
    """Stands in for `goproc.daemon.exposition.Exposition`: counts its collections."""

    def __init__(self) -> None:
        self.collected = 0

    def collect(self, accept: str | None) -> Any:
        self.collected += 1
        content_type = choose_encoder(accept or "")[1]
        return SimpleNamespace(encode=lambda: (b"", content_type))


def scrape_app() -> tuple[CountingExposition, HttpApp]:
    reg, bus, _ = setup()
    expo = CountingExposition()
    app = HttpApp(reg, NO_METRICS, cast(Any, None), bus, entries_json, exposition=cast(Any, expo))
    return expo, app


def request(path: str, **headers: bytes) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": path, "query_string": b"",
            "headers": [(k.encode(), v) for k, v in headers.items()]}  # fmt: skip


def test_a_scrape_body_is_sent_again_only_within_its_max_age_per_format() -> None:
    async def main() -> None:
        expo, app = scrape_app()
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(request("/metrics"), never, send)
        await app(request("/metrics"), never, send)
        assert expo.collected == 1  # the second within 0.5 s: the same body
        await app(request("/metrics", accept=b"application/openmetrics-text"), never, send)
        assert expo.collected == 2  # another format: made for it
        await trio.sleep(app.scrape_max_age)
        await app(request("/metrics"), never, send)
        assert expo.collected == 3
        starts = [m for m in sent if m["type"] == "http.response.start"]
        assert [m["status"] for m in starts] == [200] * 4
        kinds = [dict(m["headers"])[b"content-type"] for m in starts]
        assert kinds[2].startswith(b"application/openmetrics-text")
        assert kinds[0] == kinds[1] == kinds[3] and kinds[0].startswith(b"text/plain")

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_clients_that_read_nothing_give_their_turn_up_after_send_timeout() -> None:
    async def main() -> None:
        _, app = scrape_app()
        answered: list[float] = []

        async def stuck(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                await trio.sleep_forever()

        async def reads(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                answered.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            for _ in range(8):  # more than are answered at once
                nursery.start_soon(app, request("/healthz"), never, stuck)
            await trio.testing.wait_all_tasks_blocked()
            start = trio.current_time()
            await app(request("/healthz"), never, reads)
        # Two rounds of four stuck clients, each given up after send_timeout.
        assert answered and answered[0] - start <= 2 * app.send_timeout + 0.001

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
