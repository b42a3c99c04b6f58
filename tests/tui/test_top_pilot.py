"""`goproc top` driven by Textual's Pilot against a real daemon and real `sleep`
processes: keys pressed, then what the screen holds and what the daemon says now."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon
from helpers import wait_until
from tui.fixed import run, until

from goproc.model import Selector
from goproc.tui.app import TopApp
from goproc.tui.detail import DetailScreen
from goproc.tui.screens import ConfirmScreen, MessageScreen, PromptScreen
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


def test_an_exit_outside_shows_dead_without_a_refresh(daemon: Daemon, sleeper, monkeypatch) -> None:
    procs = [sleeper() for _ in range(2)]
    ids = [daemon.call("add", {"pid": p.pid})["id"] for p in procs]
    app = app_on(daemon, monkeypatch)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: len(app.board.shown) == 2)
            assert " yes " in line_of(app, ids[0])
            procs[0].kill()
            await until(pilot, lambda: not app.board.entries[ids[0]]["alive"], within=2.0)
            await pilot.pause(0.1)
            assert " no " in line_of(app, ids[0]) and " yes " in line_of(app, ids[1])
            assert "1 alive, 1 dead" in str(app.query_one("#daemon").render())

    run(scenario)


def test_filter_words_and_an_unknown_word(daemon: Daemon, sleeper, monkeypatch) -> None:
    web = add(daemon, sleeper, 2, tags=["web"])
    add(daemon, sleeper, 1, groups=["prod"], name="db")
    app = app_on(daemon, monkeypatch)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: len(app.board.shown) == 3)
            await pilot.press("slash", *"tag:web", "enter")
            assert list(app.board.shown) == [p["id"] for p in web]
            await pilot.press("slash", "ctrl+u", *"group:prod name:db alive", "enter")
            assert [app.board.entries[i]["name"] for i in app.board.shown] == ["db"]
            await pilot.press("slash", "end", *" colour:red", "enter")
            status = str(app.query_one("#status").render())
            assert "unknown word 'colour:'" in status
            assert [app.board.entries[i]["name"] for i in app.board.shown] == ["db"]  # kept

    run(scenario)


def test_sort_cycles_and_a_click_on_a_title_sorts(daemon: Daemon, sleeper, monkeypatch) -> None:
    a = daemon.call("add", {"pid": sleeper().pid, "name": "zz"})
    b = daemon.call("add", {"pid": sleeper().pid, "name": "aa"})
    app = app_on(daemon, monkeypatch)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: len(app.board.shown) == 2)
            assert list(app.board.shown) == [a["id"], b["id"]]
            await pilot.press("s")
            assert app.board.sort == "name"
            assert list(app.board.shown) == [b["id"], a["id"]]
            x = 2 + app.table.fitted().widths[0] + 2  # the PID title... after ID and NAME
            x += app.table.fitted().widths[1] + 2
            await pilot.click("#table", offset=(x, 0))
            assert app.board.sort == "pid" and not app.board.reverse
            await pilot.click("#table", offset=(x, 0))
            assert app.board.reverse

    run(scenario)


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


def test_detail_pane_with_history_rules_and_events(spawn_daemon, sleeper, monkeypatch) -> None:
    d = spawn_daemon(config={"metrics_interval": "100ms"})
    p = add(d, sleeper, 1, tags=["api"])[0]
    d.call("alert.add", {"tags_any": ["api"], "condition": "cpu > 90%", "rule": "hot"})
    d.call("alert.add", {"tags_any": ["db"], "condition": "cpu > 90%", "rule": "elsewhere"})
    wait_until(lambda: len(d.call("metrics.history", {"ids": [p["id"]]})[0]["samples"]) >= 3)
    app = app_on(d, monkeypatch)

    async def scenario() -> None:
        async with app.run_test(size=(120, 60)) as pilot:
            await until(pilot, lambda: len(app.board.shown) == 1)
            d.call("tag.add", {"ids": [p["id"]], "labels": ["seen"]})  # an event of it
            await until(pilot, lambda: "seen" in app.board.entries[p["id"]]["tags"])
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen))
            detail = app.screen
            assert isinstance(detail, DetailScreen)
            assert str(p["pid"]) in str(detail.query_one("#fields").render())
            assert len(detail.detail.history) >= 3
            rules = str(detail.query_one("#rules").render())
            assert "hot" in rules and "elsewhere" not in rules
            assert "updated" in str(detail.query_one("#events").render())
            await pilot.press("escape")
            assert not isinstance(app.screen, DetailScreen)

    run(scenario)


def test_daemon_down_banner_then_reconnect(daemon: Daemon, sleeper, monkeypatch) -> None:
    entry = add(daemon, sleeper, 1)[0]
    app = app_on(daemon, monkeypatch)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: len(app.board.shown) == 1)
            banner = app.query_one("#banner")
            assert not banner.display
            daemon.stop()
            await until(pilot, lambda: banner.display)
            assert "daemon down" in str(banner.render())
            daemon.start()
            other = daemon.call("add", {"pid": sleeper().pid})  # made while the app was away
            await until(pilot, lambda: not banner.display and len(app.board.shown) == 2)
            assert set(app.board.shown) == {entry["id"], other["id"]}

    run(scenario)


def test_no_daemon_says_so_and_s_starts_one(spawn_daemon, monkeypatch) -> None:
    d = spawn_daemon(start=False)
    app = app_on(d, monkeypatch)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            banner = app.query_one("#banner")
            await until(pilot, lambda: banner.display)
            assert "press s to start one" in str(banner.render())
            assert "no daemon answers" in str(app.query_one("#daemon").render())
            await pilot.press("s")
            await until(pilot, lambda: app.connected and not banner.display, within=15.0)

    try:
        run(scenario)
        assert d.call("ping") == "pong"
    finally:  # the daemon the app started, found by its pid
        pid = d.call("status")["pid"] if d.socket.exists() else None
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not d.socket.exists(), timeout=15.0)


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


def test_detail_pane_tails_the_log_of_an_entry_goproc_run_started(
    daemon: Daemon, monkeypatch
) -> None:
    r = daemon.cli(
        "run",
        "--name",
        "talker",
        "--",
        "sh",
        "-c",
        "echo first-line; echo second-line; exec sleep 300",
    )
    assert r.returncode == 0, r.stderr
    proc = daemon.call("show", {"names": ["talker"]})
    try:
        out = Path(proc["log"]["out"])
        wait_until(lambda: "second-line" in out.read_text())
        app = app_on(daemon, monkeypatch)

        async def scenario() -> None:
            async with app.run_test(size=(120, 60)) as pilot:
                await until(pilot, lambda: len(app.board.shown) == 1)
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, DetailScreen))
                log = str(app.screen.query_one("#log").render())
                assert "[out] first-line" in log and "[out] second-line" in log

        run(scenario)
    finally:
        os.kill(proc["pid"], signal.SIGKILL)
