"""What the `goproc top` tests against a real daemon share: the app pointed at a
daemon (as `goproc top` makes it), entries of real `sleep`s, a row's text as drawn."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import Daemon

from goproc.model import Selector
from goproc.tui.app import TopApp
from goproc.tui.source import SocketSource

SIZE = (120, 30)


def app_on(d: Daemon, monkeypatch: pytest.MonkeyPatch, selector: Selector | None = None) -> TopApp:
    """The app as `goproc top` makes it, pointed at `d` through its environment."""
    for key in ("GOPROC_RUNTIME_DIR", "GOPROC_STATE_DIR", "GOPROC_METRICS_INTERVAL"):
        if key in d.env:
            monkeypatch.setenv(key, d.env[key])
    monkeypatch.delenv("GOPROC_SOCKET", raising=False)
    return TopApp(SocketSource(d.config_path, selector or Selector()))


def add(d: Daemon, sleeper: Callable[..., Any], n: int, **params: Any) -> list[dict[str, Any]]:
    return [d.call("add", {"pid": sleeper().pid, **params}) for _ in range(n)]


def line_of(app: TopApp, entry_id: int) -> str:
    """The table's line of an entry as drawn (its text)."""
    table = app.table
    row = list(app.board.shown).index(entry_id)
    return table.render_line(row + 1 - int(table.scroll_offset.y)).text
