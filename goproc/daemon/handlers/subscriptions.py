"""The subscribe and unsubscribe handlers: events follow on the requesting connection."""

from __future__ import annotations

from goproc.api import Subscribed, Unsubscribed, UnsubscribeParams
from goproc.daemon.events import Held
from goproc.daemon.handlers.context import Ctx
from goproc.errors import InvalidValue, NoMatch
from goproc.model import Selector


async def subscribe(ctx: Ctx, selector: Selector) -> Subscribed:
    """Events matching the selector follow on this connection as `event` notifications."""
    if ctx.session is None:
        raise InvalidValue("subscribe needs a connection")
    ctx.session.room_for_subscription()
    held = None
    if selector.ids is not None:  # those entries, not whoever gets their ids later
        present = (p for i in selector.ids if (p := ctx.registry.get(i)) is not None)
        held = Held(present, ctx.registry.next_id)
    sub = ctx.bus.subscribe(selector, held)
    ctx.session.start_subscription(sub)
    return Subscribed(subscription=sub.id)


async def unsubscribe(ctx: Ctx, params: UnsubscribeParams) -> Unsubscribed:
    if ctx.session is None or not ctx.session.owns(params.subscription):
        raise NoMatch(f"no subscription {params.subscription} on this connection")
    return Unsubscribed(unsubscribed=ctx.bus.unsubscribe(params.subscription))
