"""The adopter: while at least one adoption rule exists, find the processes that are
new since the last look and add those a rule matches (`goproc.adoption`).  Nothing
runs while there is no rule: the task waits to be told one was made.

Detection scans `/proc` every `discovery_interval`: a pid not listed the last time is
new, and only a new pid's `stat`, `status` (and `cmdline`, when a rule matches the
whole command line) are read; known pids cost a set lookup (`goproc.daemon.newpids`).
A new process that matches no rule is read again for a few more scans: it may have
been caught between its fork and its exec (when it still bears its parent's name).  A process that
starts and ends between two scans is not seen; nor is one whose pid is reused by
another between two scans.  A rule adopts only processes started after it was made
(at a daemon's start, the rules run over every process, and adopt those started
since).  The first rule (lowest number) that matches a process adopts it.  The rules'
dead entries past their `forget_after` are looked for once a second.

The listing is done in the trio thread (it is one `listdir` and a set difference); the
new processes are read in a worker thread, which touches nothing but `/proc` and what
it is handed; the registry is read and changed in the trio thread only.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from itertools import groupby

import trio

from goproc.adoption import plan_adoption, plan_forget
from goproc.daemon.ere import Ere
from goproc.daemon.newpids import Found, NewProcesses, Want
from goproc.daemon.probe import Probe
from goproc.daemon.service import Service
from goproc.errors import GoprocError
from goproc.matching import Criteria
from goproc.model import AdoptRule, Change, ProcessFacts
from goproc.registry import Registry

log = logging.getLogger("goproc.adopting")

FORGET_EVERY = 1.0  # seconds between looks for dead entries past `forget_after`


class _Broken(Exception):
    """A rule's pattern does not compile."""


class Adopter:
    """The discovery task: scans while rules exist, adopts what they match, and
    forgets the rules' dead entries past their `forget_after`."""

    def __init__(
        self,
        registry: Registry,
        service: Service,
        probe: Probe,
        *,
        interval: float,
        clock: Callable[[], float],
        proc: str = "/proc",
    ) -> None:
        self.registry = registry
        self.service = service
        self.probe = probe
        self.interval = interval
        self.clock = clock
        self.scans = 0
        self.last_scan_seconds = 0.0
        self.adopted = 0
        self._new = NewProcesses(proc)
        # rule id -> its (pattern, exact) and their compiled form (None: no pattern)
        self._compiled: dict[int, tuple[tuple[str | None, bool], Ere | None]] = {}
        self._wake = trio.Event()
        self._forget_at = 0.0

    @property
    def method(self) -> str:
        """How new processes are found: "scan" while rules exist, else "off"."""
        return "scan" if len(self.registry.adopts) else "off"

    def wake(self) -> None:
        """The rules changed: look now (or start looking)."""
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                if not len(self.registry.adopts):
                    self._new.forget()
                    self._close_all()
                    self._wake = trio.Event()
                    await self._wake.wait()
                    continue
                await self.scan_once()
                with trio.move_on_after(self.interval):
                    await self._wake.wait()
                self._wake = trio.Event()
        finally:
            self._close_all()

    async def scan_once(self) -> None:
        """One look for new processes, the adoptions it finds, then the forgetting."""
        started = time.perf_counter()
        wants = self._wants()
        todo = self._new.look()  # a listing and a set difference: inline
        found: list[Found] = []
        if todo and wants:
            found = await trio.to_thread.run_sync(
                functools.partial(self._new.read, todo, wants, self.probe.inspect)
            )
        for rule_id, group in groupby(found, key=lambda f: f[0]):
            await self._adopt(rule_id, [(facts, comm) for _, facts, comm in group])
        now = self.clock()
        if now >= self._forget_at:  # a walk over the rules' entries: once a second
            self._forget_at = now + FORGET_EVERY
            forget = plan_forget(self.registry, now)
            if forget is not None:
                await self._commit(forget, "forget the rules' old dead entries")
        self.scans += 1
        self.last_scan_seconds = time.perf_counter() - started

    async def _adopt(self, rule_id: int, found: list[tuple[ProcessFacts, str]]) -> None:
        rule = self.registry.adopts.get(rule_id)
        if rule is None:
            return  # removed while the scan ran
        planned = plan_adoption(self.registry, rule, found, self.clock())
        if planned is not None and await self._commit(planned[1], f"adopt for rule {rule_id}"):
            self.adopted += len(planned[0])

    async def _commit(self, change: Change, what: str) -> bool:
        try:
            await self.service.commit(change)
        except GoprocError as e:
            log.warning("could not %s: %s", what, e.message)
            return False
        return True

    def _wants(self) -> list[Want]:
        """The rules as the scan matches them, patterns compiled once per rule."""
        out = []
        live = {r.id for r in self.registry.adopts}
        for rule_id in [i for i in self._compiled if i not in live]:
            self._close(rule_id)
        own = os.geteuid()
        for rule in self.registry.adopts:
            root = None
            if rule.children_of is not None:
                entry = self.registry.get(rule.children_of)
                if entry is None or not entry.alive:
                    continue  # its process is gone: no descendant can appear
                root = entry.pid
            try:
                search = self._search(rule)
            except _Broken:
                continue
            criteria = Criteria(
                search,
                full=rule.full,
                users=frozenset(rule.users) if rule.users is not None else frozenset({own}),
                parents=None if rule.parents is None else frozenset(rule.parents),
            )
            out.append(Want(rule.id, rule.created_at, criteria, rule.cgroup, root))
        return out

    def _search(self, rule: AdoptRule) -> Callable[[bytes], bool] | None:
        """The rule's compiled pattern (None: it has none); _Broken when it does not
        compile, which only a hand-edited state file can make: logged once, skipped."""
        key = (rule.pattern, rule.exact)
        kept = self._compiled.get(rule.id)
        if kept is None or kept[0] != key:
            self._close(rule.id)
            ere = None
            if rule.pattern is not None:
                try:
                    ere = Ere(rule.pattern, exact=rule.exact, field="match.pattern")
                except GoprocError as e:
                    log.warning("adoption rule %d is skipped: %s", rule.id, e.message)
                    self._compiled[rule.id] = (key, None)
                    raise _Broken from None
            kept = self._compiled[rule.id] = (key, ere)
        if rule.pattern is None:
            return None
        if kept[1] is None:
            raise _Broken
        return kept[1].search

    def _close(self, rule_id: int) -> None:
        kept = self._compiled.pop(rule_id, None)
        if kept is not None and kept[1] is not None:
            kept[1].close()

    def _close_all(self) -> None:
        for rule_id in list(self._compiled):
            self._close(rule_id)
