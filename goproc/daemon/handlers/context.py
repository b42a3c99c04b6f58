"""What every handler is given: `Ctx`, built once by the wiring and copied per connection
with its `session`; and `resolve`, how a command finds the entries it acts on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from typing import Any, Generic, Protocol, TypeVar

import trio
from attrs import field, frozen

from goproc.api import Method, Status
from goproc.daemon.counters import RpcStats
from goproc.daemon.events import EventBus, Subscription
from goproc.daemon.probe import Probe
from goproc.daemon.service import Pulse, Service, Vitals
from goproc.daemon.supervisor import Supervisor
from goproc.errors import Ambiguous, NoMatch
from goproc.metrics import DEFAULT_HISTORY, MetricsStore
from goproc.model import Proc, Rule, Selector
from goproc.registry import Registry
from goproc.rpc.entries import MetricsSource, RawJSON, entries_json, metrics_text

P = TypeVar("P")
R = TypeVar("R")


class Session(Protocol):
    """The connection a request came on, for methods that talk back (subscribe, wait),
    and the client's pid (`add` with a match never selects it; None: not known)."""

    @property
    def peer_pid(self) -> int | None: ...

    def start_subscription(self, sub: Subscription) -> None: ...

    def room_for_subscription(self) -> None:
        """Raise TooManySubscriptions if this connection may hold no more."""

    def owns(self, sub_id: int) -> bool: ...

    def cancel_on_hangup(self) -> AbstractAsyncContextManager[None]: ...

    def cut_short_on_stop(self) -> AbstractContextManager[trio.CancelScope]: ...

    def take_fds(self) -> tuple[int, ...]:
        """The descriptors sent with the request (SCM_RIGHTS, at most 2), now the
        caller's to close."""


class Exits(Protocol):
    """The exit watcher's pidfds (`goproc.daemon.exits.ExitWatcher`), for `kill`."""

    def pidfd(self, proc: Proc) -> int | None: ...

    async def wait_exit(self, proc: Proc) -> bool: ...


class Unwatched:
    """No pidfds held: every entry is probed (`exit_watch: "poll"`, or no pidfds)."""

    def pidfd(self, proc: Proc) -> int | None:
        return None

    async def wait_exit(self, proc: Proc) -> bool:
        return False


UNWATCHED = Unwatched()


@frozen
class Ctx:
    """The parts a handler may use; each is built once (see `goproc.daemon.wiring`)."""

    registry: Registry  # read here; changed only through `service` and `vitals`
    service: Service
    vitals: Vitals
    probe: Probe
    bus: EventBus
    pulse: Pulse
    clock: Callable[[], float]
    status: Callable[[], Status]
    # An array of entries as JSON with their metrics: the wiring's reads unchanged ones
    # from the snapshot file.
    entries_json: Callable[[Sequence[Proc], MetricsSource], RawJSON] = entries_json
    exits: Exits = UNWATCHED
    # Where `add` with `log: true` puts an entry's files (`<id>.out`, `<id>.err`): the
    # state dir's `logs`, absolute.  The daemon names them; `goproc run` makes them.
    log_dir: str | None = None
    # Every entry's latest metrics and history (`goproc.daemon.metrics` fills it), and
    # how often they are sampled (0: never).
    metrics: MetricsStore = field(factory=lambda: MetricsStore(DEFAULT_HISTORY, metrics_text))
    metrics_interval: float = 0.0
    # The entries an alert rule has fired for and not cleared since (the alerter's).
    firing: Callable[[Rule], tuple[int, ...]] = lambda rule: ()
    # Tells the adopter the adoption rules changed (it wakes from idle, or rescans).
    adopting: Callable[[], None] = lambda: None
    # Requests answered, by method and outcome, and their durations (one object shared
    # by every connection's copy; read by `goproc.daemon.exposition`).
    rpc_stats: RpcStats = field(factory=RpcStats)
    # Starts, reaps and restarts what `spawn` starts; None: this daemon starts nothing.
    supervisor: Supervisor | None = None
    session: Session | None = None


Handler = Callable[[Ctx, P], Awaitable[R]]


@frozen
class Bound(Generic[P, R]):
    """A method of the contract and the handler that answers it."""

    method: Method[P, R]
    handler: Callable[[Ctx, P], Awaitable[R]]


def bind(method: Method[P, R], handler: Callable[[Ctx, P], Awaitable[R]]) -> Bound[Any, Any]:
    return Bound(method, handler)


def cut_short_on_stop(ctx: Ctx) -> AbstractContextManager[trio.CancelScope]:
    """The session's scope cancelled when the daemon stops; a plain one without a
    session (in-process callers: nothing stops them)."""
    if ctx.session is None:
        return nullcontext(trio.CancelScope())
    return ctx.session.cut_short_on_stop()


def resolve(ctx: Ctx, selector: Selector, *, many: bool, can_all: bool = True) -> list[Proc]:
    """The entries a command acts on: at least one, and several only when `many`
    (`can_all`: the method takes `all`, so the refusal may suggest it)."""
    procs = ctx.registry.select(selector)
    if not procs:
        raise NoMatch("no process matches")
    if len(procs) > 1 and not many:
        raise ambiguous(procs, can_all=can_all)
    return procs


def ambiguous(procs: Sequence[Proc], *, can_all: bool = True) -> Ambiguous:
    """The refusal of a selection that names several entries where one was meant."""
    ids = [p.id for p in procs[:5]]
    more = ", ..." if len(procs) > 5 else ""
    return Ambiguous(
        f"{len(procs)} processes match (ids {', '.join(map(str, ids))}{more}); "
        "narrow the selection" + (" or use --all" if can_all else " (it acts on one)"),
        {"count": len(procs), "ids": ids},
    )
