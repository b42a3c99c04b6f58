"""What `status` answers (`goproc.api.Status`), read from the daemon's parts each time
it is asked; `goproc.daemon.wiring` hands them over."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from goproc import __version__
from goproc.api import Status
from goproc.daemon.adopting import Adopter
from goproc.daemon.alerting import Alerter
from goproc.daemon.events import EventBus
from goproc.daemon.exits import ExitWatcher, raise_fd_limit
from goproc.daemon.liveness import Liveness
from goproc.daemon.metrics import Sampler
from goproc.registry import Registry
from goproc.store.writer import SnapshotWriter


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
