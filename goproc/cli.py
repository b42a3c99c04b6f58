"""The `goproc` command line: a thin cyclopts client of the daemon's socket.

Each command is one request (or a few) and a formatter.  Imports stay light: the
standard-library client and cyclopts, never trio, cattrs or psutil (the `daemon`
command imports the daemon only when it runs).

Exit codes: 0 ok; 1 the daemon answered with an error; 2 usage error (bad flags,
bad config); 3 the daemon is not reachable.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from cyclopts import App, Parameter
from cyclopts.exceptions import CycloptsError

from goproc import __version__, paths
from goproc.client import Client, DaemonUnreachable, RemoteError
from goproc.errors import ConfigError

EXIT_OK, EXIT_REMOTE, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3

app = App(
    name="goproc",
    help="Track processes by PID with tags, groups and names; a per-user daemon keeps them.",
    version=__version__,
    help_flags=["--help", "-h"],
)


@Parameter(name="*")
@dataclass
class Common:
    config: Path | None = None
    "JSON config file (see config.example.json); every command accepts it."


Repeat = Annotated[list[str] | None, Parameter(negative=(), consume_multiple=False)]
RepeatInt = Annotated[list[int] | None, Parameter(negative=(), consume_multiple=False)]


def _config(common: Common | None) -> Any:
    from goproc.config import load_config

    return load_config(common.config if common else None)


def _connect(common: Common | None, timeout: float | None = 30.0) -> Client:
    _config(common)  # a bad --config is a usage error for every command
    return Client(paths.socket_path(), timeout=timeout)


@app.command
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


@app.command
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


@app.command
def add(
    pid: int,
    /,
    *,
    tag: Repeat = None,
    group: Repeat = None,
    name: str | None = None,
    json_: Annotated[bool, Parameter(name="--json", negative=())] = False,
    common: Common | None = None,
) -> int:
    """Track a running process of yours by PID.

    Parameters
    ----------
    pid
        The process id.
    tag
        A tag (repeatable).
    group
        A group (repeatable).
    name
        A unique name: at most 64 of letters, digits, '.', '-', '_'.
    json_
        Print the entry as JSON.
    """
    params: dict[str, Any] = {"pid": pid, "tags": tag or [], "groups": group or []}
    if name is not None:
        params["name"] = name
    with _connect(common) as client:
        proc = client.call("add", params)
    if json_:
        print(json.dumps(proc, indent=2))
    else:
        print(f"Process {proc['pid']} registered with id {proc['id']}")
    return EXIT_OK


@app.command(name="list")
def list_(
    *,
    tag: Repeat = None,
    tag_all: Repeat = None,
    group: Repeat = None,
    group_all: Repeat = None,
    pid: RepeatInt = None,
    id: RepeatInt = None,  # the flag is --id
    name: Repeat = None,
    alive: Annotated[bool | None, Parameter(negative="--dead")] = None,
    search: str | None = None,
    json_: Annotated[bool, Parameter(name="--json", negative=())] = False,
    common: Common | None = None,
) -> int:
    """List tracked processes, filtered; filters combine with AND.

    Parameters
    ----------
    tag
        Has any of these tags (repeatable).
    tag_all
        Has all of these tags (repeatable).
    group
        In any of these groups (repeatable).
    group_all
        In all of these groups (repeatable).
    pid
        Has this PID (repeatable).
    id
        Has this id (repeatable).
    name
        Has this name (repeatable).
    alive
        Only alive (--alive) or only dead (--dead) entries.
    search
        The command line contains this text.
    json_
        Print the JSON array of entries.
    """
    params = _selector(tag, tag_all, group, group_all, pid, id, name, alive, search)
    with _connect(common) as client:
        procs = client.call("list", params)
    if json_:
        print(json.dumps(procs, indent=2))
    else:
        _print_table(procs)
    return EXIT_OK


@app.command
def status(
    *,
    json_: Annotated[bool, Parameter(name="--json", negative=())] = False,
    common: Common | None = None,
) -> int:
    """Show the daemon's pid, socket, state dir and counters."""
    with _connect(common) as client:
        info = client.call("status")
    if json_:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key.ljust(width)}  {value}")
    return EXIT_OK


def _selector(
    tag: list[str] | None,
    tag_all: list[str] | None,
    group: list[str] | None,
    group_all: list[str] | None,
    pid: list[int] | None,
    ids: list[int] | None,
    name: list[str] | None,
    alive: bool | None,
    search: str | None,
) -> dict[str, Any]:
    """CLI selector flags -> `list` params (only the given ones)."""
    fields = {
        "tags_any": tag,
        "tags_all": tag_all,
        "groups_any": group,
        "groups_all": group_all,
        "pids": pid,
        "ids": ids,
        "names": name,
        "alive": alive,
        "search": search,
    }
    return {k: v for k, v in fields.items() if v is not None}


# ---- output ------------------------------------------------------------------------------


def _use_colour() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


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
    colour = _use_colour()
    columns = shutil.get_terminal_size().columns if tty else 0
    for n, row in enumerate([header, *rows]):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        if colour and n:
            code = "32" if row[3] == "yes" else "31"
            cells[3] = f"\x1b[{code}m{cells[3]}\x1b[0m"
        prefix = "  ".join(cells) + "  "
        cmd = row[-1]
        if tty:
            room = max(columns - (sum(widths) + 2 * len(widths)), 10)
            if len(cmd) > room:
                cmd = cmd[: room - 1] + "…"
        print(prefix + cmd)


# ---- entry point ---------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> None:
    """Run one command; every failure is one line on stderr and a documented exit code."""
    try:
        code = app(argv, exit_on_error=False, print_error=False, result_action="return_value")
    except CycloptsError as e:
        print(f"goproc: {_one_line(str(e))} (see 'goproc --help')", file=sys.stderr)
        code = EXIT_USAGE
    except ConfigError as e:
        print(f"goproc: {e}", file=sys.stderr)
        code = EXIT_USAGE
    except DaemonUnreachable as e:
        print(f"goproc: {e}", file=sys.stderr)
        code = EXIT_UNREACHABLE
    except RemoteError as e:
        print(f"goproc: {_one_line(e.message)}", file=sys.stderr)
        code = EXIT_REMOTE
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = EXIT_OK  # the reader went away (e.g. `| head`)
    sys.stdout.flush()
    sys.exit(code if isinstance(code, int) else EXIT_OK)
