"""`goproc list`: the matching entries as a table or a JSON array, in an order of choice."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from cyclopts import Parameter

from goproc import api
from goproc.cli import output
from goproc.cli.codes import ExitCode
from goproc.cli.flags import Common, Flag, Json, Select, connect, seconds_of, selector_of
from goproc.cli.tables import metric, stamp_seconds
from goproc.errors import UsageError
from goproc.model import Selector

SortKey = Literal["id", "pid", "name", "age", "cpu", "mem"]


def list_(
    *,
    select: Select | None = None,
    sort: SortKey = "id",
    reverse: Annotated[Flag, Parameter(name=["--reverse", "-r"])] = False,
    watch: str | None = None,
    json_: Json = False,
    common: Common | None = None,
) -> ExitCode:
    """List tracked processes, filtered; filters combine with AND.

    Parameters
    ----------
    sort
        The order: by id (the default), pid, name, age (the youngest first), cpu or mem
        (the most first); entries without the value come last.
    reverse
        The other way round.
    watch
        Redraw every INTERVAL (default 2s; a duration or seconds, at least 100ms) until
        Ctrl+C; on a terminal in place, like watch(1).
    """
    selector = selector_of(select)
    if watch is not None:
        if json_:
            raise UsageError("--watch and --json exclude each other: give one")
        return _watch(common, selector, sort, reverse, watch_interval(watch))
    with connect(common) as client:
        if json_ and sort == "id" and not reverse:  # the daemon's order, passed on as it is
            output.write_entries_json(client.call_raw(api.LIST, selector), sys.stdout)
            return ExitCode.OK
        procs = sorted_entries(client.call(api.LIST, selector), sort, reverse)
    if json_:
        output.emit(procs, True, lambda _: [])
        return ExitCode.OK
    colour, columns = _terminal()
    lines = output.table_lines(procs, colour=colour, columns=columns, now=time.time())
    output.print_lines(lines)
    return ExitCode.OK


def watch_interval(text: str) -> float:
    seconds = seconds_of("--watch", text)
    if seconds < WATCH_MIN:
        raise UsageError(f"--watch: must be at least 100ms, got {text!r}")
    return seconds


WATCH_MIN = 0.1
HOME, CLEAR_LINE, CLEAR_BELOW = "\x1b[H", "\x1b[K", "\x1b[J"
ALTERNATE, MAIN = "\x1b[?1049h\x1b[?25l", "\x1b[?25h\x1b[?1049l"  # and the cursor


def _watch(
    common: Common | None, selector: Selector, sort: str, reverse: bool, every: float
) -> ExitCode:
    """The table again every `every` seconds on one connection.  On a terminal each
    frame overwrites the last in place (home, each line cleared to its end, the rest
    below cleared: no blank frame between two, so no flicker) on the alternate screen,
    which is left as it was at the end; otherwise each table follows the last after a
    blank line."""
    on_terminal = sys.stdout.isatty()
    with connect(common) as client:
        if on_terminal:
            output.write_text(ALTERNATE)
        try:
            while True:  # until Ctrl+C, the one way it ends: exit 0, as watch(1)
                procs = sorted_entries(client.call(api.LIST, selector), sort, reverse)
                colour, columns = _terminal()
                lines = output.table_lines(procs, colour=colour, columns=columns, now=time.time())
                if on_terminal:
                    frame = "".join(f"{line}{CLEAR_LINE}\n" for line in lines)
                    output.write_text(HOME + frame + CLEAR_BELOW)
                else:
                    output.print_lines([*lines, ""], flush=True)
                time.sleep(every)
        except KeyboardInterrupt:
            return ExitCode.OK
        finally:
            if on_terminal:
                output.write_text(MAIN)


def _metric(name: str) -> Callable[[dict[str, Any]], float | None]:
    """A metric, the most first (as top sorts); None while the entry has none."""

    def most_first(p: dict[str, Any]) -> float | None:
        value = metric(p, name)
        return None if value is None else -value

    return most_first


def _youngest_first(p: dict[str, Any]) -> float | None:
    started = stamp_seconds(p["started_at"]) if p["alive"] else None  # a dead one has no age
    return None if started is None else -started


# Each key gives None for an entry without the value: those come last, either way round.
SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "id": lambda p: p["id"],
    "pid": lambda p: p["pid"],
    "name": lambda p: p["name"],
    "age": _youngest_first,
    "cpu": _metric("cpu_percent"),
    "mem": _metric("rss_bytes"),
}


def sorted_entries(
    procs: Sequence[dict[str, Any]], key: str, reverse: bool
) -> list[dict[str, Any]]:
    """`procs` by `key` (then id), those without a value last; `reverse` turns the
    ones with a value round."""
    value = SORT_KEYS[key]
    having = [p for p in procs if value(p) is not None]
    lacking = [p for p in procs if value(p) is None]
    having.sort(key=lambda p: (value(p), p["id"]), reverse=reverse)
    return having + lacking


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
