"""The contract between the CLI and the daemon: every method's name, params and result.

Both sides import this module.  It needs only the standard library and attrs (which
cyclopts loads anyway), never trio or cattrs: the CLI builds its requests from these
types with `params_json`, and the daemon structures them (with the validation hooks
of `goproc.rpc.convert`) and encodes results through the one converter.

Params objects are flat on the wire.  A field marked `flat` (`Targeted.select`,
`KillParams.target`, ...) contributes its own fields to the object instead of a nested
one, so `{"tags_any": ["web"], "all": true, "signal": "HUP"}` is one `KillParams`.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, NewType, TypeVar

import attrs
from attrs import field, frozen

from goproc.model import LogFiles, Proc, Rule, Selector

# The CLI imports this module on every run, and each method attrs generates costs
# start-up time: these values are built, read and encoded, never compared, hashed or
# shown with repr, so those methods are not made (`@frozen(repr=False, eq=False)`).

P = TypeVar("P")
R = TypeVar("R")

# Value types with their own validation on the way in (`goproc.rpc.convert`).
Pid = NewType("Pid", int)  # 1..2**31-1
ProcId = NewType("ProcId", int)  # 1..2**63-1
Name = NewType("Name", str)  # `goproc.model.NAME_RE`
Label = NewType("Label", str)  # a tag or a group
Signal = NewType("Signal", int)  # on the wire: a name ("TERM", "SIGKILL") or a number
Seconds = NewType("Seconds", float)  # on the wire: a number of seconds, 0..86400
Timestamp = NewType("Timestamp", float)  # on the wire: an RFC 3339 string with a time zone

PID_MAX = 2**31 - 1  # pid_t is a signed 32-bit integer
ID_MAX = 2**63 - 1
RESET_WORD = "RESET"


def flat(cls: type[Any]) -> Any:
    """A field whose fields stand in the params object itself (see the module doc)."""
    return field(factory=cls, metadata={"flat": cls}, kw_only=True)


@frozen(repr=False, eq=False)
class Method(Generic[P, R]):
    """One JSON-RPC method: its name, its params type and its result's type."""

    name: str
    params: type[P]
    result: Any  # a type form: Proc, list[Proc], Status, ...


# ---- params ----------------------------------------------------------------------------


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


# ---- results ---------------------------------------------------------------------------


@frozen(repr=False, eq=False)
class Status:
    version: str
    pid: int
    entries: int
    alive: int
    next_id: int
    socket: str
    state_dir: str
    snapshot_writes: int
    sweeps: int
    last_sweep_seconds: float
    connections: int
    exit_watch: str  # "pidfd" or "poll"
    watched: int
    subscriptions: int
    fd_limit: int
    metrics_interval: float  # seconds between metrics sweeps; 0: sampling is off
    metrics_sweeps: int
    metrics_last_sweep_seconds: float
    metrics_sampled: int  # processes the last metrics sweep read
    cpu_seconds: float  # the daemon's own CPU time (user + system) since it started
    alert_rules: int
    alerts_fired: int  # times an alert rule fired since the daemon started


@frozen(repr=False, eq=False)
class KillOutcome:
    """`outcome`: "signalled" (a signal other than TERM was sent), "exited" (it ended
    within the timeout, or before the signal reached it), "killed" (escalated to
    SIGKILL), "not alive" (nothing sent), "failed" (with `error`, present only then).
    `removed` (only with `rm`): whether the entry is forgotten now."""

    id: int
    pid: int
    signal: str
    outcome: str
    error: str | None = None
    removed: bool | None = None


@frozen(repr=False, eq=False)
class MatchedProcess:
    """One process a `match` found: `outcome` "added" (as entry `id`), "tracked" (it was
    already, as entry `id`: skipped) or "would add" (`dry_run`)."""

    pid: int
    cmd: str
    outcome: str
    id: int | None = None


@frozen(repr=False, eq=False)
class Matched:
    """What `add` with a `match` did: every process found, and the entries added."""

    matched: list[MatchedProcess]
    added: list[Proc]


@frozen(repr=False, eq=False)
class WaitResult:
    exited: list[Proc]
    alive: list[Proc]
    removed: list[Proc]  # forgotten while waited for (removed, reset): as they were
    timed_out: bool


@frozen(repr=False, eq=False)
class Renamed:
    changed: int


@frozen(repr=False, eq=False)
class LabelCount:
    name: str
    count: int


@frozen(repr=False, eq=False)
class ResetResult:
    removed: int


@frozen(repr=False, eq=False)
class HistorySample:
    t: str  # RFC 3339
    cpu_percent: float
    rss_bytes: int
    read_rate: float | None
    write_rate: float | None


@frozen(repr=False, eq=False)
class History:
    """One entry's samples, oldest first; `interval`: the daemon's metrics interval."""

    id: int
    interval: float
    samples: list[HistorySample]


@frozen(repr=False, eq=False)
class AlertRule:
    """A rule as stored, and the ids of the entries it has fired for and that have not
    cleared since (memory only: empty again after a restart)."""

    rule: Rule
    firing: tuple[int, ...] = ()


@frozen(repr=False, eq=False)
class Subscribed:
    subscription: int


@frozen(repr=False, eq=False)
class Unsubscribed:
    unsubscribed: bool


# ---- the methods -----------------------------------------------------------------------

PING: Method[NoParams, str] = Method("ping", NoParams, str)
STATUS: Method[NoParams, Status] = Method("status", NoParams, Status)
ADD: Method[AddParams, Proc | list[Proc] | Matched] = Method(
    "add", AddParams, Proc | list[Proc] | Matched
)
LIST: Method[Selector, list[Proc]] = Method("list", Selector, list[Proc])
SHOW: Method[Selector, Proc] = Method("show", Selector, Proc)
REMOVE: Method[Targeted, list[Proc]] = Method("remove", Targeted, list[Proc])
KILL: Method[KillParams, list[KillOutcome]] = Method("kill", KillParams, list[KillOutcome])
NAME_SET: Method[NameParams, Proc] = Method("name.set", NameParams, Proc)
RESET: Method[ResetParams, ResetResult] = Method("reset", ResetParams, ResetResult)
WAIT: Method[WaitParams, WaitResult] = Method("wait", WaitParams, WaitResult)
SUBSCRIBE: Method[Selector, Subscribed] = Method("subscribe", Selector, Subscribed)
UNSUBSCRIBE: Method[UnsubscribeParams, Unsubscribed] = Method(
    "unsubscribe", UnsubscribeParams, Unsubscribed
)
METRICS_HISTORY: Method[HistoryParams, list[History]] = Method(
    "metrics.history", HistoryParams, list[History]
)
ALERT_ADD: Method[AlertAddParams, AlertRule] = Method("alert.add", AlertAddParams, AlertRule)
ALERT_LIST: Method[NoParams, list[AlertRule]] = Method("alert.list", NoParams, list[AlertRule])
ALERT_REMOVE: Method[AlertRemoveParams, AlertRule] = Method(
    "alert.remove", AlertRemoveParams, AlertRule
)


@frozen(repr=False, eq=False)
class LabelMethods:
    """tag.* or group.*: the same four methods over tags or over groups."""

    add: Method[LabelParams, list[Proc]]
    remove: Method[LabelParams, list[Proc]]
    rename: Method[RenameParams, Renamed]
    list: Method[NoParams, list[LabelCount]]


def _label_methods(prefix: str) -> LabelMethods:
    return LabelMethods(
        add=Method(f"{prefix}.add", LabelParams, list[Proc]),
        remove=Method(f"{prefix}.remove", LabelParams, list[Proc]),
        rename=Method(f"{prefix}.rename", RenameParams, Renamed),
        list=Method(f"{prefix}.list", NoParams, list[LabelCount]),
    )


TAG = _label_methods("tag")
GROUP = _label_methods("group")

METHODS: dict[str, Method[Any, Any]] = {
    m.name: m
    for m in (
        PING,
        STATUS,
        ADD,
        LIST,
        SHOW,
        REMOVE,
        KILL,
        *(getattr(TAG, f.name) for f in attrs.fields(LabelMethods)),
        *(getattr(GROUP, f.name) for f in attrs.fields(LabelMethods)),
        NAME_SET,
        RESET,
        WAIT,
        SUBSCRIBE,
        UNSUBSCRIBE,
        METRICS_HISTORY,
        ALERT_ADD,
        ALERT_LIST,
        ALERT_REMOVE,
    )
}

# Event notifications: `{"jsonrpc":"2.0","method":"event","params":EVENT}`.
EVENT_METHOD = "event"
EVENT_KINDS = ("added", "removed", "exited", "revived", "updated", "alert")


# ---- params on the wire ----------------------------------------------------------------


def flat_type(a: attrs.Attribute[Any]) -> type[Any] | None:
    """The class of a flat field (see `flat`), None for any other field."""
    cls: type[Any] | None = a.metadata.get("flat")
    return cls


def wire_names(cls: type[Any]) -> tuple[str, ...]:
    """The names a params class takes on the wire, its flat fields' included."""
    out: list[str] = []
    for a in attrs.fields(cls):
        inner = flat_type(a)
        out.extend(wire_names(inner) if inner is not None else (a.name,))
    return tuple(out)


def params_json(params: Any) -> dict[str, Any]:
    """A params object as the JSON object the daemon reads: flat fields spliced in,
    fields left at their default omitted (the daemon applies the same defaults)."""
    out: dict[str, Any] = {}
    for a in attrs.fields(type(params)):
        value = getattr(params, a.name)
        if flat_type(a) is not None:
            out.update(params_json(value))
            continue
        default = a.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if default is not attrs.NOTHING and value == default:
            continue
        if isinstance(value, tuple):
            value = list(value)
        elif attrs.has(type(value)):
            value = attrs.asdict(value)
        out[a.name] = value
    return out
