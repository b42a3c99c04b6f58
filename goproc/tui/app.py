"""`TopApp`: the main view of `goproc top` and what it does when the daemon speaks.

The view is a header (the daemon and the totals), a banner while the daemon cannot be
reached, the entry table (`goproc.tui.table`), the filter line, a status line and the
key footer.  The entries come from a `Link` (the event stream, in a thread) and their
metrics from a `list` every `metrics_interval`; the actions the keys start are in
`goproc.tui.actions`.  All state lives in one `Board`.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.timer import Timer
from textual.widgets import Footer, Input, Static

from goproc.cli.escape import shown
from goproc.cli.tables import age, size
from goproc.tui.actions import Actions
from goproc.tui.board import Board
from goproc.tui.filters import FilterError, parse_filter
from goproc.tui.link import Connected, Link, Loaded, Lost, Seen
from goproc.tui.source import Source
from goproc.tui.table import ProcTable, TextLines

REPAINT_DELAY = 0.01  # events within this are drawn in one frame
TICK = 1.0  # ages and the uptime move on


def light_background(env: Mapping[str, str]) -> bool:
    """Whether the terminal says its background is light: `COLORFGBG` (set by xterm,
    rxvt, Konsole and others as `FG;BG`) with a white or light grey background."""
    background = env.get("COLORFGBG", "").rpartition(";")[2]
    return background in ("7", "15")


class TopApp(Actions):
    TITLE = "goproc top"
    CSS_PATH = Path(__file__).with_name("top.tcss")
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help"),  # early: shown on the narrowest footer
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort_or_start", "Sort"),
        Binding("space", "select_row", "Select"),
        Binding("a", "select_all", "All", show=False),
        Binding("c", "clear", "Clear", show=False),
        Binding("K", "kill", "Kill"),
        Binding("S", "signal", "Signal", show=False),
        Binding("t", "label('tag')", "Tag"),
        Binding("g", "label('group')", "Group", show=False),
        Binding("n", "rename", "Name", show=False),
        Binding("x", "remove", "Remove"),
        Binding("enter", "detail", "Detail"),
        Binding("w", "wait", "Wait", show=False),
        Binding("r", "reload", "Reload", show=False),
        Binding("escape", "close_filter", "Close the filter line", show=False),
    ]

    def __init__(
        self, source: Source, now: Callable[[], float] = time.time, light: bool = False
    ) -> None:
        super().__init__()
        if light:
            self.theme = "textual-light"
        self.source = source
        self.board = Board(now=now)
        self.link = Link(source, self)
        self.status: dict[str, Any] | None = None
        self.connected = False
        self.filter_text = ""
        self._repaint_timer: Timer | None = None
        self._poll_timer: Timer | None = None
        self._message = ""
        self._status_at = 0.0  # when `status` was asked: the uptime counts on from there
        # Made here, not looked up: a timer that fires while the app closes finds them.
        self.table = ProcTable(self.board, id="table")
        self.header = TextLines(id="daemon")
        self.status_line = TextLines(id="status")
        self.banner = Static(id="banner")
        self.filter_box = Input(
            placeholder="tag:web group:prod name:api alive search:nginx", id="filter"
        )

    def compose(self) -> ComposeResult:
        yield self.header
        yield self.banner
        yield self.table
        yield self.filter_box
        yield self.status_line
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self.filter_box.display = False
        self.banner.display = False
        self._show_header()
        self.link.start()
        self.set_interval(TICK, self._tick)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Over a dialog or the detail pane only quitting works from the main view's keys."""
        return action == "quit" or self.screen is self.screen_stack[0]

    def on_unmount(self) -> None:
        self.link.close()
        for timer in (self._poll_timer, self._repaint_timer):
            if timer is not None:
                timer.stop()

    # ---- what the link reports ----------------------------------------------------------

    def on_connected(self, message: Connected) -> None:
        self.status = message.status
        self._status_at = self.board.now()
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        every = float(message.status.get("metrics_interval") or 0)
        if every > 0:
            self._poll_timer = self.set_interval(every, self._poll)

    def on_loaded(self, message: Loaded) -> None:
        self.connected = True
        self.board.load(message.procs)
        # The entries live as long as the app: the collector need not walk them again and
        # again (a full collection over 10,000 of them is a dropped frame).
        gc.freeze()
        self.banner.display = False
        self._repaint()

    def on_seen(self, message: Seen) -> None:
        if self.board.apply(message.event) and self._repaint_timer is None:
            self._repaint_timer = self.set_timer(REPAINT_DELAY, self._repaint)

    def on_lost(self, message: Lost) -> None:
        self.connected = False
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        banner = self.banner
        banner.update(
            Text(f"daemon down: {shown(message.reason)}\nreconnecting; press s to start one")
        )
        banner.display = True
        self._show_header()

    def _poll(self) -> None:
        self.call_in_thread(self.source.entries, self._polled)

    def _polled(self, procs: list[dict[str, Any]]) -> None:
        if self.board.merge_metrics(procs):  # the same CPU and memory: nothing to draw
            self._repaint()

    # ---- drawing --------------------------------------------------------------------------

    def _repaint(self) -> None:
        self._repaint_timer = None
        self.table.rows_changed()
        self._show_header()

    def _tick(self) -> None:
        self.table.refresh_ages()
        self._show_header()

    def _show_header(self) -> None:
        status, board = self.status, self.board
        alive, dead, cpu, rss = board.totals()
        if status is None or not self.connected:
            head = f"goproc top  no daemon answers at {shown(self.source.where)}\n"
        else:
            up = status.get("uptime_seconds")
            since = self.board.now() - self._status_at
            head = (
                f"goproc daemon pid {status.get('pid')}"
                f"  up {age(up + since) if isinstance(up, int | float) else '?'}"
                f"  {shown(status.get('socket'))}"
                f"\nentries {alive + dead}: {alive} alive, {dead} dead"
                f"  CPU {cpu:.1f}%  MEM {size(rss)}"
            )
        self.header.show(head)
        order = f"{board.sort}{' reversed' if board.reverse else ''}"
        line = f"{len(board.shown)} shown  sort {order}  selected {len(board.selected)}"
        if self.filter_text:
            line += f"  filter {shown(self.filter_text)}"
        if self._message:
            line += f"  | {self._message}"
        self.status_line.show(line)

    def say(self, message: str) -> None:
        """A line for the status line (already `shown` where it quotes the daemon)."""
        self._message = message
        self._show_header()

    # ---- keys that change the view --------------------------------------------------------

    def action_filter(self) -> None:
        box = self.filter_box
        box.value = self.filter_text
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.apply_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.action_close_filter()

    def action_close_filter(self) -> None:
        """The filter line goes; the filter stays (the status line shows it)."""
        self.filter_box.display = False
        self.table.focus()

    def apply_filter(self, text: str) -> bool:
        """Show only what `text` selects; a wrong word is said, the filter kept."""
        try:
            selector = parse_filter(text)
        except FilterError as e:
            self.say(shown(str(e)))
            return False
        self.filter_text, self._message = text.strip(), ""
        if selector == self.board.filter:  # a space, or a word half typed again
            self._show_header()
            return True
        self.board.set_filter(selector)
        self._repaint()
        return True

    def action_sort_or_start(self) -> None:
        if not self.connected:
            self.start_daemon()
            return
        self.board.cycle_sort()
        self._repaint()

    def on_proc_table_sort_requested(self, message: ProcTable.SortRequested) -> None:
        self.board.set_sort(message.key)
        self._repaint()

    def action_select_row(self) -> None:
        if self.table.cursor_id is not None:
            self.board.toggle(self.table.cursor_id)
            self.table.action_move(1)
            self._show_header()

    def action_select_all(self) -> None:
        self.board.select_shown()
        self._repaint()

    def action_clear(self) -> None:
        self.board.selected.clear()
        self._repaint()

    def action_wait(self) -> None:
        for i in self.board.targets(self.table.cursor_id):
            self.board.toggle_wait(i)
        self._repaint()

    def action_reload(self) -> None:
        self.link.reconnect()
