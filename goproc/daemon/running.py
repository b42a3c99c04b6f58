"""A built daemon run (`run`): its parts started in one nursery in order, until SIGINT
or SIGTERM; then the server stops accepting and finishes what it serves, the snapshot
is flushed and everything else is cancelled.  The children the daemon started run on
(never killed by a stop or a crash of the daemon).  The service manager hears when
serving begins and when a stop does (`goproc.daemon.notify`)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from goproc.daemon.notify import Notifier

if TYPE_CHECKING:
    from goproc.daemon.wiring import Parts

log = logging.getLogger("goproc.daemon")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def counted(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


class StopSignals:
    """The daemon's SIGINT/SIGTERM handler, for the whole run.  The first signal sets
    both to SIG_IGN before anything else and then wakes the loop: every later one is a
    no-op in the kernel, so a flood of them (an impatient supervisor) can neither nest
    handlers without end nor kill the clean-up."""

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self.caught = 0
        self.event = trio.Event()
        self._token = token

    @classmethod
    def install(cls) -> StopSignals:
        stop = cls(trio.lowlevel.current_trio_token())
        for signum in STOP_SIGNALS:
            signal.signal(signum, stop.catch)
        return stop

    def catch(self, signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # first of all: a flood ends here
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if self.caught:
            return
        self.caught = signum
        with contextlib.suppress(trio.RunFinishedError):  # the loop has ended already
            self._token.run_sync_soon(self.event.set, idempotent=True)

    async def wait(self) -> int:
        await self.event.wait()
        return self.caught


async def run(parts: Parts, socket_path: Path, state_dir: Path, notifier: Notifier) -> None:
    """Run every part until SIGINT or SIGTERM, then stop in order; `notifier` hears
    when serving begins and when stopping does."""
    # Signals are ours before the first request can be served, and ignored from the
    # first one on, while the daemon finishes stopping.
    stop = StopSignals.install()
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
            signum = await stop.wait()
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
