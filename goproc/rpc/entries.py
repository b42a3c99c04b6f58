"""Entries (`goproc.model.Proc`) as JSON, fast: the wire form of `list`, `show`, events,
the journal and the snapshot.  Pure: no trio, no I/O.

An entry is encoded when it is sent, never cached: 100,000 entries cost their objects
and nothing more.  `entry_dict` is the one definition of the form; `entry_json` and
`entries_json` are that dict through the C JSON encoder, a chunk of entries per call.
Timestamps are RFC 3339 UTC with microseconds; the date of a day is formatted once and
kept in a small bounded cache.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from attrs import frozen

from goproc.model import Proc

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_CHUNK = 1000  # entries per call of the C encoder
_DAYS_CACHE = 4096


@frozen
class RawJSON:
    """A result already encoded, in parts that the reply writer splices in as they are:
    a reply of 100,000 entries is never copied whole."""

    parts: tuple[bytes, ...]


def dumps(value: Any) -> bytes:
    """Compact JSON, ASCII with escapes (lone surrogates included), no NaN."""
    return _ENCODER.encode(value).encode()


_day_text: dict[int, str] = {}


def format_time(ts: float) -> str:
    """Seconds since the epoch as an RFC 3339 UTC string with microseconds: exactly
    `datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")` with `Z` (the
    same round-half-even of the fraction), several times faster: the date of a day is
    made once and kept, the time of day is arithmetic."""
    frac, whole = math.modf(ts)
    us = round(frac * 1e6)
    if us >= 1_000_000:
        us -= 1_000_000
        whole += 1.0
    elif us < 0:
        us += 1_000_000
        whole -= 1.0
    day, rem = divmod(int(whole), 86400)
    date = _day_text.get(day)
    if date is None:
        if len(_day_text) >= _DAYS_CACHE:
            _day_text.clear()
        date = _day_text[day] = datetime.fromtimestamp(day * 86400, UTC).date().isoformat()
    hour, rem = divmod(rem, 3600)
    minute, second = divmod(rem, 60)
    return "%sT%02d:%02d:%02d.%06dZ" % (date, hour, minute, second, us)  # noqa: UP031  # fastest


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


def entry_json(p: Proc) -> bytes:
    return dumps(entry_dict(p))


def entry_lines(procs: Sequence[Proc], sep: bytes = b",") -> list[bytes]:
    """The entries' encodings, joined by `sep` a chunk at a time (a chunk each)."""
    out = []
    for start in range(0, len(procs), _CHUNK):
        chunk = [entry_dict(p) for p in procs[start : start + _CHUNK]]
        text = _ENCODER.encode(chunk)[1:-1]  # one C call for the chunk, brackets cut
        if sep != b",":
            text = text.replace('},{"id":', "}" + sep.decode() + '{"id":')
        out.append(text.encode())
    return out


def entries_json(procs: Sequence[Proc]) -> RawJSON:
    """An array of entries as parts `[`, chunk, `,`, chunk, ..., `]`."""
    if not procs:
        return RawJSON((b"[]",))
    parts = [b"["]
    for n, chunk in enumerate(entry_lines(procs)):
        if n:
            parts.append(b",")
        parts.append(chunk)
    parts.append(b"]")
    return RawJSON(tuple(parts))
