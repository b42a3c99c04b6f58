"""Screenshots of `goproc top` (pytest-textual-snapshot; the SVGs are in __snapshots__):
the main view, the detail pane and the kill confirmation, over fixed data
(tests/tui/fixed.py) so that every run draws the same screen.  `--snapshot-update`
writes them anew after a change that is meant."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from tui.fixed import NOW, FixedSource, until

from goproc.tui.app import TopApp
from goproc.tui.detail import DetailScreen
from goproc.tui.screens import ConfirmScreen


def fixed_app() -> TopApp:
    return TopApp(FixedSource(), now=lambda: NOW)


async def loaded(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, TopApp)
    await until(pilot, lambda: len(app.board.shown) == 5)


def test_main_view(snap_compare: Any) -> None:
    assert snap_compare(fixed_app(), terminal_size=(120, 24), run_before=loaded)


def test_main_view_at_80_columns_cuts_the_command_first(snap_compare: Any) -> None:
    assert snap_compare(fixed_app(), terminal_size=(80, 24), run_before=loaded)


def test_main_view_light_theme(snap_compare: Any) -> None:
    app = TopApp(FixedSource(), now=lambda: NOW, light=True)
    assert snap_compare(app, terminal_size=(120, 24), run_before=loaded)


def test_detail_pane(snap_compare: Any) -> None:
    async def open_detail(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, DetailScreen))

    assert snap_compare(fixed_app(), terminal_size=(100, 40), run_before=open_detail)


def test_kill_confirmation(snap_compare: Any) -> None:
    async def confirm(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("space", "space", "K")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))

    assert snap_compare(fixed_app(), terminal_size=(100, 24), run_before=confirm)
