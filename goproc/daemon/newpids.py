"""New processes in `/proc`, for the adopter (`goproc.daemon.adopting`): `NewProcesses`
lists `/proc` and says which pids are new since the last look (known pids cost a set
lookup), and reads those, matching each against the rules as `Want`s (pgrep's rules,
`goproc.matching`, plus a rule's start time, cgroup and ancestor).  A new process that
matches no rule is read again for `RECHECKS` more looks: it may have been caught between
its fork and its exec, still bearing its parent's name.  Blocking reads of `/proc` only;
nothing here touches the registry.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from attrs import frozen

from goproc.daemon.scan import Seen, cgroup_pids, seen
from goproc.errors import GoprocError
from goproc.matching import Criteria, candidate
from goproc.model import ProcessFacts

RECHECKS = 10  # scans a new, unmatched process is read again (1 s at the default)
START_SLACK = 0.02  # start times are kept in clock ticks (10 ms): two of them
ANCESTRY_MAX = 1024  # parents walked up from a new process (a loop guard)
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@frozen
class Want:
    """One rule as the scan matches it: plain values and a compiled pattern only."""

    rule_id: int
    created_at: float
    criteria: Criteria
    cgroup: str | None
    root: int | None  # the pid whose descendants it adopts; None: any process


Found = tuple[int, ProcessFacts, str]  # the rule, the process, its name (comm)


class NewProcesses:
    """What is new in `/proc` since the last look.  `look` lists it (cheap: names
    compared as listed, a set difference); `read` reads the new processes (blocking:
    call it in a worker thread, one call at a time, and not beside `look`)."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self.known: set[str] | None = None  # the names listed last; None: not looked yet
        self.young: dict[int, int] = {}  # unmatched new pid -> rechecks left
        self._fresh: set[int] = set()
        self._first = True

    def forget(self) -> None:
        self.known = None
        self.young.clear()

    def look(self) -> list[int]:
        """The pids to read: those not listed the last time, and the young ones still
        there; in pid order."""
        try:
            names = set(os.listdir(self.proc))
        except OSError:
            names = set()
        self._first = self.known is None
        fresh = names if self.known is None else names - self.known
        self.known = names
        self._fresh = {int(n) for n in fresh if n.isdigit() and n.isascii()}
        self.young = {pid: n for pid, n in self.young.items() if str(pid) in names}
        return sorted(self._fresh | self.young.keys())

    def read(
        self, todo: list[int], wants: list[Want], inspect: Callable[[int], ProcessFacts]
    ) -> list[Found]:
        """Every process of `todo` (from `look`) that a want matches, with the first
        such rule, in pid order."""
        full = any(w.criteria.full for w in wants)
        members = {w.cgroup: _members(w.cgroup) for w in wants if w.cgroup is not None}
        boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        parents: dict[int, int] = {}
        own = {os.getpid()}
        out: list[Found] = []
        for pid in todo:
            p = seen(pid, cmdline=full, proc=self.proc)
            if p is None:
                self.young.pop(pid, None)
                continue
            started = boot + p.start_ticks / CLK_TCK
            rule = next(
                (w for w in wants if self._wants(w, p, started, members, parents, own)), None
            )
            if rule is not None:
                self.young.pop(pid, None)
                try:
                    facts = inspect(pid)
                except GoprocError:
                    continue  # gone (or changed hands) since it was read
                out.append((rule.rule_id, facts, p.comm.decode(errors="replace")))
            elif pid in self._fresh and not self._first:
                self.young[pid] = RECHECKS
            elif pid in self.young:
                self.young[pid] -= 1
                if not self.young[pid]:
                    del self.young[pid]
        return out

    def _wants(
        self,
        w: Want,
        p: Seen,
        started: float,
        members: dict[str, set[int]],
        parents: dict[int, int],
        own: set[int],
    ) -> bool:
        if started < w.created_at - START_SLACK:
            return False
        if w.cgroup is not None and p.pid not in members[w.cgroup]:
            return False
        if w.root is not None and not self._below(p, w.root, parents):
            return False
        return candidate(p, w.criteria, own)

    def _below(self, p: Seen, root: int, parents: dict[int, int]) -> bool:
        """Whether `root` is an ancestor of `p` (the parents read once per scan)."""
        ppid = p.ppid
        for _ in range(ANCESTRY_MAX):
            if ppid == root:
                return True
            if ppid <= 1:
                return False
            if ppid not in parents:
                up = seen(ppid, cmdline=False, proc=self.proc)
                parents[ppid] = 0 if up is None else up.ppid
            ppid = parents[ppid]
        return False


def _members(cgroup: str) -> set[int]:
    try:
        return set(cgroup_pids(cgroup))
    except OSError:
        return set()  # removed since the rule was made: it adopts nothing there
