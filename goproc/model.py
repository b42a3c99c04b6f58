"""Frozen value types of the registry: what a tracked process is and how to select some.

Timestamps are float seconds since the epoch inside goproc; they become RFC 3339 UTC
strings only at the edges (protocol and snapshot), in `goproc.rpc.entries`.  No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from attrs import frozen

from goproc.alerts import Condition

NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
NAME_RULE = "at most 64 of letters, digits, '.', '-', '_'"

# A process is the pair (pid, start time).  A start time is the kernel's count of clock
# ticks since boot (1/100 s on Linux) plus one boot time per boot, which the snapshot
# keeps (`goproc.daemon.probe.OsProbe`), so one process always gets the same start time, up to
# the microseconds the wire keeps.  Two processes on one pid started in different ticks
# differ by a tick at least: far more than this.
START_TOLERANCE = 0.001


def same_start(a: float, b: float) -> bool:
    """Whether two start times belong to one process (see START_TOLERANCE)."""
    return abs(a - b) <= START_TOLERANCE


LABEL_MAX = 64
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1: what the spec's pattern says


def label_problem(label: str, shown: str) -> str | None:
    """What is wrong with a tag or a group as given (None: nothing), `shown` being how
    the message quotes it: at most LABEL_MAX characters, no comma (a comma separates
    labels on the command line) and no control character."""
    if len(label) > LABEL_MAX:
        return f"must be at most {LABEL_MAX} characters, got {len(label)}: {shown}"
    if "," in label:
        return f"must not contain a comma (one separates labels), got {shown}"
    if _CONTROL.search(label):
        return f"must not contain control characters, got {shown}"
    return None


def normalize_labels(labels: Iterable[str]) -> tuple[str, ...]:
    """Tags and groups as stored: trimmed, de-duplicated, sorted, empty ones dropped."""
    return tuple(sorted({s.strip() for s in labels} - {""}))


@frozen
class ProcessFacts:
    """What the OS says about a live process when it is added."""

    pid: int
    started_at: float
    cmd: str
    pgid: int | None


LOG_PATH_MAX = 4096  # PATH_MAX on Linux, the terminating NUL included


def log_path_problem(path: str) -> str | None:
    """What makes `path` unfit as a log file's path (absolute, no NUL, at most
    LOG_PATH_MAX bytes), or None."""
    if not path.startswith("/"):
        return "must be an absolute path"
    if "\0" in path:
        return "must not contain a NUL character"
    try:
        size = len(path.encode("utf-8", "surrogateescape"))  # as os.fsencode makes it
    except UnicodeEncodeError:
        return "must be a file name (a lone surrogate is none)"
    if size >= LOG_PATH_MAX:
        return f"must be shorter than {LOG_PATH_MAX} bytes"
    return None


@frozen
class LogFiles:
    """Where an entry's process writes its standard output and error (absolute paths;
    the same path twice for `goproc run --log PATH`)."""

    out: str
    err: str


RESTART_MODES = ("never", "on-failure", "always")


@frozen
class Spawned:
    """How the daemon started an entry's process (`spawn`), to start it again: the
    command (`argv`, in `cwd`, with the environment `env` as "KEY=VALUE" strings) and
    its restart policy (`goproc.supervision`): `restart` one of RESTART_MODES, at most
    `max_restarts` (None: no limit) within `restart_window` seconds, after a delay
    doubling from `backoff_min` up to `backoff_max` seconds; and the size its own log
    files are rotated at."""

    argv: tuple[str, ...]
    cwd: str
    env: tuple[str, ...]
    restart: str = "never"
    max_restarts: int | None = None
    restart_window: float = 60.0
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    log_max_bytes: int | None = None  # its log files' rotation size; None: the daemon's


@frozen
class Proc:
    """One registry entry.  `id` is never reused; `alive` is the last probe's verdict."""

    id: int
    pid: int
    pgid: int | None
    cmd: str
    name: str | None
    alive: bool
    tags: tuple[str, ...]
    groups: tuple[str, ...]
    started_at: float
    added_at: float
    last_seen: float
    exited_at: float | None = None  # when the death was detected; None while alive
    log: LogFiles | None = None  # its output's files (`goproc run`); None: not known
    adopted_by: int | None = None  # the adoption rule that added it; None: added by hand
    spawned: Spawned | None = None  # how the daemon started it; None: only watched
    # How its process ended, when the daemon reaped it (its parent or subreaper): the
    # exit status, or the signal that killed it.  None while alive or not known.
    exit_code: int | None = None
    exit_signal: int | None = None
    restarts: int = 0  # times its process was started again (policy, restart, start)
    stopped: bool = False  # stopped on request (`stop`): not restarted until `start`


def same_entry(a: Proc, b: Proc) -> bool:
    """Whether two versions of an entry are one entry: ids start again at 1 after a
    `reset`, so an id alone does not say it (the versions' tags or liveness may differ)."""
    return a.id == b.id and a.added_at == b.added_at and a.pid == b.pid


@frozen
class Selector:
    """Which entries a request is about.  Every given filter must hold (AND);
    within a `*_any` filter one match is enough (OR).  `None` means "not filtered"."""

    ids: tuple[int, ...] | None = None
    pids: tuple[int, ...] | None = None
    names: tuple[str, ...] | None = None
    tags_any: tuple[str, ...] | None = None
    tags_all: tuple[str, ...] | None = None
    groups_any: tuple[str, ...] | None = None
    groups_all: tuple[str, ...] | None = None
    alive: bool | None = None
    search: str | None = None

    def matches(self, p: Proc) -> bool:
        """The plain, index-free definition of a match (the registry must agree)."""
        return (
            (self.ids is None or p.id in self.ids)
            and (self.pids is None or p.pid in self.pids)
            and (self.names is None or p.name in self.names)
            and (self.tags_any is None or any(t in p.tags for t in self.tags_any))
            and (self.tags_all is None or all(t in p.tags for t in self.tags_all))
            and (self.groups_any is None or any(g in p.groups for g in self.groups_any))
            and (self.groups_all is None or all(g in p.groups for g in self.groups_all))
            and (self.alive is None or p.alive == self.alive)
            and (self.search is None or self.search in p.cmd)
        )


@frozen
class Rule:
    """An alert rule: what to do (`action`, canonical: `goproc.alerts.parse_action`)
    when `condition` holds for an alive entry that `select` matches (every entry when
    `all`).  `id` is never reused until a `reset`; `name` is unique among rules."""

    id: int
    name: str | None
    select: Selector
    all: bool
    condition: Condition
    action: str
    created_at: float


@frozen
class AdoptRule:
    """An adoption rule: every process that starts after `created_at` and matches
    (`goproc.adoption`) is added with `tags`, `groups` and a name made from
    `name_template` (`{comm}`, `{pid}`, `{n}`).  The match is pgrep's (`pattern`,
    `full`, `exact`, `users` and `parents` as uids and pids), within the cgroup v2
    directory `cgroup`, below the process of the entry `children_of`.  `forget_after`:
    seconds after which the rule's dead entries are removed; `limit`: most alive entries
    it keeps; `adopted`: how many it has added (the `{n}` of the last one).  `id` and
    `name` as an alert rule's, numbered on their own."""

    id: int
    name: str | None
    pattern: str | None
    full: bool
    exact: bool
    users: tuple[int, ...] | None
    parents: tuple[int, ...] | None
    cgroup: str | None
    children_of: int | None
    tags: tuple[str, ...]
    groups: tuple[str, ...]
    name_template: str | None
    forget_after: float | None
    limit: int | None
    created_at: float
    adopted: int = 0


@frozen
class Change:
    """What one mutation did, as a journal record: entries written whole (`put`), ids
    forgotten (`deleted`), and the id counter after it; alert rules likewise
    (`rules_put`, `rules_deleted`, `next_rule`: 0 leaves the rule counter as it is),
    and adoption rules (`adopts_put`, `adopts_deleted`, `next_adopt`).
    `reset` forgets everything first, rules included.  Applying a Change is
    idempotent, so replaying a journal over a newer snapshot is safe."""

    next_id: int
    put: tuple[Proc, ...] = ()
    deleted: tuple[int, ...] = ()
    reset: bool = False
    rules_put: tuple[Rule, ...] = ()
    rules_deleted: tuple[int, ...] = ()
    next_rule: int = 0
    adopts_put: tuple[AdoptRule, ...] = ()
    adopts_deleted: tuple[int, ...] = ()
    next_adopt: int = 0
