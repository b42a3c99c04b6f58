"""The daemon's UNIX-socket listener and streams: trio's, with a faster send.

A reply usually fits in the socket's buffer.  trio's `SocketStream.send_all` always
yields to the scheduler after sending (a cancel-shielded checkpoint), which costs one
more trip through the event loop per reply; `LineStream.send_all` writes at once what
the buffer takes and waits (through trio) only for the rest.  The server sees a plain
`trio.abc.HalfCloseableStream`; tests use memory streams instead.  `peer_hung_up` tells a
client that hung up from one that only closed its writing side.
"""

from __future__ import annotations

import array
import os
import select
import socket
import struct

import trio

MAX_FDS = 2  # descriptors a client may send with a request (`spawn` with `attach`)
_ANC_SPACE = socket.CMSG_SPACE(MAX_FDS * 4)


class LineStream(trio.abc.HalfCloseableStream):
    """A `trio.SocketStream` whose `send_all` does not yield when the data fits, and
    whose reads keep the descriptors a client sends (SCM_RIGHTS): at most MAX_FDS held
    at once (more are closed as they come; the kernel drops what does not fit), taken
    by `take_fds`, closed by `close_fds` and when the stream closes."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self.socket = stream.socket  # peer credentials, hang-up checks
        self._fds: list[int] = []

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
        try:
            data, ancdata, _, _ = await self.socket.recvmsg(
                max_bytes or 65536, _ANC_SPACE, socket.MSG_CMSG_CLOEXEC
            )
        except OSError as e:
            if self.socket.fileno() < 0:
                raise trio.ClosedResourceError("the stream is closed") from e
            raise trio.BrokenResourceError(f"the peer is gone: {e.strerror}") from e
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                self._keep(list(fds))
        return data

    def _keep(self, fds: list[int]) -> None:
        for fd in fds:
            if len(self._fds) < MAX_FDS:
                self._fds.append(fd)
            else:
                os.close(fd)

    def take_fds(self) -> tuple[int, ...]:
        """The descriptors received and not taken yet; the caller owns them now."""
        out, self._fds = tuple(self._fds), []
        return out

    def close_fds(self) -> None:
        for fd in self.take_fds():
            os.close(fd)

    async def aclose(self) -> None:
        self.close_fds()
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
