"""The daemon's state at start: the registry loaded from the state dir (in a worker
thread), the probe anchored on this boot, and the snapshot writer that goes on from
what was loaded."""

from __future__ import annotations

import functools
import gc
import logging
import time
from pathlib import Path
from typing import Any

import trio

from goproc.config import Config
from goproc.daemon.probe import OsProbe, boot_id
from goproc.daemon.running import counted
from goproc.model import Proc
from goproc.registry import Registry
from goproc.store.format import RuleState
from goproc.store.journal import Journal
from goproc.store.load import Loaded, load_state
from goproc.store.writer import SnapshotWriter

log = logging.getLogger("goproc.daemon")


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


def snapshot_writer(
    state_dir: Path,
    registry: Registry,
    loaded: Loaded,
    journal: Journal,
    config: Config,
    boot: dict[str, Any] | None,
) -> SnapshotWriter:
    """The debounced snapshot writer of `registry` and its rules, going on from what
    was loaded."""
    return SnapshotWriter(
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
