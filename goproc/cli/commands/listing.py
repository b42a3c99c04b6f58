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
from goproc.cli.flags import Common, Flag, Json, Select, connect, selector_of
from goproc.cli.tables import metric, seconds_of

SortKey = Literal["id", "pid", "name", "age", "cpu", "mem"]


def list_(
    *,
    select: Select | None = None,
    sort: SortKey = "id",
    reverse: Annotated[Flag, Parameter(name=["--reverse", "-r"])] = False,
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
    """
    selector = selector_of(select)
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


def _metric(name: str) -> Callable[[dict[str, Any]], float | None]:
    """A metric, the most first (as top sorts); None while the entry has none."""

    def most_first(p: dict[str, Any]) -> float | None:
        value = metric(p, name)
        return None if value is None else -value

    return most_first


def _youngest_first(p: dict[str, Any]) -> float | None:
    started = seconds_of(p["started_at"]) if p["alive"] else None  # a dead one has no age
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
