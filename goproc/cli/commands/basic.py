"""`goproc daemon`, `goproc ping`, `goproc status`.

`daemon` execs the daemon's own program (`python -m goproc.daemon`): the CLI never
imports the daemon's code, and the process (its pid) stays the same.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

from cyclopts import Parameter

from goproc import api
from goproc.cli import output
from goproc.cli.codes import ExitCode
from goproc.cli.flags import Common, Json, call, connect, timeout_of


def daemon(
    *,
    force: Annotated[bool, Parameter(name=["--force", "-f"], negative=())] = False,
    fresh: Annotated[bool, Parameter(name=["--fresh"], negative=())] = False,
    http: str | None = None,
    common: Common | None = None,
) -> ExitCode:
    """Run the daemon in the foreground (Ctrl+C stops it cleanly).

    Parameters
    ----------
    force
        Stop a daemon already running on this state dir (SIGTERM, then SIGKILL) and take over.
    fresh
        Start empty when the state dir holds earlier state but no snapshot that loads
        (without it that start is refused, naming the files): they are set aside, never
        deleted, and ids go on above every one they show. A state that loads is loaded.
    http
        Serve the read-only HTTP listener on this address (127.0.0.1:PORT, [::1]:PORT or
        unix:/abs/path); overrides the config's http_listen.
    """
    # The daemon program loads (and checks) the config itself: loading it here too
    # would print each environment warning twice.
    config = common.config if common is not None else None
    argv = [sys.executable, "-m", "goproc.daemon"]
    argv += ["--force"] if force else []
    argv += ["--fresh"] if fresh else []
    argv += [f"--http={http}"] if http is not None else []
    argv += [f"--config={config}"] if config is not None else []  # a path may start with -
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


def ping(*, timeout: str = "5s", common: Common | None = None) -> ExitCode:
    """Check that the daemon answers; prints pong.

    Parameters
    ----------
    timeout
        How long to wait for the answer: a duration (500ms, 2s) or seconds; more than 0.
    """
    seconds = timeout_of("--timeout", timeout)
    with connect(common, seconds) as client:
        output.say([client.call(api.PING, api.NoParams())])
    return ExitCode.OK


def status(*, json_: Json = False, common: Common | None = None) -> ExitCode:
    """Show the daemon's pid, socket, state dir and counters."""
    output.emit(call(common, api.STATUS, api.NoParams()), json_, output.status_lines)
    return ExitCode.OK
