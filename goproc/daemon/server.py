"""The UNIX-socket server: accept, read lines, answer them in order, per connection.

It only moves bytes; what a line means and what is answered is `goproc.protocol`'s.
Each connection is one task that reads lines and answers them one by one (subscriptions
add a pump task each).

Who may connect: the daemon's own uid (and root), checked with SO_PEERCRED (getpeereid
on BSD) on every connection; anyone else gets -32002 and is closed.  At most
`max_connections` at once; one more gets -32008 and is closed.

Limits: a request line longer than `max_request_bytes` is refused (-32600) and the
connection closed, so no line is read unbounded into memory; while a request is being
answered nothing more is read (a client that pipelines blocks in its writes); a client
that leaves a reply unread for `send_timeout` is dropped, one that sends nothing for
`idle_timeout` (with no subscription) is closed.  A client that hangs up during a
request that blocks (`wait`) has it cancelled at once.  On `stop()`
the server accepts no more, lets every fully received request finish, then closes
(after `grace` at the latest).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import struct
from collections.abc import AsyncIterator

import attrs
import trio

from goproc.config import Config
from goproc.context import Context
from goproc.daemon.events import Subscription
from goproc.errors import GoprocError, InvalidRequest, PermissionDenied, TooManyConnections
from goproc.handlers import make_dispatch
from goproc.protocol import encode, error_response, respond_parts

log = logging.getLogger("goproc.server")

_CHUNK = 65536
_SLICE = 1 << 20  # bytes of a large reply joined and sent at once
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_PEER_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError)


class _TooLarge:
    """Returned instead of a line: the line was over the limit."""


class Server:
    def __init__(
        self, listener: trio.SocketListener, ctx: Context, config: Config, grace: float = 5.0
    ) -> None:
        self.listener = listener
        self.ctx = ctx
        self.config = config
        self.grace = grace
        self.connections = 0
        self.uid = os.getuid()
        self.stopping = False
        self._accepting = trio.CancelScope()
        self._idle: set[trio.CancelScope] = set()

    def stop(self) -> None:
        """Stop accepting and stop reading; requests already received finish."""
        self.stopping = True
        self._accepting.cancel()
        for scope in list(self._idle):
            scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            with self._accepting:
                while True:
                    try:
                        stream = await self.listener.accept()
                    except OSError as e:
                        if e.errno not in _ACCEPT_CAPACITY_ERRNOS:
                            raise
                        log.warning("accept: %s; retrying shortly", e.strerror)
                        await trio.sleep(0.1)
                        continue
                    nursery.start_soon(self._serve, stream)
            await self.listener.aclose()
            nursery.cancel_scope.deadline = trio.current_time() + self.grace

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        try:
            refusal = self._refusal(stream)
            if refusal is not None:
                with trio.move_on_after(1), contextlib.suppress(*_PEER_GONE):
                    await stream.send_all(encode(error_response(None, refusal)))
                return
            async with trio.open_nursery() as nursery:
                conn = _Connection(self, stream, nursery)
                await conn.serve()
                if not conn.subscriptions or self.stopping:
                    nursery.cancel_scope.cancel()
        finally:
            self.connections -= 1
            await trio.aclose_forcefully(stream)

    def _refusal(self, stream: trio.SocketStream) -> GoprocError | None:
        """Why this connection may not be served, if it may not: a peer of another user,
        or one connection too many."""
        uid = peer_uid(stream.socket)
        if uid is not None and uid not in (self.uid, 0):
            log.warning("refused a connection from uid %d", uid)
            return PermissionDenied(
                f"permission denied: this daemon serves uid {self.uid} only, not uid {uid}"
            )
        if self.connections > self.config.max_connections:
            return TooManyConnections(
                f"too many connections (limit {self.config.max_connections}); try again later"
            )
        return None


def peer_uid(sock: trio.socket.SocketType) -> int | None:
    """The uid of the process at the other end of a UNIX socket (None if unknown)."""
    try:
        if hasattr(socket, "SO_PEERCRED"):
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            return int(struct.unpack("3i", creds)[1])
        if hasattr(os, "getpeereid"):  # BSD, macOS
            return int(os.getpeereid(sock.fileno())[0])
    except OSError:
        pass
    return None


class _Connection:
    """One client: its lines, answered in order in this one task (no hand-off per
    request), its subscriptions, and the `Session` that handlers see."""

    def __init__(self, server: Server, stream: trio.SocketStream, nursery: trio.Nursery):
        self.server = server
        self.stream = stream
        self.nursery = nursery
        self.subscriptions: dict[int, Subscription] = {}
        self.busy = False  # a request is being answered
        self._buf = bytearray()
        self._searched = 0
        self._send_lock = trio.Lock()
        self._dispatch = make_dispatch(attrs.evolve(server.ctx, session=self))

    async def serve(self) -> None:
        try:
            while (line := await self._next_line()) is not None:
                if isinstance(line, _TooLarge):
                    limit = self.server.config.max_request_bytes
                    error = InvalidRequest(f"request too large (limit {limit} bytes); closing")
                    with trio.move_on_after(1):
                        await self.send(encode(error_response(None, error)))
                    self.nursery.cancel_scope.cancel()
                    return
                self.busy = True
                reply = await respond_parts(line, self._dispatch)
                if reply is not None:
                    await self.send(*reply)
                self.busy = False
        except _PEER_GONE:
            self.nursery.cancel_scope.cancel()

    async def send(self, *parts: bytes) -> None:
        """Send whole lines, given in parts; replies and event notifications never
        interleave (the lock is taken only while there are subscriptions: otherwise one
        task sends).  Parts go out joined a slice of about `_SLICE` bytes at a time, so
        a reply of 100,000 entries is never copied whole."""
        if self.subscriptions or self._send_lock.locked():
            async with self._send_lock:
                await self._send_parts(parts)
        else:
            await self._send_parts(parts)

    async def _send_parts(self, parts: tuple[bytes, ...]) -> None:
        if len(parts) == 1:
            await self._send(parts[0])
            return
        pending: list[bytes] = []
        size = 0
        for part in parts:
            pending.append(part)
            size += len(part)
            if size >= _SLICE:
                await self._send(b"".join(pending))
                pending, size = [], 0
        if pending:
            await self._send(b"".join(pending))

    async def _send(self, data: bytes) -> None:
        # Most replies fit in the socket buffer: write at once, and only wait (with
        # the send timeout) for what did not fit.
        fd = self.stream.socket.fileno()  # -1 once closed: never write to a reused number
        if fd < 0:
            raise trio.ClosedResourceError
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            raise trio.BrokenResourceError from None
        if sent < len(data):
            with trio.fail_after(self.server.config.send_timeout):
                await self.stream.send_all(memoryview(data)[sent:])

    async def _next_line(self) -> bytes | _TooLarge | None:
        """The next request line (without `\\n` or `\\r\\n`; blank lines skipped), or
        None at the end: EOF (a half line then was never a request), a stop, an idle
        timeout.  Lines already received are still returned after a stop."""
        limit = self.server.config.max_request_bytes
        buf = self._buf
        while True:
            nl = buf.find(b"\n", self._searched)
            if nl >= 0:
                line = bytes(buf[:nl])
                del buf[: nl + 1]
                self._searched = 0
                if len(line) > limit:
                    return _TooLarge()
                line = line.removesuffix(b"\r")
                if line.strip():
                    return line
                continue
            self._searched = len(buf)
            if self._searched > limit:
                return _TooLarge()
            if self.server.stopping:
                return None
            idle_until = trio.current_time() + self.server.config.idle_timeout
            with trio.CancelScope(deadline=idle_until) as idle:
                self.server._idle.add(idle)
                try:
                    data = await self.stream.receive_some(_CHUNK)
                except _PEER_GONE:
                    data = b""
                finally:
                    self.server._idle.discard(idle)
            if idle.cancelled_caught:
                if self.server.stopping:
                    return None
                if self.subscriptions:
                    continue  # quiet, but not idle
                self.nursery.cancel_scope.cancel()  # idle too long: close
                return None
            if not data:
                if self.subscriptions and self._hung_up():
                    self.nursery.cancel_scope.cancel()  # gone: nobody reads the events
                return None
            buf += data

    def _hung_up(self) -> bool:
        """Whether the peer closed its end entirely (POLLHUP), not only its writing side."""
        try:
            poller = select.poll()
            poller.register(self.stream.socket.fileno(), select.POLLIN)
            return any(ev & select.POLLHUP for _, ev in poller.poll(0))
        except (OSError, ValueError):
            return True

    # ---- Session: what handlers may ask of the connection ----------------------------

    def start_subscription(self, sub: Subscription) -> None:
        self.subscriptions[sub.id] = sub
        self.nursery.start_soon(self._pump, sub)

    def owns(self, sub_id: int) -> bool:
        return sub_id in self.subscriptions

    @contextlib.asynccontextmanager
    async def cancel_on_hangup(self) -> AsyncIterator[None]:
        """Run the body (a request that may block long) but cancel it if the client
        hangs up meanwhile: nobody would read its answer."""
        with trio.CancelScope() as body:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_hangup, body)
                try:
                    yield
                finally:
                    nursery.cancel_scope.cancel()

    async def _watch_hangup(self, body: trio.CancelScope) -> None:
        await trio.lowlevel.wait_readable(self.stream.socket)
        if self._hung_up():
            body.cancel()
        # Otherwise more requests are pipelined, or only its writing side closed: it
        # still reads, so let the request run.

    async def _pump(self, sub: Subscription) -> None:
        """Deliver a subscription's events as notifications until it ends.  One that
        overflowed gets its `overflow` event (if it can take it within a second) and
        the connection is closed."""
        try:
            with trio.CancelScope() as scope:
                sub.pump_scope = scope
                while batch := await sub.next_batch():
                    await self.send(b"".join(encode(_notification(e)) for e in batch))
                    if sub.overflowed and not sub.queue:
                        break
        except _PEER_GONE:
            sub.overflowed = True  # cannot deliver: treat as dropped
        finally:
            self.subscriptions.pop(sub.id, None)
            self.server.ctx.bus.unsubscribe(sub.id)
        if sub.overflowed:
            self.nursery.cancel_scope.cancel()
            with contextlib.suppress(*_PEER_GONE, OSError):
                await trio.aclose_forcefully(self.stream)


def _notification(event: dict[str, object]) -> dict[str, object]:
    return {"jsonrpc": "2.0", "method": "event", "params": event}
