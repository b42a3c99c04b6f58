"""The wait handler: answer once the matching entries have exited (or one, with `any`),
or at the timeout."""

from __future__ import annotations

import trio

from goproc.api import WaitParams, WaitResult
from goproc.daemon.handlers.context import Ctx, resolve
from goproc.model import Proc


async def wait(ctx: Ctx, params: WaitParams) -> WaitResult:
    """The entries are those matching when the request arrives; one removed meanwhile
    counts as ended."""
    ids = [p.id for p in resolve(ctx, params.select, many=True)]

    def split() -> tuple[list[Proc], list[Proc]]:
        procs = [p for i in ids if (p := ctx.registry.get(i)) is not None]
        return [p for p in procs if not p.alive], [p for p in procs if p.alive]

    def done() -> bool:
        ended, alive = split()
        gone = len(ids) - len(ended) - len(alive)
        return not alive or (params.any and (bool(ended) or gone > 0))

    async def until_done() -> None:
        while not done():
            await ctx.pulse.wait()

    with trio.move_on_after(params.timeout) as scope:
        if ctx.session is None:
            await until_done()
        else:
            async with ctx.session.cancel_on_hangup():
                await until_done()
    ended, alive = split()
    return WaitResult(exited=ended, alive=alive, timed_out=scope.cancelled_caught)
