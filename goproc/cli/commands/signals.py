"""`goproc kill` and `goproc wait`: signalling entries and waiting for them to exit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any

from cyclopts import Parameter

from goproc import api
from goproc.cli import output
from goproc.cli.client import Client
from goproc.cli.codes import ExitCode
from goproc.cli.flags import (
    AllFlag,
    Common,
    Flag,
    Json,
    OptionalTarget,
    Select,
    SignalName,
    connect,
    seconds_of,
    selector_of,
    signal_of,
    targeted_of,
)
from goproc.model import Selector


def kill(
    target: OptionalTarget = None,
    /,
    *,
    select: Select | None = None,
    all_: AllFlag = False,
    signal: SignalName = "TERM",
    timeout: str = "5s",
    group_kill: Flag = False,
    rm: Flag = False,
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """Signal matching alive entries.  With the default TERM, wait up to --timeout for
    each to exit, then send KILL.  Exit 1 when any signal failed.

    Parameters
    ----------
    target
        An id or a name.
    signal
        Signal name or number (TERM, HUP, INT, KILL, USR1, 9, ...).
    timeout
        How long TERM gets before KILL: a duration (500ms, 5s, 1m) or seconds; 0: no wait.
    group_kill
        Signal the whole process group.
    rm
        Forget the entries afterwards.
    """
    params = api.KillParams(
        timeout=seconds_of("--timeout", timeout),
        target=targeted_of(select, target, all_),
        signal=signal_of(signal),
        group=group_kill,
        rm=rm,
    )
    with connect(common, None) as client:
        results = client.call(api.KILL, params)
    output.emit(results, json_, output.kill_lines)
    return ExitCode.REMOTE if output.any_failed(results) else ExitCode.OK


def wait(
    target: OptionalTarget = None,
    /,
    *,
    select: Select | None = None,
    timeout: str = "30s",
    any_: Annotated[bool, Parameter(name="--any", negative=())] = False,
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """Block until every matching entry has exited (or, with --any, the first); print
    each as it exits.  Exit 0 when they exited, 1 on timeout (naming those still alive)
    or when some were removed meanwhile (a removal is not an exit).

    Parameters
    ----------
    target
        An id or a name.
    timeout
        How long to wait at most: a duration (500ms, 30s, 5m) or seconds.
    any_
        Return as soon as one of them has exited.
    """
    seconds = seconds_of("--timeout", timeout)
    shown: set[int] = set()

    def exited(proc: dict[str, Any]) -> None:
        if proc["id"] not in shown:
            shown.add(proc["id"])
            output.print_lines([output.exited_line(proc, json_)], flush=True)

    with connect(common, None) as client:
        result = _wait(client, selector_of(select, target), seconds, any_, exited)
    for proc in result["exited"]:
        exited(proc)
    code = ExitCode.OK
    if result["removed"]:
        output.print_lines([output.removed_line(result["removed"])], sys.stderr)
        code = ExitCode.REMOTE
    if result["timed_out"]:
        output.print_lines([output.timed_out_line(timeout, result["alive"])], sys.stderr)
        code = ExitCode.REMOTE
    return code


def _wait(
    client: Client,
    selector: Selector,
    seconds: api.Seconds,
    any_: bool,
    exited: Callable[[dict[str, Any]], None],
) -> Any:
    """The `wait` result; entries that exit meanwhile go to `exited` as they do.  The
    selector is fixed to the ids it matches now, which the subscription watches."""
    ids = tuple(p["id"] for p in client.call(api.LIST, selector))
    if ids:  # print exits as they happen; wait's reply ends it
        selector = Selector(ids=ids)
        client.call(api.SUBSCRIBE, selector)
    return client.call(
        api.WAIT,
        api.WaitParams(select=selector, timeout=seconds, any=any_),
        on_event=lambda e: exited(e["proc"]) if e["kind"] == "exited" else None,
    )
