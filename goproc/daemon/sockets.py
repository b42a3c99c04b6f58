"""The daemon's UNIX-socket listener and streams: trio's, with a faster send.

A reply usually fits in the socket's buffer.  trio's `SocketStream.send_all` always
yields to the scheduler after sending (a cancel-shielded checkpoint), which costs one
more trip through the event loop per reply; `LineStream.send_all` writes at once what
the buffer takes and waits (through trio) only for the rest.  The server sees a plain
`trio.abc.HalfCloseableStream`; tests use memory streams instead.  `peer_hung_up` tells a
client that hung up from one that only closed its writing side.
"""

from __future__ import annotations

import os
import select
import socket
import struct

import trio


class LineStream(trio.abc.HalfCloseableStream):
    """A `trio.SocketStream` whose `send_all` does not yield when the data fits."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self.socket = stream.socket  # peer credentials, hang-up checks

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        sent = self.try_send(data)
        if sent < len(data):
            await self._stream.send_all(memoryview(data)[sent:])

    def try_send(self, data: bytes | bytearray | memoryview) -> int:
        """Write what the socket buffer takes now, without waiting: the bytes written."""
        fd = self.socket.fileno()  # -1 once closed: never write to a reused number
        if fd < 0:
            raise trio.ClosedResourceError("the stream is closed")
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0
        except OSError as e:
            raise trio.BrokenResourceError(f"the peer is gone: {e.strerror}") from e

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self._stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._stream.aclose()


class LineListener(trio.abc.Listener[LineStream]):
    """A `trio.SocketListener` handing out `LineStream`s."""

    def __init__(self, listener: trio.SocketListener) -> None:
        self._listener = listener

    async def accept(self) -> LineStream:
        return LineStream(await self._listener.accept())

    async def aclose(self) -> None:
        await self._listener.aclose()


def peer_hung_up(stream: trio.abc.Stream) -> bool:
    """Whether the peer closed its end entirely (POLLHUP), not only its writing side.
    Only a socket can tell; any other stream counts as still reading."""
    sock = getattr(stream, "socket", None)
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return any(ev & select.POLLHUP for _, ev in poller.poll(0))
    except (OSError, ValueError):
        return True


def peer_pid(stream: trio.abc.Stream) -> int | None:
    """The pid of the process at the other end of a UNIX socket stream (Linux's
    SO_PEERCRED), None where it is not known."""
    sock = getattr(stream, "socket", None)
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return int(struct.unpack("3i", creds)[0])
