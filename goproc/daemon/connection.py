"""One client connection: read lines, answer them in order, deliver its subscriptions.

Limits: a request line longer than `max_request_bytes` is refused (-32600) and the
connection closed, so no line is read unbounded into memory; while a request is being
answered nothing more is read (a client that pipelines blocks in its writes), except
during a request that blocks (`wait`), up to one line's limit, to see a hang-up; a
batch's replies go out one request at a time (`max_batch` requests at most, checked by
`goproc.rpc.jsonrpc`); a client that leaves a reply unread for `send_timeout` is
dropped, one that sends no whole request for `idle_timeout` (with no subscription) is
closed, and so is the one idle longest when the server needs room.  At most
`max_subscriptions` per connection.  On a socket, a client that hangs up entirely
during a `wait` has it cancelled at once; a stop of the server ends it with -32009.  The stream is
closed by the server, which opened the task; this module closes only what it starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import trio

from goproc.daemon.events import Subscription
from goproc.daemon.sockets import peer_hung_up, peer_pid
from goproc.errors import InvalidRequest, ShuttingDown, TooManySubscriptions
from goproc.rpc.entries import Part
from goproc.rpc.jsonrpc import encode, error_response, respond_stream

if TYPE_CHECKING:
    from goproc.daemon.server import Server

CHUNK = 65536
SLICE = 1 << 20  # bytes of a large reply joined and sent at once
CHECKPOINT_BYTES = 1 << 16  # a reply past this yields to other tasks between its parts
PEER_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError)
HANGUP_POLL = 0.5  # seconds between hang-up checks once a waiting client sent all it will


class _TooLarge:
    """Returned instead of a line: the line was over the limit."""


class Connection:
    """One client: its lines, answered in order in this one task (no hand-off per
    request), its subscriptions, and the `Session` that handlers see."""

    def __init__(self, server: Server, stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        self.server = server
        self.config = server.config
        self.stream = stream
        # A stream that can write without waiting (`goproc.daemon.sockets.LineStream`).
        self._try_send: Callable[[bytes], int] | None = getattr(stream, "try_send", None)
        self.nursery = nursery
        self.subscriptions: dict[int, Subscription] = {}
        self._buf = bytearray()
        self._searched = 0
        self._send_lock = trio.Lock()
        self._dispatch = server.dispatch_for(self)
        # When the last whole request came or was answered: the idle timer counts from
        # here, so bytes that make no request do not keep a connection open.
        self.idle_since = trio.current_time()
        self.evicted = False  # closed to make room for a new connection
        self._gone = False  # the peer hung up (seen during a blocking request)
        self.peer_pid = peer_pid(stream)  # the client's process (never matched by `add`)

    async def serve(self) -> None:
        try:
            while (line := await self._next_line()) is not None:
                if isinstance(line, _TooLarge):
                    limit = self.config.max_request_bytes
                    error = InvalidRequest(f"request too large (limit {limit} bytes); closing")
                    with trio.move_on_after(1):
                        await self.send((encode(error_response(None, error)),))
                    self.nursery.cancel_scope.cancel()
                    return
                self.idle_since = trio.current_time()
                try:
                    await self._answer(line)
                finally:
                    self._close_fds()  # sent with this line and not used by it
                self.idle_since = trio.current_time()
        except PEER_GONE:
            self.nursery.cancel_scope.cancel()

    async def _answer(self, line: bytes) -> None:
        """Send the reply to one line.  A batch's replies go out one request at a time
        (with a checkpoint between requests, so a long batch does not hold the event
        loop), under the send lock for the whole line: events wait for its end."""
        pieces = respond_stream(line, self._dispatch, max_batch=self.config.max_batch)
        try:
            first = await anext(pieces, None)
            if first is None:
                return
            second = await anext(pieces, None)
            if second is None:  # one request: one piece
                await self.send(first)
                return
            async with self._send_lock:
                await self._send_parts(first)
                await self._send_parts(second)
                while True:
                    await trio.lowlevel.checkpoint()
                    piece = await anext(pieces, None)
                    if piece is None:
                        break
                    await self._send_parts(piece)
        finally:
            await pieces.aclose()

    async def send(self, parts: Iterable[Part]) -> None:
        """Send whole lines, given in parts; replies and event notifications never
        interleave (the lock is taken only while there are subscriptions: otherwise one
        task sends).  Parts go out joined a slice of about `SLICE` bytes at a time, so
        a reply of 100,000 entries is never copied whole; parts made lazily (a long
        list, encoded a chunk at a time) yield to other tasks between chunks, so one
        client's big reply never holds the event loop for long."""
        if self.subscriptions or self._send_lock.locked():
            async with self._send_lock:
                await self._send_parts(parts)
        else:
            await self._send_parts(parts)

    async def _send_parts(self, parts: Iterable[Part]) -> None:
        if isinstance(parts, tuple) and len(parts) == 1 and isinstance(parts[0], bytes):
            await self._send_all(parts[0])  # most replies: one piece
            return
        pending: list[bytes] = []
        size = 0
        for part in parts:
            # Bytes of a file (a `Deferred`) are read off the event loop.
            data = part if isinstance(part, bytes) else await trio.to_thread.run_sync(part.read)
            pending.append(data)
            size += len(data)
            if size >= CHECKPOINT_BYTES:
                if size >= SLICE:
                    await self._send_all(b"".join(pending))
                    pending, size = [], 0
                else:
                    await trio.lowlevel.checkpoint()
        if pending:
            await self._send_all(pending[0] if len(pending) == 1 else b"".join(pending))

    async def _send_all(self, data: bytes) -> None:
        # Most replies fit the socket's buffer: written at once, no timeout scope needed.
        view: bytes | memoryview = data
        if self._try_send is not None:
            await trio.lowlevel.checkpoint_if_cancelled()
            sent = self._try_send(data)
            if sent == len(data):
                return
            view = memoryview(data)[sent:]
        # A bare scope, not `trio.fail_after`: this runs once per reply.
        with trio.CancelScope(deadline=trio.current_time() + self.config.send_timeout) as scope:
            await self.stream.send_all(view)
        if scope.cancelled_caught:
            raise trio.TooSlowError

    async def _next_line(self) -> bytes | _TooLarge | None:
        """The next request line (without `\\n` or `\\r\\n`; blank lines skipped), or
        None at the end: EOF (a half line then was never a request), a stop, an idle
        timeout.  Lines already received are still returned after a stop."""
        limit = self.config.max_request_bytes
        buf = self._buf
        while True:
            nl = buf.find(b"\n", self._searched)
            if nl >= 0:
                line = bytes(buf[:nl]).removesuffix(b"\r")  # the line end is not counted
                del buf[: nl + 1]
                self._searched = 0
                if len(line) > limit:
                    return _TooLarge()
                if line.strip():
                    return line
                continue
            self._searched = len(buf)
            if self._searched > limit and not (
                self._searched == limit + 1 and buf.endswith(b"\r")  # a `\r\n` to come
            ):
                return _TooLarge()
            data = await self._receive()
            if data is None:
                return None
            buf += data

    async def _receive(self) -> bytes | None:
        """More bytes from the client, or None when the connection is to end: EOF, a
        stop of the server, an idle timeout (counted from `idle_since`; never while
        subscribed), or being closed to make room for a new connection."""
        server = self.server
        deadline = self.idle_since + self.config.idle_timeout
        while True:
            if server.stopping:
                return None
            with trio.CancelScope(deadline=deadline) as idle:
                server.idle[self] = idle
                try:
                    data = bytes(await self.stream.receive_some(CHUNK))
                except PEER_GONE:
                    data = b""
                finally:
                    server.idle.pop(self, None)
            if not idle.cancelled_caught:
                break
            if server.stopping:
                return None
            if self.evicted or not self.subscriptions:
                self.nursery.cancel_scope.cancel()  # idle too long, or making room: close
                return None
            deadline = trio.current_time() + self.config.idle_timeout  # quiet, but subscribed
        if not data:
            if self.subscriptions and peer_hung_up(self.stream):
                self.nursery.cancel_scope.cancel()  # gone: nobody reads the events
            return None
        return data

    # ---- Session: what handlers may ask of the connection ----------------------------

    def take_fds(self) -> tuple[int, ...]:
        """The descriptors sent with the request (SCM_RIGHTS); the caller owns them."""
        take: Callable[[], tuple[int, ...]] | None = getattr(self.stream, "take_fds", None)
        return () if take is None else take()

    def _close_fds(self) -> None:
        close: Callable[[], None] | None = getattr(self.stream, "close_fds", None)
        if close is not None:
            close()

    def start_subscription(self, sub: Subscription) -> None:
        self.subscriptions[sub.id] = sub
        self.nursery.start_soon(self._pump, sub)

    def room_for_subscription(self) -> None:
        limit = self.config.max_subscriptions
        if len(self.subscriptions) >= limit:
            raise TooManySubscriptions(f"too many subscriptions on this connection (limit {limit})")

    def owns(self, sub_id: int) -> bool:
        return sub_id in self.subscriptions

    @contextlib.asynccontextmanager
    async def cancel_on_hangup(self) -> AsyncIterator[None]:
        """Run the body (a request that may block long) but cancel it if the client
        hangs up meanwhile (nobody would read its answer), or end it with
        `ShuttingDown` when the server stops."""
        sock = getattr(self.stream, "socket", None)
        with self.cut_short_on_stop() as body:
            async with trio.open_nursery() as nursery:
                if sock is not None:
                    nursery.start_soon(self._watch_hangup, body)
                try:
                    yield
                finally:
                    nursery.cancel_scope.cancel()
        if body.cancelled_caught and self.server.stopping and not self._gone:
            raise ShuttingDown("shutting down")

    @contextlib.contextmanager
    def cut_short_on_stop(self) -> Iterator[trio.CancelScope]:
        """A scope the server cancels when it stops (not at a hang-up): for waits that
        follow an action already taken (`kill` waiting for exits), which then answer
        what they know instead of an error."""
        blocking = self.server.blocking
        with trio.CancelScope() as scope:
            blocking.add(scope)
            try:
                if self.server.stopping:
                    scope.cancel()
                yield scope
            finally:
                blocking.discard(scope)

    async def _watch_hangup(self, body: trio.CancelScope) -> None:
        """Cancel `body` once the peer hangs up.  What it sends meanwhile (pipelined
        requests, or a stray byte) is taken into the line buffer, up to the line limit,
        so the socket can tell a hang-up again; once it sent all it will (EOF: it may
        still read) or the buffer is full, a hang-up is polled for."""
        limit = self.config.max_request_bytes
        eof = False
        while not peer_hung_up(self.stream):
            if eof or len(self._buf) > limit:
                await trio.sleep(HANGUP_POLL)
                continue
            try:
                data = await self.stream.receive_some(CHUNK)
            except PEER_GONE:
                break
            self._buf += data
            eof = not data
        self._gone = True
        body.cancel()

    async def _pump(self, sub: Subscription) -> None:
        """Deliver a subscription's events as notifications until it ends.  One that
        overflowed gets its `overflow` event (if it can take it within a second) and
        the connection is closed."""
        try:
            with trio.CancelScope() as scope:
                sub.pump_scope = scope
                while batch := await sub.next_batch():
                    await self.send((b"".join(e.line(sub.id) for e in batch),))
                    if sub.overflowed and not sub.queue:
                        break
        except PEER_GONE:
            sub.overflowed = True  # cannot deliver: treat as dropped
        finally:
            self.subscriptions.pop(sub.id, None)
            self.server.bus.unsubscribe(sub.id)
        if sub.overflowed:
            self.nursery.cancel_scope.cancel()
            with contextlib.suppress(*PEER_GONE, OSError):
                await trio.aclose_forcefully(self.stream)
