"""Entries (`goproc.model.Proc`) as JSON, fast: the stored form (the journal and the
snapshot, read back by `goproc.rpc.decoding`) and the wire form of `list`, `show` and
events, which is the stored form with the entry's `metrics` (memory only, never stored)
added last, just before its closing brace.  Pure: no trio, no I/O.

An entry is encoded when it is sent, never cached: 100,000 entries cost their objects
and nothing more.  `entry_dict` is the one definition of the form; `entry_json` and
`entries_json` are that dict through the C JSON encoder, a chunk of entries per call.
Timestamps are RFC 3339 UTC with microseconds; the text of a minute is formatted once
and kept in a bounded cache.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, Protocol

from attrs import frozen

from goproc.metrics import Metrics
from goproc.model import LogFiles, Proc, Spawned

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
        raise ValueError(f"must be an RFC 3339 timestamp string, got {short_json(value)}")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"must be an RFC 3339 timestamp, got {short_json(value)}") from None
    if dt.tzinfo is None:
        raise ValueError(f"must carry a time zone (e.g. 'Z'), got {short_json(value)}")
    return dt.timestamp()


def short_json(value: object) -> str:
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
        "log": log_dict(p.log),
        "adopted_by": p.adopted_by,
        "spawned": spawned_dict(p.spawned),
        "exit_code": p.exit_code,
        "exit_signal": p.exit_signal,
        "restarts": p.restarts,
        "stopped": p.stopped,
    }


def spawned_dict(s: Spawned | None) -> dict[str, Any] | None:
    """An entry's `spawned` on the wire: null, or its command and restart policy."""
    if s is None:
        return None
    return {
        "argv": list(s.argv),
        "cwd": s.cwd,
        "env": list(s.env),
        "restart": s.restart,
        "max_restarts": s.max_restarts,
        "restart_window": s.restart_window,
        "backoff_min": s.backoff_min,
        "backoff_max": s.backoff_max,
        "log_max_bytes": s.log_max_bytes,
    }


def watched_only(p: Proc) -> bool:
    """Whether the entry's supervision fields are all at their defaults (most are)."""
    return (
        p.spawned is None
        and p.exit_code is None
        and p.exit_signal is None
        and not p.restarts
        and not p.stopped
    )


def _supervision_text(p: Proc) -> str:
    """The members after `adopted_by`, as `entry_dict` has them, for an entry that is
    not only watched (`entry_text` writes `_WATCHED`, made once, for the others)."""
    s, code, sig = p.spawned, p.exit_code, p.exit_signal
    return (
        ',"spawned":%s,"exit_code":%s,"exit_signal":%s,"restarts":%d,"stopped":%s'  # noqa: UP031
        % (
            "null" if s is None else _ENCODER.encode(spawned_dict(s)),
            "null" if code is None else "%d" % code,  # noqa: UP031
            "null" if sig is None else "%d" % sig,  # noqa: UP031
            p.restarts,
            "true" if p.stopped else "false",
        )
    )


_WATCHED = ',"spawned":null,"exit_code":null,"exit_signal":null,"restarts":0,"stopped":false'


def log_dict(log: LogFiles | None) -> dict[str, str] | None:
    """An entry's `log` on the wire: null, or its two paths."""
    return None if log is None else {"out": log.out, "err": log.err}


_TEMPLATE = (
    '{"id":%d,"pid":%d,"pgid":%s,"cmd":%s,"name":%s,"alive":%s,"tags":%s,"groups":%s,'
    '"started_at":"%s","added_at":"%s","last_seen":"%s","exited_at":%s,"log":%s,'
    '"adopted_by":%s%s}'
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


def entry_text(p: Proc) -> str:
    """`entry_dict(p)` as the compact JSON the encoder makes of it, made directly (a
    test holds the two to the same text for any entry)."""
    pgid, name, exited, log, rule = p.pgid, p.name, p.exited_at, p.log, p.adopted_by
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
        "null" if log is None else '{"out":' + _quote(log.out) + ',"err":' + _quote(log.err) + "}",
        "null" if rule is None else "%d" % rule,  # noqa: UP031
        _WATCHED
        if p.spawned is None
        and p.exit_code is None
        and p.exit_signal is None
        and not p.restarts
        and not p.stopped
        else _supervision_text(p),
    )


def entry_json(p: Proc) -> bytes:
    return entry_text(p).encode()


class MetricsSource(Protocol):
    """An entry's latest metrics (`goproc.metrics.MetricsStore`): None while never
    sampled, once dead, or for an entry whose process it is not."""

    def latest(self, p: Proc) -> Metrics | None: ...

    def text(self, p: Proc) -> str | None:
        """`metrics_text(latest(p))`, made once per sample."""
        ...


class NoMetrics:
    """Nothing sampled: every entry's metrics are null."""

    def latest(self, p: Proc) -> Metrics | None:
        return None

    def text(self, p: Proc) -> str | None:
        return None


NO_METRICS = NoMetrics()
METRICS_KEY = ',"metrics":'
NULL_METRICS = METRICS_KEY + "null"


def metrics_dict(m: Metrics | None) -> dict[str, Any] | None:
    """An entry's `metrics` on the wire (spec/openrpc.json's `Metrics`), or None."""
    if m is None:
        return None
    out = m._asdict()  # the fields in the wire's order
    out["sampled_at"] = format_time(m.sampled_at)
    return out


def metrics_text(m: Metrics) -> str:
    return _ENCODER.encode(metrics_dict(m))


def wire_dict(p: Proc, metrics: MetricsSource = NO_METRICS) -> dict[str, Any]:
    """The wire form of an entry as a plain dict: `entry_dict` and its `metrics`."""
    out = entry_dict(p)
    out["metrics"] = metrics_dict(metrics.latest(p))
    return out


def wire_text(p: Proc, metrics: MetricsSource = NO_METRICS) -> str:
    """`wire_dict(p, metrics)` as compact JSON: the stored form with `metrics` spliced
    in before its closing brace."""
    m = metrics.text(p)
    return entry_text(p)[:-1] + (NULL_METRICS if m is None else METRICS_KEY + m) + "}"


def wire_json(p: Proc, metrics: MetricsSource = NO_METRICS) -> bytes:
    return wire_text(p, metrics).encode()


def spliced(p: Proc, metrics: str | None) -> bytes:
    """The wire form of `p` with the given metrics text (None: null)."""
    return (
        entry_text(p)[:-1] + (NULL_METRICS if metrics is None else METRICS_KEY + metrics) + "}"
    ).encode()


def wire_run(procs: Sequence[Proc], metrics: MetricsSource = NO_METRICS) -> bytes:
    """Entries in their wire form joined by ","."""
    return ",".join([wire_text(p, metrics) for p in procs]).encode()


def entry_lines(procs: Sequence[Proc], sep: bytes = b",") -> list[bytes]:
    """The entries' encodings joined by `sep`, a chunk of entries per bytes object."""
    glue = sep.decode()
    return [
        glue.join(map(entry_text, procs[start : start + _CHUNK])).encode()
        for start in range(0, len(procs), _CHUNK)
    ]


def entries_json(procs: Sequence[Proc], metrics: MetricsSource = NO_METRICS) -> RawJSON:
    """An array of entries in their wire form, encoded a chunk at a time as the parts
    are taken."""
    return RawJSON(_array_parts(procs, metrics))


def _array_parts(procs: Sequence[Proc], metrics: MetricsSource) -> Iterator[bytes]:
    if not procs:
        yield b"[]"
        return
    yield b"["
    for start in range(0, len(procs), _CHUNK):
        text = wire_run(procs[start : start + _CHUNK], metrics)
        yield text if start == 0 else b"," + text
    yield b"]"
