"""The commands of the `goproc` CLI: flags, one or a few requests, output.

`goproc.cli` registers these lazily (by import path), so a run parses and imports only
what it uses.  Imports stay light: the standard-library client, never trio, cattrs or
psutil (`daemon` imports the daemon only when it runs).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from attrs import define
from cyclopts import App, Parameter

from goproc import paths
from goproc.client import Client
from goproc.errors import UsageError

EXIT_OK, EXIT_REMOTE, EXIT_UNREACHABLE, EXIT_CANNOT_RUN = 0, 1, 3, 127

Repeat = Annotated[list[str] | None, Parameter(negative=(), consume_multiple=False)]
RepeatInt = Annotated[list[int] | None, Parameter(negative=(), consume_multiple=False)]
Flag = Annotated[bool, Parameter(negative=())]
AllFlag = Annotated[
    bool, Parameter(name="--all", negative=(), help="Allow acting on more than one entry.")
]
Json = Annotated[bool, Parameter(name="--json", negative=(), help="Print the result as JSON.")]


@Parameter(name="*")
@define
class Common:
    config: Path | None = None
    "JSON config file (see config.example.json); every command accepts it."


@Parameter(name="*")
@define
class Labels:
    """What `add` and `run` give a new entry."""

    tag: Repeat = None
    "A tag (repeatable)."
    group: Repeat = None
    "A group (repeatable)."
    name: str | None = None
    "A unique name: at most 64 of letters, digits, '.', '-', '_'."

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"tags": self.tag or [], "groups": self.group or []}
        if self.name is not None:
            params["name"] = self.name
        return params


@Parameter(name="*")
@define
class Select:
    """The selector flags shared by list, show, rm, kill, tag, group and name."""

    id: RepeatInt = None
    "Has this id (repeatable)."
    pid: RepeatInt = None
    "Has this PID (repeatable)."
    name: Repeat = None
    "Has this name (repeatable)."
    tag: Repeat = None
    "Has any of these tags (repeatable)."
    tag_all: Repeat = None
    "Has all of these tags (repeatable)."
    group: Repeat = None
    "In any of these groups (repeatable)."
    group_all: Repeat = None
    "In all of these groups (repeatable)."
    alive: Annotated[bool | None, Parameter(negative="--dead")] = None
    "Only alive (--alive) or only dead (--dead) entries."
    search: str | None = None
    "The command line contains this text."

    def params(self, target: str | None = None) -> dict[str, Any]:
        """The `list` params for these flags (only the given ones); `target` is an
        ID or a NAME given as a positional argument."""
        ids, names = list(self.id or []), list(self.name or [])
        if target is not None and target.isdigit():
            ids.append(int(target))
        elif target is not None:
            names.append(target)
        fields = {
            "ids": ids or None,
            "pids": self.pid,
            "names": names or None,
            "tags_any": self.tag,
            "tags_all": self.tag_all,
            "groups_any": self.group,
            "groups_all": self.group_all,
            "alive": self.alive,
            "search": self.search,
        }
        return {k: v for k, v in fields.items() if v is not None}


def _config(common: Common | None) -> Any:
    from goproc import cli
    from goproc.config import load_config

    return load_config(common.config if common and common.config else cli.global_config)


def _connect(common: Common | None, timeout: float | None = None) -> Client:
    _config(common)  # a bad --config is a usage error for every command
    return Client(paths.socket_path(), timeout=timeout)


def _call(common: Common | None, method: str, params: dict[str, Any] | None = None) -> Any:
    with _connect(common) as client:
        return client.call(method, params)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# ---- daemon and basics -----------------------------------------------------------------


def daemon(
    *,
    force: Annotated[bool, Parameter(name=["--force", "-f"], negative=())] = False,
    common: Common | None = None,
) -> int:
    """Run the daemon in the foreground (Ctrl+C stops it cleanly).

    Parameters
    ----------
    force
        Stop a daemon already running on this state dir (SIGTERM, then SIGKILL) and take over.
    """
    config = _config(common)
    from goproc.daemon.run import run_daemon

    return run_daemon(config, force=force)


def ping(*, timeout: float = 5.0, common: Common | None = None) -> int:
    """Check that the daemon answers; prints pong.

    Parameters
    ----------
    timeout
        Seconds to wait for the answer.
    """
    with _connect(common, timeout) as client:
        print(client.call("ping"))
    return EXIT_OK


def status(*, json_: Json = False, common: Common | None = None) -> int:
    """Show the daemon's pid, socket, state dir and counters."""
    info = _call(common, "status")
    if json_:
        _print_json(info)
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key.ljust(width)}  {value}")
    return EXIT_OK


def add(
    *pids: int,
    labels: Labels | None = None,
    json_: Json = False,
    common: Common | None = None,
) -> int:
    """Track running processes of yours by PID; several PIDs are added all or nothing
    (a name goes with one PID only).

    Parameters
    ----------
    pids
        The process ids.
    """
    if not pids:
        raise UsageError("add needs at least one PID")
    params = (labels or Labels()).params()
    if len(pids) == 1:
        params["pid"] = pids[0]
    else:
        params["pids"] = list(pids)
    result = _call(common, "add", params)
    procs = [result] if len(pids) == 1 else result
    if json_:
        _print_json(result)
    else:
        for proc in procs:
            print(f"Process {proc['pid']} registered with id {proc['id']}")
    return EXIT_OK


def run(
    *command: str,
    labels: Labels | None = None,
    json_: Json = False,
    common: Common | None = None,
) -> int:
    """Start COMMAND in its own process group (with this terminal's stdio) and track it;
    goproc exits at once while the command runs on.  Use: goproc run [flags] -- CMD ARGS...

    Parameters
    ----------
    command
        The command and its arguments.
    """
    import signal
    import subprocess

    if not command:
        raise UsageError("run needs a command: goproc run [flags] -- CMD ARGS...")
    with _connect(common) as client:  # reachable before anything is started
        try:
            child = subprocess.Popen(list(command), process_group=0)
        except OSError as e:
            print(f"goproc: cannot run {command[0]!r}: {e.strerror or e}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        try:
            proc = client.call("add", {"pid": child.pid, **(labels or Labels()).params()})
        except BaseException:
            # Not tracked means not started: never leave an untracked child behind.
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except OSError:
                child.kill()
            child.wait()
            raise
    child.returncode = 0  # it runs on: keep Popen's finalizer from warning about it
    if json_:
        _print_json(proc)
    else:
        print(f"Started pid={proc['pid']} id={proc['id']}")
    return EXIT_OK


def list_(
    *, select: Select | None = None, json_: Json = False, common: Common | None = None
) -> int:
    """List tracked processes, filtered; filters combine with AND."""
    with _connect(common) as client:
        if json_:
            _print_entries_json(client.call_raw("list", (select or Select()).params()))
        else:
            _print_table(client.call("list", (select or Select()).params()))
    return EXIT_OK


def show(
    target: str | None = None,
    /,
    *,
    select: Select | None = None,
    json_: Json = False,
    common: Common | None = None,
) -> int:
    """Show one entry in full, by ID or NAME (or selector flags matching exactly one).

    Parameters
    ----------
    target
        An id or a name.
    """
    proc = _call(common, "show", (select or Select()).params(target))
    if json_:
        _print_json(proc)
    else:
        width = max(map(len, proc))
        for key, value in proc.items():
            text = ",".join(value) if isinstance(value, list) else value
            print(f"{key.ljust(width)}  {'-' if text in (None, '') else text}")
    return EXIT_OK


def rm(
    target: str | None = None,
    /,
    *,
    select: Select | None = None,
    all_: AllFlag = False,
    json_: Json = False,
    common: Common | None = None,
) -> int:
    """Forget entries (the processes are not touched); more than one needs --all.

    Parameters
    ----------
    target
        An id or a name.
    """
    params = {**(select or Select()).params(target), "all": all_}
    removed = _call(common, "remove", params)
    if json_:
        _print_json(removed)
    else:
        for p in removed:
            print(f"Removed id {p['id']} (pid {p['pid']}, {p['cmd']})")
    return EXIT_OK


def kill(
    target: str | None = None,
    /,
    *,
    select: Select | None = None,
    all_: AllFlag = False,
    signal: str = "TERM",
    timeout: str = "5s",
    group_kill: Flag = False,
    rm: Flag = False,
    json_: Json = False,
    common: Common | None = None,
) -> int:
    """Signal matching alive entries.  With the default TERM, wait up to --timeout for
    each to exit, then send KILL.  Exit 1 when any signal failed.

    Parameters
    ----------
    target
        An id or a name.
    signal
        Signal name or number (TERM, HUP, INT, KILL, USR1, 9, ...).
    timeout
        How long TERM gets before KILL (Go duration: 500ms, 5s, 1m).
    group_kill
        Signal the whole process group.
    rm
        Forget the entries afterwards.
    """
    seconds = _duration("--timeout", timeout)
    params: dict[str, Any] = {
        **(select or Select()).params(target),
        "all": all_,
        "signal": int(signal) if signal.isdigit() else signal,
        "timeout": seconds,
        "group": group_kill,
        "rm": rm,
    }
    with _connect(common, None) as client:
        results = client.call("kill", params)
    if json_:
        _print_json(results)
    else:
        for r in results:
            outcome = {
                "killed": "still running after the timeout: escalated to KILL",
                "signalled": f"signalled {r['signal']}",
                "failed": f"failed: {r.get('error', '?')}",
            }.get(r["outcome"], r["outcome"])
            print(f"id {r['id']} pid {r['pid']}: {outcome}")
    return EXIT_REMOTE if any(r["outcome"] == "failed" for r in results) else EXIT_OK


def wait(
    target: str | None = None,
    /,
    *,
    select: Select | None = None,
    timeout: str = "30s",
    any_: Annotated[bool, Parameter(name="--any", negative=())] = False,
    json_: Json = False,
    common: Common | None = None,
) -> int:
    """Block until every matching entry has exited (or, with --any, the first); print
    each as it exits.  Exit 0 when they exited, 1 on timeout (naming those still alive).

    Parameters
    ----------
    target
        An id or a name.
    timeout
        How long to wait at most (Go duration: 500ms, 30s, 5m).
    any_
        Return as soon as one of them has exited.
    """
    seconds = _duration("--timeout", timeout)
    selector = (select or Select()).params(target)
    shown: set[int] = set()

    def exited(proc: dict[str, Any]) -> None:
        if proc["id"] in shown:
            return
        shown.add(proc["id"])
        if json_:
            print(json.dumps(proc), flush=True)
        else:
            print(f"id {proc['id']} pid {proc['pid']} exited ({proc['cmd']})", flush=True)

    with _connect(common, None) as client:
        ids = [p["id"] for p in client.call("list", selector)] or None
        if ids is not None:  # print exits as they happen; wait's reply ends it
            client.call("subscribe", {"ids": ids})
        params = {**({"ids": ids} if ids is not None else selector)}
        result = client.call(
            "wait",
            {**params, "timeout": seconds, "any": any_},
            on_event=lambda e: exited(e["proc"]) if e["kind"] == "exited" else None,
        )
    for proc in result["exited"]:
        exited(proc)
    if result["timed_out"]:
        alive = ", ".join(f"id {p['id']} (pid {p['pid']})" for p in result["alive"])
        print(f"goproc: timed out after {timeout}; still alive: {alive}", file=sys.stderr)
        return EXIT_REMOTE
    return EXIT_OK


def events(
    *, select: Select | None = None, json_: Json = False, common: Common | None = None
) -> int:
    """Stream registry events (added, removed, exited, revived, updated) as they happen,
    until interrupted; --json prints one JSON object per line."""

    def show_event(event: dict[str, Any]) -> None:
        if json_:
            print(json.dumps(event), flush=True)
            return
        if event["kind"] == "overflow":
            print(f"{event['time']}  overflow: events were dropped; reconnect", flush=True)
            return
        name = f" name={event['name']}" if event.get("name") else ""
        print(
            f"{event['time']}  {event['kind']:<8} id={event['id']} pid={event['pid']}{name}",
            flush=True,
        )

    with _connect(common, None) as client:
        client.call("subscribe", (select or Select()).params())
        client.listen(show_event)
    print("goproc: the daemon closed the connection", file=sys.stderr)
    return EXIT_UNREACHABLE


def _duration(flag: str, text: str) -> float:
    from goproc.durations import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise UsageError(f"{flag}: {e}") from None
    if seconds < 0:
        raise UsageError(f"{flag}: must not be negative, got {text!r}")
    return seconds


def _label_app(kind: str) -> App:
    """`goproc tag ...` or `goproc group ...`: the same commands over tags or groups."""
    sub = App(name=kind, help=f"List, add, remove and rename {kind}s.")
    plural = f"{kind}s"

    @sub.default
    def counts(*, json_: Json = False, common: Common | None = None) -> int:
        rows = _call(common, f"{kind}.list")
        if json_:
            _print_json(rows)
        else:
            width = max([len(kind.upper()), *(len(r["name"]) for r in rows)])
            print(f"{kind.upper().ljust(width)}  COUNT")
            for r in rows:
                print(f"{r['name'].ljust(width)}  {r['count']}")
        return EXIT_OK

    def change(
        method: str,
        labels: tuple[str, ...],
        select: Select | None,
        all_: bool,
        json_: bool,
        common: Common | None,
    ) -> int:
        if not labels:
            raise UsageError(f"give at least one {kind}")
        params = {**(select or Select()).params(), "all": all_, "labels": list(labels)}
        procs = _call(common, method, params)
        if json_:
            _print_json(procs)
        else:
            for p in procs:
                print(f"id {p['id']}: {plural} {','.join(p[plural]) or '-'}")
        return EXIT_OK

    @sub.command(name="add")
    def add_labels(
        *labels: str,
        select: Select | None = None,
        all_: AllFlag = False,
        json_: Json = False,
        common: Common | None = None,
    ) -> int:
        """Add labels to the matching entries (more than one entry needs --all)."""
        return change(f"{kind}.add", labels, select, all_, json_, common)

    @sub.command(name="rm")
    def remove_labels(
        *labels: str,
        select: Select | None = None,
        all_: AllFlag = False,
        json_: Json = False,
        common: Common | None = None,
    ) -> int:
        """Remove labels from the matching entries (more than one entry needs --all)."""
        return change(f"{kind}.remove", labels, select, all_, json_, common)

    @sub.command(name="rename")
    def rename(old: str, new: str, /, *, json_: Json = False, common: Common | None = None) -> int:
        """Rename a label on every entry, atomically."""
        result = _call(common, f"{kind}.rename", {"old": old, "new": new})
        if json_:
            _print_json(result)
        else:
            print(f"Renamed {kind} {old!r} to {new!r} on {result['changed']} entries")
        return EXIT_OK

    return sub


tag_app = _label_app("tag")
group_app = _label_app("group")


def name(
    target: str,
    new_name: str | None = None,
    /,
    *,
    clear: Flag = False,
    json_: Json = False,
    common: Common | None = None,
) -> int:
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
    params = {**Select().params(target), "name": None if clear else new_name}
    proc = _call(common, "name.set", params)
    if json_:
        _print_json(proc)
    elif proc["name"] is None:
        print(f"id {proc['id']}: name cleared")
    else:
        print(f"id {proc['id']}: named {proc['name']}")
    return EXIT_OK


def reset(*, confirm: str = "", json_: Json = False, common: Common | None = None) -> int:
    """Forget every entry and restart ids at 1.  Needs --confirm RESET.

    Parameters
    ----------
    confirm
        Must be exactly RESET.
    """
    result = _call(common, "reset", {"confirm": confirm})
    if json_:
        _print_json(result)
    else:
        print(f"Forgot {result['removed']} entries; ids start at 1 again")
    return EXIT_OK


# ---- output ------------------------------------------------------------------------------


def _print_entries_json(raw: bytes) -> None:
    """Print a JSON array of entries as the daemon sent it, one entry per line.  The
    daemon's JSON is ASCII with every quote in a string escaped, so `},{"id":` can only
    stand between two entries: the split needs no decoding, even for 100,000 entries."""
    sys.stdout.flush()
    if raw == b"[]":
        sys.stdout.buffer.write(b"[]\n")
        return
    sys.stdout.buffer.write(b"[\n" + raw[1:-1].replace(b'},{"id":', b'},\n{"id":') + b"\n]\n")


def _terminal_columns() -> int:
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except OSError:
        return 80


def _print_table(procs: list[dict[str, Any]]) -> None:
    header = ("ID", "PID", "NAME", "ALIVE", "TAGS", "GROUPS", "CMD")
    rows = [
        (
            str(p["id"]),
            str(p["pid"]),
            p["name"] or "-",
            "yes" if p["alive"] else "no",
            ",".join(p["tags"]) or "-",
            ",".join(p["groups"]) or "-",
            p["cmd"],
        )
        for p in procs
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    tty = sys.stdout.isatty()
    colour = tty and "NO_COLOR" not in os.environ
    room = max(_terminal_columns() - sum(widths) - 2 * len(widths), 10) if tty else 0
    lines = []
    for n, row in enumerate([header, *rows]):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        if colour and n:
            cells[3] = f"\x1b[{'32' if row[3] == 'yes' else '31'}m{cells[3]}\x1b[0m"
        cmd = row[-1]
        if tty and len(cmd) > room:
            cmd = cmd[: room - 1] + "…"
        lines.append("  ".join(cells) + "  " + cmd)
    print("\n".join(lines))


def install_completion(
    *,
    shell: Literal["bash", "zsh", "fish"] | None = None,
    output: Path | None = None,
    add_to_startup: bool = True,
) -> int:
    """Install shell completion for goproc (bash, zsh or fish; detected when not given).

    Parameters
    ----------
    shell
        The shell; detected from $SHELL when not given.
    output
        Where to write the completion script (a per-shell default otherwise).
    add_to_startup
        Add a line to the shell's rc file that loads it.
    """
    from goproc.cli import app

    path = app.install_completion(shell=shell, output=output, add_to_startup=add_to_startup)
    print(f"Completion installed in {path}; start a new shell to use it")
    return EXIT_OK
