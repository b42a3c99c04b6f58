"""The server: accept connections on a `trio.abc.Listener` and serve each in its own task.

It only moves bytes; what a line means and what is answered is `goproc.rpc.jsonrpc`'s
and the dispatch's, and a connection's life is `goproc.daemon.connection`'s.

Who may connect: on a socket, the daemon's own uid (and root), checked with SO_PEERCRED
(getpeereid on BSD) on every connection; anyone else gets -32002 and is closed.  At most
`max_connections` at once: one more closes the connection idle the longest, or when none
is idle gets -32008 and is closed.  A connection whose descriptor is within
`fd_reserve // 2` of the fd limit gets -32008 too, so that accepting never runs out of
descriptors (trio's `serve_listeners` would wait and retry, leaving clients hanging).
On `stop()` the server accepts no more, answers blocking requests (`wait`) with -32009,
lets every other fully received request finish, and returns once the connections are
done (after `grace` at the latest).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

import trio

from goproc.config import Config
from goproc.daemon.connection import PEER_GONE, Connection
from goproc.daemon.events import EventBus
from goproc.daemon.exits import descriptor_limit
from goproc.daemon.handlers.context import Session
from goproc.errors import GoprocError, PermissionDenied, TooManyConnections
from goproc.rpc.jsonrpc import Dispatch, encode, error_response

log = logging.getLogger("goproc.server")


class Server:
    def __init__(
        self,
        listener: trio.abc.Listener[Any],
        config: Config,
        dispatch_for: Callable[[Session], Dispatch],
        bus: EventBus,
        *,
        uid: int | None = None,
        grace: float = 5.0,
    ) -> None:
        self.listener = listener
        self.config = config
        self.dispatch_for = dispatch_for
        self.bus = bus
        self.uid = os.getuid() if uid is None else uid
        self.grace = grace
        self.connections = 0
        self.stopping = False
        self._accepting = trio.CancelScope()
        # Connections waiting for their next bytes, each with the scope of that wait.
        self.idle: dict[Connection, trio.CancelScope] = {}
        # The scopes of requests that block (`wait`): a stop ends them with ShuttingDown.
        self.blocking: set[trio.CancelScope] = set()

    def stop(self) -> None:
        """Stop accepting and stop reading; requests already received finish, those
        that block (`wait`) at once, answered with ShuttingDown."""
        self.stopping = True
        self._accepting.cancel()
        for scope in [*self.idle.values(), *self.blocking]:
            scope.cancel()

    def _make_room(self) -> bool:
        """Close the connection idle the longest (no request in flight, no
        subscription), if there is one, so that a new one can be served."""
        idle = [conn for conn in self.idle if not conn.subscriptions and not conn.evicted]
        if not idle:
            return False
        oldest = min(idle, key=lambda conn: conn.idle_since)
        oldest.evicted = True
        self.idle.pop(oldest).cancel()
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until `stop()`, then return once every connection has ended (or the
        grace has run out and the rest were cancelled)."""
        async with trio.open_nursery() as handlers:
            with self._accepting:
                task_status.started()
                await trio.serve_listeners(self._serve, [self.listener], handler_nursery=handlers)
            handlers.cancel_scope.deadline = trio.current_time() + self.grace

    async def _serve(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        counted = True
        try:
            refusal = self._refusal(stream)
            if refusal is not None:
                with trio.move_on_after(1), contextlib.suppress(*PEER_GONE):
                    await stream.send_all(encode(error_response(None, refusal)))
                return
            async with trio.open_nursery() as nursery:
                conn = Connection(self, stream, nursery)
                await conn.serve()
                if not conn.subscriptions or self.stopping:
                    # Over from the client's side: no longer counted from this moment,
                    # not from when the tasks are torn down.
                    self.connections -= 1
                    counted = False
                    nursery.cancel_scope.cancel()
        finally:
            if counted:
                self.connections -= 1
            await trio.aclose_forcefully(stream)

    def _refusal(self, stream: trio.abc.Stream) -> GoprocError | None:
        """Why this connection may not be served, if it may not: a peer of another user,
        or one connection too many."""
        sock = getattr(stream, "socket", None)
        uid = None if sock is None else peer_uid(sock)
        if uid is not None and uid not in (self.uid, 0):
            log.warning("refused a connection from uid %d", uid)
            return PermissionDenied(
                f"permission denied: this daemon serves uid {self.uid} only, not uid {uid}"
            )
        fd = -1 if sock is None else sock.fileno()
        ceiling = descriptor_limit() - self.config.fd_reserve // 2
        if fd >= ceiling:
            # The rest is kept for the journal, snapshots and probes.
            return TooManyConnections(
                f"too many connections: out of file descriptors (limit {ceiling}); try again later"
            )
        if self.connections > self.config.max_connections and not self._make_room():
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
