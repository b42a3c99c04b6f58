"""The subscribe and unsubscribe handlers: events follow on the requesting connection."""

from __future__ import annotations

from goproc.api import Subscribed, Unsubscribed, UnsubscribeParams
from goproc.daemon.handlers.context import Ctx
from goproc.errors import InvalidValue, NoMatch
from goproc.model import Selector


async def subscribe(ctx: Ctx, selector: Selector) -> Subscribed:
    """Events matching the selector follow on this connection as `event` notifications."""
    if ctx.session is None:
        raise InvalidValue("subscribe needs a connection")
    ctx.session.room_for_subscription()
    sub = ctx.bus.subscribe(selector)
    ctx.session.start_subscription(sub)
    return Subscribed(subscription=sub.id)


async def unsubscribe(ctx: Ctx, params: UnsubscribeParams) -> Unsubscribed:
    if ctx.session is None or not ctx.session.owns(params.subscription):
        raise NoMatch(f"no subscription {params.subscription} on this connection")
    return Unsubscribed(unsubscribed=ctx.bus.unsubscribe(params.subscription))
