"""Configuration: a JSON file (`--config`), environment overrides, defaults.  No trio.

Precedence: a valid `GOPROC_*` variable > the file > the default.  A bad file is an
error naming the file and the key; a bad variable is a warning naming the variable and
its value, and is ignored.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from attrs import evolve, fields, frozen

from goproc.durations import parse_duration
from goproc.errors import ConfigError
from goproc.logformat import DEFAULT_KEEP, DEFAULT_MAX_BYTES, KEEP_MAX, MIN_MAX_BYTES, SIZE_MAX


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
    # The read-only HTTP listener (off: None): "127.0.0.1:PORT", "[::1]:PORT" or
    # "unix:/abs/path" (port 0: any free one, named by `status`).  An address beyond
    # loopback needs `http_token`; with one, every request carries it as a bearer token.
    http_listen: str | None = None
    http_token: str | None = None
    http_show_cmd: bool = True  # False: HTTP answers carry `cmd` as null
    # A started command's own log files are rotated once they hold this many bytes
    # (at a line's end), keeping this many rotated files besides the current one.
    log_max_bytes: int = DEFAULT_MAX_BYTES
    log_keep: int = DEFAULT_KEEP


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
HTTP_KEYS = ("http_listen", "http_token", "http_show_cmd")
CHOICE_KEYS = {"exit_watch": ("auto", "poll"), "journal_fsync": ("interval", "always")}
ENV_KEYS = {
    "liveness_interval": "GOPROC_LIVENESS_INTERVAL",
    "last_seen_interval": "GOPROC_LAST_SEEN_INTERVAL",
    "metrics_interval": "GOPROC_METRICS_INTERVAL",
    "discovery_interval": "GOPROC_DISCOVERY_INTERVAL",
}


# Integer keys with bounds of their own (the others are positive integers).
SIZE_KEYS = {"log_max_bytes": (MIN_MAX_BYTES, SIZE_MAX), "log_keep": (0, KEEP_MAX)}


def _size(key: str, value: Any) -> int:
    lo, hi = SIZE_KEYS[key]
    if type(value) is not int or not lo <= value <= hi:
        raise ValueError(f"must be an integer from {lo} to {hi}, got {json.dumps(value)}")
    return value


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


_PORT = r"(0|[1-9][0-9]{0,4})"
_INET = re.compile(r"([0-9.]+):" + _PORT)
_INET6 = re.compile(r"\[([0-9A-Fa-f:.]+)\]:" + _PORT)
UNIX_PATH_MAX = 107  # bytes of a UNIX socket path (sockaddr_un.sun_path, less its NUL)


def http_address(value: Any) -> str:
    """An `http_listen` value checked: `IPV4:PORT`, `[IPV6]:PORT` (literal addresses,
    no host names) or `unix:/abs/path`; raises ValueError saying what is wrong."""
    if not isinstance(value, str):
        raise ValueError(f'must be a string like "127.0.0.1:8080", got {json.dumps(value)}')
    if value.startswith("unix:"):
        path = value[5:]
        if not path.startswith("/") or "\0" in path or path.endswith("/"):
            raise ValueError(f"unix: must be followed by an absolute file path, got {value!r}")
        if len(os.fsencode(path)) > UNIX_PATH_MAX:
            raise ValueError(f"the path is longer than {UNIX_PATH_MAX} bytes: {value!r}")
        return value
    m = _INET.fullmatch(value) or _INET6.fullmatch(value)
    if m is None or int(m.group(2)) > 65535:
        raise ValueError(
            f"must be IPV4:PORT, [IPV6]:PORT or unix:/abs/path (port 0-65535), got {value!r}"
        )
    try:
        ip = ipaddress.ip_address(m.group(1))
    except ValueError:
        raise ValueError(f"{m.group(1)!r} is not an IP address (in {value!r})") from None
    if ip.version != (6 if value.startswith("[") else 4):
        raise ValueError(f"an IPv6 address goes in brackets, got {value!r}")
    return value


def is_local(listen: str) -> bool:
    """Whether a checked `http_listen` value is reachable from this machine only:
    unix:, 127.0.0.0/8 or ::1."""
    if listen.startswith("unix:"):
        return True
    host = listen.rsplit(":", 1)[0].strip("[]")
    return ipaddress.ip_address(host).is_loopback


def with_http(config: Config, listen: str, source: str = "--http") -> Config:
    """`config` listening on `listen` (from the `--http` flag); raises ConfigError."""
    try:
        return evolve(config, http_listen=http_address(listen))
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from None


def check_http_exposure(config: Config) -> None:
    """Refuse (ConfigError) to listen beyond this machine without a token."""
    listen = config.http_listen
    if listen is not None and config.http_token is None and not is_local(listen):
        raise ConfigError(
            f"http_listen {listen!r} is reachable from other machines: set http_token "
            "too, or listen on 127.0.0.1, [::1] or unix:"
        )


def _http_value(key: str, value: Any) -> Any:
    if key == "http_show_cmd":
        if type(value) is not bool:
            raise ValueError(f"must be true or false, got {json.dumps(value)}")
        return value
    if value is None:
        return None
    if key == "http_listen":
        return http_address(value)
    if (
        not isinstance(value, str)
        or not value
        or not value.isascii()
        or not value.isprintable()
        or " " in value
    ):
        raise ValueError("must be a non-empty string of printable ASCII without spaces")
    return value


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
            elif key in HTTP_KEYS:
                out[key] = _http_value(key, value)
            elif key in CHOICE_KEYS:
                if value not in CHOICE_KEYS[key]:
                    choices = " or ".join(json.dumps(c) for c in CHOICE_KEYS[key])
                    raise ValueError(f"must be {choices}, got {json.dumps(value)}")
                out[key] = value
            elif key in SIZE_KEYS:
                out[key] = _size(key, value)
            elif type(value) is not int or value <= 0:
                raise ValueError(f"must be a positive integer, got {json.dumps(value)}")
            else:
                out[key] = value
        except ValueError as e:
            raise ConfigError(f"config {path}: key {key!r}: {e}") from None
    return out
