"""The kill handler: signal every matching alive entry at once, through the probe's
identity-checked path, TERM then KILL after the timeout."""

from __future__ import annotations

import signal

import trio

from goproc.api import KillOutcome, KillParams
from goproc.daemon.handlers.context import Ctx, resolve
from goproc.errors import GoprocError
from goproc.model import Proc


async def kill(ctx: Ctx, params: KillParams) -> list[KillOutcome]:
    """Signal every matching alive entry at once; see `_kill_one` for each outcome."""
    target = params.target
    procs = resolve(ctx, target.select, many=target.all)
    results: list[KillOutcome | None] = [None] * len(procs)

    async def one(n: int, p: Proc) -> None:
        results[n] = await _kill_one(ctx, p, params)

    async with trio.open_nursery() as nursery:
        for n, p in enumerate(procs):
            nursery.start_soon(one, n, p)
    if params.rm:
        await ctx.service.commit(ctx.registry.plan_remove(p.id for p in procs))
    return [r for r in results if r is not None]


async def _kill_one(ctx: Ctx, p: Proc, params: KillParams) -> KillOutcome:
    """Outcomes: "signalled" (a signal other than TERM was sent), "exited" (it ended
    within the timeout), "killed" (still running after the timeout: escalated to
    SIGKILL), "not alive" (nothing sent), "failed" (with `error`)."""
    name = signal_name(params.signal)

    def outcome(what: str, error: str | None = None) -> KillOutcome:
        return KillOutcome(id=p.id, pid=p.pid, signal=name, outcome=what, error=error)

    if not p.alive:
        return outcome("not alive")
    try:
        ctx.probe.send_signal(p.pid, p.started_at, params.signal, group=params.group)
        if int(params.signal) != signal.SIGTERM or float(params.timeout) == 0.0:
            return outcome("signalled")
        with trio.move_on_after(params.timeout):
            await _exited(ctx, p)
            return outcome("exited")
        ctx.probe.send_signal(p.pid, p.started_at, signal.SIGKILL, group=params.group)
        with trio.move_on_after(1.0):
            await _exited(ctx, p)
        return outcome("killed")
    except GoprocError as e:
        return outcome("failed", e.message)
    finally:
        if not ctx.probe.is_alive(p.pid, p.started_at):
            ctx.vitals.mark_dead(p)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:  # real-time signals have numbers only
        return f"SIG{signum}"


async def _exited(ctx: Ctx, p: Proc) -> None:
    """Return once the process has ended: woken by an exit watcher, or found by
    probing every 20 ms."""
    while ctx.probe.is_alive(p.pid, p.started_at):
        with trio.move_on_after(0.02):
            await ctx.pulse.wait()
