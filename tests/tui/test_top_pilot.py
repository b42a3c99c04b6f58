"""`goproc top` driven by Textual's Pilot against a real daemon and real `sleep`
processes: what it shows (an exit, a filter, an order, the detail pane) and how it lives
with the daemon (down, back, none, started with `s`)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from conftest import Daemon
from helpers import wait_until
from tui.fixed import run, until
from tui.live import SIZE, add, app_on, line_of

from goproc.model import Selector
from goproc.tui.detail import DetailScreen


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
            d.call("tag.add", {"ids": [p["id"]], "labels": ["later"]})
            await until(pilot, lambda: "later" in app.board.entries[p["id"]]["tags"])
            await pilot.press("r")  # gathered again: the new tag, its event
            await until(
                pilot,
                lambda: isinstance(app.screen, DetailScreen) and app.screen is not detail,
            )
            assert "later" in str(app.screen.query_one("#fields").render())
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
            await pilot.press("x", "y")  # an action meanwhile is said to fail, nothing more
            status = app.status_line
            await until(pilot, lambda: "cannot reach the daemon" in str(status.render()))
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


def test_the_command_line_selector_chooses_what_is_watched(
    daemon: Daemon, sleeper, monkeypatch
) -> None:
    web = add(daemon, sleeper, 1, tags=["web"])[0]
    add(daemon, sleeper, 1, tags=["db"])
    app = app_on(daemon, monkeypatch, Selector(tags_any=("web",)))  # goproc top --tag web

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: len(app.board.shown) == 1)
            assert list(app.board.shown) == [web["id"]]
            add(daemon, sleeper, 1, tags=["db"])
            later = add(daemon, sleeper, 1, tags=["web"])[0]  # its event comes after the db one
            await until(pilot, lambda: later["id"] in app.board.entries)
            assert sorted(app.board.shown) == [web["id"], later["id"]]

    run(scenario)
