"""The entry commands: `add`, `run` (a `spawn` request), `list`, `show`, `rm`, `name`,
`reset`.  `rm` and `reset` leave log files where they are."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import attrs

from goproc import api
from goproc.cli import output
from goproc.cli.client import Client
from goproc.cli.codes import ExitCode
from goproc.cli.flags import (
    AllFlag,
    Common,
    Flag,
    Json,
    Labels,
    OptionalTarget,
    PidArgs,
    Select,
    Target,
    call,
    connect,
    label_tuple,
    selector_of,
    targeted_of,
)
from goproc.cli.matchflags import MatchFlags, matched_lines
from goproc.cli.policyflags import Policy
from goproc.errors import UsageError
from goproc.model import LogFiles, Selector


def add(
    *pids: PidArgs,
    labels: Labels | None = None,
    find: MatchFlags | None = None,
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """Track running processes of yours by PID, or those --match (and the other finding
    flags) finds, as pgrep finds them; all or nothing (a name goes with one process
    only); processes tracked already are skipped.

    Parameters
    ----------
    pids
        The process ids.
    """
    if find is not None and find.given():
        if pids:
            raise UsageError("give PIDs or --match (and the like), not both")
        params = attrs.evolve((labels or Labels()).add_params([1]), pid=None)
        params = attrs.evolve(params, match=find.spec(), dry_run=find.dry_run)
        matched = call(common, api.ADD, params)["matched"]
        output.emit(matched, json_, matched_lines)
        return ExitCode.OK
    if not pids:
        raise UsageError("add needs at least one PID (or --match PATTERN)")
    result = call(common, api.ADD, (labels or Labels()).add_params(pids))
    procs = [result] if len(pids) == 1 else result
    output.emit(procs, json_, output.added_lines)
    return ExitCode.OK


def run(
    *command: str,
    labels: Labels | None = None,
    attach: Flag = False,
    log: str | None = None,
    policy: Policy | None = None,
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """Have the daemon start COMMAND (its own process group, stdin /dev/null) as its
    child and track it: it records the exit status and restarts it as --restart says.
    goproc exits at once while the command runs on, its output in log files (see goproc
    logs).  Use: goproc run [flags] -- CMD ARGS...

    Parameters
    ----------
    command
        The command and its arguments.
    attach
        Give the command this terminal's stdout and stderr instead (no log files).
    log
        Append both its stdout and its stderr to this file (made 0600 if missing).
    """
    if not command:
        raise UsageError("run needs a command: goproc run [flags] -- CMD ARGS...")
    if attach and log is not None:
        raise UsageError("--attach and --log exclude each other: give one")
    labels = labels or Labels()
    files: bool | LogFiles = True
    if log is not None:
        full = os.path.abspath(log)
        files = LogFiles(full, full)
    params = (policy or Policy()).spawn_params(command, os.getcwd(), dict(os.environ))
    params = attrs.evolve(
        params,
        tags=label_tuple(labels.tag or ()),
        groups=label_tuple(labels.group or ()),
        name=None if labels.name is None else api.Name(labels.name),
        log=False if attach else files,
        attach=attach,
    )
    with connect(common) as client:
        fds = (sys.stdout.fileno(), sys.stderr.fileno()) if attach else ()
        proc = client.call(api.SPAWN, params, fds=fds)
    output.emit(proc, json_, output.started_lines)
    return ExitCode.OK


def show(
    target: OptionalTarget = None,
    /,
    *,
    select: Select | None = None,
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """Show one entry in full, by ID or NAME (or selector flags matching exactly one).

    Parameters
    ----------
    target
        An id or a name.
    """
    with connect(common) as client:
        proc = client.call(api.SHOW, selector_of(select, target))
        history = [] if json_ or proc.get("metrics") is None else _history(client, proc["id"])
    now, local = time.time(), sys.stdout.isatty()
    ascii = (sys.stdout.encoding or "").lower().replace("-", "") != "utf8"
    output.emit(proc, json_, lambda p: output.show_lines(p, now, local, history, ascii))
    return ExitCode.OK


def _history(client: Client, proc_id: int) -> list[dict[str, Any]]:
    """The entry's metrics samples, oldest first (none when it has gone meanwhile)."""
    params = api.HistoryParams(select=Selector(ids=(api.ProcId(proc_id),)))
    found = client.call(api.METRICS_HISTORY, params)
    return list(found[0]["samples"]) if found else []


def rm(
    target: OptionalTarget = None,
    /,
    *,
    select: Select | None = None,
    all_: AllFlag = False,
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """Forget entries (the processes are not touched); more than one needs --all.

    Parameters
    ----------
    target
        An id or a name.
    """
    removed = call(common, api.REMOVE, targeted_of(select, target, all_))
    output.emit(removed, json_, output.removed_lines)
    return ExitCode.OK


def name(
    target: Target,
    new_name: str | None = None,
    /,
    *,
    clear: Flag = False,
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """Set (goproc name ID|NAME NEW) or clear (goproc name ID|NAME --clear) a unique name.

    Parameters
    ----------
    target
        The entry: an id or its current name.
    new_name
        The new name.
    clear
        Remove the name.
    """
    if clear == (new_name is not None):
        raise UsageError("give either a new name or --clear")
    params = api.NameParams(
        name=None if new_name is None else api.Name(new_name), select=selector_of(None, target)
    )
    output.emit(call(common, api.NAME_SET, params), json_, output.named_lines)
    return ExitCode.OK


def reset(*, confirm: str = "", json_: Json = False, common: Common | None = None) -> ExitCode:
    """Forget every entry and every rule, and restart ids at 1.  Needs --confirm RESET.

    Parameters
    ----------
    confirm
        Must be exactly RESET.
    """
    result = call(common, api.RESET, api.ResetParams(confirm=confirm))
    output.emit(result, json_, output.reset_lines)
    return ExitCode.OK
