"""The `goproc` command line: a thin cyclopts client of the daemon's socket.

This module is the entry point (the app, exit codes, error reporting); the commands
live in `goproc.commands`.  Each command is one request (or a few) and a formatter.
Imports stay light: the standard-library client and cyclopts, never trio, cattrs or
psutil (the `daemon` command imports the daemon only when it runs).

Exit codes: 0 ok; 1 the daemon answered with an error (or a kill failed); 2 usage error
(bad flags, bad config); 3 the daemon is not reachable; 127 `run` could not start the
command.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from cyclopts import App
from cyclopts.exceptions import CycloptsError

from goproc import __version__
from goproc.client import DaemonUnreachable, RemoteError
from goproc.errors import ConfigError, UsageError

EXIT_OK, EXIT_REMOTE, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3

app = App(
    name="goproc",
    help="Track processes by PID with tags, groups and names; a per-user daemon keeps them.",
    version=__version__,
    help_flags=["--help", "-h"],
)


# Lazy: a command's module part is imported, and its signature read, only when it runs
# (or for --help).  That is most of what `goproc ping` would otherwise pay at start.
COMMANDS = (  # name, function in goproc.commands, the line `goproc --help` shows
    ("daemon", "daemon", "Run the daemon in the foreground (Ctrl+C stops it cleanly)."),
    ("ping", "ping", "Check that the daemon answers; prints pong."),
    ("status", "status", "Show the daemon's pid, socket, state dir and counters."),
    ("add", "add", "Track running processes of yours by PID."),
    ("run", "run", "Start a command in its own process group and track it."),
    ("list", "list_", "List tracked processes, filtered."),
    ("show", "show", "Show one entry in full."),
    ("rm", "rm", "Forget entries (the processes are not touched)."),
    ("kill", "kill", "Signal matching entries: TERM, then KILL after a timeout."),
    ("wait", "wait", "Block until matching entries have exited."),
    ("events", "events", "Stream registry events as they happen."),
    ("tag", "tag_app", "List, add, remove and rename tags."),
    ("group", "group_app", "List, add, remove and rename groups."),
    ("name", "name", "Set or clear an entry's unique name."),
    ("reset", "reset", "Forget every entry and restart ids at 1."),
    ("--install-completion", "install_completion", "Install shell completion for goproc."),
)
for _name, _target, _help in COMMANDS:
    app.command(f"goproc.commands:{_target}", name=_name, help=_help)

global_config: Path | None = None  # `goproc --config FILE COMMAND ...`


# ---- entry point ---------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _leading_config(args: list[str]) -> tuple[Path | None, list[str]]:
    """`--config FILE` (or `--config=FILE`) before the command applies to every command."""
    config = None
    while args:
        if args[0] == "--config" and len(args) > 1:
            config, args = Path(args[1]), args[2:]
        elif args[0].startswith("--config="):
            config, args = Path(args[0].partition("=")[2]), args[1:]
        else:
            break
    return config, args


def main(argv: list[str] | None = None) -> None:
    """Run one command; every failure is one line on stderr and a documented exit code."""
    for stream in (sys.stdout, sys.stderr):  # a command line need not be valid UTF-8
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    global global_config
    args = list(sys.argv[1:] if argv is None else argv)
    global_config, args = _leading_config(args)
    try:
        code = app(args, exit_on_error=False, print_error=False, result_action="return_value")
    except CycloptsError as e:
        print(f"goproc: {_one_line(str(e))} (see 'goproc --help')", file=sys.stderr)
        code = EXIT_USAGE
    except (ConfigError, UsageError) as e:
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
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
    sys.exit(code if isinstance(code, int) else EXIT_OK)
