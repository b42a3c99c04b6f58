"""Configuration: a JSON file (`--config`), environment overrides, defaults.  No trio.

Precedence: a valid `GOPROC_*` variable > the file > the default.  A bad file is an
error naming the file and the key; a bad variable is a warning naming the variable and
its value, and is ignored.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from attrs import fields, frozen

from goproc.durations import parse_duration
from goproc.errors import ConfigError


@frozen
class Config:
    """Every setting of the daemon; durations are in seconds."""

    liveness_interval: float = 10.0  # how often every entry is probed
    last_seen_interval: float = 30.0  # at most this often `last_seen` moves forward
    snapshot_delay: float = 0.5  # a burst of changes within this is written once
    max_request_bytes: int = 1024 * 1024  # longer request lines are refused
    max_connections: int = 256  # more at once are refused
    idle_timeout: float = 600.0  # a connection with nothing in flight and no subscription
    send_timeout: float = 10.0  # a client that reads no reply this long is dropped
    exit_watch: str = "auto"  # "auto": pidfd per process where the OS has it; "poll": ticker only
    event_queue: int = 1024  # events a subscriber may have pending before it is dropped
    max_batch: int = 1000  # requests in one batch; a longer batch is refused whole
    max_subscriptions: int = 64  # subscriptions one connection may hold
    max_subscriptions_total: int = 1024  # subscriptions all connections together may hold
    # Descriptors below the fd limit that pidfds never take (the entries beyond are
    # polled), half of them also kept from client connections: the listener, the
    # journal, snapshots and probes always have descriptors to work with.
    fd_reserve: int = 64
    # When the journal is fdatasync'ed: "interval" (at most every `journal_sync_interval`)
    # or "always" (before each change is answered).  Either way an answered change is
    # written to the kernel first, so it survives a crash of the daemon.
    journal_fsync: str = "interval"
    journal_sync_interval: float = 1.0
    # How often every alive entry's CPU, memory, io and descriptors are read; 0: never
    # (`"off"` or `"0"` in the file or `GOPROC_METRICS_INTERVAL`).
    metrics_interval: float = 2.0
    metrics_history: int = 300  # samples kept per entry (memory only)
    # How often /proc is scanned for new processes while adoption rules exist (none:
    # never).
    discovery_interval: float = 0.1


# Each duration key and its floor, as text and in seconds: below it a daemon would spin
# (a 1ns liveness interval sweeps without pause) or drop clients at once.
DURATION_FLOORS = {
    "liveness_interval": ("100ms", 0.1),
    "last_seen_interval": ("100ms", 0.1),
    "snapshot_delay": ("1ms", 0.001),
    "send_timeout": ("100ms", 0.1),
    "idle_timeout": ("100ms", 0.1),
    "journal_sync_interval": ("1ms", 0.001),
    "metrics_interval": ("100ms", 0.1),
    "discovery_interval": ("10ms", 0.01),
}
# Duration keys that may also be off (0): `0`, `"0"` or `"off"`.
OFF_KEYS = ("metrics_interval",)
DURATION_KEYS = tuple(DURATION_FLOORS)
CHOICE_KEYS = {"exit_watch": ("auto", "poll"), "journal_fsync": ("interval", "always")}
ENV_KEYS = {
    "liveness_interval": "GOPROC_LIVENESS_INTERVAL",
    "last_seen_interval": "GOPROC_LAST_SEEN_INTERVAL",
    "metrics_interval": "GOPROC_METRICS_INTERVAL",
    "discovery_interval": "GOPROC_DISCOVERY_INTERVAL",
}


def _duration(key: str, value: Any) -> float:
    """A duration setting: a Go duration string, exactly (no spaces around it), at
    least the key's floor (or off, for the keys that may be: see OFF_KEYS)."""
    if key in OFF_KEYS and (value in ("0", "off") or (type(value) is int and value == 0)):
        return 0.0
    if not isinstance(value, str):
        raise ValueError(f'must be a duration string like "10s", got {json.dumps(value)}')
    if value != value.strip():
        raise ValueError(f"must not have spaces around it, got {value!r}")
    seconds = parse_duration(value)
    floor_text, floor = DURATION_FLOORS[key]
    if seconds < floor:
        raise ValueError(f"must be at least {floor_text}, got {value!r}")
    return seconds


def load_config(path: Path | str | None, environ: dict[str, str] | None = None) -> Config:
    """The effective config; raises ConfigError for a bad file."""
    environ = dict(os.environ) if environ is None else environ
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_read_file(Path(path)))
    for key, var in ENV_KEYS.items():
        raw = environ.get(var)
        if raw is None:
            continue
        try:
            values[key] = _duration(key, raw)
        except ValueError as e:
            print(f"goproc: warning: ignoring {var}={raw!r}: {e}", file=sys.stderr)
    raw = environ.get("GOPROC_EXIT_WATCH")
    if raw is not None:
        if raw in CHOICE_KEYS["exit_watch"]:
            values["exit_watch"] = raw
        else:
            print(
                f"goproc: warning: ignoring GOPROC_EXIT_WATCH={raw!r}: must be auto or poll",
                file=sys.stderr,
            )
    return Config(**values)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"config {path}: cannot read: {e.strerror}") from None
    except RecursionError:
        raise ConfigError(f"config {path}: not valid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"config {path}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: must be a JSON object")
    known = {f.name for f in fields(Config)}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(
                f"config {path}: unknown key {key!r} (known: {', '.join(sorted(known))})"
            )
        try:
            if key in DURATION_KEYS:
                out[key] = _duration(key, value)
            elif key in CHOICE_KEYS:
                if value not in CHOICE_KEYS[key]:
                    choices = " or ".join(json.dumps(c) for c in CHOICE_KEYS[key])
                    raise ValueError(f"must be {choices}, got {json.dumps(value)}")
                out[key] = value
            elif type(value) is not int or value <= 0:
                raise ValueError(f"must be a positive integer, got {json.dumps(value)}")
            else:
                out[key] = value
        except ValueError as e:
            raise ConfigError(f"config {path}: key {key!r}: {e}") from None
    return out
