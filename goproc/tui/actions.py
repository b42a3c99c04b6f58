"""What the action keys of `goproc top` do: kill, signal, tag, group, rename, remove,
the detail pane, the help, and starting a daemon.

Each asks first where it changes something (a confirmation that names the entries, or a
prompt), then makes the request the CLI would make (`goproc.api` params, the same
selector: the entries by id, `all` since the user chose them) in a thread worker, and
says the answer in the status line or a dialog.  The daemon's error messages are shown
`shown`, never as markup; nothing here raises into the screen.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from textual.app import App

from goproc import api
from goproc.cli.client import DaemonUnreachable, RemoteError
from goproc.cli.escape import shown
from goproc.cli.flags import signal_of, split_commas
from goproc.errors import UsageError
from goproc.model import Selector
from goproc.tui.board import Board
from goproc.tui.detail import Detail, DetailScreen, gather
from goproc.tui.screens import ConfirmScreen, HelpScreen, MessageScreen, PromptScreen, entry_lines
from goproc.tui.source import Source
from goproc.tui.table import ProcTable

T = TypeVar("T")
KILL_TIMEOUT = 5.0  # as `goproc kill`: TERM, then KILL after this


def targeted(ids: list[int]) -> api.Targeted:
    return api.Targeted(select=Selector(ids=tuple(api.ProcId(i) for i in ids)), all=True)


def outcome_lines(outcomes: list[dict[str, Any]]) -> list[str]:
    """One line per entry a kill answered for: `id 3  pid 4242  SIGTERM  exited`."""
    lines = []
    for o in outcomes:
        line = f"id {o['id']}  pid {o['pid']}  {shown(o.get('signal', '?'))}  {shown(o['outcome'])}"
        if o.get("error"):
            line += f": {shown(o['error'])}"
        lines.append(line)
    return lines


class Actions(App[None]):
    """The action keys; `goproc.tui.app.TopApp` is the rest of the app."""

    source: Source
    board: Board
    table: ProcTable

    def say(self, message: str) -> None:
        raise NotImplementedError

    def call_in_thread(self, work: Callable[[], T], done: Callable[[T], None]) -> None:
        """`work()` in a thread worker, then `done(result)` on the app's loop; a failure
        to reach the daemon, or its error reply, is said in the status line."""

        def run() -> None:
            try:
                result = work()
            except RemoteError as e:
                self._from_thread(self.say, f"the daemon refused: {shown(e.message)}")
            except DaemonUnreachable as e:
                self._from_thread(self.say, shown(str(e)))
            except (OSError, ValueError) as e:  # a log file unreadable, a reply not JSON
                self._from_thread(self.say, f"failed: {shown(str(e))}")
            else:
                self._from_thread(done, result)

        self.run_worker(run, thread=True, group="calls")

    def _from_thread(self, fn: Callable[[T], None], arg: T) -> None:
        with contextlib.suppress(RuntimeError):  # the app has closed meanwhile
            self.call_from_thread(fn, arg)

    def _targets(self, verb: str) -> list[dict[str, Any]]:
        """The entries the selection (else the cursor) names; says so when none."""
        entries = [self.board.entries[i] for i in self.board.targets(self.table.cursor_id)]
        if not entries:
            self.say(f"nothing to {verb}: no entry is shown")
        return entries

    # ---- the keys -------------------------------------------------------------------------

    def action_kill(self) -> None:
        entries = self._targets("kill")
        if not entries:
            return
        ids = [p["id"] for p in entries]
        what = "entry" if len(ids) == 1 else "entries"
        question = f"Kill {len(ids)} {what}: TERM, then KILL after {KILL_TIMEOUT:.0f} s?"

        def answered(yes: bool | None) -> None:
            if yes:
                self.say(f"killing {len(ids)}...")
                params = api.KillParams(target=targeted(ids), timeout=api.Seconds(KILL_TIMEOUT))
                self.call_in_thread(lambda: self.source.call(api.KILL, params), self._killed)

        self.push_screen(ConfirmScreen(question, entry_lines(entries)), answered)

    def _killed(self, outcomes: list[dict[str, Any]]) -> None:
        self.say(f"kill: {len(outcomes)} answered")
        self.push_screen(MessageScreen("What the kill did", outcome_lines(outcomes)))

    def _signalled(self, outcomes: list[dict[str, Any]]) -> None:
        self.say(f"signal: {len(outcomes)} answered")
        self.push_screen(MessageScreen("What the signal did", outcome_lines(outcomes)))

    def action_signal(self) -> None:
        entries = self._targets("signal")
        if not entries:
            return
        ids = [p["id"] for p in entries]

        def answered(text: str | None) -> None:
            if not text or not text.strip():
                return
            try:
                signal = signal_of(text.strip())
            except UsageError as e:
                self.say(shown(str(e)))
                return
            # This signal only: no KILL follows a TERM sent this way.
            params = api.KillParams(target=targeted(ids), signal=signal, timeout=api.Seconds(0))
            self.call_in_thread(lambda: self.source.call(api.KILL, params), self._signalled)

        question = f"Signal to send to {len(ids)} (a name like HUP, USR1, or a number):"
        self.push_screen(PromptScreen(question, placeholder="HUP"), answered)

    def action_label(self, kind: str) -> None:
        entries = self._targets(f"{kind}")
        if not entries:
            return
        ids = [p["id"] for p in entries]
        methods = api.TAG if kind == "tag" else api.GROUP

        def answered(text: str | None) -> None:
            if not text or not text.strip():
                return
            text = text.strip()
            remove = text.startswith("-")
            labels = tuple(api.Label(x) for x in split_commas([text.lstrip("-")]))
            params = api.LabelParams(labels=labels, target=targeted(ids))
            method = methods.remove if remove else methods.add
            verb = "removed from" if remove else "added to"
            done = lambda result: self.say(f"{kind} {shown(text.lstrip('-'))} {verb} {len(result)}")  # noqa: E731
            self.call_in_thread(lambda: self.source.call(method, params), done)

        question = (
            f"{kind.title()} to add to {len(ids)} (-{kind.upper()} removes it; commas for several):"
        )
        self.push_screen(PromptScreen(question), answered)

    def action_rename(self) -> None:
        entries = self._targets("rename")
        if not entries:
            return
        if len(entries) > 1:
            self.say("a name is for one entry: clear the selection (c) first")
            return
        p = entries[0]

        def answered(text: str | None) -> None:
            if text is None:
                return
            name = api.Name(text.strip()) if text.strip() else None
            params = api.NameParams(name=name, select=Selector(ids=(api.ProcId(p["id"]),)))
            done = lambda _: self.say(f"entry {p['id']} named {shown(name or '(none)')}")  # noqa: E731
            self.call_in_thread(lambda: self.source.call(api.NAME_SET, params), done)

        question = f"Name for entry {p['id']} (empty clears it):"
        self.push_screen(PromptScreen(question, value=p["name"] or ""), answered)

    def action_remove(self) -> None:
        entries = self._targets("remove")
        if not entries:
            return
        ids = [p["id"] for p in entries]

        def answered(yes: bool | None) -> None:
            if yes:
                done = lambda result: self.say(f"removed {len(result)}")  # noqa: E731
                self.call_in_thread(lambda: self.source.call(api.REMOVE, targeted(ids)), done)

        question = f"Remove {len(ids)} from the registry? (the processes are not touched)"
        self.push_screen(ConfirmScreen(question, entry_lines(entries)), answered)

    def action_detail(self) -> None:
        i = self.table.cursor_id
        if i is None:
            self.say("no entry is shown")
            return
        self._detail_of(i)

    def _detail_of(self, i: int) -> None:
        proc = self.board.entries.get(i)
        if proc is None:
            self.say(f"entry {i} is gone")
            return
        events = list(self.board.events.get(i, ()))
        now = self.board.now()
        work = lambda: gather(self.source, proc, events, now)  # noqa: E731
        self.call_in_thread(work, self._show_detail)

    def _show_detail(self, detail: Detail) -> None:
        def closed(how: str | None) -> None:
            if how == "reload":
                self._detail_of(detail.proc["id"])

        self.push_screen(DetailScreen(detail), closed)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def start_daemon(self) -> None:
        self.say("starting a daemon...")
        self.call_in_thread(self.source.start_daemon, lambda _: self.say("daemon started"))
