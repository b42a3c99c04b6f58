"""The wait handler: answer once the matching entries have exited (or one, with `any`),
or at the timeout.  It holds the entries it resolved, not their ids: one removed
meanwhile (or forgotten by a `reset`, after which its id may name another process) is
reported as removed, never as exited, and no later entry is mistaken for it."""

from __future__ import annotations

import trio

from goproc.api import WaitParams, WaitResult
from goproc.daemon.handlers.context import Ctx, resolve
from goproc.model import Proc, same_entry


async def wait(ctx: Ctx, params: WaitParams) -> WaitResult:
    """The entries are those matching when the request arrives; it ends when none is
    alive any more (or, with `any`, when one has exited or been removed)."""
    held = resolve(ctx, params.select, many=True)

    def split() -> tuple[list[Proc], list[Proc], list[Proc]]:
        exited: list[Proc] = []
        alive: list[Proc] = []
        removed: list[Proc] = []
        for p in held:
            current = ctx.registry.get(p.id)
            if current is None or not same_entry(current, p):
                removed.append(p)
            else:
                (alive if current.alive else exited).append(current)
        return exited, alive, removed

    def done() -> bool:
        exited, alive, removed = split()
        return not alive or (params.any and bool(exited or removed))

    async def until_done() -> None:
        while not done():
            await ctx.pulse.wait()

    with trio.move_on_after(params.timeout) as scope:
        if ctx.session is None:
            await until_done()
        else:
            async with ctx.session.cancel_on_hangup():
                await until_done()
    exited, alive, removed = split()
    return WaitResult(exited=exited, alive=alive, removed=removed, timed_out=scope.cancelled_caught)
