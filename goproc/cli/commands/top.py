"""`goproc top`: the live terminal UI (Textual, `goproc.tui`).

Textual is imported inside the command only, so that no other command pays for it at
start-up (tests/unit/test_cli_imports.py).  The selector flags choose what it watches,
as they choose what `list` lists; `/` inside filters further.  A terminal that says
its background is light (`COLORFGBG`) gets the light theme.
"""

from __future__ import annotations

import os
import sys

from goproc.cli.codes import ExitCode
from goproc.cli.flags import Common, Select, selector_of
from goproc.errors import UsageError


def top(*, select: Select | None = None, common: Common | None = None) -> ExitCode:
    """Watch, filter and act on tracked processes, live: a full-screen view.

    Keys: arrows or j/k move, / filters (tag:T group:G name:N alive search:TEXT), s
    sorts, space selects, K kills, S signals, t/g tag or group, n names, x removes,
    enter shows an entry in full, w marks an entry to watch for its exit, ? helps, q quits.
    """
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("goproc top needs a terminal; use 'goproc list --watch' elsewhere")
    from goproc.tui.app import TopApp, light_background
    from goproc.tui.source import SocketSource

    source = SocketSource(common.config if common is not None else None, selector_of(select))
    TopApp(source, light=light_background(os.environ)).run()
    return ExitCode.OK
