"""The one cattrs converter factory, and the encodings built on it.  Pure: no trio, no I/O.

`make_converter` registers every structure and unstructure hook (those of single values
live in `goproc.rpc.values`, those of containers in `goproc.rpc.hooks`);
`structure_params` words its failures as one `InvalidValue` naming every bad field;
`encode_result` is the one way a handler's typed result becomes JSON (entries through
`goproc.rpc.entries`, the fast byte encoder, everything else through the converter).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.v import transform_error

from goproc.api import (
    ID_MAX,
    PID_MAX,
    AdoptInfo,
    AlertRule,
    ByteSize,
    Count,
    KillOutcome,
    Label,
    Lifetime,
    MatchSpec,
    Name,
    Pick,
    Pid,
    ProcId,
    Restart,
    Seconds,
    Signal,
    Timestamp,
)
from goproc.errors import InvalidValue
from goproc.logformat import MIN_MAX_BYTES, SIZE_MAX
from goproc.model import AdoptRule, LogFiles, Proc, Rule, Selector
from goproc.rpc import hooks, values
from goproc.rpc.decoding import entry_from_dict
from goproc.rpc.entries import (
    NO_METRICS,
    MetricsSource,
    RawJSON,
    entries_json,
    entry_dict,
    format_time,
    wire_dict,
    wire_json,
)
from goproc.rpc.rules import (
    adopt_dict,
    adopt_hook,
    adopt_info_dict,
    alert_rule_dict,
    rule_dict,
    rule_hook,
    rule_ref,
)
from goproc.rpc.values import Invalid, show_value

T = TypeVar("T")


def make_converter(*, detailed: bool = True) -> cattrs.Converter:
    """The converter for the wire and the snapshot.  Encodings:

    - timestamps (`started_at`, `added_at`, `last_seen`, `exited_at`): RFC 3339 UTC strings
      (`exited_at` may be null; a snapshot entry without it loads as null);
    - tuples: JSON arrays, and only arrays are accepted (a string is not a list of chars);
    - int, str, bool: exactly that JSON type (no `true` for 1, no `1.5` for 1);
    - Pid: 1..2**31-1; ProcId: 1..2**63-1; Name: trimmed, then `NAME_RE` and not all
      digits; Label (tag/group): a string of at most 64 characters, no comma and no
      control character (`values.label_value`);
      a Selector's ids and pids as ProcId and Pid, its names, tags and groups not blank;
    - Signal: a name in ASCII ("TERM", "SIGKILL", any case) or a valid number;
      Seconds: 0..86400; Timestamp (`metrics.history`'s `since`): RFC 3339 with a zone;
    - unknown keys in an object are refused (`forbid_extra_keys`);
    - params classes with flat fields (`goproc.api.flat`) read those fields' members
      from the same object;
    - an entry's `log`: null or `{"out": PATH, "err": PATH}`, absolute paths (a
      snapshot entry without it loads as null); `AddParams.log`: true, false or such
      an object;
    - an entry's `spawned`: null or its command and policy (`decoding.spawned_from`);
      `exit_code` null or 0..255, `exit_signal` null or 1..64; entries without these
      (or `restarts`, `stopped`) load as only watched;
    - `KillOutcome.error` and `KillOutcome.removed` are left out when null;
    - alert rules (`Rule`, and `AlertRule` with its `firing`) as `goproc.rpc.rules`
      lays them out; `alert.remove`'s `rule`: a number (ProcId) or a name (Name);
    - with `detailed=False`, entries are structured by `decoding.entry_from_dict`, the
      same rules checked by hand, several times faster (a snapshot's 100,000 entries).
    Structuring failures raise cattrs' ClassValidationError; `structure_params` words
    them.  `detailed=False` gives the same rules with terse errors, faster: for loading
    our own files, where a failure only needs to say "unreadable".
    """
    c = cattrs.Converter(forbid_extra_keys=True, detailed_validation=detailed)
    c.register_structure_hook(int, values.int_in(-ID_MAX, ID_MAX, "an integer"))
    c.register_structure_hook(Pid, values.int_in(1, PID_MAX, "a positive integer pid"))
    c.register_structure_hook(ProcId, values.int_in(1, ID_MAX, "a positive integer id"))
    c.register_structure_hook(str, values.str_value)
    c.register_structure_hook(Label, values.label_value)
    c.register_structure_hook(Name, values.name_value)
    c.register_structure_hook(values.Needle, values.needle)
    c.register_structure_hook(Selector, hooks.selector_hook(c))
    c.register_structure_hook(bool, values.bool_value)
    c.register_structure_hook(Signal, values.signal_value)
    c.register_structure_hook(Seconds, values.seconds_value)
    c.register_structure_hook(Timestamp, values.time_value)
    c.register_structure_hook(Lifetime, values.lifetime_value)
    c.register_structure_hook(Count, values.int_in(1, PID_MAX, "a positive integer"))
    c.register_structure_hook(ByteSize, values.int_in(MIN_MAX_BYTES, SIZE_MAX, "a size in bytes"))
    c.register_structure_hook_factory(
        hooks.is_homogeneous_tuple, lambda tp: hooks.tuple_hook(c, tp)
    )
    c.register_structure_hook_factory(hooks.has_flat_fields, lambda cls: hooks.flat_hook(c, cls))
    c.register_structure_hook_func(lambda tp: tp == bool | LogFiles, values.add_log)
    c.register_structure_hook_func(lambda tp: tp == ProcId | Name, rule_ref)
    c.register_structure_hook_func(
        lambda tp: tp == ProcId | Name | None, lambda v, _: None if v is None else rule_ref(v, _)
    )
    c.register_structure_hook(Rule, rule_hook(c))
    c.register_structure_hook(AdoptRule, adopt_hook(c))
    c.register_structure_hook_func(lambda tp: tp == Pick, values.pick_value)
    c.register_structure_hook_func(lambda tp: tp == Restart, values.restart_value)
    c.register_structure_hook(MatchSpec, hooks.object_hook(c, MatchSpec))
    c.register_unstructure_hook(Rule, rule_dict)
    c.register_unstructure_hook(AlertRule, alert_rule_dict)
    c.register_unstructure_hook(AdoptRule, adopt_dict)
    c.register_unstructure_hook(AdoptInfo, adopt_info_dict)
    c.register_unstructure_hook(Proc, entry_dict)
    c.register_unstructure_hook(
        KillOutcome,
        make_dict_unstructure_fn(
            KillOutcome,
            c,
            error=override(omit_if_default=True),
            removed=override(omit_if_default=True),
        ),
    )
    if not detailed:  # the same rules, checked by hand: how a snapshot loads fast
        c.register_structure_hook(Proc, lambda obj, _: entry_from_dict(obj))
        return c
    c.register_structure_hook(
        Proc,
        make_dict_structure_fn(
            Proc,
            c,
            _cattrs_forbid_extra_keys=True,
            started_at=override(struct_hook=values.time_value),
            added_at=override(struct_hook=values.time_value),
            last_seen=override(struct_hook=values.time_value),
            exited_at=override(struct_hook=values.optional_time),
            log=override(struct_hook=values.entry_log),
            spawned=override(struct_hook=values.entry_spawned),
            exit_code=override(struct_hook=values.exit_code),
            exit_signal=override(struct_hook=values.exit_signal),
            restarts=override(struct_hook=values.int_in(0, ID_MAX, "a count")),
        ),
    )
    return c


CONVERTER = make_converter()
FAST_CONVERTER = make_converter(detailed=False)


def structure_params(params: dict[str, Any] | list[Any], cls: type[T]) -> T:
    """Params object -> typed params; raises InvalidValue naming every bad field."""
    if isinstance(params, list):
        raise InvalidValue("params must be an object (by name), not an array")
    if not params:  # most requests of some methods (ping, status, list): made once
        empty = _EMPTY.get(cls)
        if empty is not None:
            return cast(T, empty)
    try:
        value = CONVERTER.structure(params, cls)
    except (ClassValidationError, IterableValidationError) as e:
        raise InvalidValue("; ".join(_describe(e))) from None
    except Invalid as e:
        raise InvalidValue(str(e)) from None
    if not params:
        _EMPTY[cls] = value
    return value


# Params class -> its value for `{}`, made once: every params class is frozen, of
# immutable fields (a test holds the contract to it), so one value serves every request.
_EMPTY: dict[type, Any] = {}


def _describe(exc: BaseException) -> list[str]:
    def fmt(e: BaseException, _type: Any) -> str:
        if isinstance(e, Invalid):
            return str(e)
        if isinstance(e, KeyError):
            return "is required"
        if isinstance(e, ForbiddenExtraKeysError):
            names = ", ".join(repr(k) for k in sorted(e.extra_fields))
            return f"unknown parameter{'s' if len(e.extra_fields) > 1 else ''} {names}"
        return f"is invalid ({e})"

    out = []
    for line in transform_error(exc, "", fmt):
        text, _, path = line.rpartition(" @ ")
        path = path.lstrip(".")
        out.append(f"{path}: {text}" if path else text)
    return out


def _members(tp: Any) -> tuple[Any, ...]:
    """The types a union is of (the type itself for any other)."""
    args: tuple[Any, ...] = getattr(tp, "__args__", ())
    return args if isinstance(tp, types.UnionType) else (tp,)


def encode_result(
    value: Any,
    result_type: Any,
    encode_entries: Callable[[Sequence[Proc]], RawJSON] = entries_json,
    metrics: MetricsSource = NO_METRICS,
) -> Any:
    """A handler's result, of its method's declared result type, as JSON: entries as
    their byte encoding spliced into the reply (an array of them by `encode_entries`),
    anything else through the converter, entries in it with their `metrics`."""
    if isinstance(value, Proc):
        return RawJSON((wire_json(value, metrics),))
    if result_type == list[Proc] or (
        isinstance(value, list) and list[Proc] in _members(result_type)
    ):
        return encode_entries(value)
    cls = type(value) if attrs.has(type(value)) else result_type
    out = CONVERTER.unstructure(value, cls)
    if attrs.has(cls):  # entries in fields of a result (`wait`'s, `add` with a match's)
        for a in attrs.fields(cls):
            if a.type in (list[Proc], "list[Proc]"):
                out[a.name] = [wire_dict(p, metrics) for p in getattr(value, a.name)]
    return out


__all__ = [
    "CONVERTER",
    "FAST_CONVERTER",
    "RawJSON",
    "encode_result",
    "format_time",
    "make_converter",
    "show_value",
    "structure_params",
]
