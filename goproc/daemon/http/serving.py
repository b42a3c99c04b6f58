"""The HTTP listener served by hypercorn's trio worker inside the daemon's nursery.

Bounds (hypercorn's own settings, see `hypercorn_config`): a listen backlog of
`BACKLOG`, idle keep-alive connections closed after `KEEP_ALIVE` seconds, a request
head of at most 16 KiB (`h11_max_incomplete_size`), no access log.  Hypercorn has no
limit on concurrent connections; every event stream takes a bus subscription, so
`max_subscriptions_total` bounds those, and the other requests are answered at once.
`stop` ends the event streams and triggers hypercorn's graceful shutdown, which waits
at most `GRACE` seconds for requests in flight.  A `unix:` socket is made mode 0600
and removed when the daemon exits (`goproc.daemon.main`).
"""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any, cast

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from hypercorn.typing import Framework

from goproc.api import Status
from goproc.config import Config
from goproc.daemon.events import EventBus
from goproc.daemon.exposition import Exposition
from goproc.daemon.http.app import Histories, HttpApp
from goproc.model import Proc
from goproc.registry import Registry
from goproc.rpc.entries import MetricsSource, RawJSON

BACKLOG = 64
KEEP_ALIVE = 5.0
GRACE = 2.0

# Hypercorn's own messages: its warnings and errors (wiring logs where it listens).
log = logging.getLogger("goproc.daemon.http")
log.setLevel(logging.WARNING)


def hypercorn_config(fd: int) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [f"fd://{fd}"]
    config.backlog = BACKLOG
    config.keep_alive_timeout = KEEP_ALIVE
    config.graceful_timeout = GRACE
    config.accesslog = None
    config.errorlog = log
    config.include_server_header = False
    return config


class HttpServer:
    """Serves `app` on `sock` (bound by `goproc.daemon.http.binding`); `bound` is the
    address it listens on while serving (the real port when port 0 was asked for)."""

    def __init__(self, app: HttpApp, sock: socket.socket) -> None:
        self.app = app
        self.sock = sock
        self.bound: str | None = None
        self._shutdown = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        config = hypercorn_config(self.sock.detach())  # hypercorn's socket owns it now
        # The app is a plain ASGI callable; hypercorn's protocol types are TypedDicts.
        app = cast(Framework, self.app)
        try:
            async with trio.open_nursery() as nursery:
                binds: Any = await nursery.start(
                    functools.partial(serve, app, config, shutdown_trigger=self._shutdown.wait)
                )
                self.bound = str(binds[0]).removeprefix("http://")
                task_status.started(self.bound)
        finally:
            self.bound = None

    def stop(self) -> None:
        """Stop serving: event streams end now, other requests within `GRACE`."""
        self.app.stop()
        self._shutdown.set()


def http_server(
    config: Config,
    sock: socket.socket | None,
    registry: Registry,
    metrics: MetricsSource,
    status: Callable[[], Status],
    bus: EventBus,
    entries_json: Callable[[Sequence[Proc], MetricsSource], RawJSON],
    *,
    exposition: Exposition | None = None,
    histories: Histories | None = None,
    page: bytes | None = None,
) -> HttpServer | None:
    """The listener on `sock`, bound as `config.http_listen` asks (None: it is off),
    reading only."""
    if sock is None:
        return None
    app = HttpApp(
        registry,
        metrics,
        status,
        bus,
        entries_json,
        token=config.http_token,
        show_cmd=config.http_show_cmd,
        send_timeout=config.send_timeout,
        exposition=exposition,
        histories=histories,
        page=page,
    )
    return HttpServer(app, sock)
