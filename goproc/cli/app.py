"""The `goproc` command line: the cyclopts app, its exit codes, `main` and error reporting.

The commands live in `goproc.cli.commands`, one module per family, registered here by
import path: a run imports (and reads the signature of) only the command it runs.
Imports stay light: the standard-library client, the contract and cyclopts, never
trio, cattrs, psutil or the daemon's code (`goproc daemon` execs the daemon program).

Exit codes (`ExitCode`): 0 ok; 1 the daemon answered with an error (or a kill failed,
standard output could not be written,
a wait timed out); 2 usage error (bad flags, bad config); 3 the daemon is not reachable
(or there is no usable runtime dir to find its socket in);
127 `run` could not start the command (the daemon's -32010); 130 interrupted.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs
from cyclopts import App
from cyclopts.exceptions import (
    CycloptsError,
    RepeatArgumentError,
    UnknownOptionError,
    UnusedCliTokensError,
)

from goproc import __version__
from goproc.cli import output
from goproc.cli.argv import append_lifted, leading_config, lift_repeats, optional_values
from goproc.cli.client import DaemonUnreachable, RemoteError
from goproc.cli.codes import ExitCode
from goproc.cli.flags import Common
from goproc.errors import CANNOT_RUN, INVALID_PARAMS, ConfigError, UsageError
from goproc.paths import PlaceError

__all__ = ["ExitCode", "app", "main", "run"]

app = App(
    name="goproc",
    help="Track processes by PID with tags, groups and names; a per-user daemon keeps them.",
    version=__version__,
    help_flags=["--help", "-h"],
)

# Lazy: a command's module is imported, and its signature read, only when it runs (or
# for --help).  That is most of what `goproc ping` would otherwise pay at start.
COMMANDS = (  # name, module:function in goproc.cli.commands, the line `goproc --help` shows
    ("daemon", "basic:daemon", "Run the daemon in the foreground (Ctrl+C stops it cleanly)."),
    ("ping", "basic:ping", "Check that the daemon answers; prints pong."),
    ("status", "basic:status", "Show the daemon's pid, socket, state dir and counters."),
    ("add", "procs:add", "Track running processes of yours by PID."),
    (
        "run",
        "procs:run",
        "Have the daemon start a command as its child and track it; output to log files.",
    ),
    ("stop", "supervise:stop", "Stop commands run started: TERM, then KILL; no restart."),
    ("start", "supervise:start", "Start stopped commands run started again, in their entry."),
    ("restart", "supervise:restart", "Stop and start again commands run started."),
    ("up", "compose:up", "Start what a process file declares and is not running as declared."),
    ("down", "compose:down", "Stop the programs a process file declares."),
    ("logs", "logs:logs", "Print (or follow) the output a command started by run wrote."),
    ("list", "listing:list_", "List tracked processes, filtered and sorted."),
    ("show", "procs:show", "Show one entry in full."),
    ("stats", "stats:stats", "The matching entries' CPU, memory and IO, summed."),
    ("rm", "procs:rm", "Forget entries (the processes are not touched)."),
    ("kill", "signals:kill", "Signal matching entries: TERM, then KILL after a timeout."),
    ("wait", "signals:wait", "Block until matching entries have exited."),
    ("events", "events:events", "Stream registry events as they happen."),
    ("top", "top:top", "A live full-screen view to watch, filter and act on tracked processes."),
    ("tag", "labels:tag_app", "List (bare, or 'list'), add, remove, rename tags."),
    ("group", "labels:group_app", "List (bare, or 'list'), add, remove, rename groups."),
    ("name", "procs:name", "Set or clear an entry's unique name."),
    ("alert", "alerts:alert_app", "Add, list (bare, or 'list') and remove alert rules."),
    ("adopt", "adopt:adopt_app", "Add, list (bare, or 'list') and remove adoption rules."),
    ("reset", "procs:reset", "Forget every entry and rule; restart ids at 1."),
    (
        "--install-completion",
        "completion:install_completion",
        "Install shell completion for goproc.",
    ),
)
for _name, _target, _help in COMMANDS:
    app.command(f"goproc.cli.commands.{_target}", name=_name, help=_help)


# Flags that are one parameter and its negation: given both, they exclude each other.
EXCLUSIVE = (("--alive", "--dead"),)


def _usage_message(e: CycloptsError, args: Sequence[str]) -> str:
    if isinstance(e, UnusedCliTokensError) and e.unused_tokens:
        extra = ", ".join(repr(t) for t in e.unused_tokens)
        return f"unexpected argument{'s' if len(e.unused_tokens) > 1 else ''}: {extra}"
    if isinstance(e, RepeatArgumentError):
        for a, b in EXCLUSIVE:
            if e.token.keyword in (a, b) and a in args and b in args:
                return f"{a} and {b} exclude each other: give one"
    message = _one_line(str(e))
    if isinstance(e, UnknownOptionError) and args and args[0] == "run" and "--" not in args:
        # The command's own options look like goproc's: say how to pass them.
        message = message.rstrip(".") + (
            ". To give options to the command, put -- before it: goproc run [FLAGS] -- CMD ARGS"
        )
    return message


def run(args: Sequence[str], config: Path | None = None) -> int:
    """Parse `args` and run the command they name.  `config` (the leading --config)
    applies unless the command is given its own; the completion command gets the app."""
    if args and args[0] == COMPLETE:
        return complete(args[1:])
    args, lifted = lift_repeats(optional_values(args))
    command, bound, ignored = app.parse_args(args, exit_on_error=False, print_error=False)
    append_lifted(bound.arguments, lifted)
    if config is not None and "common" in bound.signature.parameters:
        given = bound.arguments.get("common")
        if given is None:
            bound.arguments["common"] = Common(config=config)
        elif given.config is None:
            bound.arguments["common"] = attrs.evolve(given, config=config)
    extra = {"app": app} if "app" in ignored else {}
    code = command(*bound.args, **bound.kwargs, **extra)
    return code if isinstance(code, int) else ExitCode.OK


# The command cyclopts' completion scripts run at TAB: `goproc __complete WORDS...`,
# the words of the command line so far (the last the one being completed).
COMPLETE = "__complete"


def complete(words: Sequence[str]) -> int:
    """Print the candidates for the last of `words` (cyclopts computes them; a
    `Parameter.completer` asks the daemon).  A leading `--config FILE` is skipped, as
    `main` skips it for a command; it names no socket, so completion needs it not."""
    _, words = leading_config(words)
    command, bound, _ = app.parse_args([COMPLETE, *words], exit_on_error=False)
    command(*bound.args, **bound.kwargs)
    return ExitCode.OK


def _one_line(text: str) -> str:
    """Cyclopts' message, which it may wrap over lines, on one."""
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> None:
    """Run one command; every failure is one line on stderr and a documented exit code."""
    _standard_streams()
    for stream in (sys.stdout, sys.stderr):  # a command line need not be valid UTF-8
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    config, args = leading_config(sys.argv[1:] if argv is None else argv)
    try:
        code = run(args, config)
    except CycloptsError as e:  # its message may echo what was typed, escapes and all
        output.error(f"{_usage_message(e, args)} (see 'goproc --help')")
        code = ExitCode.USAGE
    except (ConfigError, UsageError) as e:
        output.error(str(e))
        code = ExitCode.USAGE
    except (DaemonUnreachable, PlaceError) as e:  # no socket to reach, or no place for one
        output.error(str(e))
        code = ExitCode.UNREACHABLE
    except RemoteError as e:  # the daemon's message may quote a hostile name or label:
        # `error` escapes every line break and control in it, and keeps its spaces (a
        # value quoted in it is shown as it was sent, "  " included)
        output.error(e.message)
        # A value the daemon refuses (-32602) is a usage error like one the CLI refuses.
        code = (
            ExitCode.USAGE
            if e.code == INVALID_PARAMS
            else ExitCode.CANNOT_RUN
            if e.code == CANNOT_RUN
            else ExitCode.REMOTE
        )
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
    except BrokenPipeError:
        code = ExitCode.OK  # the reader went away (e.g. `| head`)
        _discard_output()
    except output.OutputError as e:
        code = _output_failed(str(e))
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _discard_output()
    except OSError as e:
        code = _output_failed(e.strerror or str(e), code)
    sys.exit(code)


def _standard_streams() -> None:
    """Descriptors 0-2 closed before goproc started get /dev/null, so that no socket or
    file goproc opens takes their number (and a child of `run` their place); a closed
    standard output stays closed to the commands (`output.ClosedOutput`): writing fails."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one
    if sys.stdout is None:
        sys.stdout = output.ClosedOutput()


def _output_failed(reason: str, code: int = ExitCode.OK) -> int:
    """Say that standard output failed; exit 1 unless the command already failed."""
    output.error(f"cannot write to standard output: {reason}")
    _discard_output()
    return code or ExitCode.REMOTE


def _discard_output() -> None:
    """What is still buffered for standard output goes nowhere, so that the flush at
    exit neither fails again nor prints "Exception ignored"."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
