"""The acting keys of `goproc top` driven by Textual's Pilot against a real daemon and
real `sleep` processes: kill with its confirmation, signal, tag, group, rename,
remove, select and wait marks; then what the daemon says it did."""

from __future__ import annotations

from typing import Any

from conftest import Daemon
from tui.fixed import run, until
from tui.live import SIZE, add, app_on, line_of

from goproc.tui.screens import ConfirmScreen, MessageScreen, PromptScreen


def test_select_and_kill_with_confirm(daemon: Daemon, sleeper, monkeypatch) -> None:
    entries = add(daemon, sleeper, 3)
    app = app_on(daemon, monkeypatch)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: len(app.board.shown) == 3)
            await pilot.press("space", "space")  # the first two (space moves down)
            assert app.board.selected == {entries[0]["id"], entries[1]["id"]}
            await pilot.press("K")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            question = app.screen
            assert isinstance(question, ConfirmScreen)
            assert "Kill 2 entries" in question.question
            assert [line.split()[1] for line in question.lines] == [
                str(entries[0]["id"]),
                str(entries[1]["id"]),
            ]
            await pilot.press("y")
            await until(pilot, lambda: isinstance(app.screen, MessageScreen))
            outcomes = app.screen
            assert isinstance(outcomes, MessageScreen)
            assert all(line.endswith("exited") for line in outcomes.lines), outcomes.lines
            await pilot.press("escape")
            await until(pilot, lambda: sum(p["alive"] for p in app.board.entries.values()) == 1)

    run(scenario)
    alive = {p["id"]: p["alive"] for p in daemon.call("list")}
    assert alive == {entries[0]["id"]: False, entries[1]["id"]: False, entries[2]["id"]: True}


def test_kill_answered_no_kills_nothing(daemon: Daemon, sleeper, monkeypatch) -> None:
    add(daemon, sleeper, 1)
    app = app_on(daemon, monkeypatch)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: len(app.board.shown) == 1)
            await pilot.press("K")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("n")
            await pilot.pause(0.3)

    run(scenario)
    assert [p["alive"] for p in daemon.call("list")] == [True]


def test_tag_group_rename_and_remove(daemon: Daemon, sleeper, monkeypatch) -> None:
    first, _second = add(daemon, sleeper, 2)
    app = app_on(daemon, monkeypatch)

    def entry(i: int) -> dict[str, Any]:
        return daemon.call("show", {"ids": [i]})

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: len(app.board.shown) == 2)
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, PromptScreen))
            await pilot.press(*"db,web", "enter")
            await until(pilot, lambda: app.board.entries[first["id"]]["tags"] == ["db", "web"])
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, PromptScreen))
            await pilot.press(*"-web", "enter")
            await until(pilot, lambda: app.board.entries[first["id"]]["tags"] == ["db"])
            await pilot.press("g", *"prod", "enter")
            await until(pilot, lambda: app.board.entries[first["id"]]["groups"] == ["prod"])
            await pilot.press("n", *"api-1", "enter")
            await until(pilot, lambda: app.board.entries[first["id"]]["name"] == "api-1")
            assert "api-1" in line_of(app, first["id"])
            await pilot.press("down", "x")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(pilot, lambda: list(app.board.shown) == [first["id"]])

    run(scenario)
    got = entry(first["id"])
    assert (got["tags"], got["groups"], got["name"]) == (["db"], ["prod"], "api-1")
    assert [p["id"] for p in daemon.call("list")] == [first["id"]]


def test_a_refused_rename_is_said_not_raised(daemon: Daemon, sleeper, monkeypatch) -> None:
    add(daemon, sleeper, 1, name="taken")
    add(daemon, sleeper, 1)
    app = app_on(daemon, monkeypatch)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: len(app.board.shown) == 2)
            await pilot.press("down", "n", "ctrl+u", *"taken", "enter")
            status = app.query_one("#status")
            await until(pilot, lambda: "refused" in str(status.render()))
            assert "already used" in str(status.render())

    run(scenario)


def test_signal_wait_mark_select_all_and_help(daemon: Daemon, sleeper, monkeypatch) -> None:
    first, second = add(daemon, sleeper, 2)
    app = app_on(daemon, monkeypatch)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: len(app.board.shown) == 2)
            await pilot.press("a")
            assert app.board.selected == {first["id"], second["id"]}
            await pilot.press("c")
            assert not app.board.selected
            await pilot.press("w")  # the first entry, under the cursor
            assert app.board.waiting == {first["id"]}
            await pilot.press("S")
            await until(pilot, lambda: isinstance(app.screen, PromptScreen))
            await pilot.press(*"HUP", "enter")  # sleep dies of a HUP
            await until(pilot, lambda: isinstance(app.screen, MessageScreen))
            outcomes = app.screen
            assert isinstance(outcomes, MessageScreen)
            assert [line.split()[4:] for line in outcomes.lines] == [["SIGHUP", "signalled"]]
            await pilot.press("escape")
            await until(pilot, lambda: first["id"] in app.board.exited_waiting)
            assert second["id"] not in app.board.exited_waiting
            await pilot.press("question_mark")
            await until(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
            await pilot.press("escape")
            await pilot.press("slash")
            assert app.filter_box.display
            await pilot.press("escape")
            assert not app.filter_box.display and app.table.has_focus

    run(scenario)
    assert [p["alive"] for p in daemon.call("list")] == [False, True]
