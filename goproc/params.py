"""The params of the contract's methods (`goproc.api`, which re-exports each), and the
value types they are made of.  Standard library and attrs only, as `goproc.api`: the
CLI imports it too.

Params objects are flat on the wire.  A field marked `flat` (`Targeted.select`,
`KillParams.target`, ...) contributes its own fields to the object instead of a nested
one, so `{"tags_any": ["web"], "all": true, "signal": "HUP"}` is one `KillParams`.
Built, read and encoded, never compared, hashed or shown with repr: those methods are
not made (`@frozen(repr=False, eq=False)`), which keeps the CLI's start-up short.
"""

from __future__ import annotations

from typing import Any, Literal, NewType

from attrs import field, frozen

from goproc.model import LogFiles, Selector

# Value types with their own validation on the way in (`goproc.rpc.convert`).
Pid = NewType("Pid", int)  # 1..2**31-1
ProcId = NewType("ProcId", int)  # 1..2**63-1
Name = NewType("Name", str)  # `goproc.model.NAME_RE`
Label = NewType("Label", str)  # a tag or a group
Signal = NewType("Signal", int)  # on the wire: a name ("TERM", "SIGKILL") or a number
Seconds = NewType("Seconds", float)  # on the wire: a number of seconds, 0..86400
Timestamp = NewType("Timestamp", float)  # on the wire: an RFC 3339 string with a time zone
Lifetime = NewType("Lifetime", float)  # on the wire: a number of seconds, 0..LIFETIME_MAX
Count = NewType("Count", int)  # 1..2**31-1
ByteSize = NewType("ByteSize", int)  # 4096..2**50 (`goproc.logformat`)

PID_MAX = 2**31 - 1  # pid_t is a signed 32-bit integer
ID_MAX = 2**63 - 1
LIFETIME_MAX = 10 * 366 * 86400  # ten years
RESET_WORD = "RESET"


def flat(cls: type[Any]) -> Any:
    """A field whose fields stand in the params object itself (see the module doc)."""
    return field(factory=cls, metadata={"flat": cls}, kw_only=True)


@frozen(repr=False, eq=False)
class NoParams:
    pass


Pick = Literal["all", "newest", "oldest"]
PICKS: tuple[Pick, ...] = ("all", "newest", "oldest")


@frozen(repr=False, eq=False)
class MatchSpec:
    """Processes found as `pgrep` finds them (`goproc.matching`): `pattern` (an extended
    regular expression) in the name, or with `full` the command line, `exact`: whole;
    `user`: effective users (names or uids); `parent`: parent pids; `cgroup`: the
    processes of a cgroup v2 directory; `children_of`: the descendants of a tracked
    entry's process (its id or name); `pick`: all, or only the newest or the oldest."""

    pattern: str | None = None
    full: bool = False
    exact: bool = False
    user: tuple[str, ...] | None = None
    parent: tuple[Pid, ...] | None = None
    cgroup: str | None = None
    children_of: ProcId | Name | None = None
    pick: Pick = "all"


@frozen(repr=False, eq=False)
class AddParams:
    """`pid` for one process (the result is its entry) or `pids` for several, all or
    nothing (the result is the array of entries), or `match` (the result a `Matched`;
    `dry_run`: nothing is added).  `log` (one process only): `True` for the daemon's
    own files, `<state_dir>/logs/<id>.out` and `.err`, or the files' absolute paths;
    `False`: none."""

    pid: Pid | None = None
    pids: tuple[Pid, ...] | None = None
    tags: tuple[Label, ...] = ()
    groups: tuple[Label, ...] = ()
    name: Name | None = None
    log: bool | LogFiles = False
    match: MatchSpec | None = None
    dry_run: bool = False


@frozen(repr=False, eq=False)
class Targeted:
    """The entries a command changes or signals: matching more than one needs `all`."""

    select: Selector = flat(Selector)
    all: bool = False


@frozen(repr=False, eq=False)
class LabelParams:
    labels: tuple[Label, ...]
    target: Targeted = flat(Targeted)


@frozen(repr=False, eq=False)
class RenameParams:
    old: Label
    new: Label


@frozen(repr=False, eq=False)
class NameParams:
    name: Name | None
    select: Selector = flat(Selector)


@frozen(repr=False, eq=False)
class ResetParams:
    confirm: str


@frozen(repr=False, eq=False)
class KillParams:
    target: Targeted = flat(Targeted)
    signal: Signal = Signal(15)
    timeout: Seconds = Seconds(5.0)
    group: bool = False
    rm: bool = False


@frozen(repr=False, eq=False)
class WaitParams:
    select: Selector = flat(Selector)
    timeout: Seconds = Seconds(30.0)
    any: bool = False


@frozen(repr=False, eq=False)
class UnsubscribeParams:
    subscription: ProcId


@frozen(repr=False, eq=False)
class HistoryParams:
    """Every matching entry's metrics history; `since`: only samples taken then or later."""

    select: Selector = flat(Selector)
    since: Timestamp | None = None


@frozen(repr=False, eq=False)
class AlertAddParams:
    """A new alert rule: `condition` (`goproc.alerts.parse_condition`), `action`
    (`goproc.alerts.parse_action`), an optional unique `rule` name; for the entries the
    selectors match, or every entry with `all` and no selector."""

    condition: str
    action: str = "event"
    rule: Name | None = None
    target: Targeted = flat(Targeted)


@frozen(repr=False, eq=False)
class AlertRemoveParams:
    """`rule`: the rule's number (a ProcId) or its name."""

    rule: ProcId | Name


@frozen(repr=False, eq=False)
class AdoptAddParams:
    """A new adoption rule: every process that starts later and `match` selects (`pick`
    must stay "all") is added with `tags`, `groups` and a name made from the template
    `name` ({comm}, {pid}, {n}); `rule`: the rule's own unique name; `forget_after`:
    seconds after its exit a dead entry of the rule's is removed; `limit`: most alive
    entries the rule keeps."""

    match: MatchSpec
    tags: tuple[Label, ...] = ()
    groups: tuple[Label, ...] = ()
    name: str | None = None
    rule: Name | None = None
    forget_after: Lifetime | None = None
    limit: Count | None = None


@frozen(repr=False, eq=False)
class AdoptRemoveParams:
    """`rule`: the rule's number (a ProcId) or its name."""

    rule: ProcId | Name


Restart = Literal["never", "on-failure", "always"]
RESTARTS: tuple[Restart, ...] = ("never", "on-failure", "always")


@frozen(repr=False, eq=False)
class SpawnParams:
    """A command for the daemon to start and track (`argv`, in the absolute `cwd`, with
    exactly the environment `env`, "KEY=VALUE" strings); its stdin is /dev/null, its
    stdout and stderr go to `log` (true: the daemon's files `<state_dir>/logs/<id>.out`
    and `.err`; the files' absolute paths: appended to), or with `attach` to the two
    descriptors sent with the request (SCM_RIGHTS).  The restart policy: `restart`,
    at most `max_restarts` within `restart_window` seconds, the delay doubling from
    `backoff_min` to `backoff_max` seconds (`goproc.supervision`).  Its log files are
    rotated at `log_max_bytes` (None: the daemon's `log_max_bytes`)."""

    argv: tuple[str, ...]
    cwd: str
    env: tuple[str, ...] = ()
    tags: tuple[Label, ...] = ()
    groups: tuple[Label, ...] = ()
    name: Name | None = None
    log: bool | LogFiles = True
    attach: bool = False
    restart: Restart = "never"
    max_restarts: Count | None = None
    restart_window: Seconds = Seconds(60.0)
    backoff_min: Seconds = Seconds(1.0)
    backoff_max: Seconds = Seconds(60.0)
    log_max_bytes: ByteSize | None = None


@frozen(repr=False, eq=False)
class StopParams:
    """Stop started entries' processes: SIGTERM to the process group, SIGKILL after
    `timeout` seconds; no restart follows, and the entries are kept."""

    target: Targeted = flat(Targeted)
    timeout: Seconds = Seconds(5.0)
