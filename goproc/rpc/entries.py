"""Entries (`goproc.model.Proc`) as JSON, fast: the wire form of `list`, `show`, events,
the journal and the snapshot.  Pure: no trio, no I/O.

An entry is encoded when it is sent, never cached: 100,000 entries cost their objects
and nothing more.  `entry_dict` is the one definition of the form; `entry_json` and
`entries_json` are that dict through the C JSON encoder, a chunk of entries per call.
Timestamps are RFC 3339 UTC with microseconds; the text of a minute is formatted once
and kept in a bounded cache.
"""

from __future__ import annotations

import json
import math
import operator
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, Protocol

import attrs
from attrs import frozen

from goproc.model import Proc

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_CHUNK = 1000  # entries per call of the C encoder
_MINUTES_CACHE = 1 << 16  # about 6 MB at most


class Deferred(Protocol):
    """A piece of a reply whose bytes are read (from a file) only as it is sent: the
    daemon's sender calls `read` in a worker thread."""

    def read(self) -> bytes: ...


Part = bytes | Deferred


def read_parts(parts: Iterable[Part]) -> bytes:
    """Parts joined, deferred ones read here (blocking)."""
    return b"".join(p if isinstance(p, bytes) else p.read() for p in parts)


@frozen
class RawJSON:
    """A result already encoded, in parts that the reply writer splices in as they are
    (possibly made lazily, as they are taken: then it can be sent once)."""

    parts: Iterable[Part]


def dumps(value: Any) -> bytes:
    """Compact JSON, ASCII with escapes (lone surrogates included), no NaN."""
    return _ENCODER.encode(value).encode()


_minute_text: dict[int, str] = {}


def format_time(ts: float) -> str:
    """Seconds since the epoch as an RFC 3339 UTC string with microseconds: exactly
    `datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")` with `Z` (the
    same round-half-even of the fraction), several times faster: the text up to the
    minute is made once per minute and kept; the rest is arithmetic."""
    frac, whole = math.modf(ts)
    us = round(frac * 1e6)
    sec = int(whole)
    if us >= 1_000_000:
        sec, us = sec + 1, us - 1_000_000
    elif us < 0:
        sec, us = sec - 1, us + 1_000_000
    minute, second = divmod(sec, 60)
    text = _minute_text.get(minute)
    if text is None:
        if len(_minute_text) >= _MINUTES_CACHE:
            _minute_text.clear()
        text = _minute_text[minute] = datetime.fromtimestamp(minute * 60, UTC).isoformat()[:17]
    return "%s%02d.%06dZ" % (text, second, us)  # noqa: UP031  # the fastest formatting


def parse_time(value: object) -> float:
    """An RFC 3339 timestamp with a time zone -> seconds since the epoch; ValueError."""
    if not isinstance(value, str):
        raise ValueError(f"must be an RFC 3339 timestamp string, got {_short(value)}")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"must be an RFC 3339 timestamp, got {_short(value)}") from None
    if dt.tzinfo is None:
        raise ValueError(f"must carry a time zone (e.g. 'Z'), got {_short(value)}")
    return dt.timestamp()


def _short(value: object) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | None) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def entry_dict(p: Proc) -> dict[str, Any]:
    """The wire form of an entry (spec/openrpc.json's `Proc`), as a plain dict."""
    exited = p.exited_at
    return {
        "id": p.id,
        "pid": p.pid,
        "pgid": p.pgid,
        "cmd": p.cmd,
        "name": p.name,
        "alive": p.alive,
        "tags": list(p.tags),
        "groups": list(p.groups),
        "started_at": format_time(p.started_at),
        "added_at": format_time(p.added_at),
        "last_seen": format_time(p.last_seen),
        "exited_at": None if exited is None else format_time(exited),
    }


_TEMPLATE = (
    '{"id":%d,"pid":%d,"pgid":%s,"cmd":%s,"name":%s,"alive":%s,"tags":%s,"groups":%s,'
    '"started_at":"%s","added_at":"%s","last_seen":"%s","exited_at":%s}'
)
_label_text: dict[tuple[str, ...], str] = {}
_LABELS_CACHE = 1 << 14


def _labels(labels: tuple[str, ...]) -> str:
    """A tuple of labels as JSON; label sets repeat across entries: each made once."""
    text = _label_text.get(labels)
    if text is None:
        if len(_label_text) >= _LABELS_CACHE:
            _label_text.clear()
        text = _label_text[labels] = _ENCODER.encode(list(labels))
    return text


ENTRY_KEYS = frozenset(a.name for a in attrs.fields(Proc))
ID_MAX = 2**63 - 1


class BadEntry(ValueError):
    """An entry object that is not one (the message names the field)."""


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj[key]
    if type(value) is not int or not -ID_MAX <= value <= ID_MAX:
        raise BadEntry(f"{key}: must be an integer, got {_short(value)}")
    return value


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj[key]
    if type(value) is not str:
        raise BadEntry(f"{key}: must be a string, got {_short(value)}")
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
    raise BadEntry(f"{key}: must be an array of strings, got {_short(value)}")


def _stamp(obj: dict[str, Any], key: str) -> float:
    try:
        return parse_time(obj[key])
    except ValueError as e:
        raise BadEntry(f"{key}: {e}") from None


_ENTRY_ORDER = tuple(a.name for a in attrs.fields(Proc))
_fields_of = operator.itemgetter(*_ENTRY_ORDER)
_utc_time = datetime.fromisoformat


def entry_from_dict(obj: Any) -> Proc:
    """An entry from its decoded wire form, checked as strictly as the converter's
    detailed path (every key known, every required one there, exact JSON types), and
    several times faster: how 100,000 entries of a snapshot load.  BadEntry otherwise.

    An entry as goproc writes it takes one straight path (every check in one
    expression, the time stamps in UTC); anything else is checked a field at a time
    by `_entry_from_dict`, the same rules, which names what is wrong."""
    try:
        if type(obj) is dict and len(obj) == len(_ENTRY_ORDER):
            i, pid, pgid, cmd, name, alive, tags, groups, st, ad, ls, ex = _fields_of(obj)
            if (
                type(i) is int
                and type(pid) is int
                and (pgid is None or type(pgid) is int)
                and type(cmd) is str
                and (name is None or type(name) is str)
                and type(alive) is bool
                and type(tags) is list
                and type(groups) is list
                and type(st) is str
                and type(ad) is str
                and type(ls) is str
                and (ex is None or (type(ex) is str and ex[-1:] == "Z"))
                and st[-1:] == ad[-1:] == ls[-1:] == "Z"  # UTC: aware, as parse_time asks
                and -ID_MAX <= i <= ID_MAX
                and -ID_MAX <= pid <= ID_MAX
                and (pgid is None or -ID_MAX <= pgid <= ID_MAX)
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
                    )
    except (KeyError, TypeError, ValueError):
        pass
    return _entry_from_dict(obj)


def _entry_from_dict(obj: Any) -> Proc:
    if type(obj) is not dict:
        raise BadEntry(f"an entry must be an object, got {_short(obj)}")
    keys = obj.keys()
    if keys != ENTRY_KEYS:
        unknown, missing = keys - ENTRY_KEYS, ENTRY_KEYS - keys - {"exited_at"}
        if unknown or missing:
            raise BadEntry(f"unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    pgid, name, exited, alive = obj["pgid"], obj["name"], obj.get("exited_at"), obj["alive"]
    if type(alive) is not bool:
        raise BadEntry(f"alive: must be true or false, got {_short(alive)}")
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
    )


def entry_text(p: Proc) -> str:
    """`entry_dict(p)` as the compact JSON the encoder makes of it, made directly (a
    test holds the two to the same text for any entry)."""
    pgid, name, exited = p.pgid, p.name, p.exited_at
    return _TEMPLATE % (
        p.id,
        p.pid,
        "null" if pgid is None else "%d" % pgid,  # noqa: UP031
        _quote(p.cmd),
        "null" if name is None else _quote(name),
        "true" if p.alive else "false",
        _labels(p.tags),
        _labels(p.groups),
        format_time(p.started_at),
        format_time(p.added_at),
        format_time(p.last_seen),
        "null" if exited is None else '"' + format_time(exited) + '"',
    )


def entry_json(p: Proc) -> bytes:
    return entry_text(p).encode()


def entry_lines(procs: Sequence[Proc], sep: bytes = b",") -> list[bytes]:
    """The entries' encodings joined by `sep`, a chunk of entries per bytes object."""
    glue = sep.decode()
    return [
        glue.join(map(entry_text, procs[start : start + _CHUNK])).encode()
        for start in range(0, len(procs), _CHUNK)
    ]


def entries_json(procs: Sequence[Proc]) -> RawJSON:
    """An array of entries, encoded a chunk at a time as the parts are taken."""
    return RawJSON(_array_parts(procs))


def _array_parts(procs: Sequence[Proc]) -> Iterator[bytes]:
    if not procs:
        yield b"[]"
        return
    yield b"["
    for start in range(0, len(procs), _CHUNK):
        text = ",".join(map(entry_text, procs[start : start + _CHUNK]))
        yield (text if start == 0 else "," + text).encode()
    yield b"]"
