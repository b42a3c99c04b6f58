"""The UNIX-socket server: accept, read lines, answer them, in order, per connection.

It only moves bytes; what a line means and what is answered is `goproc.protocol`'s.
Limits: a request line longer than `max_request_bytes` is refused (-32600) and the
connection closed, so no line is read unbounded into memory; a client that leaves a
reply unread for `send_timeout` is dropped.  On `stop()` the server accepts no more,
lets every fully received request finish, then closes (after `grace` at the latest).
"""

from __future__ import annotations

import contextlib
import errno
import logging

import trio

from goproc.config import Config
from goproc.errors import InvalidRequest
from goproc.protocol import Dispatch, encode, error_response, respond_line

log = logging.getLogger("goproc.server")

_CHUNK = 65536
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


class Server:
    def __init__(
        self, listener: trio.SocketListener, dispatch: Dispatch, config: Config, grace: float = 5.0
    ) -> None:
        self.listener = listener
        self.dispatch = dispatch
        self.config = config
        self.grace = grace
        self.connections = 0
        self._stopping = False
        self._accepting = trio.CancelScope()
        self._idle: set[trio.CancelScope] = set()

    def stop(self) -> None:
        """Stop accepting and close idle connections; requests in flight finish."""
        self._stopping = True
        self._accepting.cancel()
        for scope in self._idle:
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
                    nursery.start_soon(self._serve_connection, stream)
            await self.listener.aclose()
            nursery.cancel_scope.deadline = trio.current_time() + self.grace

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        reader = _LineReader(stream, self.config.max_request_bytes, self)
        try:
            while (line := await reader.next_line()) is not None:
                reply = await respond_line(line, self.dispatch)
                if reply is not None:
                    with trio.fail_after(self.config.send_timeout):
                        await stream.send_all(reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            pass
        except _TooLarge:
            error = InvalidRequest(
                f"request too large (limit {self.config.max_request_bytes} bytes); closing"
            )
            with trio.move_on_after(1), _SEND_ERRORS:
                await stream.send_all(encode(error_response(None, error)))
        finally:
            self.connections -= 1
            await trio.aclose_forcefully(stream)


class _TooLarge(Exception):
    pass


_SEND_ERRORS = contextlib.suppress(OSError, trio.BrokenResourceError, trio.ClosedResourceError)


class _LineReader:
    """Complete request lines (without `\\n` or `\\r\\n`) from a stream, bounded by
    `limit`; blank lines are skipped.  Lines already received are still returned after
    the server stops; a half line at EOF is dropped (it was never a request)."""

    def __init__(self, stream: trio.SocketStream, limit: int, server: Server) -> None:
        self.stream = stream
        self.limit = limit
        self.server = server
        self.buf = bytearray()
        self.searched = 0

    async def next_line(self) -> bytes | None:
        buf = self.buf
        while True:
            nl = buf.find(b"\n", self.searched)
            if nl >= 0:
                line = bytes(buf[:nl])
                del buf[: nl + 1]
                self.searched = 0
                if len(line) > self.limit:
                    raise _TooLarge
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line.strip():
                    return line
                continue
            self.searched = len(buf)
            if self.searched > self.limit:
                raise _TooLarge
            if self.server._stopping:
                return None
            with trio.CancelScope() as idle:
                self.server._idle.add(idle)
                try:
                    data = await self.stream.receive_some(_CHUNK)
                finally:
                    self.server._idle.discard(idle)
            if idle.cancelled_caught or not data:
                return None
            buf += data
