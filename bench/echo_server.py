"""A bare trio line-echo server on a UNIX socket: the baseline for request throughput.

It frames exactly as the goproc daemon does (read a line, write a line, many lines per
connection) and does nothing else, so `goproc ping` over one connection can be compared
with the cost of trio moving the same bytes.  No JSON, no dispatch, no limits.

Usage: python bench/echo_server.py SOCKET_PATH  (SIGINT/SIGTERM stop it and remove the socket)
"""

from __future__ import annotations

import os
import signal
import socket as stdsocket
import sys
from pathlib import Path

import trio

_CHUNK = 65536


async def echo_lines(stream: trio.SocketStream) -> None:
    """Answer each complete line with itself, in order; a half line at EOF is dropped."""
    buf = bytearray()
    try:
        while True:
            data = await stream.receive_some(_CHUNK)
            if not data:
                return
            buf += data
            while (nl := buf.find(b"\n")) >= 0:
                line = bytes(buf[: nl + 1])
                del buf[: nl + 1]
                await stream.send_all(line)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def serve(path: Path) -> None:
    """Serve until SIGINT/SIGTERM; the socket is bound before the loop starts (see main)."""
    sock = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(256)
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, echo_lines, [listener])
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        nursery.cancel_scope.cancel()


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: echo_server.py SOCKET_PATH")
    path = Path(sys.argv[1])
    try:
        trio.run(serve, path)
    finally:
        if path.exists():
            os.unlink(path)


if __name__ == "__main__":
    main()
