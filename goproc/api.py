"""The contract between the CLI and the daemon: every method's name, params and result.

Both sides import this module.  It needs only the standard library and attrs (which
cyclopts loads anyway), never trio or cattrs: the CLI builds its requests from these
types with `params_json`, and the daemon structures them (with the validation hooks
of `goproc.rpc.convert`) and encodes results through the one converter.

The params types live in `goproc.params` (flat on the wire, see there), the results in
`goproc.results`; this module names the methods and re-exports both, so that every
other module finds the whole contract here.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import attrs
from attrs import frozen

from goproc.model import Proc, Selector
from goproc.params import (
    ID_MAX as ID_MAX,
    LIFETIME_MAX as LIFETIME_MAX,
    PICKS as PICKS,
    PID_MAX as PID_MAX,
    RESET_WORD as RESET_WORD,
    RESTARTS as RESTARTS,
    AddParams as AddParams,
    AdoptAddParams as AdoptAddParams,
    AdoptRemoveParams as AdoptRemoveParams,
    AlertAddParams as AlertAddParams,
    AlertRemoveParams as AlertRemoveParams,
    ByteSize as ByteSize,
    Count as Count,
    HistoryParams as HistoryParams,
    KillParams as KillParams,
    Label as Label,
    LabelParams as LabelParams,
    Lifetime as Lifetime,
    MatchSpec as MatchSpec,
    Name as Name,
    NameParams as NameParams,
    NoParams as NoParams,
    Pick as Pick,
    Pid as Pid,
    ProcId as ProcId,
    RenameParams as RenameParams,
    ResetParams as ResetParams,
    Restart as Restart,
    Seconds as Seconds,
    Signal as Signal,
    SpawnParams as SpawnParams,
    StopParams as StopParams,
    Targeted as Targeted,
    Timestamp as Timestamp,
    UnsubscribeParams as UnsubscribeParams,
    WaitParams as WaitParams,
    flat as flat,
)
from goproc.results import (
    AdoptInfo as AdoptInfo,
    AlertRule as AlertRule,
    History as History,
    HistorySample as HistorySample,
    KillOutcome as KillOutcome,
    LabelCount as LabelCount,
    Matched as Matched,
    MatchedProcess as MatchedProcess,
    Renamed as Renamed,
    ResetResult as ResetResult,
    Status as Status,
    Subscribed as Subscribed,
    Unsubscribed as Unsubscribed,
    WaitResult as WaitResult,
)

# The CLI imports this module on every run, and each method attrs generates costs
# start-up time: these values are built, read and encoded, never compared, hashed or
# shown with repr, so those methods are not made (`@frozen(repr=False, eq=False)`).

P = TypeVar("P")
R = TypeVar("R")


@frozen(repr=False, eq=False)
class Method(Generic[P, R]):
    """One JSON-RPC method: its name, its params type and its result's type."""

    name: str
    params: type[P]
    result: Any  # a type form: Proc, list[Proc], Status, ...


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
SPAWN: Method[SpawnParams, Proc] = Method("spawn", SpawnParams, Proc)
STOP: Method[StopParams, list[Proc]] = Method("stop", StopParams, list[Proc])
START: Method[Targeted, list[Proc]] = Method("start", Targeted, list[Proc])
RESTART: Method[StopParams, list[Proc]] = Method("restart", StopParams, list[Proc])
ADOPT_ADD: Method[AdoptAddParams, AdoptInfo] = Method("adopt.add", AdoptAddParams, AdoptInfo)
ADOPT_LIST: Method[NoParams, list[AdoptInfo]] = Method("adopt.list", NoParams, list[AdoptInfo])
ADOPT_REMOVE: Method[AdoptRemoveParams, AdoptInfo] = Method(
    "adopt.remove", AdoptRemoveParams, AdoptInfo
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
        ADOPT_ADD,
        ADOPT_LIST,
        ADOPT_REMOVE,
        SPAWN,
        STOP,
        START,
        RESTART,
    )
}

# Event notifications: `{"jsonrpc":"2.0","method":"event","params":EVENT}`.
EVENT_METHOD = "event"
EVENT_KINDS = ("added", "removed", "exited", "revived", "restarted", "updated", "alert")


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
