"""Build every part of the daemon once, with explicit dependencies: the journal, the
supervisor (the parent of what `spawn` starts), the exit watcher, the snapshot writer,
the liveness ticker, the metrics sampler, the adopter, the server and (when
configured) the HTTP listener; `serve` loads the state dir, builds them and runs them
in one nursery (`goproc.daemon.running`).  If any of them fails the nursery (and so
the daemon) stops.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from goproc.config import Config
from goproc.daemon.adopting import Adopter
from goproc.daemon.alerting import ACTION_QUEUE, Act, Alerter, run_actions
from goproc.daemon.events import EventBus
from goproc.daemon.exits import ExitWatcher
from goproc.daemon.exposition import Exposition, GoprocCollector
from goproc.daemon.handlers import Ctx, make_dispatch
from goproc.daemon.handlers.context import Session
from goproc.daemon.handlers.kill import kill_one
from goproc.daemon.handlers.metrics import histories
from goproc.daemon.http.serving import HttpServer, http_server
from goproc.daemon.liveness import Liveness
from goproc.daemon.loading import boot_anchor, load, snapshot_writer
from goproc.daemon.metrics import Sampler
from goproc.daemon.notify import Notifier
from goproc.daemon.pumping import Limits, PumpClient
from goproc.daemon.reaping import Children
from goproc.daemon.running import run
from goproc.daemon.server import Server
from goproc.daemon.service import Outlets, Pulse, Service, Vitals
from goproc.daemon.statusinfo import status_source
from goproc.daemon.supervisor import Supervisor
from goproc.daemon.web import page
from goproc.metrics import MetricsStore
from goproc.paths import LOG_DIR
from goproc.registry import Registry
from goproc.rpc.entries import metrics_text
from goproc.rpc.jsonrpc import Dispatch
from goproc.store.journal import Journal
from goproc.store.load import Loaded
from goproc.store.writer import SnapshotWriter


@attrs.define
class Parts:
    """Every long-lived part of a running daemon, each built once."""

    registry: Registry
    loaded: Loaded
    journal: Journal
    writer: SnapshotWriter
    watcher: ExitWatcher
    liveness: Liveness
    sampler: Sampler
    server: Server
    actions: Callable[..., Any]  # the alert rules' action runner: `nursery.start` it
    adopter: Adopter
    supervisor: Supervisor
    http: HttpServer | None = None


def http_listener(
    config: Config,
    http_sock: socket.socket | None,
    ctx: Ctx,
    vitals: Vitals,
    alerter: Alerter,
    server: Server,
) -> HttpServer | None:
    """The read-only HTTP listener, when `http_listen` is configured: the registry, its
    metrics and events as `ctx` has them, the exposition of every metric."""
    registry, metrics = ctx.registry, ctx.metrics
    collector = GoprocCollector(
        registry,
        metrics,
        ctx.rpc_stats,
        lambda: vitals.exits,
        lambda: alerter.fired_by_rule,
        lambda: server.connections,
        show_cmd=config.http_show_cmd,
    )
    return http_server(
        config,
        http_sock,
        registry,
        metrics,
        ctx.status,
        ctx.bus,
        ctx.entries_json,
        exposition=Exposition(collector),
        histories=lambda procs, since: histories(procs, metrics, config.metrics_interval, since),
        page=page(),
    )


def build(
    config: Config,
    listener: trio.abc.Listener[Any],
    socket_path: Path,
    state_dir: Path,
    registry: Registry,
    loaded: Loaded,
    http_sock: socket.socket | None = None,
) -> Parts:
    probe, boot = boot_anchor(loaded)
    journal = Journal(
        state_dir,
        loaded.next_gen,
        fsync=config.journal_fsync,
        sync_interval=config.journal_sync_interval,
    )
    writer = snapshot_writer(state_dir, registry, loaded, journal, config, boot)
    metrics = MetricsStore(config.metrics_history, metrics_text)
    bus = EventBus(config.event_queue, config.max_subscriptions_total, metrics)
    outlets = Outlets(bus=bus, pulse=Pulse(), mark_dirty=writer.mark_dirty)
    children = Children()
    vitals = Vitals(registry, outlets, reaped_by_us=children.reaped_here)
    watcher = ExitWatcher(
        probe,
        vitals.mark_dead,
        lambda: list(registry),
        enabled=config.exit_watch == "auto",
        fd_reserve=config.fd_reserve,
    )
    liveness = Liveness(
        lambda: registry,
        probe,
        vitals,
        interval=config.liveness_interval,
        last_seen_interval=config.last_seen_interval,
        clock=outlets.clock,
    )
    send_actions, receive_actions = trio.open_memory_channel[Act](ACTION_QUEUE)
    alerter = Alerter(registry, metrics, bus, send_actions, outlets.clock)
    sampler = Sampler(
        lambda: registry,
        registry.get,
        probe,
        metrics,
        interval=config.metrics_interval,
        clock=outlets.clock,
        on_sweep=alerter.on_sweep,
    )
    service = Service(registry, journal, watcher, outlets)
    log_dir = str(state_dir.absolute() / LOG_DIR)
    supervisor = Supervisor(
        registry,
        service,
        children,
        probe.start_time,
        outlets.clock,
        log_dir,
        lambda p, signum: probe.send_signal(
            p.pid, p.started_at, signum, group=True, pidfd=watcher.pidfd(p)
        ),
        outlets.pulse.wait,
        PumpClient(socket_path),
        Limits(config.log_max_bytes, config.log_keep),
    )
    adopter = Adopter(
        registry, service, probe, interval=config.discovery_interval, clock=outlets.clock
    )
    status = status_source(
        registry,
        socket_path,
        state_dir,
        writer,
        liveness,
        watcher,
        outlets.bus,
        sampler,
        alerter,
        adopter,
        lambda: server.connections,
        lambda: http.bound if http is not None else None,
    )
    ctx = Ctx(
        registry=registry,
        service=service,
        vitals=vitals,
        probe=probe,
        bus=outlets.bus,
        pulse=outlets.pulse,
        clock=outlets.clock,
        status=status,
        entries_json=lambda procs, metrics: writer.on_disk.entries_json(procs, metrics),
        exits=watcher,
        log_dir=log_dir,
        metrics=metrics,
        metrics_interval=config.metrics_interval,
        firing=alerter.firing,
        adopting=adopter.wake,
        supervisor=supervisor,
    )

    def dispatch_for(session: Session) -> Dispatch:
        return make_dispatch(attrs.evolve(ctx, session=session))

    server = Server(listener, config, dispatch_for, outlets.bus)
    http = http_listener(config, http_sock, ctx, vitals, alerter, server)
    actions = functools.partial(
        run_actions, receive_actions, lambda p, params: kill_one(ctx, p, params)
    )
    return Parts(
        registry,
        loaded,
        journal,
        writer,
        watcher,
        liveness,
        sampler,
        server,
        actions,
        adopter,
        supervisor,
        http,
    )


async def serve(
    config: Config,
    listener: trio.abc.Listener[Any],
    socket_path: Path,
    state_dir: Path,
    fresh: bool = False,
    notifier: Notifier | None = None,
    http_sock: socket.socket | None = None,
) -> None:
    """Load the state dir (`fresh`: see `load`), build the daemon on `listener`, run it
        until stopped, telling `notifier` (systemd's readiness protocol) how it goes; the HTTP
    listener, when configured, serves on `http_sock`."""
    registry, loaded = await load(state_dir, fresh)
    parts = build(config, listener, socket_path, state_dir, registry, loaded, http_sock)
    await run(parts, socket_path, state_dir, notifier or Notifier(None))
