"""The method table: one small handler per JSON-RPC method.

A handler takes the `Context` and its typed params and returns a typed result; the
dispatcher structures params and unstructures results with the one converter, and
`goproc.protocol` maps whatever a handler raises to a JSON-RPC error.
Mutations go through `Context.commit`: applied, journaled, then answered.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from attrs import define, frozen

from goproc import __version__
from goproc.errors import StorageError
from goproc.model import Change, Proc, Selector
from goproc.probe import Probe
from goproc.protocol import (
    Dispatch,
    Label,
    Name,
    Pid,
    Request,
    method_not_found,
    structure_params,
    unstructure,
)
from goproc.registry import Registry


class Journal(Protocol):
    async def append(self, change: Change) -> None: ...


def now() -> float:
    """Wall-clock seconds, to the microsecond the wire format keeps."""
    return round(time.time(), 6)


@define
class Context:
    """What handlers share: the registry, the OS seam, and the way to make a change last."""

    registry: Registry
    probe: Probe
    journal: Journal
    on_change: Callable[[], None] = lambda: None
    stats: Callable[[], dict[str, Any]] = dict
    clock: Callable[[], float] = now

    async def commit(self, change: Change) -> None:
        """Apply `change` and journal it; on a journal failure undo it and raise
        StorageError, so nothing is acknowledged that would not survive a crash."""
        undo = self.registry.apply(change)
        try:
            await self.journal.append(change)
        except OSError as e:
            self.registry.apply(undo)
            raise StorageError(
                f"could not save the change, so it was not made: {e.strerror or e}"
            ) from None
        self.on_change()


# ---- params ----------------------------------------------------------------------------


@frozen
class NoParams:
    pass


@frozen
class AddParams:
    pid: Pid
    tags: tuple[Label, ...] = ()
    groups: tuple[Label, ...] = ()
    name: Name | None = None


# ---- handlers --------------------------------------------------------------------------


async def ping(ctx: Context, _: NoParams) -> str:
    return "pong"


async def status(ctx: Context, _: NoParams) -> dict[str, Any]:
    alive = sum(1 for p in ctx.registry if p.alive)
    return {
        "version": __version__,
        "pid": os.getpid(),
        "entries": len(ctx.registry),
        "alive": alive,
        "next_id": ctx.registry.next_id,
        **ctx.stats(),
    }


async def add(ctx: Context, params: AddParams) -> Proc:
    facts = ctx.probe.inspect(params.pid)
    added, change = ctx.registry.plan_add(
        [facts], tags=params.tags, groups=params.groups, name=params.name, now=ctx.clock()
    )
    await ctx.commit(change)
    return added[0]


async def list_procs(ctx: Context, selector: Selector) -> list[Proc]:
    return ctx.registry.select(selector)


@frozen
class Method:
    params: type
    handler: Callable[[Context, Any], Awaitable[Any]]


METHODS: dict[str, Method] = {
    "ping": Method(NoParams, ping),
    "status": Method(NoParams, status),
    "add": Method(AddParams, add),
    "list": Method(Selector, list_procs),
}


def make_dispatch(ctx: Context) -> Dispatch:
    """Request -> plain JSON result, through the method table."""

    async def dispatch(req: Request) -> Any:
        method = METHODS.get(req.method)
        if method is None:
            raise method_not_found(req.method)
        params: Any = structure_params(req.params, method.params)
        return unstructure(await method.handler(ctx, params))

    return dispatch
