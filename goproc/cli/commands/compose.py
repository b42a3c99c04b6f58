"""`goproc up [FILE]` and `goproc down [FILE]`: bring up, or stop, the programs a process
file declares (`goproc.procfile`), as `docker compose up` and `down` do.  What `up`
does for each program is planned whole first (`goproc.cli.upplan`), so a bad file or a
name taken by an entry goproc did not start refuses everything and changes nothing."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from goproc import api
from goproc.cli import output
from goproc.cli.client import Client
from goproc.cli.codes import ExitCode
from goproc.cli.escape import shown
from goproc.cli.flags import Common, Json, connect, seconds_of
from goproc.cli.upplan import Step, missing_alerts, plan_up, spawn_params
from goproc.errors import UsageError
from goproc.model import Selector
from goproc.procfile import ProcFileError, Program, read_procfile

DEFAULT_FILE = "goproc.toml"


def _programs(file: str) -> list[Program]:
    try:
        return read_procfile(file)
    except ProcFileError as e:
        raise UsageError(str(e)) from None


def up(
    file: str = DEFAULT_FILE, /, *, json_: Json = False, common: Common | None = None
) -> ExitCode:
    """Start every program FILE declares that is not running as declared: start the
    missing, start again the stopped, replace the changed (stop, remove, start anew);
    leave the rest running.  Running it twice changes nothing the second time.

    Parameters
    ----------
    file
        The process file (TOML, [proc.NAME] tables); default goproc.toml here.
    """
    programs = _programs(file)
    with connect(common, None) as client:
        steps = plan_up(programs, client.call(api.LIST, Selector()))
        refused = [s for s in steps if s.action == "refuse"]
        if refused:
            reasons = "; ".join(f"{s.program.name}: {s.changed[0]}" for s in refused)
            output.error(f"{file}: {reasons}; nothing was done")
            return ExitCode.REMOTE
        rules = client.call(api.ALERT_LIST, api.NoParams())
        done = [_carry_out(client, s, rules) for s in steps]
    output.emit(done, json_, _up_lines)
    return ExitCode.OK


def _carry_out(client: Client, step: Step, rules: Sequence[dict[str, Any]]) -> dict[str, Any]:
    program, entry = step.program, step.entry
    if entry is None or step.action == "replace":
        if entry is not None:  # replaced: the old entry goes first (its name with it)
            target = _target(entry)
            client.call(api.STOP, api.StopParams(target=target))
            client.call(api.REMOVE, target)
        entry = client.call(api.SPAWN, spawn_params(program, os.environ))
    else:
        entry = _bring_in_line(client, step, entry)
    to_add, to_remove = missing_alerts(program, rules)
    for rule_id in to_remove:
        client.call(api.ALERT_REMOVE, api.AlertRemoveParams(api.ProcId(rule_id)))
    for params in to_add:
        client.call(api.ALERT_ADD, params)
    replaced = step.entry["id"] if step.action == "replace" and step.entry else None
    return {
        "program": program.name,
        "action": step.action,
        "changed": list(step.changed),
        "replaced": replaced,
        "entry": entry,
    }


def _target(entry: Mapping[str, Any]) -> api.Targeted:
    return api.Targeted(select=Selector(ids=(entry["id"],)))


def _bring_in_line(client: Client, step: Step, entry: Mapping[str, Any]) -> Any:
    """A kept entry's labels made the declared ones; started again if it is not running."""
    target = _target(entry)
    for methods, (add, remove) in ((api.TAG, step.tags), (api.GROUP, step.groups)):
        if add:
            client.call(methods.add, api.LabelParams(tuple(map(api.Label, add)), target=target))
        if remove:
            client.call(
                methods.remove, api.LabelParams(tuple(map(api.Label, remove)), target=target)
            )
    if step.action == "start":
        return client.call(api.START, target)[0]
    if step.tags != ((), ()) or step.groups != ((), ()):
        return client.call(api.SHOW, Selector(ids=(entry["id"],)))
    return entry


_SAID: dict[str, Callable[[dict[str, Any]], str]] = {
    "spawn": lambda d: "started",
    "keep": lambda d: "running as declared",
    "start": lambda d: "started again",
    "replace": lambda d: (
        f"replaced ({', '.join(d['changed'])} changed; was id {shown(d['replaced'])})"
    ),
}


def _up_lines(done: Sequence[dict[str, Any]]) -> list[str]:
    out = []
    for d in done:
        e = d["entry"]
        said = _SAID[d["action"]](d)
        out.append(f"{shown(d['program'])}: {said}, id {shown(e['id'])} pid {shown(e['pid'])}")
    return out


def down(
    file: str = DEFAULT_FILE,
    /,
    *,
    rm: bool = False,
    timeout: str = "5s",
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """Stop every program FILE declares (TERM to its process group, KILL after
    --timeout); their entries are kept (goproc up starts them again) unless --rm.

    Parameters
    ----------
    file
        The process file; default goproc.toml here.
    rm
        Remove their entries too.
    timeout
        How long TERM gets before KILL: a duration (500ms, 5s, 1m).
    """
    programs = _programs(file)
    wait = seconds_of("--timeout", timeout)
    done = []
    with connect(common, None) as client:
        by_name = {e["name"]: e for e in client.call(api.LIST, Selector()) if e["name"]}
        for program in programs:
            entry = by_name.get(program.name)
            if entry is None or entry.get("spawned") is None:
                done.append({"program": program.name, "action": "absent", "entry": entry})
                continue
            target = _target(entry)
            entry = client.call(api.STOP, api.StopParams(target=target, timeout=wait))[0]
            if rm:
                client.call(api.REMOVE, target)
            action = "removed" if rm else "stopped"
            done.append({"program": program.name, "action": action, "entry": entry})
    output.emit(done, json_, _down_lines)
    return ExitCode.OK


def _down_lines(done: Sequence[dict[str, Any]]) -> list[str]:
    out = []
    for d in done:
        e = d["entry"]
        if d["action"] == "absent":
            out.append(f"{shown(d['program'])}: not started by goproc, nothing to stop")
        else:
            out.append(f"{shown(d['program'])}: {d['action']}, id {shown(e['id'])}")
    return out
