"""The kill handler: signal every matching alive entry at once, TERM then KILL after the
timeout.  Signals go through the pidfd the exit watcher holds for the entry, so they
reach that very process or nobody; exits are awaited on that pidfd too.  Entries with
no pidfd (`exit_watch: "poll"`, no pidfds) are identity-checked before each signal and
probed every 20 ms while awaited."""

from __future__ import annotations

import logging
import signal

import attrs
import trio

from goproc.api import KillOutcome, KillParams
from goproc.daemon.handlers.context import Ctx, ambiguous, cut_short_on_stop, resolve
from goproc.errors import GoprocError, NoSuchProcess, StorageError
from goproc.model import Proc, same_entry

log = logging.getLogger("goproc.kill")


async def kill(ctx: Ctx, params: KillParams) -> list[KillOutcome]:
    """Signal every matching alive entry at once; see `kill_one` for each outcome.
    Without `all`, at most one match may be alive (dead ones are answered "not alive":
    nothing is sent to them anyway)."""
    target = params.target
    procs = resolve(ctx, target.select, many=True)
    alive = [p for p in procs if p.alive]
    if len(alive) > 1 and not target.all:
        raise ambiguous(alive)
    results: list[KillOutcome | None] = [None] * len(procs)

    async def one(n: int, p: Proc) -> None:
        results[n] = await kill_one(ctx, p, params)

    async with trio.open_nursery() as nursery:
        for n, p in enumerate(procs):
            nursery.start_soon(one, n, p)
    outcomes = [r for r in results if r is not None]
    return await _remove_ended(ctx, procs, outcomes) if params.rm else outcomes


async def _remove_ended(
    ctx: Ctx, procs: list[Proc], outcomes: list[KillOutcome]
) -> list[KillOutcome]:
    """`rm`: forget the entries whose process has ended; one still running (it survived,
    or its signal failed) is kept.  Only entries still there as those entries are
    removed, never one that got the id after a `reset`.  The signals went out whatever
    happens here, so a removal that cannot be saved is answered per entry
    (`removed: false`), not as an error."""
    ended: set[int] = set()  # forgotten once this is done
    present: list[int] = []  # of those, the ones to remove now
    for p, r in zip(procs, outcomes, strict=True):
        current = _current(ctx, p)
        if r.outcome == "failed" or (current is not None and current.alive):
            continue
        ended.add(p.id)
        if current is not None:
            present.append(p.id)
    saved = True
    if present:
        try:
            await ctx.service.commit(ctx.registry.plan_remove(present))
        except StorageError as e:
            log.error("kill --rm: %s", e.message)
            saved = False
    return [attrs.evolve(r, removed=r.id in ended and saved) for r in outcomes]


async def kill_one(ctx: Ctx, p: Proc, params: KillParams) -> KillOutcome:
    """Signal one entry (for `kill`, and for the alert rules' actions).  Outcomes:
    "signalled" (a signal other than TERM was sent; or TERM, and the daemon
    began to stop before the exit: no KILL follows), "exited" (it ended within the
    timeout, or before a signal reached it), "killed" (still running after
    the timeout: escalated to SIGKILL), "not alive" (nothing sent), "failed" (with
    `error`)."""
    name = signal_name(params.signal)

    def outcome(what: str, error: str | None = None) -> KillOutcome:
        return KillOutcome(id=p.id, pid=p.pid, signal=name, outcome=what, error=error)

    if not p.alive:
        return outcome("not alive")
    try:
        _send(ctx, p, params.signal, params.group)
        if int(params.signal) != signal.SIGTERM or float(params.timeout) == 0.0:
            if params.rm and int(params.signal) == signal.SIGKILL:
                with trio.move_on_after(1.0):  # it dies at once: let `rm` see it gone
                    await _exited(ctx, p)
            return outcome("signalled")
        with cut_short_on_stop(ctx) as stop, trio.move_on_after(params.timeout):
            await _exited(ctx, p)
            return outcome("exited")
        if stop.cancelled_caught:  # the daemon is stopping: TERM went out, KILL never will
            return outcome("signalled")
        _send(ctx, p, signal.SIGKILL, params.group)
        with trio.move_on_after(1.0):
            await _exited(ctx, p)
        return outcome("killed")
    except NoSuchProcess:  # it ended by itself before the signal could reach it
        return outcome("exited")
    except GoprocError as e:
        return outcome("failed", e.message)
    finally:
        _settle(ctx, p)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:  # real-time signals have numbers only
        return f"SIG{signum}"


def _current(ctx: Ctx, p: Proc) -> Proc | None:
    """The registry's version of this entry, if it is still there as this entry."""
    current = ctx.registry.get(p.id)
    return current if current is not None and same_entry(current, p) else None


def _send(ctx: Ctx, p: Proc, signum: int, group: bool) -> None:
    ctx.probe.send_signal(p.pid, p.started_at, signum, group=group, pidfd=ctx.exits.pidfd(p))


async def _exited(ctx: Ctx, p: Proc) -> None:
    """Return once the process has ended: told by the exit watcher's pidfd, or (when it
    has none for the entry, or the entry was forgotten while alive) found by probing
    every 20 ms; for a child of the daemon's, once the reaper has recorded its exit."""
    await ctx.exits.wait_exit(p)
    while ctx.probe.is_alive(p.pid, p.started_at):
        with trio.move_on_after(0.02):
            await ctx.pulse.wait()
    # A child of the daemon's is marked dead when it is reaped, with its status.
    while (current := _current(ctx, p)) is not None and current.alive:
        if not ctx.vitals.reaped_by_us(current):
            break
        await ctx.pulse.wait()


def _settle(ctx: Ctx, p: Proc) -> None:
    """Record an exit the watcher has not (yet) seen; probes only entries still alive."""
    current = _current(ctx, p)
    if current is not None and current.alive and not ctx.probe.is_alive(p.pid, p.started_at):
        ctx.vitals.mark_dead(current)
