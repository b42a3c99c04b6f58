"""`stop`, `start`, `restart`: the life of commands the daemon started (`goproc run`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from goproc import api
from goproc.cli import output
from goproc.cli.codes import ExitCode
from goproc.cli.escape import shown
from goproc.cli.flags import (
    AllFlag,
    Common,
    Json,
    OptionalTarget,
    Select,
    connect,
    seconds_of,
    targeted_of,
)

P = TypeVar("P")


def life_lines(verb: str) -> Any:
    """`Stopped id 3 (pid 1234, exit signal 15)`, one line an entry."""

    def lines(procs: Sequence[dict[str, Any]]) -> list[str]:
        out = []
        for p in procs:
            state = "running" if p["alive"] else _ended(p)
            out.append(f"{verb} id {shown(p['id'])} (pid {shown(p['pid'])}, {state})")
        return out

    return lines


def _ended(p: dict[str, Any]) -> str:
    if p.get("exit_code") is not None:
        return f"exit status {shown(p['exit_code'])}"
    if p.get("exit_signal") is not None:
        return f"killed by signal {shown(p['exit_signal'])}"
    return "exited"


def stop(
    target: OptionalTarget = None,
    /,
    *,
    select: Select | None = None,
    all_: AllFlag = False,
    timeout: str = "5s",
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """Stop commands goproc run started: TERM to the process group, KILL after --timeout;
    no restart follows, and the entries are kept (goproc start starts them again).

    Parameters
    ----------
    target
        An id or a name.
    timeout
        How long TERM gets before KILL: a duration (500ms, 5s, 1m) or seconds.
    """
    params = _stop_params(select, target, all_, timeout)
    return _acted(common, api.STOP, params, json_, "Stopped")


def start(
    target: OptionalTarget = None,
    /,
    *,
    select: Select | None = None,
    all_: AllFlag = False,
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """Start stopped (or exited) commands goproc run started, in the same entry: same
    id, name, labels and log files, a new pid.  Running ones are left as they are.

    Parameters
    ----------
    target
        An id or a name.
    """
    return _acted(common, api.START, targeted_of(select, target, all_), json_, "Started")


def _stop_params(
    select: Select | None, target: str | None, all_: bool, timeout: str
) -> api.StopParams:
    return api.StopParams(
        target=targeted_of(select, target, all_), timeout=seconds_of("--timeout", timeout)
    )


def _acted(
    common: Common | None, method: api.Method[P, Any], params: P, json_: bool, verb: str
) -> ExitCode:
    """One request (no timeout: a stop waits for its processes) and a line an entry."""
    with connect(common, None) as client:
        procs = client.call(method, params)
    output.emit(procs, json_, life_lines(verb))
    return ExitCode.OK


def restart(
    target: OptionalTarget = None,
    /,
    *,
    select: Select | None = None,
    all_: AllFlag = False,
    timeout: str = "5s",
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """Stop (as goproc stop does) and start again commands goproc run started.

    Parameters
    ----------
    target
        An id or a name.
    timeout
        How long TERM gets before KILL: a duration (500ms, 5s, 1m) or seconds.
    """
    params = _stop_params(select, target, all_, timeout)
    return _acted(common, api.RESTART, params, json_, "Restarted")
