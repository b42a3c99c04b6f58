"""Registry events and their subscribers.

An event is a frozen value (`Event`), made once per change and shared by every
subscriber it matches.  `EventBus.publish` is synchronous and never blocks: each
subscription has a bounded queue; one that overflows gets a single `overflow` event and
is then dropped, so a slow subscriber never slows the daemon or other clients.
Delivery (the socket side) is the connection's: it drains `Subscription.next_batch`.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import trio
from attrs import frozen

from goproc.api import EVENT_METHOD
from goproc.errors import TooManySubscriptions
from goproc.model import Proc, Selector
from goproc.rpc.entries import NO_METRICS, MetricsSource, dumps, format_time, spliced

DEFAULT_QUEUE = 1024
DEFAULT_MAX_SUBSCRIPTIONS = 1024


@frozen
class Event:
    """What happened to one entry (`kind`: added, removed, exited, revived, updated,
    alert); `extra`: the kind's own fields (an alert's rule, condition and value)."""

    kind: str
    time: float
    proc: Proc
    metrics: str | None = None  # the entry's metrics' wire text when it happened
    extra: Mapping[str, Any] | None = None

    def line(self, subscription: int) -> bytes:
        """The `event` notification for one subscription, as one line."""
        return b"".join((_NOTIFICATION_HEAD, self.params(subscription), b"}\n"))

    def params(self, subscription: int) -> bytes:
        """The notification's params object (HTTP's event stream sends it alone)."""
        p = self.proc
        head = {
            "subscription": subscription,
            "kind": self.kind,
            "time": format_time(self.time),
            "id": p.id,
            "pid": p.pid,
            "name": p.name,
        }
        if self.extra:
            head.update(self.extra)
        return b"".join((dumps(head)[:-1], b',"proc":', spliced(p, self.metrics), b"}"))


@frozen
class Overflow:
    """The last event a subscription gets when its queue is full: it is dropped."""

    time: float
    dropped_after: int

    def line(self, subscription: int) -> bytes:
        return _NOTIFICATION_HEAD + self.params(subscription) + b"}\n"

    def params(self, subscription: int) -> bytes:
        params = {
            "subscription": subscription,
            "kind": "overflow",
            "time": format_time(self.time),
            "dropped_after": self.dropped_after,
        }
        return dumps(params)


_NOTIFICATION_HEAD = b'{"jsonrpc":"2.0","method":"' + EVENT_METHOD.encode() + b'","params":'


class Held:
    """The entries a subscription by `ids` means: those the ids named when it was made,
    and any later given an id not handed out before it.  After a `reset` ids start
    again at 1, so an id alone could name another process: entries are told apart by
    when they were added."""

    def __init__(self, present: Iterable[Proc], next_id: int) -> None:
        self.added = {p.id: p.added_at for p in present}
        self.first_new: float = next_id

    def holds(self, p: Proc) -> bool:
        added = self.added.get(p.id)
        if added is None:
            if p.id < self.first_new:
                return False  # the id was someone else's (gone) when we subscribed
            self.added[p.id] = added = p.added_at  # a new entry: the first to get its id
        return added == p.added_at

    def reset(self) -> None:
        """Every id is handed out again from 1: none is new to this subscription."""
        self.first_new = math.inf


class Subscription:
    def __init__(
        self, sub_id: int, selector: Selector, limit: int, held: Held | None = None
    ) -> None:
        self.id = sub_id
        self.selector = selector
        self.limit = limit
        self.held = held
        self.queue: deque[Event | Overflow] = deque()
        self.overflowed = False
        self.closed = False
        self._wake = trio.Event()
        self.pump_scope: trio.CancelScope | None = None

    def offer(self, event: Event) -> None:
        if self.closed or self.overflowed:
            return
        if len(self.queue) >= self.limit:
            self.overflowed = True
            self.queue.append(Overflow(event.time, len(self.queue)))
            if self.pump_scope is not None:  # deliver what fits, briefly, then drop
                self.pump_scope.deadline = min(self.pump_scope.deadline, trio.current_time() + 1)
        else:
            self.queue.append(event)
        self._wake.set()

    async def next_batch(self) -> list[Event | Overflow]:
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
    """Every subscription, at most `max_subscriptions` of them: each change is matched
    against all, so their number bounds what a change costs."""

    def __init__(
        self,
        queue_limit: int = DEFAULT_QUEUE,
        max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS,
        metrics: MetricsSource = NO_METRICS,
    ) -> None:
        self.metrics = metrics  # entries in events carry their metrics (`Proc.metrics`)
        self.queue_limit = queue_limit
        self.max_subscriptions = max_subscriptions
        self.subscriptions: dict[int, Subscription] = {}
        self._ids = itertools.count(1)

    def subscribe(self, selector: Selector, held: Held | None = None) -> Subscription:
        """A new subscription; `held`: the entries its `ids` mean (see `Held`).  Raises
        TooManySubscriptions at the limit."""
        if len(self.subscriptions) >= self.max_subscriptions:
            raise TooManySubscriptions(
                f"too many subscriptions (limit {self.max_subscriptions} in all); try again later"
            )
        sub = Subscription(next(self._ids), selector, self.queue_limit, held)
        self.subscriptions[sub.id] = sub
        return sub

    def reset(self) -> None:
        """After a `reset` (its `removed` events published): ids are handed out anew."""
        for sub in self.subscriptions.values():
            if sub.held is not None:
                sub.held.reset()

    def unsubscribe(self, sub_id: int) -> bool:
        sub = self.subscriptions.pop(sub_id, None)
        if sub is None:
            return False
        sub.close()
        return True

    def publish(
        self,
        kind: str,
        proc: Proc,
        now: float,
        before: Proc | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Offer the event to every subscription whose selector matches the entry as it
        is now or, for an update, as it was (so a subscriber to tag x sees x removed)."""
        if not self.subscriptions:
            return
        event: Event | None = None
        for sub in list(self.subscriptions.values()):
            if not (
                sub.selector.matches(proc) or (before is not None and sub.selector.matches(before))
            ):
                continue
            if sub.held is None or sub.held.holds(proc):
                if event is None:  # made once, shared by every subscriber
                    event = Event(kind, now, proc, self.metrics.text(proc), extra)
                sub.offer(event)
                if sub.overflowed:
                    self.subscriptions.pop(sub.id, None)
