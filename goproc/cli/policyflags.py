"""`goproc run`'s flags for what the daemon starts: its environment and its restart
policy (`goproc.supervision` holds the rules), made into a `spawn` request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from attrs import define
from cyclopts import Parameter

from goproc import api
from goproc.cli.flags import Flag, Repeat, seconds_of
from goproc.errors import UsageError
from goproc.logformat import MIN_MAX_BYTES, SIZE_MAX


@Parameter(name="*")
@define
class Policy:
    """The environment and the restart policy of a command `run` starts."""

    env: Repeat = None
    "Set KEY=VAL in its environment (repeatable)."
    clear_env: Flag = False
    "Start it with no environment but the --env ones (default: this shell's)."
    restart: str = "never"
    "When to start it again after it exits: never, on-failure (not status 0) or always."
    max_restarts: int | None = None
    "At most this many restarts within --restart-window (default: no limit)."
    restart_window: str = "60s"
    "The window --max-restarts counts in, and after which the backoff starts over."
    backoff: str = "1s..60s"
    "The delay before a restart, MIN..MAX: it doubles from MIN with each restart in the window."
    log_max_bytes: str | None = None
    "Rotate its log files at this size: bytes, or with K, M or G (KiB...) (default: the daemon's)."

    def spawn_params(
        self, command: Sequence[str], cwd: str, environ: Mapping[str, str]
    ) -> api.SpawnParams:
        if self.restart not in api.RESTARTS:
            raise UsageError(f"--restart: must be one of {', '.join(api.RESTARTS)}")
        if self.max_restarts is not None and self.max_restarts < 1:
            raise UsageError("--max-restarts: must be at least 1 (or --restart never)")
        low_text, sep, high_text = self.backoff.partition("..")
        if not sep:
            raise UsageError(f"--backoff: must be MIN..MAX (e.g. 1s..60s), got {self.backoff!r}")
        low, high = seconds_of("--backoff", low_text), seconds_of("--backoff", high_text)
        if low > high:
            raise UsageError("--backoff: MIN must not be above MAX")
        env = {} if self.clear_env else dict(environ)
        for item in self.env or ():
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise UsageError(f"--env: must be KEY=VAL, got {item!r}")
            env[key] = value
        return api.SpawnParams(
            argv=tuple(command),
            cwd=cwd,
            env=tuple(f"{k}={v}" for k, v in env.items()),
            restart=self.restart,
            max_restarts=None if self.max_restarts is None else api.Count(self.max_restarts),
            restart_window=seconds_of("--restart-window", self.restart_window),
            backoff_min=low,
            backoff_max=high,
            log_max_bytes=None if self.log_max_bytes is None else size_of(self.log_max_bytes),
        )


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def size_of(text: str) -> api.ByteSize:
    """`--log-max-bytes`: a count of bytes, with K, M or G for KiB, MiB, GiB."""
    digits, unit = (text[:-1], text[-1].upper()) if text[-1:].isalpha() else (text, "")
    if not (digits.isascii() and digits.isdigit()) or unit not in _UNITS:
        raise UsageError(f"--log-max-bytes: must be bytes, or a number with K, M or G: {text!r}")
    size = int(digits) * _UNITS[unit]
    if not MIN_MAX_BYTES <= size <= SIZE_MAX:
        raise UsageError(f"--log-max-bytes: must be from 4K to {SIZE_MAX} bytes, got {text!r}")
    return api.ByteSize(size)
