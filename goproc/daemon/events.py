"""Registry events and their subscribers.

`EventBus.publish` is synchronous and never blocks: each subscription has a bounded
queue; one that overflows gets a single `overflow` event and is then dropped, so a slow
subscriber never slows the daemon or other clients.  Delivery (the socket side) is the
server's: it drains `Subscription.next_batch` into its connection.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import trio

from goproc.model import Proc, Selector
from goproc.protocol import format_time, unstructure

KINDS = ("added", "removed", "exited", "revived", "updated")
DEFAULT_QUEUE = 1024


class Subscription:
    def __init__(self, sub_id: int, selector: Selector, limit: int) -> None:
        self.id = sub_id
        self.selector = selector
        self.limit = limit
        self.queue: deque[dict[str, Any]] = deque()
        self.overflowed = False
        self.closed = False
        self._wake = trio.Event()
        self.pump_scope: trio.CancelScope | None = None

    def offer(self, event: dict[str, Any]) -> None:
        if self.closed or self.overflowed:
            return
        if len(self.queue) >= self.limit:
            self.overflowed = True
            self.queue.append(
                {
                    "subscription": self.id,
                    "kind": "overflow",
                    "time": event["time"],
                    "dropped_after": len(self.queue),
                }
            )
            if self.pump_scope is not None:  # deliver what fits, briefly, then drop
                self.pump_scope.deadline = min(self.pump_scope.deadline, trio.current_time() + 1)
        else:
            self.queue.append({"subscription": self.id, **event})
        self._wake.set()

    async def next_batch(self) -> list[dict[str, Any]]:
        """Every queued event, waiting for one; [] once closed."""
        while not self.queue and not self.closed:
            await self._wake.wait()
            self._wake = trio.Event()
        batch = list(self.queue)
        self.queue.clear()
        return batch

    def close(self) -> None:
        self.closed = True
        self._wake.set()


class EventBus:
    def __init__(self, queue_limit: int = DEFAULT_QUEUE) -> None:
        self.queue_limit = queue_limit
        self.subscriptions: dict[int, Subscription] = {}
        self._ids = itertools.count(1)
        self.published = 0

    def subscribe(self, selector: Selector) -> Subscription:
        sub = Subscription(next(self._ids), selector, self.queue_limit)
        self.subscriptions[sub.id] = sub
        return sub

    def unsubscribe(self, sub_id: int) -> bool:
        sub = self.subscriptions.pop(sub_id, None)
        if sub is None:
            return False
        sub.close()
        return True

    def publish(self, kind: str, proc: Proc, now: float, before: Proc | None = None) -> None:
        """Offer the event to every subscription whose selector matches the entry as it
        is now or, for an update, as it was (so a subscriber to tag x sees x removed)."""
        self.published += 1
        if not self.subscriptions:
            return
        event: dict[str, Any] | None = None
        for sub in list(self.subscriptions.values()):
            if sub.selector.matches(proc) or (before is not None and sub.selector.matches(before)):
                if event is None:  # built once, shared by every subscriber
                    event = {
                        "kind": kind,
                        "time": format_time(now),
                        "id": proc.id,
                        "pid": proc.pid,
                        "name": proc.name,
                        "proc": unstructure(proc),
                    }
                sub.offer(event)
                if sub.overflowed:
                    self.subscriptions.pop(sub.id, None)
