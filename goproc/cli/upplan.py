"""What `goproc up` does for each program of a process file, decided from the file and
the entries and alert rules the daemon has (their wire dicts).  Pure: no socket; the
command (`goproc.cli.commands.compose`) carries the steps out.

A program is its entry: the entry named as the program.  For each program, in file
order, one step:

- `spawn`: no entry has its name; start it.
- `keep`: its entry runs as declared (labels are brought in line without a restart).
- `start`: its entry is as declared but not running (stopped, or exited for good).
- `replace`: its entry runs something else (command, directory, a declared variable,
  restart policy): stopped, removed and started anew, as a new entry.
- `refuse`: its name is taken by an entry goproc did not start; the whole `up` is
  refused, and nothing is done.

"As declared" compares what the file says: argv, cwd, the restart policy and, of the
environment, the variables the file sets (the rest comes from the shell `up` runs in,
which differs between shells and is not compared).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from attrs import frozen

from goproc import api
from goproc.alerts import parse_action, parse_condition
from goproc.model import Selector
from goproc.procfile import Program

Action = Literal["spawn", "keep", "start", "replace", "refuse"]
DEFAULT_WINDOW, DEFAULT_BACKOFF = 60.0, (1.0, 60.0)


@frozen
class Step:
    action: Action
    program: Program
    entry: Mapping[str, Any] | None = None
    changed: tuple[str, ...] = ()  # what differs (`replace`), or why (`refuse`)
    tags: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # to add, to remove
    groups: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())


def spawn_params(program: Program, environ: Mapping[str, str]) -> api.SpawnParams:
    """How the daemon is asked to start `program`: in the environment `environ` with the
    file's variables set over it, the defaults of `goproc run` where the file is silent."""
    env = {**environ, **dict(program.env)}
    low, high = program.backoff or DEFAULT_BACKOFF
    size = program.log_max_bytes
    return api.SpawnParams(
        argv=program.argv,
        cwd=program.cwd,
        env=tuple(f"{k}={v}" for k, v in env.items()),
        tags=tuple(api.Label(t) for t in program.tags),
        groups=tuple(api.Label(g) for g in program.groups),
        name=api.Name(program.name),
        restart=program.restart,
        max_restarts=None if program.max_restarts is None else api.Count(program.max_restarts),
        restart_window=api.Seconds(program.restart_window or DEFAULT_WINDOW),
        backoff_min=api.Seconds(low),
        backoff_max=api.Seconds(high),
        log_max_bytes=None if size is None else api.ByteSize(size),
    )


def plan_up(programs: Sequence[Program], entries: Sequence[Mapping[str, Any]]) -> list[Step]:
    by_name = {e["name"]: e for e in entries if e.get("name") is not None}
    return [_step(p, by_name.get(p.name)) for p in programs]


def _step(program: Program, entry: Mapping[str, Any] | None) -> Step:
    if entry is None:
        return Step("spawn", program)
    spawned = entry.get("spawned")
    if spawned is None:
        why = f"the name is entry {entry['id']}'s, which goproc did not start (goproc add)"
        return Step("refuse", program, entry, (why,))
    changed = _changes(program, spawned)
    if changed:
        return Step("replace", program, entry, changed)
    tags = _delta(program.tags, entry.get("tags", ()))
    groups = _delta(program.groups, entry.get("groups", ()))
    running = entry.get("alive") and not entry.get("stopped")
    return Step("keep" if running else "start", program, entry, (), tags, groups)


def _changes(program: Program, spawned: Mapping[str, Any]) -> tuple[str, ...]:
    low, high = program.backoff or DEFAULT_BACKOFF
    env = set(spawned.get("env", ()))
    differs = {
        "cmd": list(program.argv) != list(spawned.get("argv", ())),
        "cwd": program.cwd != spawned.get("cwd"),
        "env": any(f"{k}={v}" not in env for k, v in program.env),
        "restart": program.restart != spawned.get("restart"),
        "max_restarts": program.max_restarts != spawned.get("max_restarts"),
        "restart_window": (program.restart_window or DEFAULT_WINDOW)
        != spawned.get("restart_window"),
        "backoff": (low, high) != (spawned.get("backoff_min"), spawned.get("backoff_max")),
        "log_max_bytes": program.log_max_bytes != spawned.get("log_max_bytes"),
    }
    return tuple(key for key, d in differs.items() if d)


def _delta(wanted: Sequence[str], has: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(sorted(set(wanted) - set(has))), tuple(sorted(set(has) - set(wanted)))


def missing_alerts(
    program: Program, rules: Sequence[Mapping[str, Any]]
) -> tuple[list[api.AlertAddParams], list[int]]:
    """The program's declared alert rules that are not there yet (as params for
    `alert.add`, for the entry named as the program), and the ids of rules named as a
    declared one but stating something else (to remove first, so the name is free)."""
    mine = [r for r in rules if r.get("select") == {"names": [program.name]}]
    add, remove = [], []
    for decl in program.alerts:
        condition = parse_condition(decl.condition).text()
        action = parse_action(decl.action)
        same = [
            r
            for r in mine
            if (r["condition"], r["action"], r["name"]) == (condition, action, decl.rule)
        ]
        if same:
            continue
        if decl.rule is not None:
            remove += [r["id"] for r in rules if r["name"] == decl.rule]
        add.append(
            api.AlertAddParams(
                condition=decl.condition,
                action=decl.action,
                rule=None if decl.rule is None else api.Name(decl.rule),
                target=api.Targeted(select=Selector(names=(program.name,))),
            )
        )
    return add, remove
