"""Which processes a `match` selects, with `pgrep`'s rules.  Pure: no I/O; the processes
come from `goproc.daemon.scan`, the pattern is compiled by `goproc.daemon.ere`.

As `pgrep PATTERN [-f] [-x] [-u U] [-P PPID] [-n|-o]`:

- the pattern (an extended regular expression) is searched in the process name (`comm`,
  at most 15 bytes), or with `full` in the command line (argv joined by spaces, at most
  4,095 bytes; the name for a process without one); `exact` anchors it whole;
- `users`: the effective uid is one of them; `parents`: the parent pid is one of them;
- every given criterion must hold; `pick` "newest" or "oldest" then keeps the one
  started last (first), the higher (lower) pid on a tie.

Unlike pgrep, these are never selected: the `excluded` pids (the daemon, the client
that asked), kernel threads and zombies.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Literal, Protocol

from attrs import frozen

Pick = Literal["all", "newest", "oldest"]
CMDLINE_MAX = 4095  # pgrep's CMDSTRSIZE (4096) with its NUL


class Process(Protocol):
    """What `select` reads of a process (`goproc.daemon.scan.Seen` has it)."""

    @property
    def pid(self) -> int: ...
    @property
    def ppid(self) -> int: ...
    @property
    def euid(self) -> int: ...
    @property
    def start_ticks(self) -> int: ...
    @property
    def comm(self) -> bytes: ...
    @property
    def cmdline(self) -> bytes | None: ...
    @property
    def kthread(self) -> bool: ...
    @property
    def zombie(self) -> bool: ...


@frozen
class Criteria:
    """A match, its pattern compiled: `search` says whether it matches a text."""

    search: Callable[[bytes], bool] | None  # None: no pattern
    full: bool = False
    users: frozenset[int] | None = None
    parents: frozenset[int] | None = None
    pick: Pick = "all"


def searched_text(p: Process, full: bool) -> bytes:
    """The text pgrep matches its pattern against."""
    if full and p.cmdline:
        return p.cmdline[:CMDLINE_MAX]
    return p.comm


def candidate(p: Process, c: Criteria, excluded: Collection[int]) -> bool:
    """Whether `p` meets every criterion but the pick."""
    if p.kthread or p.zombie or p.pid in excluded:
        return False
    if c.users is not None and p.euid not in c.users:
        return False
    if c.parents is not None and p.ppid not in c.parents:
        return False
    return c.search is None or c.search(searched_text(p, c.full))


def select(procs: Iterable[Process], c: Criteria, excluded: Collection[int] = ()) -> list[int]:
    """The pids `c` selects among `procs`, in pid order."""
    found = [p for p in procs if candidate(p, c, excluded)]
    if c.pick == "newest" and found:
        found = [max(found, key=lambda p: (p.start_ticks, p.pid))]
    elif c.pick == "oldest" and found:
        found = [min(found, key=lambda p: (p.start_ticks, p.pid))]
    return sorted(p.pid for p in found)
