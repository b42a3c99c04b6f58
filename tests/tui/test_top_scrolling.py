"""The virtualised table scrolls with its cursor over many entries (fixed data)."""

from __future__ import annotations

from tui.fixed import NOW, FixedSource, entry, run, until

from goproc.tui.app import TopApp


def test_end_pageup_and_home_keep_the_cursor_on_screen() -> None:
    app = TopApp(FixedSource([entry(i, f"job {i}") for i in range(1, 501)]), now=lambda: NOW)

    def visible_ids() -> list[int]:
        table = app.table
        lines = [table.render_line(y).text for y in range(1, table.size.height)]
        return [int(line.split()[0]) for line in lines if line.strip()]

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: len(app.board.shown) == 500)
            await pilot.press("end")
            assert app.table.cursor_id == 500 and visible_ids()[-1] == 500
            await pilot.press("pageup")
            assert app.table.cursor_id in visible_ids() and app.table.cursor_id < 500
            await pilot.press("home")
            assert app.table.cursor_id == 1 and visible_ids()[0] == 1
            await pilot.press("j", "j", "k")
            assert app.table.cursor_id == 2

    run(scenario)
