"""The app's link to the daemon: a thread that follows the event stream and comes back.

`Link.run` (in its own daemon thread) loops: ask `status`, then `follow` (subscribe,
load, events), and when the connection ends or cannot be made, post `Lost` and try again
every RETRY seconds, until `close`.  Everything it learns goes to the app as messages
(`post_message` is thread-safe), so the app's state is only touched on its own loop.
"""

from __future__ import annotations

import threading
from typing import Any

from textual.message import Message
from textual.message_pump import MessagePump

from goproc.cli.client import DaemonUnreachable, RemoteError
from goproc.tui.source import Source

RETRY = 0.5


class Connected(Message):
    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__()
        self.status = status


class Loaded(Message):
    def __init__(self, procs: list[dict[str, Any]]) -> None:
        super().__init__()
        self.procs = procs


class Seen(Message):
    """One event notification."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event


class Lost(Message):
    """The daemon cannot be reached (any more); `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class Link:
    def __init__(self, source: Source, target: MessagePump) -> None:
        self.source = source
        self.target = target
        self._closed = threading.Event()
        self._reloading = threading.Event()
        self._thread = threading.Thread(target=self.run, name="goproc-top-link", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop following; the thread ends at its next step."""
        self._closed.set()
        self.source.stop()

    def reconnect(self) -> None:
        """End the current connection: the loop makes a new one and loads anew."""
        self._reloading.set()
        self.source.stop()

    def _loaded(self, procs: list[dict[str, Any]]) -> None:
        self.target.post_message(Loaded(procs))

    def _seen(self, event: dict[str, Any]) -> None:
        if event.get("kind") == "overflow":  # the daemon hangs up next: load anew, no banner
            self._reloading.set()
        self.target.post_message(Seen(event))

    def run(self) -> None:
        post = self.target.post_message
        while not self._closed.is_set():
            try:
                post(Connected(self.source.status()))
                self.source.follow(self._loaded, self._seen)
                reason = "the daemon closed the connection"
            except DaemonUnreachable as e:
                reason = str(e)
            except RemoteError as e:
                reason = f"the daemon refused: {e.message}"
            except (OSError, ValueError) as e:  # a line that is not JSON, say: start again
                reason = f"the connection failed: {e}"
            if self._closed.is_set():
                return
            if self._reloading.is_set():
                self._reloading.clear()
                continue
            post(Lost(reason))
            self._closed.wait(RETRY)
