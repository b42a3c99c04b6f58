"""`goproc logs`: the last lines of what a command `goproc run` started wrote, across
the files rotation made (`goproc.cli.logread`), and (`--follow`) what it writes next
(`goproc.cli.tail`).  The entry is found through the daemon; its files are read here,
as the user."""

from __future__ import annotations

import collections
import contextlib
import os
import resource
import sys
import time
from collections.abc import Iterable
from typing import Annotated, Any

from cyclopts import Parameter

from goproc import api
from goproc.cli import logread, output
from goproc.cli.codes import ExitCode
from goproc.cli.flags import Common, Flag, ascii_int, call, selector_of
from goproc.cli.logindex import stamp
from goproc.cli.tail import Piece, TailError, Tracker, follow, follow_lines
from goproc.durations import parse_duration
from goproc.errors import UsageError

DEFAULT_LINES = 50


def logs(
    target: str,
    /,
    *,
    follow_: Annotated[bool, Parameter(name=["--follow", "-f"], negative=())] = False,
    lines: Annotated[str | None, Parameter(name=["--lines", "-n"])] = None,
    err: Flag = False,
    all_: Annotated[bool, Parameter(name="--all", negative=())] = False,
    since: str | None = None,
    timestamps: Flag = False,
    common: Common | None = None,
) -> ExitCode:
    """Print the last lines of a command's output (as goproc run logged it), across the
    files rotation made.

    Parameters
    ----------
    target
        An id or a name.
    follow_
        Keep printing what is appended (through rotations), until Ctrl+C (exit 0).
    lines
        How many lines to print from the end (0: none); default 50, or with --since
        every line since then.
    err
        Its standard error instead of its standard output.
    all_
        Both, merged in the order they were received.
    since
        Only the lines received within this long before now (a Go duration: 10m, 1h30m).
    timestamps
        Each line after its receive time (RFC 3339, UTC, to the millisecond).
    """
    count = _count_of(lines, since is not None)
    cutoff = None if since is None else time.time() - _since_of(since)
    if err and all_:
        raise UsageError("--err and --all exclude each other")
    entry = call(common, api.SHOW, selector_of(None, target))
    log = entry.get("log")
    if not isinstance(log, dict):
        output.error(f"id {entry['id']} has no log files: it was added by pid or run with --attach")
        return ExitCode.REMOTE
    return _show(_paths_of(log, err, all_), count, cutoff, timestamps, follow_)


def _show(
    paths: list[str], count: int | None, cutoff: float | None, timestamps: bool, follow_: bool
) -> ExitCode:
    """Print the chosen lines of the streams whose current files are `paths`, then
    follow them; an error reading them is one line on stderr."""
    streams: list[logread.Stream] = []
    _more_descriptors()
    try:
        for path in paths:
            streams.append(logread.open_stream(path))
        _print(streams, count, cutoff, timestamps)
        if follow_:
            _follow(streams, paths, timestamps)
    except TailError as e:
        output.error(str(e))
        return ExitCode.REMOTE
    except KeyboardInterrupt:
        pass  # Ctrl+C is how following ends
    except BrokenPipeError:
        _quiet_stdout()  # the reader went away: nothing more to say, and no complaint
    except OSError as e:
        output.error(f"cannot read {' or '.join(paths)}: {e.strerror or e}")
        return ExitCode.REMOTE
    finally:
        for stream in streams:
            with contextlib.suppress(OSError):
                stream.close()
    return ExitCode.OK


def _more_descriptors() -> None:
    """Two descriptors a file (and its index), up to `log_keep` (1000) rotated files a
    stream: as many as may be had."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    most = 1 << 16 if hard == resource.RLIM_INFINITY else hard
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (most, hard))


def _count_of(text: str | None, since: bool) -> int | None:
    """`-n`: a number of lines; None (no limit) with --since when it is not given."""
    if text is None:
        return None if since else DEFAULT_LINES
    try:
        return ascii_int(text)
    except ValueError as e:
        raise UsageError(f"--lines: {e}") from None


def _since_of(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise UsageError(f"--since: {e}") from None
    if seconds <= 0:
        raise UsageError(f"--since: must be more than 0, got {text!r}")
    return seconds


def _paths_of(log: dict[str, Any], err: bool, all_: bool) -> list[str]:
    """The current files to read: one, or with --all both (one when they are the same)."""
    out, error = str(log["out"]), str(log["err"])
    if all_:
        return [out] if out == error else [out, error]
    return [error if err else out]


def _print(
    streams: list[logread.Stream], count: int | None, cutoff: float | None, timestamps: bool
) -> None:
    starts = [logread.start_of(stream, count, cutoff) for stream in streams]
    if len(streams) == 1 and not timestamps:
        for block in logread.blocks(streams[0], starts[0]):
            output.write_raw(block)
        return
    found: Iterable[logread.Line] = logread.merge(
        *(logread.lines(stream, start) for stream, start in zip(streams, starts, strict=True))
    )
    if count is not None and len(streams) > 1:
        found = collections.deque(found, maxlen=count)
    logread.emit(found, output.write_raw, timestamps)


def _follow(streams: list[logread.Stream], paths: list[str], timestamps: bool) -> None:
    """Follow the current files from where the lines printed end."""
    out_fd = sys.stdout.fileno()
    if len(streams) == 1 and not timestamps:
        current = streams[0].current
        follow(os.dup(current.fd), paths[0], current.size, output.write_raw, out_fd)
        return
    trackers: list[Tracker] = []
    try:
        for stream, path in zip(streams, paths, strict=True):
            current = stream.current
            index_fd = None if current.index is None else os.dup(current.index.fd)
            ends_line = stream.size == 0 or stream.read(stream.size - 1, 1) == b"\n"
            trackers.append(
                Tracker(os.dup(current.fd), path, current.size, index_fd, not ends_line)
            )
    except BaseException:
        for tracker in trackers:
            tracker.close()
        raise

    def write(pieces: list[Piece]) -> None:
        stamped = (stamp(t) + data if timestamps and starts else data for t, data, starts in pieces)
        output.write_raw(b"".join(stamped))

    follow_lines(trackers, write, out_fd)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the flush at exit has nowhere to fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
