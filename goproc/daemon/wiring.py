"""Build every part of the daemon once, with explicit dependencies, and run them in one
nursery: the journal, the supervisor (the parent of what `spawn` starts), the exit
watcher, the snapshot writer, the liveness ticker, the metrics sampler, the adopter,
the server and (when configured) the HTTP listener.  If any of them fails the nursery
(and so the daemon) stops.

SIGINT/SIGTERM stop it cleanly: the server accepts no more and finishes the requests in
flight (within its grace), the snapshot is flushed, then everything else is cancelled;
the children it started run on (never killed by a stop or a crash of the daemon).
The service manager hears when serving begins and when a stop does (`goproc.daemon.notify`).
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from goproc import __version__
from goproc.api import Status
from goproc.config import Config
from goproc.daemon.adopting import Adopter
from goproc.daemon.alerting import ACTION_QUEUE, Act, Alerter, run_actions
from goproc.daemon.events import EventBus
from goproc.daemon.exits import ExitWatcher, raise_fd_limit
from goproc.daemon.exposition import Exposition, GoprocCollector
from goproc.daemon.handlers import Ctx, make_dispatch
from goproc.daemon.handlers.context import Session
from goproc.daemon.handlers.kill import kill_one
from goproc.daemon.handlers.metrics import histories
from goproc.daemon.http.serving import HttpServer, http_server
from goproc.daemon.liveness import Liveness
from goproc.daemon.metrics import Sampler
from goproc.daemon.notify import Notifier
from goproc.daemon.probe import OsProbe, boot_id
from goproc.daemon.reaping import Children
from goproc.daemon.server import Server
from goproc.daemon.service import Outlets, Pulse, Service, Vitals
from goproc.daemon.supervisor import Supervisor
from goproc.daemon.web import page
from goproc.metrics import MetricsStore
from goproc.model import Proc
from goproc.paths import LOG_DIR
from goproc.registry import Registry
from goproc.rpc.entries import metrics_text
from goproc.rpc.jsonrpc import Dispatch
from goproc.store.format import RuleState
from goproc.store.journal import Journal
from goproc.store.load import Loaded, load_state
from goproc.store.writer import SnapshotWriter

log = logging.getLogger("goproc.daemon")


def counted(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


async def load(state_dir: Path, fresh: bool = False) -> tuple[Registry, Loaded]:
    """The registry as the state dir holds it, loaded in a worker thread; raises
    `goproc.store.generations.UnusableState` (see `load_state` and its `fresh`)."""
    registry = Registry()
    started = time.perf_counter()
    gc.disable()  # loading makes many objects and frees none: no point in collecting
    try:
        loaded = await trio.to_thread.run_sync(
            functools.partial(load_state, state_dir, registry, fresh=fresh)
        )
    finally:
        gc.enable()
    gc.freeze()  # the loaded entries are long-lived: keep them out of every collection
    log.info(
        "loaded %s (%s) in %.2fs%s",
        counted(len(registry), "entry", "entries"),
        counted(loaded.replayed, "journal record", "journal records"),
        time.perf_counter() - started,
        " (from the rows file)" if loaded.from_rows else "",
    )
    for warning in loaded.warnings:
        log.warning("%s", warning)
    return registry, loaded


def boot_anchor(loaded: Loaded) -> tuple[OsProbe, dict[str, Any] | None]:
    """The probe, with start times anchored on one boot time per boot: the one the
    snapshot kept, if it was taken in this boot (see goproc.model.START_TOLERANCE)."""
    this_boot = boot_id()
    kept = loaded.boot
    probe = OsProbe(kept["time"] if kept and this_boot and kept["id"] == this_boot else None)
    return probe, ({"id": this_boot, "time": probe.boot_time} if this_boot else None)


def snapshot_of(registry: Registry) -> tuple[list[Proc], int]:
    return list(registry), registry.next_id


def status_source(
    registry: Registry,
    socket_path: Path,
    state_dir: Path,
    writer: SnapshotWriter,
    liveness: Liveness,
    watcher: ExitWatcher,
    bus: EventBus,
    sampler: Sampler,
    alerter: Alerter,
    adopter: Adopter,
    connections: Callable[[], int],
    http: Callable[[], str | None] = lambda: None,
) -> Callable[[], Status]:
    """What `status` answers, read from the parts when it is asked."""
    fd_limit = raise_fd_limit()

    def status() -> Status:
        return Status(
            version=__version__,
            pid=os.getpid(),
            entries=len(registry),
            alive=sum(1 for p in registry if p.alive),
            next_id=registry.next_id,
            socket=str(socket_path),
            state_dir=str(state_dir),
            snapshot_writes=writer.writes,
            sweeps=liveness.sweeps,
            last_sweep_seconds=round(liveness.last_sweep_seconds, 6),
            connections=connections(),
            exit_watch="pidfd" if watcher.enabled else "poll",
            watched=watcher.watched,
            subscriptions=len(bus.subscriptions),
            fd_limit=fd_limit,
            metrics_interval=sampler.interval,
            metrics_sweeps=sampler.sweeps,
            metrics_last_sweep_seconds=round(sampler.last_sweep_seconds, 6),
            metrics_sampled=sampler.sampled,
            cpu_seconds=round(time.process_time(), 3),
            alert_rules=len(registry.rules),
            alerts_fired=alerter.fired,
            adopt_rules=len(registry.adopts),
            discovery=adopter.method,
            discovery_interval=adopter.interval,
            discovery_scans=adopter.scans,
            discovery_last_scan_seconds=round(adopter.last_scan_seconds, 6),
            adopted=adopter.adopted,
            http=http(),
        )

    return status


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
    writer = SnapshotWriter(
        state_dir,
        lambda: snapshot_of(registry),
        journal,
        config.snapshot_delay,
        boot,
        loaded.on_disk,
        newest_gen=loaded.newest_gen,
        previous_gen=loaded.previous_gen,
        rules=lambda: RuleState(
            tuple(registry.rules),
            registry.rules.next_id,
            tuple(registry.adopts),
            registry.adopts.next_id,
        ),
    )
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
    http = http_server(
        config,
        http_sock,
        registry,
        metrics,
        status,
        outlets.bus,
        ctx.entries_json,
        exposition=Exposition(
            GoprocCollector(
                registry,
                metrics,
                ctx.rpc_stats,
                lambda: vitals.exits,
                lambda: alerter.fired_by_rule,
                lambda: server.connections,
                show_cmd=config.http_show_cmd,
            )
        ),
        histories=lambda procs, since: histories(procs, metrics, config.metrics_interval, since),
        page=page(),
    )
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


class LateSignals:
    """The SIGINT/SIGTERM handler beneath trio's receiver, which puts it back when the
    receiver closes: a signal then (the daemon is stopping already, or has stopped)
    is ignored, and one caught in the instant before the receiver took over is kept
    in `caught` for the daemon to stop on."""

    def __init__(self) -> None:
        self.caught = 0

    @classmethod
    def install(cls) -> LateSignals:
        late = cls()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, late.catch)
        return late

    def catch(self, signum: int, frame: object) -> None:
        self.caught = self.caught or signum


async def run(parts: Parts, socket_path: Path, state_dir: Path, notifier: Notifier) -> None:
    """Run every part until SIGINT or SIGTERM, then stop in order; `notifier` hears
    when serving begins and when stopping does."""
    # Signals are ours before the first request can be served, and stay ours (ignored)
    # after the receiver is gone, while the daemon finishes stopping.
    late = LateSignals.install()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(parts.journal.run)
            await parts.liveness.sweep()  # answers are right from the first request
            if parts.loaded.fresh:
                await parts.writer.flush()  # a first run: the snapshot exists from the start
            elif parts.loaded.replayed or parts.loaded.warnings:
                parts.writer.mark_dirty()  # fold the replayed journal soon, in the background
            await nursery.start(parts.supervisor.run)  # reaps from before the first spawn
            await nursery.start(parts.watcher.run)
            await nursery.start(parts.writer.run)
            await nursery.start(parts.liveness.run)
            await nursery.start(parts.actions)
            await nursery.start(parts.sampler.run)
            await nursery.start(parts.adopter.run)
            async with trio.open_nursery() as serving:
                if parts.http is not None:  # bound before the first `status` can name it
                    log.info("http on %s", await serving.start(parts.http.run))
                await serving.start(parts.server.run)
                log.info(
                    "listening on %s (pid %d, %s, state in %s)",
                    socket_path,
                    os.getpid(),
                    counted(len(parts.registry), "entry", "entries"),
                    state_dir,
                )
                notifier.ready(f"listening on {socket_path}")
                signum = late.caught or await signals.__anext__()
                log.info("%s: stopping", signal.Signals(signum).name)
                notifier.stopping(f"stopping on {signal.Signals(signum).name}")
                parts.server.stop()  # serving ends once its connections have
                if parts.http is not None:
                    parts.http.stop()
            try:
                await parts.writer.flush()
            except OSError as e:  # e.g. a full disk: the journal still holds every change
                log.warning("could not write the final snapshot (%s); the journal keeps it", e)
            nursery.cancel_scope.cancel()
    log.info("stopped")


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
