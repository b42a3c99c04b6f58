"""`goproc events`: stream the matching entries' events until interrupted."""

from __future__ import annotations

import sys
from typing import Any

from goproc import api
from goproc.cli import output
from goproc.cli.codes import ExitCode
from goproc.cli.flags import Common, Json, Select, connect, selector_of


def events(
    *, select: Select | None = None, json_: Json = False, common: Common | None = None
) -> ExitCode:
    """Stream registry events (added, removed, exited, revived, updated, alert) as they
    happen, until interrupted; --json prints one JSON object per line."""

    local = sys.stdout.isatty()  # times in local time on a terminal, as `show` has them

    def show_event(event: dict[str, Any]) -> None:
        output.print_lines([output.event_line(event, json_, local)], flush=True)

    with connect(common, None) as client:
        client.call(api.SUBSCRIBE, selector_of(select))
        client.listen(show_event)
    output.error("the daemon closed the connection")
    return ExitCode.UNREACHABLE
