"""The entry table of `goproc top`: a virtualised Line API widget over a `Board`.

Only the lines on screen are drawn (`render_line`), so 10,000 entries cost what a
screenful costs; a new filter or order is one pass in the board and a repaint.  The
header stays on the first line; a click on a title sorts by that column (again: the
other way round).  Text is drawn as plain segments, never parsed as markup.
"""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from goproc.tui.board import COLUMNS, GAP, TITLES, Board, Layout

ALIVE = TITLES.index("ALIVE")
GUTTER = 2  # the selection mark and the wait mark


def fit(text: str, width: int) -> str:
    """`text` in exactly `width` cells (the cells are `shown`: one per character)."""
    if len(text) > width:
        return text[: width - 1] + "…" if width > 0 else ""
    return text.ljust(width)


class ProcTable(ScrollView, can_focus=True):
    """The rows of `board.shown`, a cursor over them, the header above."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "proctable--header",
        "proctable--cursor",
        "proctable--selected",
        "proctable--alive",
        "proctable--dead",
        "proctable--exited",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(0)", "First", show=False),
        Binding("end", "edge(1)", "Last", show=False),
    ]

    class SortRequested(Message):
        """A column title was clicked."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(self, board: Board, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.board = board
        self.cursor = 0
        self._cursor_id: int | None = None
        self._fit: tuple[int, Layout] | None = None
        self._ages: list[str] = []

    # ---- the app tells it what changed -------------------------------------------------------

    def rows_changed(self) -> None:
        """The board's rows changed: keep the cursor on its entry where it can."""
        shown = self.board.shown
        if self._cursor_id is not None:
            try:
                self.cursor = shown.index(self._cursor_id)
            except ValueError:
                self.cursor = min(self.cursor, max(len(shown) - 1, 0))
        self.cursor = min(self.cursor, max(len(shown) - 1, 0))
        self._cursor_id = shown[self.cursor] if shown else None
        self._fit = None
        size = Size(self.size.width, len(shown) + 1)
        if size != self.virtual_size:  # a new size means a new layout: only when it is one
            self.virtual_size = size
        self._follow_cursor()
        self.refresh()

    @property
    def cursor_id(self) -> int | None:
        """The entry under the cursor, None when no row is shown."""
        return self._cursor_id

    # ---- moving ---------------------------------------------------------------------------

    def action_move(self, step: int) -> None:
        self._move_to(self.cursor + step)

    def action_page(self, direction: int) -> None:
        self._move_to(self.cursor + direction * max(self.size.height - 2, 1))

    def action_edge(self, last: int) -> None:
        self._move_to(len(self.board.shown) - 1 if last else 0)

    def _move_to(self, row: int) -> None:
        shown = self.board.shown
        self.cursor = max(0, min(row, len(shown) - 1))
        self._cursor_id = shown[self.cursor] if shown else None
        self._follow_cursor()
        self.refresh()

    def _follow_cursor(self, again: bool = True) -> None:
        rows = max(self.size.height - 1, 1)
        top = int(self.scroll_offset.y)
        target = top
        if self.cursor < top:
            target = self.cursor
        elif self.cursor >= top + rows:
            target = self.cursor - rows + 1
        if target == top:
            return
        self.scroll_to(y=target, animate=False, immediate=True)
        if again and int(self.scroll_offset.y) != target:  # a size not laid out yet: once it is
            self.call_after_refresh(self._follow_cursor, False)

    def refresh_ages(self) -> None:
        """Repaint when an age on screen reads differently now (every second for the
        young, every minute past an hour): the clock alone changes nothing else."""
        top, board = int(self.scroll_offset.y), self.board
        visible = board.shown[top : top + max(self.size.height - 1, 0)]
        ages = [board.age(i) for i in visible]
        if ages != self._ages:
            self._ages = ages
            self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self.rows_changed()

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            key = self._column_at(event.x)
            if key is not None:
                self.post_message(self.SortRequested(key))
            return
        self._move_to(int(self.scroll_offset.y) + event.y - 1)

    def _column_at(self, x: int) -> str | None:
        layout = self.fitted()
        left = GUTTER
        for column, width in zip(layout.columns, layout.widths, strict=True):
            if left <= x < left + width + GAP:
                return COLUMNS[column].sort
            left += width + GAP
        return None

    # ---- drawing --------------------------------------------------------------------------

    def fitted(self) -> Layout:
        width = self.size.width - GUTTER
        if self._fit is None or self._fit[0] != width:
            self._fit = (width, self.board.layout(width))
        return self._fit[1]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y == 0:
            return self._header(width, base)
        row = int(self.scroll_offset.y) + y - 1
        shown = self.board.shown
        if row >= len(shown):
            return Strip.blank(width, base)
        return self._row(shown[row], row == self.cursor, width, base)

    def _header(self, width: int, base: Style) -> Strip:
        layout, board = self.fitted(), self.board
        style = base + self.get_component_rich_style("proctable--header", partial=True)
        parts = [" " * GUTTER]
        for column, w in zip(layout.columns, layout.widths, strict=True):
            title = TITLES[column]
            if COLUMNS[column].sort == board.sort:
                title += "▼" if board.reverse else "▲"
            parts.append(fit(title, w))
        text = (" " * GAP).join(parts[1:])
        return Strip([Segment(fit(parts[0] + text, width), style)], width)

    def _row(self, i: int, under_cursor: bool, width: int, base: Style) -> Strip:
        board, layout = self.board, self.fitted()
        style = base
        if i in board.exited_waiting:
            style += self.get_component_rich_style("proctable--exited", partial=True)
        if i in board.selected:
            style += self.get_component_rich_style("proctable--selected", partial=True)
        if under_cursor:
            style += self.get_component_rich_style("proctable--cursor", partial=True)
        cells = board.cells(i)
        mark = ("*" if i in board.selected else " ") + ("w" if i in board.waiting else " ")
        segments = [Segment(mark, style)]
        gap = Segment(" " * GAP, style)
        for n, (column, w) in enumerate(zip(layout.columns, layout.widths, strict=True)):
            if n:
                segments.append(gap)
            cell_style = style
            if column == ALIVE:
                alive = board.entries[i]["alive"]
                part = "proctable--alive" if alive else "proctable--dead"
                cell_style = style + self.get_component_rich_style(part, partial=True)
            segments.append(Segment(fit(cells[column], w), cell_style))
        used = GUTTER + sum(layout.widths) + GAP * (len(layout.widths) - 1)
        if used < width:
            segments.append(Segment(" " * (width - used), style))
        return Strip(segments).crop(0, width)


class TextLines(Widget):
    """Lines of plain text that change in place: a new text is a repaint, never a new
    layout (the height is fixed in the CSS), so the header and the status line cost
    nothing while the table is filtered.  A line too long is cut with an ellipsis."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._text = Text()

    def show(self, text: str) -> None:
        if text != self._text.plain:
            self._text = Text(text, no_wrap=True, overflow="ellipsis")
            self.refresh()

    def render(self) -> Text:
        return self._text
