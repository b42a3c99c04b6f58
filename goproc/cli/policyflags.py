"""`goproc run`'s flags for what the daemon starts: its environment and its restart
policy (`goproc.supervision` holds the rules), made into a `spawn` request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from attrs import define
from cyclopts import Parameter

from goproc import api
from goproc.cli.flags import Flag, Repeat, seconds_of
from goproc.errors import UsageError


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
        )
