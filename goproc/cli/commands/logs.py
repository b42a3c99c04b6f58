"""`goproc logs`: the last lines of what a command `goproc run` started wrote, and
(`--follow`) what it writes next.  The entry is found through the daemon; its files are
read here, as the user (`goproc.cli.tail`)."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated

from cyclopts import Parameter

from goproc import api
from goproc.cli import output
from goproc.cli.codes import ExitCode
from goproc.cli.flags import Common, Flag, ascii_int, call, selector_of
from goproc.cli.tail import TailError, follow, last_lines, open_log
from goproc.errors import UsageError


def logs(
    target: str,
    /,
    *,
    follow_: Annotated[bool, Parameter(name=["--follow", "-f"], negative=())] = False,
    lines: Annotated[str, Parameter(name=["--lines", "-n"])] = "50",
    err: Flag = False,
    common: Common | None = None,
) -> ExitCode:
    """Print the last lines of a command's output (as goproc run logged it).

    Parameters
    ----------
    target
        An id or a name.
    follow_
        Keep printing what is appended, until Ctrl+C (exit 0).
    lines
        How many lines to print from the end (0: none).
    err
        Its standard error instead of its standard output.
    """
    try:
        count = ascii_int(lines)
    except ValueError as e:
        raise UsageError(f"--lines: {e}") from None
    entry = call(common, api.SHOW, selector_of(None, target))
    log = entry.get("log")
    if not isinstance(log, dict):
        output.error(f"id {entry['id']} has no log files: it was added by pid or run with --attach")
        return ExitCode.REMOTE
    path = str(log["err" if err else "out"])
    try:
        fd = open_log(path)
    except TailError as e:
        output.error(str(e))
        return ExitCode.REMOTE
    try:
        data, offset = last_lines(fd, count)
        output.write_raw(data)
        if follow_:
            held, fd = fd, -1  # follow closes it (and any file it opens after it)
            follow(held, path, offset, output.write_raw, sys.stdout.fileno())
    except KeyboardInterrupt:
        pass  # Ctrl+C is how following ends
    except BrokenPipeError:
        _quiet_stdout()  # the reader went away: nothing more to say, and no complaint
    except OSError as e:
        output.error(f"cannot read {path}: {e.strerror or e}")
        return ExitCode.REMOTE
    finally:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
    return ExitCode.OK


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the flush at exit has nowhere to fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
