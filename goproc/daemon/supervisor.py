"""The daemon as the parent of what it starts: `spawn`, the reaper, restarts by policy,
and `stop` / `start` / `restart`.

- `Children` (`goproc.daemon.reaping`): the daemon's own children that entries track
  (pid -> entry).  Shared with `Vitals` (through `reaped_here`), which leaves their
  exits (and those of orphans re-parented here) to the reaper, so an `exited` event
  carries the status.
- the reaper (`Supervisor.run`): the daemon is a child subreaper; on every SIGCHLD (and
  once a second, should one be missed) it reaps every exited child with `waitid`: its
  own children, whose status it records on their entry (`exit_code`, `exit_signal`),
  and orphans re-parented to it, recorded on an entry that is that very process (pid
  and start time, read before the zombie goes) or simply reaped: never a zombie.  The
  exits are recorded one per scheduling round.
- starting: a `spawn` forks and execs on the trio thread (its id is taken with no
  checkpoint until its entry is in); a restart in a worker thread; one at a time, so
  restarts falling due together are spread out and requests answered between them.
- restarts: `goproc.supervision` decides; `goproc.daemon.restarting` waits out the
  backoff, cancelled by `stop`, `start`, `restart` or the entry's removal.
Processes started by a previous daemon are not its children: their exits are seen by
the exit watcher (status unknown, null), and no policy restarts them until `start` or
`restart` starts them anew here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
from collections.abc import Awaitable, Callable

import attrs
import trio

from goproc import supervision
from goproc.daemon.pumping import Limits, PumpClient, piped
from goproc.daemon.reaping import Child, Children, Reaped, reap_all
from goproc.daemon.restarting import Restarts
from goproc.daemon.service import Service
from goproc.daemon.spawning import (
    Outputs,
    Started,
    become_subreaper,
    open_outputs,
    remove_own_files,
    start,
)
from goproc.errors import CannotRun, NameInUse, NotStarted, StorageError
from goproc.logformat import DEFAULT_KEEP, DEFAULT_MAX_BYTES
from goproc.model import Change, LogFiles, Proc, ProcessFacts, Spawned, same_start
from goproc.registry import Registry

log = logging.getLogger("goproc.supervisor")

DEFAULT_LIMITS = Limits(DEFAULT_MAX_BYTES, DEFAULT_KEEP)
SAFETY_INTERVAL = 1.0  # seconds between reaps when no SIGCHLD comes
KILL_GRACE = 5.0  # seconds a SIGKILLed child is waited for by `stop`


class Supervisor:
    """Starts, reaps and restarts the daemon's children (see the module doc)."""

    def __init__(
        self,
        registry: Registry,
        service: Service,
        children: Children,
        start_time: Callable[[int], float | None],
        clock: Callable[[], float],
        log_dir: str | None,
        signal_entry: Callable[[Proc, int], None],
        liveness_changed: Callable[[], Awaitable[None]],
        pump: PumpClient | None = None,
        log_limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.registry = registry
        self.service = service
        self.children = children
        self.start_time = start_time  # a pid's start time (zombies too), None: gone
        self.clock = clock
        self.log_dir = log_dir
        self.signal_entry = signal_entry  # a signal to an entry not our child (its group)
        self.liveness_changed = liveness_changed  # returns once an entry lived or died
        self.pump = pump  # None: commands write their files themselves (never rotated)
        self.log_limits = log_limits
        self.subreaper = False
        self.reaped = 0
        self.restarts = Restarts(registry, lambda p: self.start_again(p, by_policy=True), clock)
        # One fork and exec per scheduling round: restarts that fall due together are
        # spread out, and requests are answered between them.
        self._one_at_a_time = trio.Lock()
        self._launching = 0  # starts in a worker thread, not yet returned
        self._unclaimed: dict[int, Reaped] = {}  # exits reaped meanwhile, of no known child

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.subreaper = become_subreaper()
        send, receive = trio.open_memory_channel[Reaped](math.inf)
        with trio.open_signal_receiver(signal.SIGCHLD) as signals:
            async with trio.open_nursery() as nursery:
                self.restarts.run_in(nursery)
                nursery.start_soon(self._recorder, receive)
                task_status.started()
                while True:
                    for one in reap_all(self.start_time):
                        self.reaped += 1
                        send.send_nowait(one)
                    with trio.move_on_after(SAFETY_INTERVAL):
                        await signals.__anext__()

    async def _recorder(self, receive: trio.MemoryReceiveChannel[Reaped]) -> None:
        """Record the exits one at a time, a scheduling round each: a hundred children
        ending at once never hold the event loop for a hundred commits."""
        async for one in receive:
            await self._record(one)
            await trio.lowlevel.checkpoint()

    # ---- exits ---------------------------------------------------------------------

    async def _record(self, r: Reaped) -> None:
        child = self.children.by_pid.pop(r.pid, None)
        if child is not None:
            child.popen.returncode = -(r.exit_signal or 0) if r.exit_code is None else r.exit_code
            child.ended.set()
            entry = self.registry.get(child.entry_id)
            if entry is None or entry.pid != r.pid:
                return  # removed meanwhile: reaped, nothing to record
            await self._ended(entry, r)
            return
        matched = False
        for p in self.registry.with_pid(r.pid):  # an orphan we track (re-parented here)
            # Alive, or just marked dead by a probe that saw it gone once reaped.  Not
            # started by us (or by a previous daemon): recorded, never restarted.
            unknown = p.exit_code is None and p.exit_signal is None
            if unknown and r.started_at is not None and same_start(p.started_at, r.started_at):
                matched = True
                await self._ended(p, r, restart=False)
        if not matched and self._launching:
            self._unclaimed[r.pid] = r  # perhaps a child whose start has not returned yet

    async def _ended(self, entry: Proc, r: Reaped, *, restart: bool = True) -> None:
        t = self.clock()
        new = supervision.ended(entry, r.exit_code, r.exit_signal, t)
        try:
            await self.service.commit(Change(next_id=self.registry.next_id, put=(new,)))
        except StorageError as e:
            log.warning("could not record the exit of id %d: %s", entry.id, e)
            return
        if restart and new.spawned is not None:
            self.restarts.after_exit(new, t)

    # ---- starting ------------------------------------------------------------------

    def _launch(self, spawned: Spawned, outputs: Outputs) -> tuple[Started, ProcessFacts]:
        try:
            popen = start(spawned.argv, spawned.cwd, spawned.env, outputs)
        finally:
            outputs.close()
        started = self.start_time(popen.pid)
        facts = ProcessFacts(
            pid=popen.pid,
            started_at=self.clock() if started is None else started,
            cmd=" ".join(spawned.argv),
            pgid=popen.pid,
        )
        return popen, facts

    async def spawn(
        self,
        spawned: Spawned,
        *,
        tags: tuple[str, ...],
        groups: tuple[str, ...],
        name: str | None,
        log_files: LogFiles | None,
        outputs: Outputs | None,
    ) -> Proc:
        """Start the command and track it at once: its entry.  Its output goes to
        `outputs` (descriptors sent by the client, taken over) when given, else to
        `log_files`, else to the daemon's own files for the new id."""
        async with self._one_at_a_time:
            try:
                holder = None if name is None else self.registry.by_name(name)
                if holder is not None:
                    raise NameInUse(f"name {name!r} is already used by id {holder.id}")
                # No checkpoint from here until the change is applied: the id is ours.
                proc_id = self.registry.next_id
                own = outputs is None and log_files is None
                if outputs is None:
                    log_files = log_files or self._own_files(proc_id)
                    outputs = open_outputs(log_files, fresh=True, log_dir=self.log_dir)
                    outputs = self._piped(outputs, log_files, spawned, fresh=True)
            except BaseException:
                if outputs is not None:
                    outputs.close()
                raise
            try:
                popen, facts = self._launch(spawned, outputs)
            except CannotRun:
                if own and log_files is not None:
                    remove_own_files(log_files, self.log_dir)
                raise
        added, change = self.registry.plan_add(
            [facts], tags=tags, groups=groups, name=name, now=self.clock()
        )
        entry = attrs.evolve(added[0], spawned=spawned, log=log_files)
        assert entry.id == proc_id
        change = attrs.evolve(change, put=(*change.put[:-1], entry))
        return await self._commit_started(entry, popen, change)

    def _piped(
        self, outputs: Outputs, files: LogFiles, spawned: Spawned, *, fresh: bool
    ) -> Outputs:
        size, limits = spawned.log_max_bytes, self.log_limits
        if size is not None:
            limits = attrs.evolve(limits, max_bytes=size)
        return piped(outputs, files, self.pump, limits, fresh=fresh)

    def _own_files(self, proc_id: int) -> LogFiles:
        if self.log_dir is None:
            raise CannotRun("log: this daemon keeps no log files; give their paths")
        return LogFiles(f"{self.log_dir}/{proc_id}.out", f"{self.log_dir}/{proc_id}.err")

    async def start_again(self, entry: Proc, *, by_policy: bool = False) -> Proc:
        """A new process for a dead started entry (same id, name, labels, logs).  The
        fork and exec run in a worker thread (the entry's id is taken already), so the
        event loop answers requests meanwhile; `by_policy`: not for a stopped entry."""
        spawned = entry.spawned
        assert spawned is not None
        self.restarts.cancel(entry.id)
        if entry.log is None:
            raise NotStarted(f"id {entry.id}: its output went to a terminal; run it anew")
        async with self._one_at_a_time:
            current = self._startable(entry, by_policy)
            if current is None:
                return self.registry.get(entry.id) or entry  # removed, started, stopped
            outputs = open_outputs(entry.log, fresh=False, log_dir=self.log_dir)
            outputs = self._piped(outputs, entry.log, spawned, fresh=False)
            self._launching += 1
            try:
                popen, facts = await trio.to_thread.run_sync(self._launch, spawned, outputs)
            finally:
                self._launching -= 1
        current = self._startable(entry, by_policy)
        if current is None:  # it changed while the process started: not wanted now
            popen.returncode = -signal.SIGKILL  # the reaper takes it; subprocess never will
            _kill_group(popen.pid, signal.SIGKILL)
            return self.registry.get(entry.id) or entry
        new = supervision.started_again(current, facts, self.clock())
        return await self._commit_started(
            new, popen, Change(next_id=self.registry.next_id, put=(new,))
        )

    def _startable(self, entry: Proc, by_policy: bool) -> Proc | None:
        """The entry as it is now, when it is still to be started."""
        current = self.registry.get(entry.id)
        if current is None or current.alive or current.added_at != entry.added_at:
            return None
        return None if by_policy and current.stopped else current

    async def _commit_started(self, entry: Proc, popen: Started, change: Change) -> Proc:
        self.children.by_pid[popen.pid] = Child(entry.id, popen)
        try:
            await self.service.commit(change)
        except BaseException:
            # Not tracked means not started: the reaper takes the killed child.
            self.children.by_pid.pop(popen.pid, None)
            popen.returncode = -signal.SIGKILL
            _kill_group(popen.pid, signal.SIGKILL)
            raise
        finally:
            early = self._unclaimed.pop(popen.pid, None)
            if not self._launching:
                self._unclaimed.clear()
        if early is not None:  # it ended (and was reaped) before its start returned
            await self._record(early)
        return self.registry.get(entry.id) or entry

    # ---- stopping ------------------------------------------------------------------

    async def stop(self, entry: Proc, grace: float) -> Proc:
        """Mark the entry stopped (no restart), then TERM its process group and KILL
        it after `grace` seconds; the entry after."""
        if entry.spawned is None:
            raise NotStarted(f"id {entry.id} was not started by goproc (spawn): use kill")
        self.restarts.cancel(entry.id)
        if not entry.stopped:
            stopped = attrs.evolve(entry, stopped=True)
            await self.service.commit(Change(next_id=self.registry.next_id, put=(stopped,)))
        if entry.alive:
            await self._terminate(entry, grace)
        return self.registry.get(entry.id) or entry

    async def _terminate(self, entry: Proc, grace: float) -> None:
        for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_GRACE)):
            child = self.children.of(entry)
            if child is not None:
                if child.ended.is_set():
                    return
                _kill_group(entry.pid, signum)  # unreaped: the pid and group are its own
                with trio.move_on_after(wait):
                    await child.ended.wait()
            else:  # a previous daemon's child: signalled as `kill` does, seen dead by probes
                try:
                    self.signal_entry(entry, signum)
                except Exception:  # gone already, or not that process any more
                    return
                with trio.move_on_after(wait):
                    while self._runs(entry):
                        await self.liveness_changed()
            if not self._runs(entry):
                return

    def _runs(self, entry: Proc) -> bool:
        """Whether the registry holds this entry's process as alive still."""
        current = self.registry.get(entry.id)
        return current is not None and current.alive and current.pid == entry.pid

    async def restart(self, entry: Proc, grace: float) -> Proc:
        """Stop the entry's process (if alive) and start a new one."""
        entry = await self.stop(entry, grace)
        current = self.registry.get(entry.id) or entry
        if current.alive:  # it outlived SIGKILL (uninterruptible): leave it
            return current
        return await self.start_again(current)


def _kill_group(pgid: int, signum: int) -> None:
    """Signal a child's process group; one that has ended already (its only member a
    zombie, or reaped) is no error: its exit is, or will be, recorded."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)
