"""The dialogs of `goproc top`: a confirmation, a one-line prompt, a list of outcomes
and the key help.  Each is a `ModalScreen` whose result goes to the callback given to
`push_screen`.  Untrusted text reaches them as `rich.text.Text` (plain, `shown`), never
as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from goproc.cli.escape import shown

LISTED = 12  # entries a confirmation names one by one; the rest are counted


def entry_lines(entries: Sequence[dict[str, object]]) -> list[str]:
    """`id 3  pid 4242  web-1  sleep 300`, one per entry, at most LISTED of them."""
    lines = [
        f"id {p['id']}  pid {p['pid']}  {shown(p['name'] or '-')}  {shown(p['cmd'])}"
        for p in entries[:LISTED]
    ]
    if len(entries) > LISTED:
        lines.append(f"... and {len(entries) - LISTED} more")
    return lines


class ConfirmScreen(ModalScreen[bool]):
    """A question and the entries it is about; `y`/enter says yes, `n`/escape no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, lines: Sequence[str]) -> None:
        super().__init__()
        self.question = question
        self.lines = lines

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm"):
            yield Static(Text(self.question), classes="question")
            yield Static(Text("\n".join(self.lines)), classes="entries")
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class PromptScreen(ModalScreen[str | None]):
    """One line of input; enter gives it, escape gives None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question = question
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="prompt"):
            yield Static(Text(self.question), classes="question")
            yield Input(value=self.value, placeholder=self.placeholder, id="answer")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class MessageScreen(ModalScreen[None]):
    """Lines to read (what a kill did to each entry); any of enter, escape, q closes."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter,escape,q", "close", "Close")]

    def __init__(self, title: str, lines: Sequence[str]) -> None:
        super().__init__()
        self.heading = title
        self.lines = lines

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="message"):
            yield Static(Text(self.heading), classes="question")
            with VerticalScroll(classes="entries"):
                yield Static(Text("\n".join(self.lines)))
            yield Static("enter or escape closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)


KEYS = (
    ("↑ ↓  j k", "move (PgUp PgDn Home End)"),
    ("/", "filter: tag:T group:G name:N id:N pid:N search:TEXT alive dead"),
    ("s", "cycle the sort (or click a column title); with no daemon: start one"),
    ("space", "select or unselect the entry"),
    ("a / c", "select every entry shown / clear the selection"),
    ("K", "kill the selection (or the entry): TERM, then KILL after 5 s"),
    ("S", "send a signal of your choice"),
    ("t / g", "add a tag or group (-NAME removes it)"),
    ("n", "rename (an empty name clears it)"),
    ("x", "remove from the registry (the process is not touched)"),
    ("enter", "details: every field, CPU and RSS history, alert rules, events, log (r: again)"),
    ("w", "mark the entry: its row is highlighted when it exits"),
    ("r", "reload everything from the daemon"),
    ("?", "this help"),
    ("q  Ctrl+C", "quit"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        width = max(len(k) for k, _ in KEYS)
        text = "\n".join(f"{k.ljust(width)}  {what}" for k, what in KEYS)
        with Vertical(classes="dialog", id="help"):
            yield Static("goproc top: keys", classes="question")
            yield Static(Text(text))
            yield Static("escape closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
