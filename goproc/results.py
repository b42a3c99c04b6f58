"""The results of the contract's methods (`goproc.api`, which re-exports each): typed
values the daemon's handlers return and the one converter encodes.  Standard library and
attrs only, as `goproc.api`: the CLI imports it too.
"""

from __future__ import annotations

from attrs import frozen

from goproc.model import AdoptRule, Proc, Rule

# Built, read and encoded, never compared, hashed or shown: no such methods are made
# (see `goproc.api`).


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
    adopt_rules: int
    discovery: str  # "scan" while adoption rules look for new processes, else "off"
    discovery_interval: float  # seconds between scans of /proc for new processes
    discovery_scans: int
    discovery_last_scan_seconds: float
    adopted: int  # processes the adoption rules added since the daemon started
    http: str | None = None  # the HTTP listener's bound address; None: it is off


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
class AdoptInfo:
    """An adoption rule as stored, and how many of the entries it added are alive."""

    rule: AdoptRule
    alive: int = 0


@frozen(repr=False, eq=False)
class Subscribed:
    subscription: int


@frozen(repr=False, eq=False)
class Unsubscribed:
    unsubscribed: bool
