"""The entry commands: `add`, `run`, `list`, `show`, `rm`, `name`, `reset`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

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
    selector_of,
    targeted_of,
)
from goproc.errors import UsageError


def add(
    *pids: PidArgs,
    labels: Labels | None = None,
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """Track running processes of yours by PID; several PIDs are added all or nothing
    (a name goes with one PID only).

    Parameters
    ----------
    pids
        The process ids.
    """
    if not pids:
        raise UsageError("add needs at least one PID")
    result = call(common, api.ADD, (labels or Labels()).add_params(pids))
    procs = [result] if len(pids) == 1 else result
    output.emit(result, json_, lambda _: output.added_lines(procs))
    return ExitCode.OK


def run(
    *command: str,
    labels: Labels | None = None,
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """Start COMMAND in its own process group (with this terminal's stdio) and track it;
    goproc exits at once while the command runs on.  Use: goproc run [flags] -- CMD ARGS...

    Parameters
    ----------
    command
        The command and its arguments.
    """
    if not command:
        raise UsageError("run needs a command: goproc run [flags] -- CMD ARGS...")
    with connect(common) as client:  # reachable before anything is started
        try:
            child = subprocess.Popen(list(command), process_group=0)
        except OSError as e:
            output.error(f"cannot run {command[0]!r}: {e.strerror or e}")
            return ExitCode.CANNOT_RUN
        proc = _track(client, child, labels or Labels())
    child.returncode = 0  # it runs on: keep Popen's finalizer from warning about it
    output.emit(proc, json_, output.started_lines)
    return ExitCode.OK


def _track(client: Client, child: subprocess.Popen[bytes], labels: Labels) -> Any:
    """Add the child; not tracked means not started: never leave an untracked child."""
    try:
        return client.call(api.ADD, labels.add_params([child.pid]))
    except BaseException:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except OSError:
            child.kill()
        child.wait()
        raise


def list_(
    *, select: Select | None = None, json_: Json = False, common: Common | None = None
) -> ExitCode:
    """List tracked processes, filtered; filters combine with AND."""
    selector = selector_of(select)
    with connect(common) as client:
        if json_:
            output.write_entries_json(client.call_raw(api.LIST, selector), sys.stdout)
            return ExitCode.OK
        procs = client.call(api.LIST, selector)
    colour, columns = _terminal()
    output.print_lines(output.table_lines(procs, colour=colour, columns=columns))
    return ExitCode.OK


def _terminal() -> tuple[bool, int | None]:
    """Whether the table is coloured and the width it is cut to: on a terminal its
    width, and colour unless NO_COLOR is set; otherwise neither."""
    if not sys.stdout.isatty():
        return False, None
    try:
        columns = os.get_terminal_size(sys.stdout.fileno()).columns
    except OSError:
        columns = 80
    return "NO_COLOR" not in os.environ, columns


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
    output.emit(call(common, api.SHOW, selector_of(select, target)), json_, output.show_lines)
    return ExitCode.OK


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
    """Forget every entry and restart ids at 1.  Needs --confirm RESET.

    Parameters
    ----------
    confirm
        Must be exactly RESET.
    """
    result = call(common, api.RESET, api.ResetParams(confirm=confirm))
    output.emit(result, json_, output.reset_lines)
    return ExitCode.OK
