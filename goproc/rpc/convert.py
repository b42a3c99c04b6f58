"""The one cattrs converter factory, and the encodings built on it.  Pure: no trio, no I/O.

`make_converter` holds every structure and unstructure hook; `structure_params` words
its failures as one `InvalidValue` naming every bad field; `encode_result` is the one
way a handler's typed result becomes JSON (entries through `goproc.rpc.entries`, the
fast byte encoder, everything else through the converter).
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NewType, TypeVar, cast

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.v import transform_error

from goproc.api import (
    ID_MAX,
    PID_MAX,
    KillOutcome,
    Label,
    Name,
    Pid,
    ProcId,
    Seconds,
    Signal,
    flat_type,
    wire_names,
)
from goproc.errors import InvalidValue
from goproc.model import NAME_RE, NAME_RULE, Proc, Selector
from goproc.rpc.decoding import entry_from_dict
from goproc.rpc.entries import (
    RawJSON,
    entries_json,
    entry_dict,
    entry_json,
    format_time,
    parse_time,
)

T = TypeVar("T")


class _Invalid(ValueError):
    """A value was rejected by a structure hook; the message says what is wrong."""


def show_value(value: object) -> str:
    """A value for an error message, cut to 40 characters."""
    # JSON's spelling for what only JSON has (true, null, arrays); Python's repr for
    # numbers and strings, which quotes a string the way every other message does.
    plain = isinstance(value, float | int | str) and not isinstance(value, bool)
    text = repr(value) if plain else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _int_in(lo: int, hi: int, what: str) -> Callable[[Any, Any], int]:
    def hook(value: Any, _: Any) -> int:
        if type(value) is not int:
            raise _Invalid(f"must be {what}, got {show_value(value)}")
        if not lo <= value <= hi:
            raise _Invalid(f"must be {what} (from {lo} to {hi}), got {value}")
        return value

    return hook


def _str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, got {show_value(value)}")
    return value


_Needle = NewType("_Needle", str)  # a name, tag or group a selector looks for


def _needle(value: Any, _: Any) -> str:
    text = _str(value, _)
    if not text.strip():
        raise _Invalid(f"must not be blank, got {show_value(text)}")
    return text


def _name(value: Any, _: Any) -> str:
    """Trimmed like a tag; never all digits, which `show 123` would read as an id."""
    text = _str(value, _).strip(" \t\n\r\f\v")
    if not NAME_RE.fullmatch(text):
        raise _Invalid(f"must be {NAME_RULE}, got {show_value(value)}")
    if text.isdigit():
        raise _Invalid(f"must contain a non-digit (an id is all digits), got {show_value(value)}")
    return text


def _signal(value: Any, _: Any) -> int:
    if type(value) is int:
        if value in signal.valid_signals() and value != 0:
            return value
        raise _Invalid(f"must be a signal number or name, got {value}")
    if isinstance(value, str):
        # ASCII only: `upper` makes "KILL" of "k\u0131ll" (a dotless i) and "SIGKILL" of
        # "\u017figkill" (a long s), and `strip` takes U+3000 away.
        name = value.strip(" \t\n\r\f\v").upper() if value.isascii() else ""
        name = name if name.startswith("SIG") else "SIG" + name
        sig = getattr(signal.Signals, name, None) if name.isidentifier() else None
        if isinstance(sig, signal.Signals):
            return int(sig)
        raise _Invalid(f"must be a signal name like TERM or KILL, got {show_value(value)}")
    raise _Invalid(f"must be a signal name or number, got {show_value(value)}")


def _seconds(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise _Invalid(f"must be a number of seconds, got {show_value(value)}")
    if not 0 <= value <= 86400:
        raise _Invalid(f"must be from 0 to 86400 seconds, got {value}")
    return float(value)


def _bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, got {show_value(value)}")
    return value


def _time(value: Any, _: Any) -> float:
    try:
        return parse_time(value)
    except ValueError as e:
        raise _Invalid(str(e)) from None


def _optional_time(value: Any, _: Any) -> float | None:
    return None if value is None else _time(value, _)


def make_converter(*, detailed: bool = True) -> cattrs.Converter:
    """The converter for the wire and the snapshot.  Encodings:

    - timestamps (`started_at`, `added_at`, `last_seen`, `exited_at`): RFC 3339 UTC strings
      (`exited_at` may be null; a snapshot entry without it loads as null);
    - tuples: JSON arrays, and only arrays are accepted (a string is not a list of chars);
    - int, str, bool: exactly that JSON type (no `true` for 1, no `1.5` for 1);
    - Pid: 1..2**31-1; ProcId: 1..2**63-1; Name: trimmed, then `NAME_RE` and not all
      digits; Label (tag/group): a string;
      a Selector's ids and pids as ProcId and Pid, its names, tags and groups not blank;
    - Signal: a name in ASCII ("TERM", "SIGKILL", any case) or a valid number;
      Seconds: 0..86400;
    - unknown keys in an object are refused (`forbid_extra_keys`);
    - params classes with flat fields (`goproc.api.flat`) read those fields' members
      from the same object;
    - `KillOutcome.error` and `KillOutcome.removed` are left out when null;
    - with `detailed=False`, entries are structured by `decoding.entry_from_dict`, the
      same rules checked by hand, several times faster (a snapshot's 100,000 entries).
    Structuring failures raise cattrs' ClassValidationError; `structure_params` words
    them.  `detailed=False` gives the same rules with terse errors, faster: for loading
    our own files, where a failure only needs to say "unreadable".
    """
    c = cattrs.Converter(forbid_extra_keys=True, detailed_validation=detailed)
    c.register_structure_hook(int, _int_in(-ID_MAX, ID_MAX, "an integer"))
    c.register_structure_hook(Pid, _int_in(1, PID_MAX, "a positive integer pid"))
    c.register_structure_hook(ProcId, _int_in(1, ID_MAX, "a positive integer id"))
    c.register_structure_hook(str, _str)
    c.register_structure_hook(Label, _str)
    c.register_structure_hook(Name, _name)
    c.register_structure_hook(_Needle, _needle)
    c.register_structure_hook(Selector, _selector_hook(c))
    c.register_structure_hook(bool, _bool)
    c.register_structure_hook(Signal, _signal)
    c.register_structure_hook(Seconds, _seconds)
    c.register_structure_hook_factory(_is_homogeneous_tuple, lambda tp: _tuple_hook(c, tp))
    c.register_structure_hook_factory(_has_flat_fields, lambda cls: _flat_hook(c, cls))
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
            started_at=override(struct_hook=_time),
            added_at=override(struct_hook=_time),
            last_seen=override(struct_hook=_time),
            exited_at=override(struct_hook=_optional_time),
        ),
    )
    return c


def _is_homogeneous_tuple(tp: Any) -> bool:
    args: tuple[Any, ...] = getattr(tp, "__args__", ())
    return getattr(tp, "__origin__", None) is tuple and len(args) == 2 and args[1] is Ellipsis


def _tuple_hook(c: cattrs.Converter, tp: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
    (item_type, _) = tp.__args__
    inner = c.get_structure_hook(item_type)
    plain_str = item_type in (str, Label)

    def structure(value: Any, _: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _Invalid(f"must be an array, got {show_value(value)}")
        if plain_str and all(type(item) is str for item in value):
            # The common case, checked at once.  Tags and groups repeat across
            # entries: one string object each, not one per entry.
            return tuple(map(sys.intern, value))
        errors: list[Exception] = []
        out = []
        for i, item in enumerate(value):
            try:
                out.append(inner(item, item_type))
            except Exception as e:
                e.__notes__ = [
                    *getattr(e, "__notes__", []),
                    IterableValidationNote(f"Structuring {tp} @ index {i}", i, item_type),
                ]
                errors.append(e)
        if errors:
            raise IterableValidationError(f"While structuring {tp!r}", errors, tp)
        return tuple(out)

    return structure


def _selector_hook(c: cattrs.Converter) -> Callable[[Any, Any], Selector]:
    """Selectors as the registry takes them, checked as values of their kind: ids and
    pids in range (an id 0 or a pid -2 is no match but a mistake), and no blank name,
    tag or group (one matches nothing, so `rm --name ok --name ' '` would act on `ok`)."""

    def optional(tp: Any) -> Any:
        return override(struct_hook=lambda v, _: None if v is None else c.structure(v, tp))

    needles = optional(tuple[_Needle, ...])
    return make_dict_structure_fn(
        Selector,
        c,
        _cattrs_forbid_extra_keys=True,
        ids=optional(tuple[ProcId, ...]),
        pids=optional(tuple[Pid, ...]),
        names=needles,
        tags_any=needles,
        tags_all=needles,
        groups_any=needles,
        groups_all=needles,
    )


def _has_flat_fields(cls: Any) -> bool:
    return attrs.has(cls) and any(flat_type(a) is not None for a in attrs.fields(cls))


def _flat_hook(c: cattrs.Converter, cls: Any) -> Callable[[Any, Any], Any]:
    """Structure a params class whose flat fields read from the same object: each flat
    field gets the members its class names, the class itself the rest (unknown
    members are refused there).  Errors of every part are reported together."""
    flats = {a.name: t for a in attrs.fields(cls) if (t := flat_type(a)) is not None}
    names = {name: set(wire_names(t)) for name, t in flats.items()}
    omitted: dict[str, Any] = {n: override(omit=True) for n in flats}
    own = make_dict_structure_fn(cls, c, _cattrs_forbid_extra_keys=True, **omitted)

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            raise _Invalid(f"must be an object, got {show_value(value)}")
        taken: set[str] = set()
        parts: dict[str, Any] = {}
        errors: list[Exception] = []
        for name, t in flats.items():
            part = {k: v for k, v in value.items() if k in names[name]}
            taken.update(part)
            try:
                parts[name] = c.structure(part, t)
            except ClassValidationError as e:
                errors.extend(e.exceptions)
        try:
            out = own({k: v for k, v in value.items() if k not in taken}, cls)
        except ClassValidationError as e:
            errors.extend(e.exceptions)
        if errors:
            raise ClassValidationError(f"While structuring {cls.__name__}", errors, cls)
        return attrs.evolve(out, **parts)

    return structure


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
    except _Invalid as e:
        raise InvalidValue(str(e)) from None
    if not params:
        _EMPTY[cls] = value
    return value


# Params class -> its value for `{}`, made once: every params class is frozen, of
# immutable fields (a test holds the contract to it), so one value serves every request.
_EMPTY: dict[type, Any] = {}


def _describe(exc: BaseException) -> list[str]:
    def fmt(e: BaseException, _type: Any) -> str:
        if isinstance(e, _Invalid):
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


def encode_result(
    value: Any,
    result_type: Any,
    encode_entries: Callable[[Sequence[Proc]], RawJSON] = entries_json,
) -> Any:
    """A handler's result, of its method's declared result type, as JSON: entries as
    their byte encoding spliced into the reply (an array of them by `encode_entries`),
    anything else through the converter."""
    if result_type is Proc or (isinstance(value, Proc) and result_type == Proc | list[Proc]):
        return RawJSON((entry_json(value),))
    if result_type == list[Proc] or result_type == Proc | list[Proc]:
        return encode_entries(value)
    return CONVERTER.unstructure(value, result_type)


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
