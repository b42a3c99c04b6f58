"""The HTTP listener's ASGI application: a plain ASGI callable, no web framework.

Routes (GET, HEAD; any other method 405, an unknown path 404):
`/` (the live status page, `goproc.daemon.web`), `/healthz` (`ok`), `/metrics` (the
Prometheus exposition, `goproc.daemon.exposition`), `/api/status` (the socket's
`status` result), `/api/procs` (the socket's `list` result for the selector in the
query string), `/api/history` (`metrics.history`, none matching: `[]`) and
`/api/events` (a `subscribe` stream as Server-Sent Events).  See spec/http.md.

Read-only by construction: it is given the registry to read, the status and entry
encoders, and the event bus to subscribe to; it commits nothing and signals nothing.
A request body is never read (the event stream reads only to see the client leave).
Each event stream is one bounded bus subscription: a client that falls behind gets
the `overflow` event and is dropped, as on the socket; a send stuck longer than
`send_timeout` ends the stream.  `stop` ends every stream (the daemon is stopping).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import attrs
import trio

from goproc.api import History, Status
from goproc.daemon.events import EventBus, Held, Overflow, Subscription
from goproc.daemon.exposition import Exposition
from goproc.daemon.http.query import (
    authorized,
    history_params_of,
    selector_of,
    shown_entries,
    shown_event,
)
from goproc.errors import InvalidValue, TooManySubscriptions
from goproc.model import Proc, Selector
from goproc.registry import Registry
from goproc.rpc.convert import encode_result
from goproc.rpc.entries import MetricsSource, RawJSON, dumps, read_parts

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

HEARTBEAT = 15.0  # seconds between comment lines on an idle event stream
HTTP_AT_ONCE = 4  # requests answered at the same time; more wait (see HttpApp._serving)
SCRAPE_MAX_AGE = 0.5  # seconds a /metrics body is sent again to other scrapers
JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
HTML = b"text/html; charset=utf-8"
Histories = Callable[[Sequence[Proc], float | None], list[History]]


@attrs.frozen
class Response:
    status: int
    body: bytes
    content_type: bytes = JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()


def error(status: int, message: str, *headers: tuple[bytes, bytes]) -> Response:
    return Response(status, dumps({"error": message}) + b"\n", JSON, headers)


@attrs.define
class HttpApp:
    """The ASGI callable; every dependency explicit, nothing set after construction."""

    registry: Registry
    metrics: MetricsSource
    status: Callable[[], Status]
    bus: EventBus
    entries_json: Callable[[Sequence[Proc], MetricsSource], RawJSON]
    token: str | None = None
    show_cmd: bool = True
    send_timeout: float = 10.0
    heartbeat: float = HEARTBEAT
    exposition: Exposition | None = None  # None: /metrics is 404
    histories: Histories | None = None  # None: /api/history is 404
    page: bytes | None = None  # None: / is 404
    scrape_max_age: float = SCRAPE_MAX_AGE
    _stopping: trio.Event = attrs.field(factory=trio.Event, init=False)
    # Requests answered at once (an event stream, once started, is not counted): the
    # rest wait their turn, so that HTTP clients, however many, leave the event loop
    # to the socket's requests most of the time.
    _serving: trio.CapacityLimiter = attrs.field(
        factory=lambda: trio.CapacityLimiter(HTTP_AT_ONCE), init=False
    )
    _scrapes: dict[str, tuple[float, bytes, str]] = attrs.field(factory=dict, init=False)
    _scraping: trio.Lock = attrs.field(factory=trio.Lock, init=False)

    def stop(self) -> None:
        """End every event stream now (each is sent its end) and refuse new ones."""
        self._stopping.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets are not served: hypercorn closes the connection
        method = scope["method"]
        path = scope["path"]
        query: bytes = scope.get("query_string", b"")
        # The page is the same static file for everyone and holds no data (a browser
        # cannot send a bearer token when it opens an address): it reads every datum
        # from the routes below, which all need the token.
        if path != "/" and not authorized(scope["headers"], self.token):
            reply = error(401, "a bearer token is required", (b"www-authenticate", b"Bearer"))
        elif path not in ROUTES or not self._serves(path):
            reply = error(404, f"no such path {path!r}")
        elif method not in ("GET", "HEAD"):
            reply = error(405, f"{method} is not allowed: GET or HEAD", (b"allow", b"GET, HEAD"))
        elif path == "/api/events":
            await self._events(query, receive, send, head=method == "HEAD")
            return
        else:
            async with self._serving:
                reply = await self._answer(path, query, _header(scope, b"accept"))
                # A client that reads nothing gives its turn up after `send_timeout`
                # (the answer is cut short: hypercorn closes the connection).
                with trio.move_on_after(self.send_timeout):
                    await _respond(send, reply, head=method == "HEAD")
            return
        await _respond(send, reply, head=method == "HEAD")

    def _serves(self, path: str) -> bool:
        optional = {"/": self.page, "/metrics": self.exposition, "/api/history": self.histories}
        return path not in optional or optional[path] is not None

    async def _answer(self, path: str, query: bytes, accept: str | None) -> Response:
        if path == "/healthz":
            return Response(200, b"ok\n", TEXT)
        if path == "/" and self.page is not None:
            return Response(200, self.page, HTML, ((b"cache-control", b"no-cache"),))
        if path == "/metrics" and self.exposition is not None:
            body, content_type = await self._scrape(self.exposition, accept)
            return Response(200, body, content_type.encode())
        if path == "/api/history" and self.histories is not None:
            try:
                params = history_params_of(query, show_cmd=self.show_cmd)
            except InvalidValue as e:
                return error(400, str(e))
            found = self.histories(self.registry.select(params.select), params.since)
            return Response(200, dumps(encode_result(found, list[History])) + b"\n")
        if path == "/api/status":
            return Response(200, dumps(encode_result(self.status(), Status)) + b"\n")
        try:
            selector = selector_of(query, show_cmd=self.show_cmd)
        except InvalidValue as e:
            return error(400, str(e))
        parts = list(self.entries_json(self.registry.select(selector), self.metrics).parts)
        if all(isinstance(p, bytes) for p in parts):
            body = read_parts(parts)
        else:  # some are read from the snapshot file: not in the event loop
            body = await trio.to_thread.run_sync(read_parts, parts)
        body = shown_entries(body, self.show_cmd)
        return Response(200, body + b"\n")

    async def _scrape(self, exposition: Exposition, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format `accept` asks for: made at most once per
        `scrape_max_age` per format (scrapers that ask meanwhile get the same body,
        and wait for one being made), collected here (it reads the registry) and
        encoded in a worker thread."""
        wants_openmetrics = "application/openmetrics-text" in (accept or "")
        key = "openmetrics" if wants_openmetrics else "text"
        async with self._scraping:
            kept = self._scrapes.get(key)
            if kept is not None and trio.current_time() - kept[0] < self.scrape_max_age:
                return kept[1], kept[2]
            scrape = exposition.collect(accept)
            body, content_type = await trio.to_thread.run_sync(scrape.encode)
            self._scrapes[key] = (trio.current_time(), body, content_type)
            return body, content_type

    async def _events(self, query: bytes, receive: Receive, send: Send, head: bool) -> None:
        try:
            selector = selector_of(query, show_cmd=self.show_cmd)
        except InvalidValue as e:
            await _respond(send, error(400, str(e)), head)
            return
        if self._stopping.is_set():
            await _respond(send, error(503, "the daemon is stopping"), head)
            return
        try:
            sub = self.bus.subscribe(selector, self._held(selector))
        except TooManySubscriptions as e:
            await _respond(send, error(503, str(e)), head)
            return
        try:
            await send(_start(200, b"text/event-stream", (b"cache-control", b"no-store")))
            if not head:
                await self._stream(sub, receive, send)
        except trio.TooSlowError:
            return  # the client reads nothing: hypercorn closes the connection
        finally:
            self.bus.unsubscribe(sub.id)
        with trio.move_on_after(self.send_timeout):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _held(self, selector: Selector) -> Held | None:
        """As `subscribe` on the socket: `ids` mean the entries they name now."""
        if selector.ids is None:
            return None
        present = (p for i in selector.ids if (p := self.registry.get(i)) is not None)
        return Held(present, self.registry.next_id)

    async def _stream(self, sub: Subscription, receive: Receive, send: Send) -> None:
        sub_id = sub.id
        async with trio.open_nursery() as nursery:
            sub.pump_scope = nursery.cancel_scope  # an overflow ends the stream soon
            nursery.start_soon(_until_gone, receive, nursery.cancel_scope)
            nursery.start_soon(_until_set, self._stopping, nursery.cancel_scope)
            await self._chunk(send, b": subscription %d\n\n" % sub_id)
            while True:
                batch = []
                with trio.move_on_after(self.heartbeat):
                    batch = await sub.next_batch()
                    if not batch:
                        break  # closed: unsubscribed
                if not batch:
                    await self._chunk(send, b": heartbeat\n\n")
                    continue
                data = [self._data(e.params(sub_id)) for e in batch]
                await self._chunk(send, b"".join(data))
                if isinstance(batch[-1], Overflow):
                    break
            nursery.cancel_scope.cancel()

    def _data(self, params: bytes) -> bytes:
        return b"data: " + shown_event(params, self.show_cmd) + b"\n\n"

    async def _chunk(self, send: Send, body: bytes) -> None:
        with trio.fail_after(self.send_timeout):
            await send({"type": "http.response.body", "body": body, "more_body": True})


ROUTES = ("/", "/healthz", "/metrics", "/api/status", "/api/procs", "/api/history", "/api/events")


def _header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (the first, as latin-1), or None."""
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _start(status: int, content_type: bytes, *headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type), *headers],
    }


async def _respond(send: Send, reply: Response, head: bool) -> None:
    length = (b"content-length", str(len(reply.body)).encode())
    await send(_start(reply.status, reply.content_type, length, *reply.headers))
    await send({"type": "http.response.body", "body": b"" if head else reply.body})


async def _until_gone(receive: Receive, scope: trio.CancelScope) -> None:
    """Wait for the client to leave (any body it sends is dropped), then cancel."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _until_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
