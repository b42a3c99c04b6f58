"""Entries from their decoded wire form (`goproc.model.Proc`), checked as strictly as
the converter's detailed path and several times faster: how a snapshot's 100,000
entries load.  Pure: no trio, no I/O.  The encoding side is `goproc.rpc.entries`.
"""

from __future__ import annotations

import operator
import sys
from datetime import datetime
from typing import Any

import attrs

from goproc.logformat import MIN_MAX_BYTES, SIZE_MAX
from goproc.model import RESTART_MODES, LogFiles, Proc, Spawned, log_path_problem
from goproc.rpc.entries import parse_time, short_json

_LABELS_CACHE = 1 << 14


ENTRY_KEYS = frozenset(a.name for a in attrs.fields(Proc))
# Added since version 1: an entry written before has none of them (null, 0, false).
SUPERVISION_KEYS = ("spawned", "exit_code", "exit_signal", "restarts", "stopped")
OPTIONAL_KEYS = frozenset({"exited_at", "log", "adopted_by", *SUPERVISION_KEYS})
ID_MAX = 2**63 - 1


class BadEntry(ValueError):
    """An entry object that is not one (the message names the field)."""


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj[key]
    if type(value) is not int or not -ID_MAX <= value <= ID_MAX:
        raise BadEntry(f"{key}: must be an integer, got {short_json(value)}")
    return value


def _rule_id(obj: dict[str, Any]) -> int:
    value = obj["adopted_by"]
    if type(value) is not int or not 1 <= value <= ID_MAX:
        raise BadEntry(f"adopted_by: must be a rule number (1..2**63-1), got {short_json(value)}")
    return value


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj[key]
    if type(value) is not str:
        raise BadEntry(f"{key}: must be a string, got {short_json(value)}")
    return value


_label_tuples: dict[tuple[Any, ...], tuple[str, ...]] = {}


def _label_tuple(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    """Label sets repeat across entries: each distinct one is checked once and shared by
    every entry that has it (only arrays of strings are ever kept: a non-string never
    equals a string, so a hit is one)."""
    value = obj[key]
    if type(value) is list:
        try:
            seen = _label_tuples.get(tuple(value))
        except TypeError:  # an unhashable item: not a string
            seen = None
        if seen is not None:
            return seen
        if all(type(x) is str for x in value):
            labels = tuple(map(sys.intern, value))
            if len(_label_tuples) >= _LABELS_CACHE:
                _label_tuples.clear()
            _label_tuples[labels] = labels
            return labels
    raise BadEntry(f"{key}: must be an array of strings, got {short_json(value)}")


def _stamp(obj: dict[str, Any], key: str) -> float:
    try:
        return parse_time(obj[key])
    except ValueError as e:
        raise BadEntry(f"{key}: {e}") from None


def log_files(value: Any) -> LogFiles | None:
    """An entry's `log` from its wire form: null, or `{"out": PATH, "err": PATH}` of
    absolute paths; ValueError naming what is wrong."""
    if value is None:
        return None
    if type(value) is not dict or value.keys() != {"out", "err"}:
        raise ValueError(f'must be {{"out": PATH, "err": PATH}}, got {short_json(value)}')
    for key in ("out", "err"):
        path = value[key]
        if type(path) is not str:
            raise ValueError(f"{key}: must be a string, got {short_json(path)}")
        problem = log_path_problem(path)
        if problem is not None:
            raise ValueError(f"{key}: {problem}, got {short_json(path)}")
    return LogFiles(value["out"], value["err"])


def _log(obj: dict[str, Any]) -> LogFiles | None:
    try:
        return log_files(obj.get("log"))
    except ValueError as e:
        raise BadEntry(f"log: {e}") from None


SPAWNED_KEYS = frozenset(a.name for a in attrs.fields(Spawned))
SIGNAL_MAX = 64  # SIGRTMAX on Linux
_SECONDS_MAX = 10 * 366 * 86400.0


def _strings(value: Any, key: str, *, nonempty: bool = False) -> tuple[str, ...]:
    if (
        type(value) is not list
        or not all(type(x) is str for x in value)
        or (nonempty and not value)
    ):
        some = "a non-empty array" if nonempty else "an array"
        raise ValueError(f"{key}: must be {some} of strings, got {short_json(value)}")
    return tuple(value)


def _seconds(value: Any, key: str) -> float:
    if type(value) not in (int, float) or not 0 <= value <= _SECONDS_MAX:
        raise ValueError(f"{key}: must be a number of seconds in 0..{_SECONDS_MAX:.0f}")
    return float(value)


def spawned_from(value: Any) -> Spawned | None:
    """An entry's `spawned` from its wire form: null, or the object `entry_dict` makes;
    ValueError naming what is wrong."""
    if value is None:
        return None
    # `log_max_bytes` may be absent: an entry written before it existed.
    if type(value) is not dict or value.keys() | {"log_max_bytes"} != SPAWNED_KEYS:
        raise ValueError(f"must be null or an object of {sorted(SPAWNED_KEYS)}")
    cwd, restart, most = value["cwd"], value["restart"], value["max_restarts"]
    if type(cwd) is not str or not cwd.startswith("/"):
        raise ValueError(f"cwd: must be an absolute path, got {short_json(cwd)}")
    if restart not in RESTART_MODES:
        raise ValueError(f"restart: must be one of {', '.join(RESTART_MODES)}")
    if most is not None and (type(most) is not int or not 0 <= most <= ID_MAX):
        raise ValueError(f"max_restarts: must be null or a count, got {short_json(most)}")
    low, high = (
        _seconds(value["backoff_min"], "backoff_min"),
        _seconds(value["backoff_max"], "backoff_max"),
    )
    if low > high:
        raise ValueError("backoff_min: must not be above backoff_max")
    size = value.get("log_max_bytes")
    if size is not None and (type(size) is not int or not MIN_MAX_BYTES <= size <= SIZE_MAX):
        raise ValueError(
            f"log_max_bytes: must be null or {MIN_MAX_BYTES}..{SIZE_MAX}, got {short_json(size)}"
        )
    return Spawned(
        argv=_strings(value["argv"], "argv", nonempty=True),
        cwd=cwd,
        env=_strings(value["env"], "env"),
        restart=restart,
        max_restarts=most,
        restart_window=_seconds(value["restart_window"], "restart_window"),
        backoff_min=low,
        backoff_max=high,
        log_max_bytes=size,
    )


def supervision(obj: dict[str, Any]) -> tuple[Spawned | None, int | None, int | None, int, bool]:
    """An entry's `spawned`, `exit_code`, `exit_signal`, `restarts` and `stopped`
    (absent ones as an entry written before they existed has them); BadEntry."""
    spawned, code, sig = obj.get("spawned"), obj.get("exit_code"), obj.get("exit_signal")
    restarts, stopped = obj.get("restarts", 0), obj.get("stopped", False)
    if code is not None and (type(code) is not int or not 0 <= code <= 255):
        raise BadEntry(f"exit_code: must be null or 0..255, got {short_json(code)}")
    if sig is not None and (type(sig) is not int or not 1 <= sig <= SIGNAL_MAX):
        raise BadEntry(f"exit_signal: must be null or 1..{SIGNAL_MAX}, got {short_json(sig)}")
    if type(restarts) is not int or not 0 <= restarts <= ID_MAX:
        raise BadEntry(f"restarts: must be a count, got {short_json(restarts)}")
    if type(stopped) is not bool:
        raise BadEntry(f"stopped: must be true or false, got {short_json(stopped)}")
    try:
        return spawned_from(spawned), code, sig, restarts, stopped
    except ValueError as e:
        raise BadEntry(f"spawned: {e}") from None


_ENTRY_ORDER = tuple(a.name for a in attrs.fields(Proc))
_BASE_ORDER = _ENTRY_ORDER[: -len(SUPERVISION_KEYS)]
_fields_of = operator.itemgetter(*_BASE_ORDER)
_utc_time = datetime.fromisoformat


def plain_fields_ok(i: Any, pid: Any, pgid: Any, cmd: Any, name: Any, alive: Any) -> bool:
    """Whether an entry's id, pid, pgid, command, name and alive flag have the exact
    types and ranges an entry's do (the fast paths of every entry decoder)."""
    return (
        type(i) is int
        and type(pid) is int
        and (pgid is None or type(pgid) is int)
        and type(cmd) is str
        and (name is None or type(name) is str)
        and type(alive) is bool
        and -ID_MAX <= i <= ID_MAX
        and -ID_MAX <= pid <= ID_MAX
        and (pgid is None or -ID_MAX <= pgid <= ID_MAX)
    )


def entry_from_dict(obj: Any) -> Proc:
    """An entry from its decoded wire form, checked as strictly as the converter's
    detailed path (every key known, every required one there, exact JSON types), and
    several times faster: how 100,000 entries of a snapshot load.  BadEntry otherwise.

    An entry as goproc writes it takes one straight path (every check in one
    expression, the time stamps in UTC); anything else is checked a field at a time
    by `_entry_from_dict`, the same rules, which names what is wrong."""
    try:
        if type(obj) is dict and len(obj) == len(_ENTRY_ORDER):
            i, pid, pgid, cmd, name, alive, tags, groups, st, ad, ls, ex, log, by = _fields_of(obj)
            if (
                plain_fields_ok(i, pid, pgid, cmd, name, alive)
                and (by is None or (type(by) is int and 1 <= by <= ID_MAX))
                and type(tags) is list
                and type(groups) is list
                and type(st) is str
                and type(ad) is str
                and type(ls) is str
                and (ex is None or (type(ex) is str and ex[-1:] == "Z"))
                and st[-1:] == ad[-1:] == ls[-1:] == "Z"  # UTC: aware, as parse_time asks
            ):
                tag_tuple = _label_tuples.get(tuple(tags))
                group_tuple = _label_tuples.get(tuple(groups))
                if tag_tuple is not None and group_tuple is not None:
                    return Proc(
                        i,
                        pid,
                        pgid,
                        cmd,
                        name,
                        alive,
                        tag_tuple,
                        group_tuple,
                        _utc_time(st).timestamp(),
                        _utc_time(ad).timestamp(),
                        _utc_time(ls).timestamp(),
                        None if ex is None else _utc_time(ex).timestamp(),
                        None if log is None else log_files(log),
                        by,
                        *supervision(obj),
                    )
    except (KeyError, TypeError, ValueError):
        pass
    return _entry_from_dict(obj)


def _entry_from_dict(obj: Any) -> Proc:
    if type(obj) is not dict:
        raise BadEntry(f"an entry must be an object, got {short_json(obj)}")
    keys = obj.keys()
    if keys != ENTRY_KEYS:
        # Entries written before `exited_at`, `log` or `adopted_by` existed have no
        # such key: null.
        unknown, missing = keys - ENTRY_KEYS, ENTRY_KEYS - keys - OPTIONAL_KEYS
        if unknown or missing:
            raise BadEntry(f"unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    pgid, name, exited, alive = obj["pgid"], obj["name"], obj.get("exited_at"), obj["alive"]
    if type(alive) is not bool:
        raise BadEntry(f"alive: must be true or false, got {short_json(alive)}")
    spawned, code, sig, restarts, stopped = supervision(obj)
    return Proc(
        id=_int(obj, "id"),
        pid=_int(obj, "pid"),
        pgid=None if pgid is None else _int(obj, "pgid"),
        cmd=_text(obj, "cmd"),
        name=None if name is None else _text(obj, "name"),
        alive=alive,
        tags=_label_tuple(obj, "tags"),
        groups=_label_tuple(obj, "groups"),
        started_at=_stamp(obj, "started_at"),
        added_at=_stamp(obj, "added_at"),
        last_seen=_stamp(obj, "last_seen"),
        exited_at=None if exited is None else _stamp(obj, "exited_at"),
        log=_log(obj),
        adopted_by=None if obj.get("adopted_by") is None else _rule_id(obj),
        spawned=spawned,
        exit_code=code,
        exit_signal=sig,
        restarts=restarts,
        stopped=stopped,
    )
